"""The HTTP edge beneath api and ingest: context, endpoint wrapper, auth, forms, idempotency, errors."""
