"""Pure domain core: no I/O, no clocks, no Kafka/Postgres/HTTP imports (a test enforces it)."""
