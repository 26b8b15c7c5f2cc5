"""The billing worker killed between appending `billing-events` and committing its projections.

The worker's exactly-once rule (tally_billing/worker.py): 1. append the batch's events, 2. commit
projections, results and both topics' positions in one transaction. A crash between 1 and 2 leaves events in
the log that the projections never saw; the next worker's start-up (`_recover`) projects them and skips the
commands they came from, so nothing is decided, appended or projected twice.

Worked example: a whole billing story runs through the API on an in-memory log (the reference run). Its
commands are then decided again by a worker on a fresh database that is killed right after one of its
appends to `billing-events`; a new worker over the same log and database recovers and finishes. The log and
the projections must equal the reference, record for record and row for row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

import asyncpg
import httpx
import orjson
import pytest

from tally_api.app import create_app
from tally_billing.store import PROJECTION_TABLES
from tally_billing.worker import GROUP, BillingWorker
from tally_catalog.catalog import Catalog
from tally_cli.database import open_pool
from tally_cli.runtime import build, start_billing_worker
from tally_core.billing.book import USAGE_OBSERVED
from tally_core.billing.ledger import COMMAND_FAILED
from tally_edge.accounts import create_account
from tally_infra.logs.memory_log import MemoryLog
from tally_infra.logs.ports import BILLING_COMMANDS, BILLING_EVENTS, EventLog
from tally_infra.settings import Settings
from tests.conftest import with_database

PARTITIONS = 4


def ts(y, m, d, h=0):
    return int(datetime(y, m, d, h, tzinfo=timezone.utc).timestamp())


async def ok(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


class WorkerKilled(Exception):
    """The process died here: nothing after the append ran."""


class KilledAfterAppend:
    """The log as one worker sees it: its `nth` append to billing-events lands, then the worker dies."""

    def __init__(self, log: EventLog, nth: int):
        self._log, self.nth, self.appends = log, nth, 0

    def __getattr__(self, name):
        return getattr(self._log, name)

    async def append(self, topic: str, items: list[tuple[bytes, bytes]]) -> None:
        await self._log.append(topic, items)
        if topic == BILLING_EVENTS:
            self.appends += 1
            if self.appends == self.nth:
                raise WorkerKilled(f"killed after billing-events append {self.nth}")


async def story(api: httpx.AsyncClient) -> None:
    """Customers off and on test clocks (a clock's customers share its book), a declined card, subscriptions,
    updates, and two clocks advanced a month so their subscriptions renew (ticks, renewals, retries)."""
    fee = await ok(await api.post("/v1/prices", data={
        "currency": "usd", "unit_amount": "10000", "product_data[name]": "license", "recurring[interval]": "month"}))
    seat = await ok(await api.post("/v1/prices", data={
        "currency": "usd", "unit_amount": "1500", "product_data[name]": "seat", "recurring[interval]": "month"}))
    clocks = [await ok(await api.post("/v1/test_helpers/test_clocks", data={"frozen_time": ts(2026, 3, d)}))
              for d in (1, 15)]
    for i, card in enumerate(["pm_card_visa", "pm_card_chargeDeclined", "pm_card_visa"] * 3):
        on_clock = {"test_clock": clocks[i % 2]["id"]} if i < 6 else {}
        cus = await ok(await api.post("/v1/customers", data={
            "email": f"c{i}@example.com", "payment_method": card, **on_clock}))
        await ok(await api.post(f"/v1/customers/{cus['id']}", data={"metadata[plan]": f"p{i}"}))
        await ok(await api.post("/v1/subscriptions", data={
            "customer": cus["id"], "items[0][price]": fee["id"], "items[1][price]": seat["id"],
            "items[1][quantity]": str(i + 1)}))
    for clock in clocks:
        await ok(await api.post(f"/v1/test_helpers/test_clocks/{clock['id']}/advance",
                                data={"frozen_time": clock["frozen_time"] + 31 * 86_400 + 7200}))
        assert (await ok(await api.get(f"/v1/test_helpers/test_clocks/{clock['id']}")))["status"] == "ready"


async def projections(pool: asyncpg.Pool) -> dict:
    out = {}
    for table in PROJECTION_TABLES:
        rows = await pool.fetch(f"select * from {table} order by account, id")
        out[table] = [tuple(orjson.loads(v) if k == "data" else v for k, v in r.items()) for r in rows]
    out["billing_stuck"] = [tuple(r) for r in await pool.fetch("select * from billing_stuck order by key")]
    return out


async def by_partition(log: EventLog, topic: str) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    async for records in log.scan(topic):
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            out[r.partition].append(r.value)
    return out


async def stored_positions(pool: asyncpg.Pool, topic: str) -> dict[int, int]:
    rows = await pool.fetch("select partition, next_offset from consumer_offsets where group_id = $1 and topic = $2",
                            GROUP, topic)
    return {p: 0 for p in range(PARTITIONS)} | {r[0]: r[1] for r in rows}


@pytest.fixture
async def reference(db_url, clock, tmp_path):
    """The story through the API with the worker running, on an in-memory log; yields (log, pool, settings)."""
    log = MemoryLog(PARTITIONS)
    settings = Settings(database_url=db_url, data_dir=tmp_path, partitions=PARTITIONS)
    rt = await build(settings, clock=clock, database_url=db_url, log=log)
    _, key = await create_account(rt.pool, now=int(clock()))
    await start_billing_worker(rt)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt.services)),
                                 base_url="http://tally.test", auth=(key, "")) as api:
        await story(api)
    for task in rt.tasks:
        task.cancel()
    await asyncio.gather(*rt.tasks, return_exceptions=True)
    # Whatever the worker's last round left (a tick it appended): decided too, so the reference is complete.
    await (await BillingWorker(rt.pool, log, rt.catalog, aggregator_group=settings.consumer_group,
                               clock=clock).start()).drain()
    yield log, rt.pool, settings
    await rt.close()


@pytest.fixture
async def fresh_pool(pg_url):
    """A second fresh database, for the run that crashes."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f'create database "{name}"')
    await conn.close()
    pool = await open_pool(with_database(pg_url, name))
    yield pool
    await pool.close()
    conn = await asyncpg.connect(pg_url)
    await conn.execute(f'drop database if exists "{name}" with (force)')
    await conn.close()


async def copy_of_commands(log: EventLog) -> MemoryLog:
    """A new log holding `log`'s billing-commands at the same partitions and offsets, and nothing else."""
    copy = MemoryLog(PARTITIONS)
    for values in (await by_partition(log, BILLING_COMMANDS)).values():
        await copy.append(BILLING_COMMANDS, [(orjson.loads(v)["key"].encode(), v) for v in values])
    return copy


def workers(pool: asyncpg.Pool, settings: Settings, clock) -> Callable[[EventLog], BillingWorker]:
    def worker(log: EventLog) -> BillingWorker:
        return BillingWorker(pool, log, Catalog(pool, log), aggregator_group=settings.consumer_group, clock=clock,
                             batch=3)
    return worker


@pytest.mark.parametrize("killed_at", [1, 4])
async def test_a_worker_killed_between_append_and_commit_recovers_each_event_once(reference, fresh_pool, clock,
                                                                                   killed_at):
    ref_log, ref_pool, settings = reference
    commands = await by_partition(ref_log, BILLING_COMMANDS)
    expected_events = await by_partition(ref_log, BILLING_EVENTS)
    assert sum(map(len, commands.values())) > 25 and sum(map(len, expected_events.values())) > 80
    assert sum(1 for values in commands.values() if values) >= 2  # books on several partitions

    # The same commands, on the same partitions at the same offsets, in a new log over a fresh database.
    log, pool = await copy_of_commands(ref_log), fresh_pool
    assert await by_partition(log, BILLING_COMMANDS) == commands
    worker = workers(pool, settings, clock)

    # A worker dies right after its `killed_at`-th append to billing-events (batches of ≤3 commands a partition).
    doomed = await worker(KilledAfterAppend(log, killed_at)).start()
    with pytest.raises(WorkerKilled):
        await doomed.drain()
    ends = await log.end_offsets(BILLING_EVENTS)
    committed = await stored_positions(pool, BILLING_EVENTS)
    orphaned = [orjson.loads(v) for p, values in (await by_partition(log, BILLING_EVENTS)).items()
                for v in values[committed[p]:]]
    assert orphaned, "the killed batch's events are in the log, past the committed positions"
    listed = {e["id"] for e in orphaned if e["type"] not in (COMMAND_FAILED, USAGE_OBSERVED)}  # in /v1/events
    assert listed and not listed & {r[0] for r in await pool.fetch("select id from billing_events")}

    # A new worker over the same log and database: start-up projects the orphaned events, once...
    recovered = await worker(log).start()
    assert await log.end_offsets(BILLING_EVENTS) == ends  # recovery decides and appends nothing
    assert await stored_positions(pool, BILLING_EVENTS) == ends
    projected = {r[0] for r in await pool.fetch("select id from billing_events")}
    assert listed <= projected
    # ...and skips the commands they came from: the next command it decides is the first one after them.
    for e in orphaned:
        p, offset = e["command_offset"]
        assert recovered.positions[p] > offset
    assert await stored_positions(pool, BILLING_COMMANDS) == recovered.positions

    # It then finishes the log: every event exactly once, in the reference's order; the same projections.
    await recovered.drain()
    assert await by_partition(log, BILLING_EVENTS) == expected_events
    assert await projections(pool) == await projections(ref_pool)
    assert await pool.fetchval("select count(*) from dead_letters") == 0


async def test_the_commands_recovery_skips_keep_their_results(reference, fresh_pool, clock):
    """A client whose request was in the killed batch retries with its Idempotency-Key: the edge waits for the
    command's row in billing_results (`BillingGateway.result_of`). The reference run has one for every command
    that answered; so must the recovered one."""
    ref_log, ref_pool, settings = reference
    log, pool = await copy_of_commands(ref_log), fresh_pool
    worker = workers(pool, settings, clock)
    with pytest.raises(WorkerKilled):
        await (await worker(KilledAfterAppend(log, 1)).start()).drain()
    await (await worker(log).start()).drain()
    query = "select command_id, status from billing_results order by command_id"
    assert [tuple(r) for r in await pool.fetch(query)] == [tuple(r) for r in await ref_pool.fetch(query)]
