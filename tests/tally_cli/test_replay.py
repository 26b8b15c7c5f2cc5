"""Replay: rebuilding the usage projections from the log gives the live projections row for row, and both
equal an independent reference fold (ARCHITECTURE decision 1), on both log backends."""

import asyncio

import pytest

from tally_aggregator.postgres_loop import run_postgres_aggregator
from tally_aggregator.store import UsageProjector
from tally_cli.database import open_pool as create_pool
from tally_cli.replay import replay_usage
from tally_core.codec import decode, encode
from tally_core.meter_events import partition_key
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.ports import METER_EVENTS
from tally_infra.logs.postgres_log import PostgresLog
from tests.reference import only_last_meaningful, projected_usage, reference_usage
from tests.workload import workload

pytestmark = pytest.mark.slow
N = 100_000


async def snapshot(pool, account):
    usage = await pool.fetch("select * from usage_minutes where account = $1 order by 1, 2, 3, 4, 5", account)
    index = await pool.fetch("select * from meter_event_index where account = $1 order by 1, 2, 3, 4", account)
    return [tuple(r) for r in usage], [tuple(r) for r in index]


async def read_back(log, account):
    out = []
    async for batch in log.scan(METER_EVENTS):
        for r in batch:
            rec = decode(r.value)
            if rec["account"] == account:
                out.append((r.partition, r.offset, rec))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


async def append_all(log, records, chunk=5000):
    for i in range(0, len(records), chunk):
        await log.append(METER_EVENTS, [(partition_key(r), encode(r)) for r in records[i:i + chunk]])


def filtered(usage: dict, account: str) -> dict:
    return only_last_meaningful({k: v for k, v in usage.items() if k[0] == account}, {"mtr_last"})


async def test_replay_on_the_postgres_log(db_url):
    # given a random workload appended while the live aggregator runs
    pool = await create_pool(db_url)
    log = PostgresLog(pool, 4)
    records = workload(N, account="acct_pg")
    projector = UsageProjector(pool)
    stop = asyncio.Event()
    live = asyncio.create_task(run_postgres_aggregator(log, projector, batch=1777, stop=stop, idle_wait=0.05))
    await append_all(log, records)
    ends = await log.end_offsets(METER_EVENTS)
    for _ in range(1200):
        if await projector.positions() == ends:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await live
    live_rows = await snapshot(pool, "acct_pg")
    # when the projections are rebuilt from the log
    replayed = await replay_usage(pool, log, projector.group_id, batch=10_000)
    # then they equal the live ones row for row, and the reference fold
    assert replayed == N
    assert await snapshot(pool, "acct_pg") == live_rows
    expected = filtered(reference_usage(await read_back(log, "acct_pg")), "acct_pg")
    assert filtered(await projected_usage(pool), "acct_pg") == expected
    assert len(expected) > 1000
    await log.close()
    await pool.close()


@pytest.mark.kafka
async def test_replay_on_the_kafka_log(db_url, kafka_bootstrap):
    pool = await create_pool(db_url)
    await create_topics(kafka_bootstrap, {METER_EVENTS: 4, "catalog": 4})
    log = await KafkaLog(kafka_bootstrap, 4).start()
    records = workload(N, account="acct_kafka_replay", seed=11)
    await append_all(log, records)
    projector = UsageProjector(pool)
    # the live run folds small batches, the replay large ones: batch boundaries must not matter
    async for batch in log.scan(METER_EVENTS, batch=1500):
        await projector.apply(batch)
    live_rows = await snapshot(pool, "acct_kafka_replay")
    await replay_usage(pool, log, projector.group_id, batch=20_000)
    assert await snapshot(pool, "acct_kafka_replay") == live_rows
    expected = filtered(reference_usage(await read_back(log, "acct_kafka_replay")), "acct_kafka_replay")
    assert filtered(await projected_usage(pool), "acct_kafka_replay") == expected
    await log.close()
    await pool.close()
