"""Assembling a process from settings: the pool, the log backend, and only the services that process runs.

Every process gets the pool, the log and the catalog. An HTTP process adds the edge (keys, idempotency);
ingest adds the ingestor (its dedup cache warmed) and test clock times; the API adds the billing gateway.
`tally billing` builds none of the HTTP parts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from tally_aggregator.postgres_loop import run_postgres_aggregator
from tally_aggregator.store import UsageProjector
from tally_api.billing_gateway import BillingGateway
from tally_api.services import Services
from tally_billing.clock_times import ClockTimes
from tally_billing.worker import BillingWorker
from tally_catalog.catalog import Catalog
from tally_edge import idempotency
from tally_edge.accounts import KeyRing
from tally_edge.context import Edge
from tally_edge.health import Readiness, Stall, log_check, postgres_check, task_alive
from tally_edge.idempotency import IdempotencyCache
from tally_infra.embedded import resolve_database_url
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.ports import BILLING_COMMANDS, METER_EVENTS, TOPICS, EventLog
from tally_infra.logs.postgres_log import PostgresLog
from tally_infra.settings import Settings
from tally_ingest import sessions
from tally_ingest.ingestor import Ingestor

from .database import open_pool

log = logging.getLogger("tally")
SHUTDOWN_TIMEOUT = 10.0  # seconds a closing runtime waits for its cancelled tasks, and for its pool


async def open_log(settings: Settings, pool: asyncpg.Pool):
    if settings.kafka_bootstrap:
        await create_topics(settings.kafka_bootstrap, {t: settings.partitions for t in TOPICS})
        return await KafkaLog(settings.kafka_bootstrap, settings.partitions,
                              append_timeout=settings.log_append_timeout).start()
    return PostgresLog(pool, settings.partitions)


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    log: EventLog
    catalog: Catalog
    clock: Callable[[], float] = time.time
    services: Services | None = None  # the HTTP processes' services (api and/or ingest)
    tasks: list[asyncio.Task] = field(default_factory=list)
    worker: BillingWorker | None = None
    readiness: Readiness = field(default_factory=Readiness)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.tasks:
            # A task stuck where cancellation cannot reach it (a call into a broker that never answers) must not
            # hold the process: it is left behind after SHUTDOWN_TIMEOUT, and said so.
            done, stuck = await asyncio.wait(self.tasks, timeout=SHUTDOWN_TIMEOUT)
            for t in done:  # a task that failed before it was cancelled: its error was logged where it failed
                if not t.cancelled():
                    t.exception()
            for t in stuck:
                log.warning("task %s did not stop within %.0f s of being cancelled", t.get_name(), SHUTDOWN_TIMEOUT)
        if self.services is not None:
            await idempotency.flush(self.services.edge.idempotency, self.pool)
            await self.services.edge.keys.close()
        await self.log.close()
        try:
            await asyncio.wait_for(self.pool.close(), SHUTDOWN_TIMEOUT)
        except asyncio.TimeoutError:
            self.pool.terminate()  # connections still checked out by the stuck tasks


async def build(settings: Settings, *, clock=time.time, database_url: str | None = None, api: bool = True,
                ingest: bool = True, log: EventLog | None = None) -> Runtime:
    """A process: `api` and `ingest` say which HTTP services it serves (neither: a worker or a tool); `log`
    replaces the configured backend (tests pass an in-memory log)."""
    url = database_url or resolve_database_url(settings.database_url, settings.data_dir)
    pool = await open_pool(url, connect_timeout=settings.db_connect_timeout,
                           command_timeout=settings.db_command_timeout)
    event_log = log if log is not None else await open_log(settings, pool)
    readiness = Readiness()
    readiness.add("postgres", postgres_check(pool))
    readiness.add("log", log_check(event_log))
    catalog = Catalog(pool, event_log)
    await catalog.load()
    rt = Runtime(settings, pool, event_log, catalog, clock, readiness=readiness)
    # Checked every second so the billing gateway knows, without a query of its own, that no answer is coming.
    rt.tasks.append(asyncio.create_task(_every(1.0, readiness.problems)))
    rt.tasks.append(asyncio.create_task(_every(1.0, catalog.load)))
    if api or ingest:
        rt.services = await _http_services(rt, api=api, ingest=ingest)
    return rt


async def _http_services(rt: Runtime, *, api: bool, ingest: bool) -> Services:
    settings, pool, clock = rt.settings, rt.pool, rt.clock
    edge = Edge(KeyRing(pool), settings.max_body_bytes, IdempotencyCache(), clock)
    await idempotency.restore(edge.idempotency, pool, now_ms=int(clock() * 1000))
    rt.tasks.append(asyncio.create_task(_every(0.2, lambda: idempotency.flush(edge.idempotency, pool))))
    services = Services(settings=settings, pool=pool, log=rt.log, catalog=rt.catalog, edge=edge)
    if ingest:
        # Test clock times: a clock customer's "now" (the API keeps them current when it shares the process).
        services.clock_times = ClockTimes()
        await services.clock_times.load(pool)
        rt.tasks.append(asyncio.create_task(_every(1.0, lambda: services.clock_times.load(pool))))
        services.ingestor = Ingestor(rt.log, rt.catalog, pool, cache_size=settings.ingest_cache_size, clock=clock,
                                     clock_times=services.clock_times)
        await services.ingestor.warm()
        services.session_secret = await sessions.load_secret(pool)
    if api:
        services.billing = BillingGateway(pool, rt.log, grace=settings.invoice_grace_seconds, clock=clock,
                                          timeout=settings.billing_wait_seconds,
                                          unhealthy_wait=settings.unhealthy_wait_seconds, readiness=rt.readiness)
        edge.first_result = services.billing.result_of
    return services


async def start_billing_worker(rt: Runtime) -> BillingWorker:
    """Run the billing worker in this process; results reach the API's waiting requests directly."""
    s, gateway = rt.settings, rt.services.billing if rt.services else None
    worker = await BillingWorker(rt.pool, rt.log, rt.catalog, aggregator_group=s.consumer_group,
                                 grace=s.invoice_grace_seconds, clock=rt.clock, batch=s.billing_batch,
                                 on_result=gateway.resolve if gateway else None).start()
    task = asyncio.create_task(worker.run(s.billing_tick_seconds))
    rt.tasks.append(task)
    rt.worker = worker
    alive, stall = task_alive(task, "the billing worker"), Stall(s.stall_seconds)

    async def check() -> str | None:
        return await alive() or stall.check(worker.positions, await _known(rt.log.end_offsets(BILLING_COMMANDS)))

    rt.readiness.add("billing_worker", check)
    return worker


def start_postgres_aggregator(rt: Runtime) -> None:
    """The usage aggregator on the embedded log, in this process."""
    task = asyncio.create_task(run_postgres_aggregator(rt.log, UsageProjector(rt.pool, rt.settings.consumer_group),
                                                       batch=rt.settings.aggregator_batch))
    rt.tasks.append(task)
    watch_aggregator(rt, task)


def watch_aggregator(rt: Runtime, task: asyncio.Task | None = None) -> None:
    """Readiness of the aggregator: its task (when in this process), and its stored positions moving."""
    projector = UsageProjector(rt.pool, rt.settings.consumer_group)
    alive, stall = (task_alive(task, "the aggregator") if task else None), Stall(rt.settings.stall_seconds)

    async def check() -> str | None:
        if alive is not None and (why := await alive()):
            return why
        ends = await _known(rt.log.end_offsets(METER_EVENTS))
        return stall.check(await _known(projector.positions()), ends)

    rt.readiness.add("aggregator", check)


async def _known(query, timeout: float = 0.8):
    """A progress check's own query, None when it cannot be answered now (the postgres and log checks say
    why; the stall verdict stays as it was)."""
    try:
        return await asyncio.wait_for(query, timeout)
    except Exception:  # noqa: BLE001 - unknown progress is not a stall
        return None


async def _every(seconds: float, fn: Callable[[], Awaitable]) -> None:
    """Run a chore every `seconds`; it survives failures (retried next round), logged once per outage."""
    failing = False
    while True:
        await asyncio.sleep(seconds)
        try:
            await fn()
        except Exception as exc:  # noqa: BLE001 - a background chore must not die; it retries next tick
            if not failing:
                log.warning("background task failed; retrying every %g s", seconds, exc_info=exc)
            failing = True
        else:
            if failing:
                log.warning("background task recovered")
            failing = False
