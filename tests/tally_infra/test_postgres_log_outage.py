"""The embedded log across a PostgreSQL restart: appends fail fast while it is down and work after, without a
new pool; the LISTEN connection behind `wait_for_appends` comes back by itself."""

from __future__ import annotations

import asyncio
import time

import pytest

from tally_cli.database import open_pool as create_pool
from tally_edge.health import unavailable
from tally_infra.logs.postgres_log import PostgresLog
from tests.tally_cli.outage import OwnPostgres, own_dir

pytestmark = pytest.mark.slow


async def test_appends_fail_fast_while_down_and_resume_after():
    with own_dir("log-outage") as root:
        await _appends_across_a_restart(OwnPostgres(root))


async def _appends_across_a_restart(pg: OwnPostgres) -> None:
    pool = await create_pool(pg.url)
    log, other = PostgresLog(pool, 2), None
    try:
        # given a log with a record, and a reader waiting for appends (its LISTEN connection held)
        await log.append("t", [(b"a", b"before")])
        await log.wait_for_appends(0.01)
        # when PostgreSQL is killed, every append fails at once with an error that means "retry"
        await asyncio.to_thread(pg.kill)
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(Exception) as raised:
                await asyncio.gather(log.append("t", [(b"a", b"lost")]), log.append("t", [(b"b", b"lost")]))
            assert time.monotonic() - started < 2.0
            assert unavailable(raised.value) is not None, repr(raised.value)
        with pytest.raises(Exception) as raised:
            await log.wait_for_appends(0.1)
        assert unavailable(raised.value) is not None
        # and once PostgreSQL alone is started again, the same log (same pool) appends again
        await asyncio.to_thread(pg.start)
        deadline = time.monotonic() + 20
        while True:
            try:
                await log.append("t", [(b"a", b"after")])
                break
            except Exception as exc:  # noqa: BLE001 - the pool replaces its dead connections one by one
                assert unavailable(exc) is not None and time.monotonic() < deadline, repr(exc)
                await asyncio.sleep(0.1)
        values = sorted(r.value for batch in [b async for b in log.scan("t")] for r in batch)
        assert values == [b"after", b"before"]  # the failed appends left nothing behind
        # and the waiter hears appends again: its LISTEN connection was replaced
        await _until_listening(log)
        other_pool = await create_pool(pg.url)
        other = PostgresLog(other_pool, 2)
        waiter = asyncio.create_task(log.wait_for_appends(10))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await other.append("t", [(b"c", b"from elsewhere")])
        await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - started < 2.0
    finally:
        await log.close()
        await pool.close()
        if other is not None:
            await other.close()
            await other.pool.close()
        await asyncio.to_thread(pg.stop)


async def _until_listening(log: PostgresLog) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            await log.wait_for_appends(0.01)
            return
        except Exception as exc:  # noqa: BLE001 - the first tries may still meet a dead pooled connection
            assert unavailable(exc) is not None and time.monotonic() < deadline, repr(exc)
            await asyncio.sleep(0.1)
