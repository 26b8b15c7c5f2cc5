"""The aggregator's usage read port: what summaries, billing and ingest may ask of the usage projection.

Nobody else reads `usage_minutes`, `meter_event_index` or the aggregator's `consumer_offsets` rows directly:
they call these functions, so the aggregator can change its tables without breaking its readers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

import asyncpg
import orjson

from tally_core.aggregation import Usage
from tally_core.meters import Formula, Meter
from tally_infra.logs.ports import METER_EVENTS, EventLog

MeterLookup = Callable[[str, str], Meter | None]  # (account, meter id) → the meter, for its formula


async def positions(pool: asyncpg.Pool, group_id: str, topic: str = METER_EVENTS) -> dict[int, int]:
    """The aggregator's committed position per partition of `meter-events` (what it has folded so far)."""
    rows = await pool.fetch(
        "select partition, next_offset from consumer_offsets where group_id = $1 and topic = $2", group_id, topic)
    return {r[0]: r[1] for r in rows}


async def caught_up(pool: asyncpg.Pool, log: EventLog, group_id: str, *, timeout: float) -> bool:
    """Wait (up to `timeout` s) until the aggregator has folded every meter event appended so far, so a usage
    read sees them; False if it is still behind then (the read goes ahead on what is projected)."""
    ends = await log.end_offsets(METER_EVENTS)
    deadline = time.monotonic() + timeout
    while True:
        done = await positions(pool, group_id)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)


async def recent_identifiers(pool: asyncpg.Pool, since_ms: int, limit: int) -> list[tuple[str, str, str, int]]:
    """(account, identifier, customer, received_at) of events received since `since_ms`, oldest first, at most
    `limit` of the newest: what ingest needs to report duplicates synchronously after a restart."""
    rows = await pool.fetch(
        "select account, identifier, customer, received_at from meter_event_index where received_at >= $1 "
        "order by received_at desc limit $2", since_ms, limit)
    return [tuple(r) for r in reversed(rows)]


async def locate_event(pool: asyncpg.Pool, account: str, identifier: str) -> tuple[str, int] | None:
    """(customer, received_at) of the newest aggregated event with this identifier, for cancellations."""
    row = await pool.fetchrow(
        "select customer, received_at from meter_event_index where account = $1 and identifier = $2 "
        "order by received_at desc limit 1", account, identifier,
    )
    return (row[0], row[1]) if row else None


async def usage_buckets(
    pool: asyncpg.Pool, account: str, meter: str, customer: str, *, origin: int, width: int, lo: int, hi: int,
    group_by: tuple[str, ...] = (), filters: dict | None = None, with_last: bool = True,
    after: tuple[int, str] | None = None, before: tuple[int, str] | None = None, limit: int | None = None,
    digest: str | None = None,
) -> list[tuple[int, str, Usage]]:
    """Usage minutes in [lo, hi) rolled up into buckets of `width` seconds counted from `origin`, per group
    (the JSON text of the `group_by` dimension values, `{}` without grouping), ordered by (bucket, group).

    Filtering, grouping, the cursor (`after`/`before` a (bucket, group), or the group whose `digest` is
    `left(md5(meter || '|' || group), 10)`, as tally_core.summaries.group_digest computes it) and `limit`
    all run in SQL, so a page costs the database one range scan and Python only the rows it returns. `last`
    is taken with DISTINCT ON (a sort PostgreSQL bounds by work_mem), not array_agg (which holds every row).
    """
    args: list = [account, meter, customer, origin, width, lo, hi]

    def arg(value) -> str:
        args.append(value)
        return f"${len(args)}"

    where = "account = $1 and meter = $2 and customer = $3 and minute >= $6 and minute < $7"
    if filters:
        where += f" and dims::jsonb @> {arg(orjson.dumps(filters).decode())}::jsonb"
    group = "'{}'::text"
    if group_by:
        keys = arg(list(group_by))
        group = (f"coalesce((select jsonb_object_agg(k, dims::jsonb -> k) from unnest({keys}::text[]) k), "
                 "'{}'::jsonb)::text")
    conditions = []
    if after or before:
        bucket, grp = after or before
        conditions.append(f'(s.bucket, s.grp collate "C") {">" if after else "<"} '
                          f'({arg(bucket)}::bigint, {arg(grp)}::text collate "C")')
    if digest is not None:
        conditions.append(f"left(md5($2 || '|' || s.grp), 10) = {arg(digest)}")
    direction = "desc" if before else "asc"
    tail = f'order by s.bucket {direction}, s.grp collate "C" {direction}'
    if limit is not None:
        tail += f" limit {arg(limit)}"
    last = ("""select distinct on (bucket, grp) bucket, grp, last_value, last_ts, last_seq from g
               order by bucket, grp, last_ts desc nulls last, last_seq desc nulls last""" if with_last else
            "select null::bigint as bucket, null::text as grp, null::numeric as last_value, "
            "null::bigint as last_ts, null::bigint as last_seq")
    rows = await pool.fetch(
        f"""with g as (
              select $4::bigint + ((minute - $4::bigint) / $5::bigint) * $5::bigint as bucket, {group} as grp,
                     value_sum, event_count, last_value, last_ts, last_seq
              from usage_minutes where {where}),
            s as (select bucket, grp, sum(value_sum) as value_sum, sum(event_count)::bigint as n
                  from g group by bucket, grp),
            l as ({last})
            select s.bucket, s.grp, s.value_sum, s.n, l.last_value, l.last_ts, l.last_seq
            from s left join l on l.bucket = s.bucket and l.grp = s.grp
            {"where " + " and ".join(conditions) if conditions else ""} {tail}""",
        *args,
    )
    out = [(r[0], r[1], Usage(r[2], r[3], r[4], r[5], r[6])) for r in rows]
    return out[::-1] if before else out


async def period_usage(pool: asyncpg.Pool, meter_of: MeterLookup,
                       keys: Iterable[tuple[str, str, str, int, int]]) -> dict[tuple, Decimal]:
    """Aggregated usage for (account, meter, customer, start, end) keys under each meter's formula, one query.

    Minutes are whole: a minute belongs to the period holding its first second (README: the minute rule)."""
    requests = sorted(keys)
    if not requests:
        return {}
    rows = await pool.fetch(
        """select k.i, coalesce(sum(u.value_sum), 0), coalesce(sum(u.event_count), 0)::bigint,
                  (array_agg(u.last_value order by u.last_ts desc nulls last, u.last_seq desc nulls last))[1]
           from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
                with ordinality as k(account, meter, customer, s, e, i)
           left join usage_minutes u on u.account = k.account and u.meter = k.meter and u.customer = k.customer
                and u.minute >= k.s and u.minute < k.e
           group by k.i order by k.i""",
        *[list(col) for col in zip(*requests)])
    out = {}
    for (_, total, count, last), key in zip(rows, requests):
        meter = meter_of(key[0], key[1])
        out[key] = Usage(Decimal(total), count, last).value(meter.formula if meter else Formula.SUM)
    return out


