"""The PostgreSQL pool and the tables shared by every service: the embedded log, consumer positions and the
quarantine. Each service keeps the DDL of its own tables beside its projection and passes it as `schemas`."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

SCHEMA = """
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


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10, connect_timeout: float = 2.0,
                      command_timeout: float | None = 60.0, schemas: Sequence[str] = ()) -> asyncpg.Pool:
    """A pool that survives a PostgreSQL restart: asyncpg replaces a pooled connection found closed on its next
    acquire, and a connection attempt gives up after `connect_timeout` (asyncpg's default is 60 s), so while
    the server is down a request fails in about that long rather than waiting; `command_timeout` bounds a
    statement on a server that stopped answering (None: no bound). `schemas`: the callers' own tables (idempotent
    DDL), created under the same lock."""
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=connect_timeout,
                                     command_timeout=command_timeout or None)
    async with pool.acquire() as conn:
        # Advisory lock: several processes may start at once against one database.
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(7421001)")
            await conn.execute(SCHEMA)
            for schema in schemas:
                await conn.execute(schema)
    return pool
