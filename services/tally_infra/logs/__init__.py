"""The log port and its two backends: PostgreSQL tables (embedded default) and Kafka."""
