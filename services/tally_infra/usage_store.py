"""Usage projections in PostgreSQL: the aggregator's writes and the summaries' reads.

Exactly once: a batch's projection changes and the consumed offsets are written in one transaction, and
records below the stored offset are skipped, so a crash or a redelivery after a rebalance counts nothing
twice. Dedup is by (account, customer, identifier) within 24 h of receipt (`received_at` comes from the
log, so a replay decides exactly as the live run did); keeping it per customer keeps it on one partition.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import orjson

from tally_core.aggregation import Usage, deltas, dims_key, minute_of
from tally_core.meter_events import CANCELED, DEDUP_WINDOW_MS, RECORDED

from .logs.ports import METER_EVENTS, LogRecord

_INDEX_INSERT = """
insert into meter_event_index (account, customer, identifier, received_at, meter, dims, minute, value, ts, seq, is_last)
select x.* from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[],
                       $8::numeric[], $9::bigint[], $10::bigint[], $11::bool[])
  as x(account, customer, identifier, received_at, meter, dims, minute, value, ts, seq, is_last)
where not exists (
  select 1 from meter_event_index i
  where i.account = x.account and i.customer = x.customer and i.identifier = x.identifier
    and i.received_at > x.received_at - %d)
returning customer, identifier
""" % DEDUP_WINDOW_MS

_USAGE_UPSERT = """
insert into usage_minutes as u (account, meter, customer, dims, minute, value_sum, event_count, last_value, last_ts, last_seq)
select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::numeric[], $7::bigint[],
                     $8::numeric[], $9::bigint[], $10::bigint[])
on conflict (account, meter, customer, minute, dims) do update set
  value_sum = u.value_sum + excluded.value_sum,
  event_count = u.event_count + excluded.event_count,
  last_value = case when u.last_ts is null or (excluded.last_ts, excluded.last_seq) > (u.last_ts, u.last_seq)
                    then excluded.last_value else u.last_value end,
  last_seq = case when u.last_ts is null or (excluded.last_ts, excluded.last_seq) > (u.last_ts, u.last_seq)
                  then excluded.last_seq else u.last_seq end,
  last_ts = greatest(u.last_ts, excluded.last_ts)
"""

_CANCEL = """
update meter_event_index set canceled = true
where account = $1 and customer = $2 and identifier = $3 and not canceled and received_at >= $4
returning meter, dims, minute, value, is_last
"""

_RECOMPUTE_LAST = """
update usage_minutes u set last_value = l.value, last_ts = l.ts, last_seq = l.seq
from (select null::int as k) k
left join lateral (
  select value, ts, seq from meter_event_index
  where account = $1 and meter = $2 and customer = $3 and minute = $4 and dims = $5 and is_last and not canceled
  order by ts desc, seq desc limit 1) l on true
where u.account = $1 and u.meter = $2 and u.customer = $3 and u.minute = $4 and u.dims = $5
"""


class UsageProjector:
    """Applies meter-event log records to the usage tables, idempotently, with offsets."""

    def __init__(self, pool: asyncpg.Pool, group_id: str = "tally-aggregator", topic: str = METER_EVENTS):
        self.pool = pool
        self.group_id = group_id
        self.topic = topic

    async def positions(self) -> dict[int, int]:
        rows = await self.pool.fetch(
            "select partition, next_offset from consumer_offsets where group_id = $1 and topic = $2",
            self.group_id, self.topic,
        )
        return {r[0]: r[1] for r in rows}

    async def apply(self, records: list[LogRecord]) -> int:
        """Apply records (each partition's in offset order); return how many were new to this projection."""
        if not records:
            return 0
        parts = sorted({r.partition for r in records})
        async with self.pool.acquire() as conn, conn.transaction():
            # 1. Lock our offset rows (created first, so even a partition's first batch is serialised): a second
            #    worker holding a stale assignment waits, then skips what the first one applied.
            await conn.execute(
                "insert into consumer_offsets (group_id, topic, partition, next_offset) "
                "select $1, $2, p, 0 from unnest($3::int[]) as p on conflict do nothing",
                self.group_id, self.topic, parts,
            )
            stored = {
                r[0]: r[1]
                for r in await conn.fetch(
                    "select partition, next_offset from consumer_offsets where group_id = $1 and topic = $2 "
                    "and partition = any($3::int[]) for update", self.group_id, self.topic, parts,
                )
            }
            fresh = [r for r in records if r.offset >= stored.get(r.partition, 0)]
            if not fresh:
                return 0
            # 2. Fold the records into the projections, in log order per partition.
            await self._fold(conn, fresh)
            # 3. Store the next offsets; the commit makes 2 and 3 visible together.
            nexts: dict[int, int] = {}
            for r in fresh:
                nexts[r.partition] = max(nexts.get(r.partition, 0), r.offset + 1)
            await conn.executemany(
                "insert into consumer_offsets (group_id, topic, partition, next_offset) values ($1, $2, $3, $4) "
                "on conflict (group_id, topic, partition) do update set next_offset = excluded.next_offset",
                [(self.group_id, self.topic, p, n) for p, n in nexts.items()],
            )
        return len(fresh)

    async def _fold(self, conn: asyncpg.Connection, records: list[LogRecord]) -> None:
        segment: list[tuple[dict, int]] = []
        seen: set[tuple[str, str, str]] = set()
        for rec in records:
            event = orjson.loads(rec.value)
            kind = event.get("type")
            if kind == RECORDED:
                key = (event["account"], event["customer"], event["identifier"])
                if key in seen:  # a repeat inside one segment: settle the segment first, then judge it
                    await self._record(conn, segment)
                    segment, seen = [], set()
                seen.add(key)
                segment.append((event, rec.offset))
            elif kind == CANCELED:
                await self._record(conn, segment)
                segment, seen = [], set()
                await self._cancel(conn, event)
        await self._record(conn, segment)

    async def _record(self, conn: asyncpg.Connection, events: list[tuple[dict, int]]) -> None:
        if not events:
            return
        cols: list[list] = [[] for _ in range(11)]
        for e, seq in events:
            for col, v in zip(cols, (
                e["account"], e["customer"], e["identifier"], e["received_at"], e["meter"], dims_key(e["dimensions"]),
                minute_of(e["timestamp"]), Decimal(e["value"]), e["timestamp"], seq, e["formula"] == "last",
            )):
                col.append(v)
        accepted = {(r[0], r[1]) for r in await conn.fetch(_INDEX_INSERT, *cols)}
        kept = [(e, seq) for e, seq in events if (e["customer"], e["identifier"]) in accepted]
        if not kept:
            return
        ucols: list[list] = [[] for _ in range(10)]
        for k, u in deltas(kept).items():
            for col, v in zip(ucols, (k.account, k.meter, k.customer, k.dims, k.minute, u.value_sum, u.count,
                                      u.last_value, u.last_ts, u.last_seq)):
                col.append(v)
        await conn.execute(_USAGE_UPSERT, *ucols)

    async def _cancel(self, conn: asyncpg.Connection, event: dict) -> None:
        account, customer = event["account"], event["customer"]
        row = await conn.fetchrow(_CANCEL, account, customer, event["identifier"], event["received_at"] - DEDUP_WINDOW_MS)
        if row is None:
            return  # unknown, already canceled, or older than 24 h: nothing to remove
        meter, dims, minute, value, is_last = row
        await conn.execute(
            "update usage_minutes set value_sum = value_sum - $6, event_count = event_count - 1 "
            "where account = $1 and meter = $2 and customer = $3 and minute = $4 and dims = $5",
            account, meter, customer, minute, dims, value,
        )
        if is_last:
            await conn.execute(_RECOMPUTE_LAST, account, meter, customer, minute, dims)


async def locate_event(pool: asyncpg.Pool, account: str, identifier: str) -> tuple[str, int] | None:
    """(customer, received_at) of the newest aggregated event with this identifier, for cancellations."""
    row = await pool.fetchrow(
        "select customer, received_at from meter_event_index where account = $1 and identifier = $2 "
        "order by received_at desc limit 1", account, identifier,
    )
    return (row[0], row[1]) if row else None


async def usage_buckets(
    pool: asyncpg.Pool, account: str, meter: str, customer: str, start: int, end: int, width: int,
) -> list[tuple[int, str, Usage]]:
    """Roll minutes up into [start, end) buckets of `width` seconds, per dimension set."""
    rows = await pool.fetch(
        """select $4::bigint + ((minute - $4::bigint) / $6::bigint) * $6::bigint as bucket, dims,
                  sum(value_sum), sum(event_count)::bigint,
                  (array_agg(last_value order by last_ts desc nulls last, last_seq desc nulls last))[1],
                  (array_agg(last_ts order by last_ts desc nulls last, last_seq desc nulls last))[1],
                  (array_agg(last_seq order by last_ts desc nulls last, last_seq desc nulls last))[1]
           from usage_minutes
           where account = $1 and meter = $2 and customer = $3 and minute >= $4 and minute < $5
           group by 1, 2 order by 1, 2""",
        account, meter, customer, start, end, width,
    )
    return [(r[0], r[1], Usage(r[2], r[3], r[4], r[5], r[6])) for r in rows]


async def truncate_usage(conn: asyncpg.Connection, group_id: str) -> None:
    """Drop the usage projections and their offsets so a replay rebuilds them from offset 0."""
    await conn.execute("truncate meter_event_index, usage_minutes")
    await conn.execute("delete from consumer_offsets where group_id = $1 and topic = $2", group_id, METER_EVENTS)
