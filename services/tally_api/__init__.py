"""The Stripe-compatible HTTP API: meters, summaries, and (in one process) the ingest routes."""
