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
from tally_infra.http import IdempotencyCache
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.ports import TOPICS
from tally_infra.logs.postgres_log import PostgresLog
from tally_infra.price_catalog import PriceCatalog
from tally_infra.settings import Settings
from tally_ingest.ingestor import Ingestor

log = logging.getLogger("tally")


async def open_log(settings: Settings, pool: asyncpg.Pool):
    if settings.kafka_bootstrap:
        await create_topics(settings.kafka_bootstrap, {t: settings.partitions for t in TOPICS})
        return await KafkaLog(settings.kafka_bootstrap, settings.partitions).start()
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

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await flush_idempotency(self.services)
        await self.services.log.close()
        await self.services.pool.close()


async def build(settings: Settings, *, clock=time.time, database_url: str | None = None) -> Runtime:
    url = database_url or resolve_database_url(settings.database_url, settings.data_dir)
    pool = await create_pool(url)
    event_log = await open_log(settings, pool)
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
                        billing=BillingGateway(pool, event_log, grace=settings.invoice_grace_seconds, clock=clock))
    rt = Runtime(services)
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
    rt.tasks.append(asyncio.create_task(worker.run(s.settings.billing_tick_seconds)))
    rt.worker = worker
    return worker


def start_postgres_aggregator(rt: Runtime) -> None:
    """The usage aggregator on the embedded log, in this process."""
    s = rt.services
    projector = UsageProjector(s.pool, s.settings.consumer_group)
    rt.tasks.append(asyncio.create_task(run_postgres_aggregator(s.log, projector, batch=s.settings.aggregator_batch)))


async def flush_idempotency(services: Services) -> None:
    rows = services.idempotency.take_unsaved()
    if rows:
        # One statement per flush: the SDK sends a key with every POST, so this runs at ingest rates.
        await services.pool.execute(
            "insert into idempotency_keys (account, key, request_hash, status, body, created_ms) "
            "select * from unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::bytea[], $6::bigint[]) "
            "on conflict (account, key) do nothing", *map(list, zip(*rows)))


async def _every(seconds: float, fn, services: Services) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await fn(services)
        except Exception:  # noqa: BLE001 - a background chore must not die; it retries next tick
            log.exception("background task failed")
