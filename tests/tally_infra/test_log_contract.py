"""One contract for the log port (`tally_infra/logs/ports.py` `EventLog`), run on all three backends.

`LogContract` holds the tests; each backend subclasses it once and provides a `backend` fixture (a log and a
way to make a fresh topic with `PARTITIONS` partitions). The in-memory log runs without PostgreSQL or the
broker, the Kafka one on the tansu broker that tests/conftest.py starts.

Every record's value is `key|tag`, so a test can tell which key a record was appended with.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Awaitable, Callable

import pytest

from tally_cli.database import open_pool as create_pool
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.memory_log import MemoryLog
from tally_infra.logs.ports import EventLog, LogRecord
from tally_infra.logs.postgres_log import PostgresLog

PARTITIONS = 4
# Book keys as the billing worker uses them: `account:object`.
KEYS = [f"acct_{a}:cus_{c}".encode() for a in range(3) for c in range(7)]


@dataclass
class Backend:
    log: EventLog
    topic: Callable[[], Awaitable[str]]  # a fresh, empty topic with PARTITIONS partitions


def value(key: bytes, tag: str) -> bytes:
    return key + b"|" + tag.encode()


def key_of(record: LogRecord) -> bytes:
    return record.value.split(b"|", 1)[0]


def tag_of(record: LogRecord) -> str:
    return record.value.split(b"|", 1)[1].decode()


async def scan_all(log: EventLog, topic: str, start: dict[int, int] | None = None,
                   batch: int = 10_000) -> list[LogRecord]:
    return [r async for records in log.scan(topic, start=start, batch=batch) for r in records]


def by_partition(records: list[LogRecord]) -> dict[int, list[LogRecord]]:
    out: dict[int, list[LogRecord]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[r.partition].append(r)
    return out


async def fill(log: EventLog, topic: str, per_key: int = 5) -> list[tuple[bytes, bytes]]:
    """Multi-record appends (batches), then single ones, as ingest and the gateway append; returns them all."""
    appended = []
    for round_ in range(per_key):
        items = [(k, value(k, f"{round_}")) for k in KEYS]
        if round_ % 2:
            for item in items:
                await log.append(topic, [item])
        else:
            await log.append(topic, items)
        appended += items
    return appended


def keys_on(log: EventLog, partition: int, n: int) -> list[bytes]:
    """`n` distinct keys that `log` puts on `partition`."""
    keys = (f"acct_0:cus_{i}".encode() for i in itertools.count())
    return list(itertools.islice((k for k in keys if log.partition_of(k) == partition), n))


class LogContract:
    """What every `EventLog` must do. Subclasses provide the `backend` fixture."""

    # How long a test waits to see that nothing happens (a poll still waiting, a timeout honoured): a network
    # backend needs a margin over its round trips, the in-memory one does not.
    quiet = 0.3

    # --- offsets and end offsets -------------------------------------------------------------------------

    async def test_a_new_topic_has_every_partition_at_offset_zero(self, backend):
        topic = await backend.topic()
        assert await backend.log.end_offsets(topic) == {p: 0 for p in range(PARTITIONS)}
        assert await scan_all(backend.log, topic) == []

    async def test_offsets_count_from_zero_in_each_partition_and_end_offsets_are_the_next_ones(self, backend):
        log, topic = backend.log, await backend.topic()
        expected = Counter()
        for n in (50, 1, 60, 1):
            items = [(KEYS[i % len(KEYS)], value(KEYS[i % len(KEYS)], f"{n}-{i}")) for i in range(n)]
            await log.append(topic, items)
            expected.update(log.partition_of(k) for k, _ in items)
            # when an append returns, the end offsets count its records
            assert await log.end_offsets(topic) == {p: expected[p] for p in range(PARTITIONS)}
        ends = await log.end_offsets(topic)
        for p, records in by_partition(await scan_all(log, topic)).items():
            assert [r.offset for r in records] == list(range(ends[p]))
        # the next record on a partition is given its end offset
        key = KEYS[0]
        p = log.partition_of(key)
        await log.append(topic, [(key, value(key, "next"))])
        last = by_partition(await scan_all(log, topic))[p][-1]
        assert (last.offset, tag_of(last)) == (ends[p], "next")

    # --- ordering and keys -------------------------------------------------------------------------------

    async def test_each_partition_holds_its_records_in_the_order_they_were_appended(self, backend):
        log, topic = backend.log, await backend.topic()
        appended = await fill(log, topic)
        got = by_partition(await scan_all(log, topic))
        for p in range(PARTITIONS):
            assert [r.value for r in got.get(p, [])] == [v for k, v in appended if log.partition_of(k) == p]
        # so a key's records come back in its own order
        for key in KEYS:
            assert [tag_of(r) for r in got[log.partition_of(key)] if key_of(r) == key] == [str(i) for i in range(5)]

    async def test_a_key_always_lands_on_its_partition_and_commands_and_events_agree(self, backend):
        log = backend.log
        commands, events = await backend.topic(), await backend.topic()  # as billing-commands, billing-events
        assert all(0 <= log.partition_of(k) < PARTITIONS for k in KEYS)
        assert [log.partition_of(k) for k in KEYS] == [log.partition_of(bytes(k)) for k in KEYS]
        assert {log.partition_of(k) for k in KEYS} == set(range(PARTITIONS))  # 21 keys reach every partition
        await fill(log, commands, per_key=2)
        await log.append(events, [(k, value(k, "event")) for k in reversed(KEYS)])
        for topic in (commands, events):
            records = await scan_all(log, topic)
            assert records and all(r.partition == log.partition_of(key_of(r)) for r in records)

    # --- scan --------------------------------------------------------------------------------------------

    async def test_scan_from_positions_returns_only_what_follows_them(self, backend):
        log, topic = backend.log, await backend.topic()
        await fill(log, topic)
        everything = await scan_all(log, topic)
        ends = await log.end_offsets(topic)
        # partition 3 is left out of `start`: it is read from the beginning
        start = {0: 3, 1: 0, 2: ends[2]}
        later = await scan_all(log, topic, start=start)
        assert sorted(later) == sorted(r for r in everything if r.offset >= start.get(r.partition, 0))
        assert await scan_all(log, topic, start=ends) == []

    @pytest.mark.parametrize("batch", [1, 5, 13, 10_000])
    async def test_scan_yields_batches_of_at_most_batch_records_covering_everything_once(self, backend, batch):
        log, topic = backend.log, await backend.topic()
        await fill(log, topic)
        batches = [records async for records in log.scan(topic, batch=batch)]
        assert all(0 < len(records) <= batch for records in batches)
        flat = [r for records in batches for r in records]
        assert len(flat) == len(set(flat)) == len(KEYS) * 5
        assert sorted(flat) == sorted(await scan_all(log, topic))

    async def test_scan_stops_at_the_end_offsets_seen_when_it_started(self, backend):
        log, topic = backend.log, await backend.topic()
        await fill(log, topic, per_key=2)
        scan = log.scan(topic, batch=5)
        first = await anext(scan)
        await log.append(topic, [(k, value(k, "late")) for k in KEYS])  # appended while the scan runs
        rest = [r async for records in scan for r in records]
        assert len(first) + len(rest) == len(KEYS) * 2
        assert "late" not in {tag_of(r) for r in first + rest}
        assert len(await scan_all(log, topic)) == len(KEYS) * 3

    # --- poll --------------------------------------------------------------------------------------------

    async def test_poll_returns_records_that_follow_the_positions_in_order(self, backend):
        log, topic = backend.log, await backend.topic()
        await fill(log, topic)
        everything = by_partition(await scan_all(log, topic))
        positions = {p: min(2, len(everything[p])) for p in range(PARTITIONS)}
        got = await log.poll(topic, positions, 1000, timeout=5)
        assert got
        for p, records in by_partition(got).items():
            # each partition's share is the records from its position on, consecutive, none skipped
            assert records == everything[p][positions[p]:positions[p] + len(records)]

    async def test_poll_gives_at_most_limit_records_per_partition(self, backend):
        log, topic = backend.log, await backend.topic()
        for p in range(PARTITIONS):
            await log.append(topic, [(k, value(k, "x")) for k in keys_on(log, p, 12)])
        got = await log.poll(topic, {p: 0 for p in range(PARTITIONS)}, 3, timeout=5)
        assert got
        assert all(len(records) <= 3 for records in by_partition(got).values())

    async def test_polling_on_from_the_positions_read_reads_every_record_once_in_order(self, backend):
        """The billing worker's loop: poll, move the positions past what came back, poll again."""
        log, topic = backend.log, await backend.topic()
        appended = await fill(log, topic)
        positions, read = {p: 0 for p in range(PARTITIONS)}, []
        deadline = time.monotonic() + 30
        while len(read) < len(appended) and time.monotonic() < deadline:
            got = await log.poll(topic, dict(positions), 7, timeout=1)
            for r in sorted(got, key=lambda r: (r.partition, r.offset)):
                assert r.offset == positions[r.partition]
                positions[r.partition] += 1
                read.append(r)
        assert sorted(read) == sorted(await scan_all(log, topic))
        assert await log.poll(topic, dict(positions), 7, timeout=self.quiet) == []
        # and rewinding (a worker started again from stored positions) reads the same records again
        again = await log.poll(topic, {p: 0 for p in range(PARTITIONS)}, 1000, timeout=5)
        assert again
        for p, records in by_partition(again).items():
            assert records == by_partition(read)[p][:len(records)]

    async def test_poll_waits_for_an_append_and_wakes_as_soon_as_it_lands(self, backend):
        log, topic = backend.log, await backend.topic()
        await fill(log, topic, per_key=1)
        ends = await log.end_offsets(topic)
        waiting = asyncio.create_task(log.poll(topic, ends, 10, timeout=20))
        await asyncio.sleep(self.quiet)
        assert not waiting.done()  # nothing follows the positions yet
        key = KEYS[4]
        started = time.monotonic()
        await log.append(topic, [(key, value(key, "awaited"))])
        got = await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - started < 5  # long before the 20 s timeout
        assert [(r.partition, r.offset, tag_of(r)) for r in got] == [
            (log.partition_of(key), ends[log.partition_of(key)], "awaited")]

    async def test_poll_returns_nothing_once_the_timeout_passes_without_an_append(self, backend):
        log, topic = backend.log, await backend.topic()
        await fill(log, topic, per_key=1)
        ends = await log.end_offsets(topic)
        started = time.monotonic()
        assert await log.poll(topic, ends, 10, timeout=self.quiet) == []
        assert self.quiet * 0.9 <= time.monotonic() - started < 5

    # --- concurrent appends ------------------------------------------------------------------------------

    async def test_concurrent_appends_lose_nothing_double_nothing_and_keep_each_append_together(self, backend):
        log, topic = backend.log, await backend.topic()
        rng = random.Random(8)
        plans = {(task, n): [rng.choice(KEYS) for _ in range(rng.randint(1, 12))]
                 for task in range(30) for n in range(4)}

        async def producer(task: int) -> None:
            for n in range(4):  # one after another within a task, every task at once
                await log.append(topic, [(k, value(k, f"{task}.{n}.{i}")) for i, k in enumerate(plans[task, n])])

        await asyncio.gather(*(producer(t) for t in range(30)))
        records = await scan_all(log, topic)
        expected = [value(k, f"{t}.{n}.{i}") for (t, n), keys in plans.items() for i, k in enumerate(keys)]
        assert Counter(r.value for r in records) == Counter(expected)  # none lost, none doubled
        assert sum((await log.end_offsets(topic)).values()) == len(expected)
        order: dict[tuple[int, bytes], list[tuple[int, int]]] = defaultdict(list)
        together: dict[tuple[int, int, int], list[tuple[int, int]]] = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            t, n, i = map(int, tag_of(r).split("."))
            assert r.partition == log.partition_of(key_of(r))
            order[t, key_of(r)].append((n, i))
            together[t, n, r.partition].append((r.offset, i))
        # a task's records of a key keep the task's order
        assert all(seen == sorted(seen) for seen in order.values())
        # an append's records on one partition sit next to each other, in the order given
        for share in together.values():
            offsets = [o for o, _ in share]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
            assert [i for _, i in share] == sorted(i for _, i in share)


class EmbeddedLoopContract:
    """`read` and `wait_for_appends`: beyond the port, what the aggregator's loop on the embedded log calls
    (tally_aggregator/postgres_loop.py). The Postgres log and the in-memory log offer both."""

    async def test_read_gives_up_to_limit_records_per_partition_from_each_position(self, backend):
        log, topic = backend.log, await backend.topic()
        await fill(log, topic)
        everything = by_partition(await scan_all(log, topic))
        got = by_partition(await log.read(topic, {0: 1, 2: 0}, 3))
        assert set(got) == {0, 2}
        assert got[0] == everything[0][1:4] and got[2] == everything[2][:3]

    async def test_wait_for_appends_wakes_on_an_append_to_any_topic_and_otherwise_times_out(self, backend):
        log, topic = backend.log, await backend.topic()
        started = time.monotonic()
        await log.wait_for_appends(self.quiet)
        assert time.monotonic() - started >= self.quiet * 0.9
        waiting = asyncio.create_task(log.wait_for_appends(20))
        await asyncio.sleep(self.quiet)
        assert not waiting.done()
        await log.append(await backend.topic(), [(KEYS[0], value(KEYS[0], "elsewhere"))])
        await asyncio.wait_for(waiting, 5)
        assert await log.read(topic, {p: 0 for p in range(PARTITIONS)}, 10) == []


class TestMemoryLog(LogContract, EmbeddedLoopContract):
    quiet = 0.05
    @pytest.fixture
    async def backend(self):
        log, names = MemoryLog(PARTITIONS), itertools.count()

        async def topic() -> str:
            return f"contract-{next(names)}"

        yield Backend(log, topic)
        await log.close()

    async def test_a_log_opened_again_in_the_process_still_holds_every_record(self, backend):
        """What "durable" means in memory: a worker started again over the same object (a crash test)."""
        log, topic = backend.log, await backend.topic()
        appended = await fill(log, topic)
        await log.close()
        assert sorted(r.value for r in await scan_all(log, topic)) == sorted(v for _, v in appended)
        await log.append(topic, [(KEYS[0], value(KEYS[0], "after"))])
        assert sum((await log.end_offsets(topic)).values()) == len(appended) + 1


class TestPostgresLog(LogContract, EmbeddedLoopContract):
    @pytest.fixture
    async def backend(self, db_url):
        pool = await create_pool(db_url)
        log, names = PostgresLog(pool, PARTITIONS), itertools.count()

        async def topic() -> str:
            return f"contract-{next(names)}"

        yield Backend(log, topic)
        await log.close()
        await pool.close()

    async def test_waiters_at_once_share_one_listener_and_close_gives_every_connection_back(self, db_url):
        # The aggregator loop and the billing worker wait on one log at once (`tally run`). Two listeners would
        # leak one pool connection, and `pool.close()` would then wait for it forever: a process that never stops.
        pool = await create_pool(db_url, min_size=1, max_size=4)
        log = PostgresLog(pool, PARTITIONS)
        try:
            await asyncio.gather(*(log.wait_for_appends(0.2) for _ in range(3)))
            listening = await pool.fetchval(
                "select count(*) from pg_stat_activity where datname = current_database() and query like 'LISTEN%'")
            assert listening == 1
        finally:
            await log.close()
            await asyncio.wait_for(pool.close(), 5)


@pytest.mark.kafka
class TestKafkaLog(LogContract):
    @pytest.fixture
    async def backend(self, kafka_bootstrap):
        log = await KafkaLog(kafka_bootstrap, PARTITIONS).start()

        async def topic() -> str:
            name = "contract-" + uuid.uuid4().hex[:8]
            await create_topics(kafka_bootstrap, {name: PARTITIONS})
            return name

        yield Backend(log, topic)
        await log.close()
