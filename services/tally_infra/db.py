"""PostgreSQL connection pool and the schema of every table (logs, offsets, projections)."""

from __future__ import annotations

import asyncpg

from .accounts import KEYS_SCHEMA
from .billing_store import SCHEMA as BILLING_SCHEMA

SCHEMA = """
create table if not exists accounts (
  id text primary key,
  created bigint not null
);
create table if not exists api_keys (
  key text primary key,
  account text not null references accounts(id)
);

-- The embedded log: append-only, ordered per (topic, partition). `log_heads` serialises appends per
-- partition so offsets become visible in order (a reader never skips a row committed late).
create table if not exists log_records (
  topic text not null,
  partition int not null,
  "offset" bigint not null,
  key bytea,
  value bytea not null,
  primary key (topic, partition, "offset")
);
create table if not exists log_heads (
  topic text not null,
  partition int not null,
  next_offset bigint not null default 0,
  primary key (topic, partition)
);

-- Consumer positions, written in the same transaction as the projection change they produced.
create table if not exists consumer_offsets (
  group_id text not null,
  topic text not null,
  partition int not null,
  next_offset bigint not null,
  primary key (group_id, topic, partition)
);

create table if not exists meters (
  seq bigserial,
  account text not null,
  id text not null,
  event_name text not null,
  status text not null,
  created bigint not null,
  data jsonb not null,
  primary key (account, id),
  unique (account, event_name)
);

-- Every accepted meter event's identifier: the 24 h dedup window and the source for cancellations.
create table if not exists meter_event_index (
  account text not null,
  customer text not null,
  identifier text not null,
  received_at bigint not null,
  meter text not null,
  dims text not null,
  minute bigint not null,
  value numeric not null,
  ts bigint not null,
  seq bigint not null,
  is_last boolean not null,
  canceled boolean not null default false
);
-- Not unique: an identifier may be accepted again 24 h after its last acceptance, and the earlier event's row
-- must stay (a later cancel in its window recomputes `last` from these rows).
create index if not exists meter_event_index_key on meter_event_index (account, customer, identifier, received_at);
create index if not exists meter_event_index_identifier on meter_event_index (account, identifier);
create index if not exists meter_event_index_last on meter_event_index (account, meter, customer, minute)
  where is_last;

create table if not exists usage_minutes (
  account text not null,
  meter text not null,
  customer text not null,
  dims text not null,
  minute bigint not null,
  value_sum numeric not null,
  event_count bigint not null,
  last_value numeric,
  last_ts bigint,
  last_seq bigint,
  primary key (account, meter, customer, minute, dims)
);

create table if not exists idempotency_keys (
  account text not null,
  key text not null,
  request_hash bytea not null,
  status int not null,
  body bytea not null,
  created_ms bigint not null,
  primary key (account, key)
);

-- Records a consumer could not process (tally_infra/dead_letters.py): kept, countable, replayable. A row is
-- written in the same transaction that moves `consumer_offsets` past its record, and deleted by a replay that
-- applies it.
create table if not exists dead_letters (
  consumer text not null,
  topic text not null,
  partition int not null,
  "offset" bigint not null,
  key bytea,
  value bytea not null,
  error text not null,
  at_ms bigint not null,
  primary key (consumer, topic, partition, "offset")
);
"""

USAGE_TABLES = ("meter_event_index", "usage_minutes")


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10, connect_timeout: float = 2.0,
                      command_timeout: float | None = 60.0) -> asyncpg.Pool:
    """A pool that survives a PostgreSQL restart: asyncpg replaces a pooled connection found closed on its next
    acquire, and a connection attempt gives up after `connect_timeout` (asyncpg's default is 60 s), so while
    the server is down a request fails in about that long rather than waiting; `command_timeout` bounds a
    statement on a server that stopped answering (None: no bound)."""
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=connect_timeout,
                                     command_timeout=command_timeout or None)
    async with pool.acquire() as conn:
        # Advisory lock: several processes may start at once against one database.
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(7421001)")
            await conn.execute(SCHEMA)
            await conn.execute(BILLING_SCHEMA)
            await conn.execute(KEYS_SCHEMA)  # api_keys columns added since, and the revocation trigger
    return pool
