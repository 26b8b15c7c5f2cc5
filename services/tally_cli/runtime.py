"""Assembling a process from settings: the pool, the log backend, services, and background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field

import asyncpg

from tally_aggregator.postgres_loop import run_postgres_aggregator
from tally_api.billing_gateway import BillingGateway
from tally_api.context import Services
from tally_billing.worker import BillingWorker
from tally_infra.clock_times import ClockTimes
from tally_infra.usage_store import UsageProjector
from tally_infra.accounts import KeyRing
from tally_infra.catalog import MeterCatalog
from tally_infra.db import create_pool
from tally_infra.embedded import resolve_database_url
from tally_infra.health import Readiness, Stall, log_check, postgres_check, task_alive
from tally_infra.http import IdempotencyCache
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.ports import BILLING_COMMANDS, METER_EVENTS, TOPICS
from tally_infra.logs.postgres_log import PostgresLog
from tally_infra.price_catalog import PriceCatalog
from tally_infra.settings import Settings
from tally_ingest.ingestor import Ingestor

log = logging.getLogger("tally")


async def open_log(settings: Settings, pool: asyncpg.Pool):
    if settings.kafka_bootstrap:
        await create_topics(settings.kafka_bootstrap, {t: settings.partitions for t in TOPICS})
        return await KafkaLog(settings.kafka_bootstrap, settings.partitions,
                              append_timeout=settings.log_append_timeout).start()
    return PostgresLog(pool, settings.partitions)


async def session_secret(pool: asyncpg.Pool) -> bytes:
    await pool.execute("create table if not exists server_secrets (name text primary key, value bytea not null)")
    await pool.execute("insert into server_secrets values ('meter_event_session', $1) on conflict do nothing",
                       secrets.token_bytes(32))
    return bytes(await pool.fetchval("select value from server_secrets where name = 'meter_event_session'"))


@dataclass
class Runtime:
    services: Services
    tasks: list[asyncio.Task] = field(default_factory=list)
    worker: BillingWorker | None = None
    readiness: Readiness = field(default_factory=Readiness)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await flush_idempotency(self.services)
        await self.services.keys.close()
        await self.services.log.close()
        await self.services.pool.close()


async def build(settings: Settings, *, clock=time.time, database_url: str | None = None) -> Runtime:
    url = database_url or resolve_database_url(settings.database_url, settings.data_dir)
    pool = await create_pool(url, connect_timeout=settings.db_connect_timeout,
                             command_timeout=settings.db_command_timeout)
    event_log = await open_log(settings, pool)
    readiness = Readiness()
    readiness.add("postgres", postgres_check(pool))
    readiness.add("log", log_check(event_log))
    catalog = MeterCatalog(pool, event_log)
    await catalog.load()
    clock_times = ClockTimes()
    await clock_times.load(pool)
    ingestor = Ingestor(event_log, catalog, pool, cache_size=settings.ingest_cache_size, clock=clock,
                        clock_times=clock_times)
    await ingestor.warm()
    prices = PriceCatalog(pool, event_log)
    await prices.load()
    idem = IdempotencyCache()
    since = int(clock() * 1000) - IdempotencyCache.TTL_MS
    idem.restore(await pool.fetch(
        "select account, key, request_hash, status, body, created_ms from idempotency_keys where created_ms >= $1",
        since))
    services = Services(settings=settings, pool=pool, log=event_log, catalog=catalog, ingestor=ingestor,
                        keys=KeyRing(pool), prices=prices, idempotency=idem, clock=clock,
                        session_secret=await session_secret(pool), clock_times=clock_times,
                        billing=BillingGateway(pool, event_log, grace=settings.invoice_grace_seconds, clock=clock,
                                               timeout=settings.billing_wait_seconds,
                                               unhealthy_wait=settings.unhealthy_wait_seconds, readiness=readiness))
    rt = Runtime(services, readiness=readiness)
    # Checked every second so the billing gateway knows, without a query of its own, that no answer is coming.
    rt.tasks.append(asyncio.create_task(_every(1.0, lambda s: readiness.problems(), services)))
    rt.tasks.append(asyncio.create_task(_every(0.2, flush_idempotency, services)))
    rt.tasks.append(asyncio.create_task(_every(1.0, lambda s: s.catalog.load(), services)))
    rt.tasks.append(asyncio.create_task(_every(1.0, lambda s: s.prices.load(), services)))
    rt.tasks.append(asyncio.create_task(_every(1.0, lambda s: s.clock_times.load(s.pool), services)))
    return rt


async def start_billing_worker(rt: Runtime) -> BillingWorker:
    """Run the billing worker in this process; results reach the API's waiting requests directly."""
    s = rt.services
    worker = await BillingWorker(s.pool, s.log, s.catalog, aggregator_group=s.settings.consumer_group,
                                 grace=s.settings.invoice_grace_seconds, clock=s.clock,
                                 batch=s.settings.billing_batch, on_result=s.billing.resolve).start()
    task = asyncio.create_task(worker.run(s.settings.billing_tick_seconds))
    rt.tasks.append(task)
    rt.worker = worker
    alive, stall = task_alive(task, "the billing worker"), Stall(s.settings.stall_seconds)

    async def check() -> str | None:
        return await alive() or stall.check(worker.positions, await _known(s.log.end_offsets(BILLING_COMMANDS)))

    rt.readiness.add("billing_worker", check)
    return worker


def start_postgres_aggregator(rt: Runtime) -> None:
    """The usage aggregator on the embedded log, in this process."""
    s = rt.services
    task = asyncio.create_task(run_postgres_aggregator(s.log, UsageProjector(s.pool, s.settings.consumer_group),
                                                       batch=s.settings.aggregator_batch))
    rt.tasks.append(task)
    watch_aggregator(rt, task)


def watch_aggregator(rt: Runtime, task: asyncio.Task | None = None) -> None:
    """Readiness of the aggregator: its task (when in this process), and its stored positions moving."""
    s = rt.services
    projector = UsageProjector(s.pool, s.settings.consumer_group)
    alive, stall = (task_alive(task, "the aggregator") if task else None), Stall(s.settings.stall_seconds)

    async def check() -> str | None:
        if alive is not None and (why := await alive()):
            return why
        ends = await _known(s.log.end_offsets(METER_EVENTS))
        return stall.check(await _known(projector.positions()), ends)

    rt.readiness.add("aggregator", check)


async def _known(query, timeout: float = 0.8):
    """A progress check's own query, None when it cannot be answered now (the postgres and log checks say
    why; the stall verdict stays as it was)."""
    try:
        return await asyncio.wait_for(query, timeout)
    except Exception:  # noqa: BLE001 - unknown progress is not a stall
        return None


async def flush_idempotency(services: Services) -> None:
    rows = services.idempotency.take_unsaved()
    if not rows:
        return
    # A key's pending marker and its final result may meet in one flush: the last one wins.
    latest = list({(r[0], r[1]): r for r in rows}.values())
    try:
        # One statement per flush: the SDK sends a key with every POST, so this runs at ingest rates. Only a
        # pending marker (status 0) is ever replaced: a saved result is final.
        await services.pool.execute(
            "insert into idempotency_keys as k (account, key, request_hash, status, body, created_ms) "
            "select * from unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::bytea[], $6::bigint[]) "
            "on conflict (account, key) do update set status = excluded.status, body = excluded.body "
            "where k.status = 0", *map(list, zip(*latest)))
    except BaseException:
        services.idempotency.put_back(rows)
        raise


async def _every(seconds: float, fn, services: Services) -> None:
    """Run a chore every `seconds`; it survives failures (retried next round), logged once per outage."""
    failing = False
    while True:
        await asyncio.sleep(seconds)
        try:
            await fn(services)
        except Exception as exc:  # noqa: BLE001 - a background chore must not die; it retries next tick
            if not failing:
                log.warning("background task failed; retrying every %g s", seconds, exc_info=exc)
            failing = True
        else:
            if failing:
                log.warning("background task recovered")
            failing = False
