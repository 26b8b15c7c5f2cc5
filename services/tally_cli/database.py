"""The database of a process that runs every service (or a tool that reads any table): each service's DDL,
from the module that owns it, created together at start-up."""

from __future__ import annotations

import asyncpg

from tally_aggregator import store as usage_store
from tally_billing import store as billing_store
from tally_catalog import records as catalog_records
from tally_edge import accounts, idempotency
from tally_infra.db import create_pool
from tally_ingest import sessions

SCHEMAS = (accounts.SCHEMA, idempotency.SCHEMA, catalog_records.SCHEMA, usage_store.SCHEMA, billing_store.SCHEMA,
           sessions.SCHEMA)


async def open_pool(url: str, **kw) -> asyncpg.Pool:
    """A pool on a database holding every service's tables."""
    return await create_pool(url, schemas=SCHEMAS, **kw)
