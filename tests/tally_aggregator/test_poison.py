"""No meter-events record can stop aggregation: poison is quarantined, the partition keeps flowing.

Poison records are written straight into the log (the HTTP edge refuses them now, but a log may hold records
from before, from another producer, or from a bug). They sit between a healthy account's records on the same
partitions. The healthy account's usage must equal the independent reference fold, every poison must be in
the dead-letter table and topic, a fresh aggregator on the same database must start and find nothing to do,
and a record quarantined by a fault since fixed must count once after `replay`.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tally_aggregator import store as usage_store
from tally_aggregator.postgres_loop import drain, run_postgres_aggregator
from tally_aggregator.store import UsageProjector
from tally_cli.database import open_pool as create_pool
from tally_core.codec import encode
from tally_core.meter_events import CANCELED, RECORDED, partition_key
from tally_infra.dead_letters import count_dead_letters, list_dead_letters
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.ports import METER_EVENTS, METER_EVENTS_DEAD
from tally_infra.logs.postgres_log import PostgresLog
from tests.conftest import tally_bin, tally_env
from tests.reference import only_last_meaningful, projected_usage, reference_usage
from tests.tally_aggregator.test_kafka_aggregator import (  # noqa: F401 - procs is a fixture
    ASSIGNED,
    procs,
    read_log,
    start_aggregator,
    wait_consumed,
    wait_until,
)
from tests.workload import workload

GROUP = "tally-aggregator"
BAD = "acct_bad"
LAST = {"mtr_last"}


def recorded(**over) -> dict:
    """A well-formed record of the bad account; each poison below spoils one thing."""
    rec = {"type": RECORDED, "version": 1, "account": BAD, "meter": "mtr_sum", "formula": "sum",
           "event_name": "tokens", "customer": "cus_bad", "value": "5", "timestamp": 1_767_225_600,
           "identifier": f"bad-{len(over)}-{sorted(over)}", "dimensions": {},
           "payload": {"stripe_customer_id": "cus_bad", "value": "5"}, "received_at": 1_767_225_600_000}
    rec.update(over)
    return rec


def without(field: str) -> dict:
    rec = recorded(identifier=f"without-{field}")
    del rec[field]
    return rec


# The poison table: (name, raw record value). Extend it with every new way a record can be bad.
POISONS: list[tuple[str, bytes]] = [
    ("invalid JSON", b'{"type": "meter_event.recorded", "account": '),
    ("not UTF-8", b'{"type": "meter_event.recorded", "customer": "\xff\xfe"}'),
    ("a JSON array", b"[1, 2, 3]"),
    ("a JSON string", b'"meter_event.recorded"'),
    ("an unknown record type", encode(recorded(type="meter_event.exploded", identifier="exploded"))),
    ("customer missing", encode(without("customer"))),
    ("identifier missing", encode(without("identifier"))),
    ("NUL in the customer", encode(recorded(customer="cus_\x00", identifier="nul-customer"))),
    ("NUL in the identifier", encode(recorded(identifier="id\x00"))),
    ("value 1e999999", encode(recorded(value="1e999999", identifier="huge-exponent"))),
    ("value with more digits than numeric holds", encode(recorded(value="9" * 140_000, identifier="many-digits"))),
    ("value with 1,001 integer digits", encode(recorded(value="1" + "0" * 1000, identifier="1001-digits"))),
    ("value with 1,001 fractional digits", encode(recorded(value="0." + "0" * 1000 + "1", identifier="frac"))),
    ("value NaN", encode(recorded(value="NaN", identifier="nan"))),
    ("value Infinity", encode(recorded(value="-Infinity", identifier="inf"))),
    ("value not a number", encode(recorded(value="twelve", identifier="twelve"))),
    ("value an object", encode(recorded(value={"n": 1}, identifier="value-object"))),
    ("timestamp beyond int64", encode(recorded(timestamp=2**63, identifier="ts-int64"))),
    ("timestamp a string", encode(recorded(timestamp="soon", identifier="ts-string"))),
    ("received_at past u64 (a float once parsed)",
     encode(recorded(identifier="recv-big")).replace(b'"received_at":1767225600000',
                                                     b'"received_at":100000000000000000000')),
    ("a cancellation without identifier", encode({"type": CANCELED, "version": 1, "account": BAD,
                                                  "event_name": "tokens", "customer": "cus_bad",
                                                  "received_at": 1_767_225_600_000})),
    ("a cancellation with NUL in the customer", encode({"type": CANCELED, "version": 1, "account": BAD,
                                                        "event_name": "tokens", "customer": "c\x00",
                                                        "identifier": "x", "received_at": 1_767_225_600_000})),
]


def poison_items() -> list[tuple[bytes, bytes]]:
    """Keys spread the poison over every partition (4), among the healthy records."""
    return [(f"{BAD}:cus_{i}".encode(), value) for i, (_, value) in enumerate(POISONS)]


def interleaved(healthy: list[dict], marker: dict | None = None) -> list[list[tuple[bytes, bytes]]]:
    """Appends: healthy chunks with one poison (and the marker) between each."""
    items, poisons = [(partition_key(r), encode(r)) for r in healthy], poison_items()
    if marker is not None:
        poisons.insert(len(poisons) // 2, (partition_key(marker), encode(marker)))
    size = -(-len(items) // (len(poisons) + 1))
    out = []
    for i in range(len(poisons) + 1):
        out.append(items[i * size:(i + 1) * size] + ([poisons[i]] if i < len(poisons) else []))
    return out


def healthy_of(log_records) -> list[tuple[int, int, dict]]:
    """The healthy account's records, as the log holds them (the reference needs their offsets)."""
    out = []
    for p, o, value in log_records:
        try:
            rec = orjson.loads(value)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("account") == "acct_ok":
            out.append((p, o, rec))
    return out


async def usage_of(pool, account: str) -> dict:
    return {k: v for k, v in only_last_meaningful(await projected_usage(pool), LAST).items() if k[0] == account}


async def scan_all(log) -> list[tuple[int, int, bytes]]:
    return [(r.partition, r.offset, r.value) async for batch in log.scan(METER_EVENTS) for r in batch]


async def read_raw(bootstrap: str, timeout: float = 30.0) -> tuple[dict[int, int], list[tuple[int, int, bytes]]]:
    """Every meter-events record on Kafka as (partition, offset, value): poison does not parse."""
    return await read_log(bootstrap, timeout=timeout, parse=bytes)


async def run_until_consumed(log, projector: UsageProjector, ends: dict[int, int], **kw) -> None:
    """The live loop, as `tally run` runs it, until it has consumed `ends`; it must still be alive then."""
    stop = asyncio.Event()
    loop = asyncio.create_task(run_postgres_aggregator(log, projector, stop=stop, **kw))
    try:
        deadline = time.monotonic() + 60
        while await UsageProjector(projector.pool).positions() != ends:
            assert not loop.done(), loop.exception()
            assert time.monotonic() < deadline, "the aggregator did not reach the end of the log"
            await asyncio.sleep(0.05)
        assert not loop.done()
    finally:
        stop.set()
        try:
            await asyncio.wait_for(loop, 5)
        except asyncio.TimeoutError:
            loop.cancel()


@pytest.fixture
async def pool(db_url):
    p = await create_pool(db_url)
    yield p
    await p.close()


@pytest.fixture
async def log(pool):
    log_ = PostgresLog(pool, 4)
    yield log_
    await log_.close()


async def test_poison_on_the_postgres_log_is_quarantined_and_the_rest_is_exact(pool, log, db_url, tmp_path,
                                                                               monkeypatch):
    healthy = workload(3000, account="acct_ok", seed=11)
    # A healthy record that a (simulated) bug in the fold refuses: quarantined now, replayed once fixed.
    marker = dict(healthy[100], identifier="marker", dimensions={"model": "flaky", "region": "a"}, value="7")
    real_dims_key = usage_store.dims_key

    def buggy_dims_key(dims):
        if dims.get("model") == "flaky":
            raise RuntimeError("simulated bug in the fold")
        return real_dims_key(dims)

    monkeypatch.setattr(usage_store, "dims_key", buggy_dims_key)
    for chunk in interleaved(healthy, marker):
        await log.append(METER_EVENTS, chunk)
    ends = await log.end_offsets(METER_EVENTS)

    # The live loop, as `tally run` runs it, consumes the whole log and stays alive.
    await run_until_consumed(log, UsageProjector(pool), ends, batch=400)

    everything = await scan_all(log)
    without_marker = [r for r in healthy_of(everything) if r[2]["identifier"] != "marker"]
    assert await usage_of(pool, "acct_ok") == only_last_meaningful(reference_usage(without_marker), LAST)
    assert await usage_of(pool, BAD) == {}

    letters = await list_dead_letters(pool, topic=METER_EVENTS, limit=1000)
    assert sorted(d.value for d in letters) == sorted([v for _, v in POISONS] + [encode(marker)])
    assert await count_dead_letters(pool) == {(GROUP, METER_EVENTS): len(POISONS) + 1}
    assert all(d.error and "\x00" not in d.error for d in letters)
    assert any("simulated bug" in d.error for d in letters)
    fed = [r async for batch in log.scan(METER_EVENTS_DEAD) for r in batch]
    assert sorted(r.value for r in fed) == sorted(d.value for d in letters)  # the dead-letter topic too

    # A restart on the same database starts cleanly and has nothing left to do.
    assert await drain(log, UsageProjector(pool)) == 0

    # The bug is fixed: replaying applies the marker once, in its log position; the poison stays put.
    monkeypatch.setattr(usage_store, "dims_key", real_dims_key)
    outcome = await UsageProjector(pool).replay_dead_letters()
    assert (outcome.replayed, outcome.still_failing) == (1, len(POISONS))
    assert await usage_of(pool, "acct_ok") == only_last_meaningful(reference_usage(healthy_of(everything)), LAST)
    assert await count_dead_letters(pool) == {(GROUP, METER_EVENTS): len(POISONS)}
    again = await UsageProjector(pool).replay_dead_letters()
    assert (again.replayed, again.still_failing) == (0, len(POISONS))
    assert await usage_of(pool, "acct_ok") == only_last_meaningful(reference_usage(healthy_of(everything)), LAST)

    # Operators see the same through the CLI.
    env = tally_env(tmp_path, database_url=db_url)
    out = subprocess.run([tally_bin(), "dead-letters", "count"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"{GROUP} {METER_EVENTS} {len(POISONS)}" in out.stdout, out.stderr
    out = subprocess.run([tally_bin(), "dead-letters", "list", "--limit", "3"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.count(f"{GROUP} {METER_EVENTS}[") == 3, out.stderr
    out = subprocess.run([tally_bin(), "dead-letters", "replay"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and f"replayed 0, still failing {len(POISONS)}" in out.stdout, out.stderr


async def test_the_loop_waits_out_a_lost_database_with_capped_backoff(pool, log, monkeypatch):
    """Retriable failures (here: the connection reset three times) are retried, with growing pauses, and the
    records are applied exactly once when the database answers again; nothing is quarantined."""
    records = workload(500, account="acct_ok", seed=12)
    await log.append(METER_EVENTS, [(partition_key(r), encode(r)) for r in records])
    ends = await log.end_offsets(METER_EVENTS)
    projector = UsageProjector(pool)
    real_apply, failures, sleeps = projector.apply, [], []

    async def flaky_apply(batch, keys=None):
        if len(failures) < 3:
            failures.append(time.monotonic())
            raise ConnectionResetError("connection reset by peer")
        return await real_apply(batch, keys)

    monkeypatch.setattr(projector, "apply", flaky_apply)
    real_sleep = asyncio.sleep

    async def recording_sleep(delay, *a, **kw):
        if delay >= 0.1:
            sleeps.append(delay)
        return await real_sleep(delay, *a, **kw)

    monkeypatch.setattr("tally_infra.faults.asyncio.sleep", recording_sleep)
    await run_until_consumed(log, projector, ends)
    assert sleeps[:3] == [0.1, 0.2, 0.4]
    assert await count_dead_letters(pool) == {}
    everything = await scan_all(log)
    assert await usage_of(pool, "acct_ok") == only_last_meaningful(reference_usage(healthy_of(everything)), LAST)


@pytest.mark.kafka
async def test_poison_on_kafka_is_quarantined_by_the_faust_aggregator(fresh_kafka, db_url, pool, tmp_path, procs):  # noqa: F811
    """The faust app on a broker of its own: every poison between healthy records, one aggregator run."""
    await create_topics(fresh_kafka, {METER_EVENTS: 4, "catalog": 4})
    healthy = workload(2000, account="acct_ok", seed=13)
    kafka = await KafkaLog(fresh_kafka, 4).start()
    try:
        for chunk in interleaved(healthy):
            await kafka.append(METER_EVENTS, chunk)
    finally:
        await kafka.close()
    agg = start_aggregator(procs, tmp_path, "agg", db_url=db_url, bootstrap=fresh_kafka, group=GROUP)
    ends, log_records = await read_raw(fresh_kafka)
    assert len(log_records) == len(healthy) + len(POISONS)
    await wait_consumed(pool, GROUP, ends, [agg], timeout=60)
    assert agg.alive()

    healthy_records = healthy_of(log_records)
    assert await usage_of(pool, "acct_ok") == only_last_meaningful(reference_usage(healthy_records), LAST)
    letters = await list_dead_letters(pool, topic=METER_EVENTS, limit=1000)
    assert sorted(d.value for d in letters) == sorted(v for _, v in POISONS)
    assert {d.key for d in letters} == {k for k, _ in poison_items()}  # faust knows the records' keys

    consumer = AIOKafkaConsumer(METER_EVENTS_DEAD, bootstrap_servers=fresh_kafka, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        fed, deadline = [], time.monotonic() + 20
        while len(fed) < len(POISONS) and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                fed.extend(m.value for m in msgs)
    finally:
        await consumer.stop()
    assert sorted(fed) == sorted(v for _, v in POISONS)
    assert await agg.stop() == 0, agg.log()[-3000:]

    # A restart starts cleanly and applies nothing twice.
    agg = start_aggregator(procs, tmp_path, "agg2", db_url=db_url, bootstrap=fresh_kafka, group=GROUP)

    async def assigned() -> bool:
        return ASSIGNED in agg.log()

    await wait_until(assigned, 60, "the restarted aggregator's assignment", [agg])
    await asyncio.sleep(1.0)  # a batch it would (wrongly) apply again has time to land
    await wait_consumed(pool, GROUP, ends, [agg], timeout=60)
    assert await usage_of(pool, "acct_ok") == only_last_meaningful(reference_usage(healthy_records), LAST)
    assert await agg.stop() == 0, agg.log()[-3000:]
