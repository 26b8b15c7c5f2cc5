"""The usage projection in PostgreSQL, written only by the aggregator (others read it through `usage.py`).

Exactly once: a batch's projection changes and the consumed offsets are written in one transaction, and
records below the stored offset are skipped, so a crash or a redelivery after a rebalance counts nothing
twice. Dedup is by (account, customer, identifier) within 24 h of receipt (`received_at` comes from the
log, so a replay decides exactly as the live run did); keeping it per customer keeps it on one partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg
import orjson

from tally_core.aggregation import deltas, dims_key, minute_of
from tally_core.meter_events import CANCELED, DEDUP_WINDOW_MS, RECORDED
from tally_infra.dead_letters import ReplayOutcome, dead_letter_key, quarantine, replay
from tally_infra.faults import is_retriable
from tally_infra.logs.ports import METER_EVENTS, LogRecord

from . import usage

log = logging.getLogger("tally.aggregator")

SCHEMA = """
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
"""
TABLES = ("meter_event_index", "usage_minutes")
# Appends (key, value) pairs to the dead-letter topic; the log port's `append` bound to METER_EVENTS_DEAD.
DeadLetterSink = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]

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
    """Applies meter-event log records to the usage tables, idempotently, with offsets.

    A batch that fails for a reason that is not `retriable` is applied again with its poison isolated:
    halves are folded in savepoints until the failing records are single, those are quarantined
    (`dead_letters`, and the `sink` topic) and the offsets move past them in the same transaction."""

    def __init__(self, pool: asyncpg.Pool, group_id: str = "tally-aggregator", topic: str = METER_EVENTS, *,
                 sink: DeadLetterSink | None = None, clock: Callable[[], float] = time.time):
        self.pool = pool
        self.group_id = group_id
        self.topic = topic
        self.sink = sink
        self.clock = clock

    async def positions(self) -> dict[int, int]:
        return await usage.positions(self.pool, self.group_id, self.topic)

    async def apply(self, records: list[LogRecord], keys: dict[tuple[int, int], bytes] | None = None) -> int:
        """Apply records (each partition's in offset order); return how many were new to this projection.

        `keys` ((partition, offset) → record key), where the consumer has them, go into the dead-letter rows."""
        if not records:
            return 0
        try:
            return await self._apply(records, None)
        except Exception as exc:
            if is_retriable(exc):
                raise
            log.warning("a batch of %d meter-event records failed (%s: %s); isolating the poison",
                        len(records), type(exc).__name__, str(exc)[:200])
        return await self._apply(records, keys or {})

    async def _apply(self, records: list[LogRecord], isolate: dict | None) -> int:
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
            if isolate is None:
                await self._fold(conn, fresh)
            else:
                failed: list[tuple[LogRecord, BaseException]] = []
                await self._fold_isolating(conn, fresh, failed)
                if failed and self.sink is not None:
                    await self.sink([(dead_letter_key(self.topic, r), bytes(r.value)) for r, _ in failed])
                await quarantine(conn, self.group_id, self.topic, failed, int(self.clock() * 1000), keys=isolate)
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

    async def _fold_isolating(self, conn: asyncpg.Connection, records: list[LogRecord],
                              failed: list[tuple[LogRecord, BaseException]]) -> None:
        """Fold in a savepoint; on a data error fold each half the same way (consecutive sub-batches fold to
        the same projection as the whole), down to the single records that fail: those go to `failed`."""
        try:
            async with conn.transaction():
                await self._fold(conn, records)
        except Exception as exc:
            if is_retriable(exc) or conn.is_closed():
                raise
            if len(records) == 1:
                failed.append((records[0], exc))
                return
            mid = len(records) // 2
            await self._fold_isolating(conn, records[:mid], failed)
            await self._fold_isolating(conn, records[mid:], failed)

    async def replay_dead_letters(self) -> ReplayOutcome:
        """Fold this consumer's quarantined records again, in log order (`tally dead-letters replay`).

        A record keeps its log offset as its `last` sequence, so `last` still breaks ties by log order; dedup
        by identifier applies as it would have (a repeat accepted since makes the replayed one a duplicate).
        A cancellation later in the log that found nothing to cancel is not applied again."""
        async def apply_one(conn: asyncpg.Connection, letter) -> None:
            await self._fold(conn, [letter.record])

        return await replay(self.pool, self.group_id, self.topic, apply_one, now_ms=int(self.clock() * 1000))

    async def _fold(self, conn: asyncpg.Connection, records: list[LogRecord]) -> None:
        segment: list[tuple[dict, int]] = []
        seen: set[tuple[str, str, str]] = set()
        for rec in records:
            event = orjson.loads(rec.value)
            kind = event.get("type") if isinstance(event, dict) else None
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
            else:  # nothing else is ever written to meter-events: never skip it silently
                raise ValueError(f"not a meter-event record (type {kind!r})")
        await self._record(conn, segment)

    async def _record(self, conn: asyncpg.Connection, events: list[tuple[dict, int]]) -> None:
        if not events:
            return
        cols: list[list] = [[] for _ in range(11)]
        for e, seq in events:
            for col, v in zip(cols, (
                e["account"], e["customer"], e["identifier"], e["received_at"], e["meter"], dims_key(e["dimensions"]),
                minute_of(e["timestamp"]), _finite(e["value"]), e["timestamp"], seq, e["formula"] == "last",
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


MAX_VALUE_EXPONENT = 1000  # digits either side of the point; the edge allows 15 and 12 (meter_events.py)


def _finite(value: str) -> Decimal:
    """A value the projection holds exactly. PostgreSQL's numeric takes NaN and infinities, which would poison
    every sum they join, and asyncpg silently garbles numbers with more digits than numeric's 131,072."""
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"meter-event value {str(value)[:40]!r} is not a finite number")
    if number and (number.adjusted() >= MAX_VALUE_EXPONENT or number.as_tuple().exponent < -MAX_VALUE_EXPONENT):
        raise ValueError(f"meter-event value {str(value)[:40]!r}… has more than {MAX_VALUE_EXPONENT} digits on a "
                         "side of the point")
    return number


async def truncate_usage(conn: asyncpg.Connection, group_id: str) -> None:
    """Drop the usage projections and their offsets so a replay rebuilds them from offset 0."""
    await conn.execute("truncate meter_event_index, usage_minutes")
    await conn.execute("delete from consumer_offsets where group_id = $1 and topic = $2", group_id, METER_EVENTS)
    # The rebuild meets the quarantined records again and judges them afresh.
    await conn.execute("delete from dead_letters where consumer = $1 and topic = $2", group_id, METER_EVENTS)
