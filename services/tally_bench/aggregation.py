"""Aggregation and replay measured in-process: the aggregator's own `drain` (Postgres log) or KafkaLog.scan +
UsageProjector.apply (what the faust agent calls), and `replay_usage`, each checked against the usage counts.
`postgres_aggregation` is the phase on a pre-filled Postgres log; the Kafka phase (kafka_load.py) reuses the
measurements."""

from __future__ import annotations

import contextlib
from time import perf_counter

import asyncpg

from tally_aggregator.postgres_loop import drain
from tally_aggregator.store import UsageProjector, truncate_usage
from tally_cli.replay import replay_usage
from tally_infra.logs.ports import METER_EVENTS
from tally_infra.logs.postgres_log import PostgresLog

from .cpu import CpuMeter
from .events import make_records
from .profiles import TimedConnection, cprofile, sql_breakdown
from .raw_limits import prefill_postgres, raw_pg_consume
from .report import Row, console
from .session import Bench

GROUP = "bench"


class Capped:
    """A log whose meter-events scan stops after `limit` records (replaying the first part of a big topic)."""

    def __init__(self, log, limit: int):
        self.log, self.limit, self.partitions = log, limit, log.partitions

    async def end_offsets(self, topic: str) -> dict[int, int]:
        return await self.log.end_offsets(topic)

    async def scan(self, topic: str, start=None, batch: int = 10_000):
        n = 0
        async with contextlib.aclosing(self.log.scan(topic, start, batch)) as it:
            async for records in it:
                yield records
                n += len(records)
                if topic == METER_EVENTS and n >= self.limit:
                    return


async def _usage_check(pool: asyncpg.Pool, expected: int) -> str:
    counted = int(await pool.fetchval("select coalesce(sum(event_count), 0) from usage_minutes"))
    indexed = await pool.fetchval("select count(*) from meter_event_index")
    ok = counted == expected == indexed
    return (f"usage counts {counted:,} events" if ok else
            f"MISMATCH: usage_minutes counts {counted:,}, meter_event_index {indexed:,}, applied {expected:,}")


async def _measure(url: str, kafka_log, n: int, cpu: CpuMeter, run, profile_if_below: tuple[float, float],
                   profile_cap: int):
    """Time `run(pool, log, cap)` with SQL timing; re-run the first `profile_cap` records under cProfile if slow."""
    pool = await asyncpg.create_pool(url, min_size=2, max_size=10, connection_class=TimedConnection)
    log = kafka_log or PostgresLog(pool, 8)
    try:
        async with pool.acquire() as conn:
            await truncate_usage(conn, GROUP)
        TimedConnection.clear_stats()
        snap, t0 = cpu.snap(), perf_counter()
        got = await run(pool, log, n)
        wall = perf_counter() - t0
        used, sql = cpu.since(snap), sql_breakdown(wall)
        rate = got / wall
        check = f"{got:,} records in {wall:.1f} s; " + await _usage_check(pool, got)
        profile = None
        if rate < max(profile_if_below):
            async with pool.acquire() as conn:
                await truncate_usage(conn, GROUP)
            profile = await cprofile(lambda: run(pool, log, profile_cap))
        return rate, used, sql, check, profile
    finally:
        if kafka_log is None:
            await log.close()
        await pool.close()


async def _drain(pool, log, cap: int) -> int:
    """Postgres log: the aggregator's own `drain` (batch 5000, as `tally run`); Kafka: KafkaLog.scan + apply,
    what the faust agent calls."""
    projector = UsageProjector(pool, GROUP)
    if isinstance(log, PostgresLog):
        return await drain(Capped(log, cap), projector, batch=5000)
    done = 0
    async with contextlib.aclosing(log.scan(METER_EVENTS, None, 10_000)) as it:
        async for records in it:
            done += await projector.apply(records)
            if done >= cap:
                break
    return done


async def _replay(pool, log, cap: int) -> int:
    return await replay_usage(pool, Capped(log, cap), GROUP, batch=10_000)


async def measure_drain(url, kafka_log, n, cpu, *, profile_if_below, profile_cap):
    return await _measure(url, kafka_log, n, cpu, _drain, profile_if_below, profile_cap)


async def measure_replay(url, kafka_log, n, cpu, *, profile_if_below, profile_cap):
    return await _measure(url, kafka_log, n, cpu, _replay, profile_if_below, profile_cap)


async def postgres_aggregation(bench: Bench) -> None:
    console.rule("aggregation and replay on the Postgres log (in-process: drain, replay_usage)")
    url = await bench.new_database("agg")
    n = bench.sz.agg_events
    rows = await prefill_postgres(url, make_records(bench.run, n), bench.cpu)
    bench.add(Row("PostgresLog.append pre-fill (in-process, 10,000/append)", rows[0], "ev/s", cpu=rows[1],
                  note=f"{n:,} records"))
    raw = await raw_pg_consume(url, n, bench.cpu)
    bench.add(Row("raw limit: SELECT log_records + orjson.loads", raw[0], "rec/s", cpu=raw[1]))
    for figure, fn in ((f"aggregation: drain a pre-filled Postgres log ({n:,})", measure_drain),
                       (f"replay_usage on the Postgres log ({n:,})", measure_replay)):
        rate, cpu, sql, check, profile = await fn(url, None, n, bench.cpu, profile_if_below=(100_000, 0.5 * raw[0]),
                                                  profile_cap=n // 3)
        bench.add(Row(figure, rate, "ev/s", raw[0], "raw SELECT + parse", 100_000, 0.5, cpu=cpu, note=check))
        if profile:
            bench.profiles[figure] = sql + [""] + profile
