"""The faust aggregator on Kafka (the tansu broker): exact aggregates, rebalances, crashes, and ingest kills.

Every test compares the PostgreSQL projection with the independent reference fold over the records as they are
in Kafka. The broker lives for the whole session and the topic name is fixed, so each test uses its own
account, consumer group and database, and starts its group at the current end of the log by storing those
offsets in the fresh database first (the aggregator resumes from the offsets PostgreSQL holds). The whole
projection must then equal the reference over the records from those offsets on.

The log is read back with a plain consumer that stops at the high watermark reported by fetch responses, not
with `KafkaLog.scan`/`end_offsets`: tansu answers ListOffsets(latest) with the base offset of the last record
batch plus one, not the true end, so those would stop before the last batch's records.
"""

from __future__ import annotations

import ast
import asyncio
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tally_aggregator.store import truncate_usage
from tally_cli.database import open_pool as create_pool
from tally_core.codec import encode
from tally_core.meter_events import CANCELED, RECORDED, partition_key
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.ports import METER_EVENTS
from tests.conftest import free_port, tally_bin, tally_env
from tests.reference import only_last_meaningful, projected_usage, reference_usage

pytestmark = [pytest.mark.kafka]

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
LAST_METERS = {"mtr_seats"}
METERS = (  # id, formula, event_name, dimension keys
    ("mtr_tokens", "sum", "tokens", ("region",)),
    ("mtr_seats", "last", "seats", ()),
    ("mtr_calls", "count", "calls", ("model",)),
)


# --- the workload --------------------------------------------------------------------------------------------

def make_workload(account: str, n: int, seed: int) -> list[dict]:
    """Meter-event records as ingest writes them: repeats, cancellations, out-of-order times, ties, dimensions.

    Halfway through, receipt time jumps by 25 h, so repeats of early identifiers count again and
    cancellations of early events come too late to remove anything.
    """
    rng = random.Random(seed)
    customers = [f"cus_{account[-6:]}_{i}" for i in range(24)]
    received = T0 * 1000
    recorded: list[dict] = []
    out: list[dict] = []

    def event(meter, customer: str, identifier: str) -> dict:
        meter_id, formula, event_name, dim_keys = meter
        if formula == "count":
            value = "1"
            ts = T0 + rng.randint(-3600, 3600)
        elif formula == "last":
            value = str(rng.randint(0, 500))
            ts = T0 + rng.randint(0, 300)  # many events share a second: ties go to log order
        else:
            value = rng.choice(["1", "2.5", "0.125", "10", "-1", "3", "1000000.000001"])
            ts = T0 + rng.randint(-3600, 3600)
        dims = {k: rng.choice(["eu", "us", "ap"] if k == "region" else ["small", "large"]) for k in dim_keys}
        return {"type": RECORDED, "version": 1, "account": account, "meter": meter_id, "formula": formula,
                "event_name": event_name, "customer": customer, "value": value, "timestamp": ts,
                "identifier": identifier, "dimensions": dims,
                "payload": {"stripe_customer_id": customer, "value": value, **dims}, "received_at": received}

    for i in range(n):
        received += rng.randint(1, 40)
        if i == n // 2:
            received += 25 * 3600 * 1000
        roll = rng.random()
        if recorded and roll < 0.08:  # a repeat: same customer, same identifier (value may differ)
            prior = rng.choice(recorded)
            meter = next(m for m in METERS if m[0] == prior["meter"])
            out.append(event(meter, prior["customer"], prior["identifier"]))
        elif recorded and roll < 0.13:  # a cancellation of an earlier event (maybe already canceled)
            prior = rng.choice(recorded[-400:] if rng.random() < 0.8 else recorded)
            out.append({"type": CANCELED, "version": 1, "account": account, "event_name": prior["event_name"],
                        "customer": prior["customer"], "identifier": prior["identifier"], "received_at": received})
        elif roll < 0.14:  # a cancellation of an identifier never seen
            out.append({"type": CANCELED, "version": 1, "account": account, "event_name": "tokens",
                        "customer": rng.choice(customers), "identifier": f"nope-{i}", "received_at": received})
        elif recorded and roll < 0.16:  # another customer's identifier: a different event
            prior = rng.choice(recorded)
            others = [c for c in customers if c != prior["customer"]]
            out.append(event(rng.choice(METERS), rng.choice(others), prior["identifier"]))
            recorded.append(out[-1])
        else:
            out.append(event(rng.choice(METERS), rng.choice(customers), f"ev-{seed}-{i}"))
            recorded.append(out[-1])
    return out


async def append(bootstrap: str, records: list[dict]) -> None:
    log = await KafkaLog(bootstrap, 4).start()
    try:
        await log.append(METER_EVENTS, [(partition_key(r), encode(r)) for r in records])
    finally:
        await log.close()


def chunks(records: list, n: int) -> list[list]:
    size = -(-len(records) // n)
    return [records[i:i + size] for i in range(0, len(records), size)]


async def _consumer(bootstrap: str) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_bytes=50 << 20, max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    await consumer.topics()  # refresh metadata
    tps = [TopicPartition(METER_EVENTS, p) for p in sorted(consumer.partitions_for_topic(METER_EVENTS) or ())]
    assert tps, "meter-events does not exist"
    consumer.assign(tps)
    return consumer, tps


async def log_ends(bootstrap: str, timeout: float = 10.0) -> dict[int, int]:
    """The true end offsets: fetch the last batch ListOffsets points into and read the high watermark."""
    consumer, tps = await _consumer(bootstrap)
    try:
        listed = await consumer.end_offsets(tps)  # tansu: base offset of the last batch + 1
        for tp in tps:
            consumer.seek(tp, max(listed[tp] - 1, 0))
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(tp) is None for tp in tps):
            assert time.monotonic() < deadline, "no fetch response for every partition"
            await consumer.getmany(timeout_ms=200)
        return {tp.partition: consumer.highwater(tp) for tp in tps}
    finally:
        await consumer.stop()


async def read_log(bootstrap: str, start: dict[int, int] | None = None, timeout: float = 30.0,
                   parse=orjson.loads) -> tuple[dict[int, int], list[tuple[int, int, dict]]]:
    """Every meter-events record from `start` on as (partition, offset, parsed value) in log order, and the
    ends (the high watermarks)."""
    consumer, tps = await _consumer(bootstrap)
    try:
        for tp in tps:
            consumer.seek(tp, (start or {}).get(tp.partition, 0))
        out: list[tuple[int, int, dict]] = []
        deadline = time.monotonic() + timeout
        while True:
            got = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for tp, msgs in got.items():
                out.extend((tp.partition, m.offset, parse(m.value)) for m in msgs)
            highs = {tp: consumer.highwater(tp) for tp in tps}
            if not got and all(h is not None for h in highs.values()):
                if all([await consumer.position(tp) >= highs[tp] for tp in tps]):
                    return {tp.partition: highs[tp] for tp in tps}, out
            assert time.monotonic() < deadline, "could not read meter-events to its end"
    finally:
        await consumer.stop()


# --- processes -----------------------------------------------------------------------------------------------

class Proc:
    def __init__(self, args: list[str], env: dict, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([tally_bin(), *args], env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.proc.poll()

    async def stop(self, timeout: float = 15.0) -> int | None:
        self.kill(signal.SIGTERM)
        code = await self.wait(timeout)
        if code is None:
            self.kill(signal.SIGKILL)
            await self.wait(5)
        self._log.close()
        return code


@pytest.fixture
def procs():
    started: list[Proc] = []
    yield started
    for p in started:
        if p.alive():
            p.proc.kill()
            p.proc.wait(10)
        p._log.close()


@pytest.fixture
async def topics(kafka_bootstrap):
    await create_topics(kafka_bootstrap, {METER_EVENTS: 4, "catalog": 4})
    return kafka_bootstrap


@pytest.fixture
async def pool(db_url):
    p = await create_pool(db_url)
    yield p
    await p.close()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def start_aggregator(procs: list[Proc], tmp_path: Path, name: str, *, db_url: str, bootstrap: str, group: str,
                     batch: int = 5000) -> Proc:
    env = tally_env(tmp_path, database_url=db_url, kafka_bootstrap=bootstrap, consumer_group=group, partitions=4,
                    aggregator_batch=batch, kafka_session_timeout=6, log_level="INFO")
    p = Proc(["aggregator"], env, tmp_path / f"{name}.log")
    procs.append(p)
    return p


ASSIGNED = "seeking meter-events to stored offsets"


async def positions(pool, group: str) -> dict[int, int]:
    rows = await pool.fetch("select partition, next_offset from consumer_offsets where group_id = $1 and topic = $2",
                            group, METER_EVENTS)
    return {r[0]: r[1] for r in rows}


async def wait_consumed(pool, group: str, ends: dict[int, int], workers: list[Proc], timeout: float) -> None:
    """Until the group's stored offsets reach the end of every partition."""
    deadline = time.monotonic() + timeout
    while True:
        got = await positions(pool, group)
        if all(got.get(p, 0) >= end for p, end in ends.items()):
            assert all(got.get(p, 0) == end for p, end in ends.items()), (got, ends)
            return
        for w in workers:
            assert w.alive(), f"aggregator exited with {w.proc.poll()}:\n{w.log()[-4000:]}"
        assert time.monotonic() < deadline, f"aggregators did not catch up: {got} < {ends}\n" + "\n".join(
            w.log()[-3000:] for w in workers)
        await asyncio.sleep(0.2)


async def wait_until(predicate, timeout: float, what: str, workers: list[Proc] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        for w in workers:
            assert w.alive(), f"aggregator exited with {w.proc.poll()}:\n{w.log()[-4000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n" + "\n".join(
            w.log()[-3000:] for w in workers)
        await asyncio.sleep(0.1)


async def start_group_at_end(pool, bootstrap: str, group: str) -> dict[int, int]:
    """Store the log's current end as the group's offsets: its aggregators start with this test's records."""
    ends = await log_ends(bootstrap)
    await pool.executemany("insert into consumer_offsets (group_id, topic, partition, next_offset) "
                           "values ($1, $2, $3, $4)", [(group, METER_EVENTS, p, o) for p, o in ends.items()])
    return ends


async def assert_matches_reference(pool, log_records: list[tuple[int, int, dict]], account: str) -> dict:
    """The whole projection equals the reference fold over `log_records` (all the group consumed)."""
    expected = only_last_meaningful(reference_usage(log_records), LAST_METERS)
    got = only_last_meaningful(await projected_usage(pool), LAST_METERS)
    missing = {k: v for k, v in expected.items() if got.get(k) != v}
    extra = {k: v for k, v in got.items() if k not in expected}
    assert not missing and not extra, (f"{len(missing)} windows differ, {len(extra)} unexpected; e.g. "
                                       f"{list(missing.items())[:3]} vs {[(k, got.get(k)) for k in list(missing)[:3]]}"
                                       f" / {list(extra.items())[:3]}")
    assert any(k[0] == account for k in expected)
    return expected


# --- tests ---------------------------------------------------------------------------------------------------

async def test_projection_equals_reference(topics, db_url, pool, tmp_path, procs):
    """A workload in Kafka, one faust worker: the projection equals the reference fold, window for window."""
    account, group = unique("acct"), unique("grp")
    start = await start_group_at_end(pool, topics, group)
    records = make_workload(account, 3000, seed=1)
    for part in chunks(records, 6):
        await append(topics, part)
    agg = start_aggregator(procs, tmp_path, "agg", db_url=db_url, bootstrap=topics, group=group)
    ends, log_records = await read_log(topics, start)
    assert sorted(encode(r) for _, _, r in log_records) == sorted(map(encode, records))  # only ours, all of them
    await wait_consumed(pool, group, ends, [agg], timeout=40)
    expected = await assert_matches_reference(pool, log_records, account)
    assert len(expected) > 500  # the workload is not trivially small
    assert await agg.stop() == 0, agg.log()[-3000:]


async def test_rebuild_rereads_from_the_stored_offsets(topics, db_url, pool, tmp_path, procs):
    """PostgreSQL, not Kafka, says where to resume: after the projection and its offsets are dropped, a restarted
    worker reads the topic again from offset 0 although the group's Kafka offsets are at the end."""
    account, group = unique("acct"), unique("grp")
    start = await start_group_at_end(pool, topics, group)
    await append(topics, make_workload(account, 1500, seed=2))
    agg = start_aggregator(procs, tmp_path, "agg1", db_url=db_url, bootstrap=topics, group=group)
    ends, log_records = await read_log(topics, start)
    await wait_consumed(pool, group, ends, [agg], timeout=40)
    await assert_matches_reference(pool, log_records, account)
    await asyncio.sleep(1.5)  # let faust commit the acked offsets to Kafka (broker_commit_interval 1 s)
    assert await agg.stop() == 0
    async with pool.acquire() as conn:
        await truncate_usage(conn, group)
    assert await projected_usage(pool) == {}
    agg = start_aggregator(procs, tmp_path, "agg2", db_url=db_url, bootstrap=topics, group=group)
    ends, log_records = await read_log(topics)  # everything, from offset 0
    # The session's topic holds every earlier test's records too: allow for the amount to read again.
    await wait_consumed(pool, group, ends, [agg], timeout=30 + len(log_records) / 2000)
    await assert_matches_reference(pool, log_records, account)
    assert await agg.stop() == 0


def assigned_partitions(proc: Proc) -> dict[int, int]:
    """The partitions (and stored offsets) of the worker's latest assignment, from its log."""
    lines = [line for line in proc.log().splitlines() if ASSIGNED in line]
    return ast.literal_eval(lines[-1].split(ASSIGNED, 1)[1].strip()) if lines else {}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_two_workers_rebalance_mid_stream(topics, db_url, pool, tmp_path, procs, sig):
    """Two workers in one group while records keep arriving; one stops (or dies) mid-stream, the survivor takes
    over its partitions: nothing lost, nothing doubled."""
    account, group = unique("acct"), unique("grp")
    start = await start_group_at_end(pool, topics, group)
    parts = chunks(make_workload(account, 6000, seed=3), 60)
    await append(topics, parts[0])
    a = start_aggregator(procs, tmp_path, "a", db_url=db_url, bootstrap=topics, group=group, batch=200)
    b = start_aggregator(procs, tmp_path, "b", db_url=db_url, bootstrap=topics, group=group, batch=200)

    async def b_applied_since_its_assignment() -> bool:
        mine, theirs = assigned_partitions(b), assigned_partitions(a)
        if not mine or not theirs or set(mine) & set(theirs):
            return False
        now = await positions(pool, group)
        return all(now.get(p, 0) > offset for p, offset in mine.items())

    n, deadline = 1, time.monotonic() + 30
    while not await b_applied_since_its_assignment():  # keep records flowing until both workers apply them
        for w in (a, b):
            assert w.alive(), w.log()[-3000:]
        assert time.monotonic() < deadline and n < len(parts) - 10, "the second worker never applied anything"
        await append(topics, parts[n])
        n += 1
        await asyncio.sleep(0.2)
    for part in parts[n:n + 3]:
        await append(topics, part)
        await asyncio.sleep(0.1)
    assignments_before = a.log().count(ASSIGNED)
    b.kill(sig)
    for part in parts[n + 3:]:
        await append(topics, part)
        await asyncio.sleep(0.05)
    assert await b.wait(15) is not None

    async def a_took_over() -> bool:
        return a.log().count(ASSIGNED) > assignments_before and len(assigned_partitions(a)) == 4

    await wait_until(a_took_over, 30, "the survivor to take over every partition", [a])
    ends, log_records = await read_log(topics, start)
    await wait_consumed(pool, group, ends, [a], timeout=30)
    await assert_matches_reference(pool, log_records, account)
    assert await a.stop() == 0


async def test_kill_and_restart_mid_stream(topics, db_url, pool, tmp_path, procs):
    """kill -9 of the only worker while it applies a stream; a restart resumes from the stored offsets."""
    account, group = unique("acct"), unique("grp")
    start = await start_group_at_end(pool, topics, group)
    parts = chunks(make_workload(account, 4000, seed=4), 10)
    await append(topics, parts[0])
    agg = start_aggregator(procs, tmp_path, "agg1", db_url=db_url, bootstrap=topics, group=group, batch=100)

    async def applying() -> bool:
        now = await positions(pool, group)
        return any(now[p] > start[p] for p in now)

    await wait_until(applying, 30, "the aggregator to apply something", [agg])
    for part in parts[1:5]:
        await append(topics, part)
        await asyncio.sleep(0.1)
    agg.kill(signal.SIGKILL)
    assert await agg.wait(10) == -signal.SIGKILL
    killed_at = await positions(pool, group)
    for part in parts[5:]:
        await append(topics, part)
    agg = start_aggregator(procs, tmp_path, "agg2", db_url=db_url, bootstrap=topics, group=group, batch=100)
    ends, log_records = await read_log(topics, start)
    assert any(killed_at[p] < e for p, e in ends.items())  # it really died mid-stream
    await wait_consumed(pool, group, ends, [agg], timeout=40)
    await assert_matches_reference(pool, log_records, account)
    assert await agg.stop() == 0


async def test_ingest_killed_mid_stream_keeps_every_acknowledged_event(topics, db_url, pool, tmp_path, procs):
    """`tally serve api+ingest` on Kafka, events posted concurrently, kill -9 mid-stream: every event answered
    200 is in the log once; and the aggregator then counts exactly the log."""
    group = unique("grp")
    start = await start_group_at_end(pool, topics, group)
    env = tally_env(tmp_path, database_url=db_url, kafka_bootstrap=topics, partitions=4)
    out = subprocess.run([tally_bin(), "create-account"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    account, key = out.stdout.split()[-2:]
    port = free_port()
    server = Proc(["serve", "api+ingest"], {**env, "TALLY_PORT": str(port)}, tmp_path / "server.log")
    procs.append(server)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=(key, ""), timeout=10) as client:
        async def up() -> bool:
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(up, 30, "the ingest server", [server])
        r = await client.post("/v1/billing/meters", data={
            "display_name": "Tokens", "event_name": "tokens", "default_aggregation[formula]": "sum",
            "dimension_payload_keys[0]": "region"})
        assert r.status_code == 200, r.text

        accepted: list[str] = []
        failed = 0
        killed = asyncio.Event()

        async def producer(w: int) -> None:
            nonlocal failed
            rng = random.Random(w)
            for i in range(100_000):
                data = {"event_name": "tokens", "payload[stripe_customer_id]": f"cus_{rng.randint(0, 9)}",
                        "payload[value]": str(rng.randint(1, 9)), "payload[region]": rng.choice(["eu", "us"]),
                        "identifier": f"ing-{w}-{i}"}
                try:
                    resp = await client.post("/v1/billing/meter_events", data=data)
                except httpx.TransportError:
                    failed += 1
                    if killed.is_set():
                        return
                    await asyncio.sleep(0.05)
                    continue
                assert resp.status_code == 200, resp.text
                accepted.append(data["identifier"])

        tasks = [asyncio.create_task(producer(w)) for w in range(8)]
        deadline = time.monotonic() + 30
        while len(accepted) < 600 and time.monotonic() < deadline:
            assert server.alive(), server.log()[-3000:]
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            await asyncio.sleep(0.02)
        server.kill(signal.SIGKILL)
        killed.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert len(accepted) >= 600
    assert failed > 0  # requests were in flight when it died

    ends, log_records = await read_log(topics, start)
    logged = [r["identifier"] for _, _, r in log_records if r["account"] == account]
    lost = set(accepted) - set(logged)
    assert not lost, f"{len(lost)} acknowledged events are not in the log, e.g. {sorted(lost)[:5]}"
    assert len(logged) == len(set(logged))  # each request was appended at most once

    agg = start_aggregator(procs, tmp_path, "agg", db_url=db_url, bootstrap=topics, group=group)
    await wait_consumed(pool, group, ends, [agg], timeout=40)
    await assert_matches_reference(pool, log_records, account)
    assert await agg.stop() == 0
