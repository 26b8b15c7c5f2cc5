"""Adapters shared by every service: PostgreSQL (embedded or by URL), the two log backends, projections."""
