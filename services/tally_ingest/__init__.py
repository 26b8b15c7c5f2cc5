"""Ingest: validates producers' meter events and appends them durably to the `meter-events` log."""
