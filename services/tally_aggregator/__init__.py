"""Aggregator: folds the `meter-events` log into the usage projections (Postgres log loop or faust on Kafka)."""
