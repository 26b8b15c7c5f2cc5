"""Lost dependencies become fast, retriable 503s; readiness names what is missing."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from tally_api.billing_gateway import BillingGateway
from tally_cli.database import open_pool as create_pool
from tally_core.errors import InvalidRequest, ServiceUnavailable
from tally_edge.health import Readiness, Stall, unavailable


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    FileNotFoundError(2, "No such file or directory"),  # a unix socket gone with its server
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released back to the pool"),
    asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    KafkaConnectionError("no connection"),
    KafkaTimeoutError("no acknowledgement"),
    asyncio.TimeoutError(),
])
def test_a_lost_dependency_is_a_retriable_503(exc):
    err = unavailable(exc)
    assert isinstance(err, ServiceUnavailable)
    assert (err.http_status, err.type, err.code, err.retriable) == (503, "api_error", "service_unavailable", True)
    assert err.to_dict()["error"]["code"] == "service_unavailable"


def test_the_cause_counts_and_the_broker_is_named():
    try:
        try:
            raise KafkaConnectionError("refused")
        except KafkaConnectionError as inner:
            raise RuntimeError("append failed") from inner
    except RuntimeError as outer:
        err = unavailable(outer)
    assert err is not None and "event broker" in err.message


@pytest.mark.parametrize("exc", [
    ValueError("bad"), KeyError("x"),
    asyncpg.UniqueViolationError("duplicate key"),
    asyncpg.UntranslatableCharacterError("\\u0000 cannot be converted to text"),
    asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
    InvalidRequest("Invalid name", param="name"),
])
def test_anything_else_is_not_an_outage(exc):
    assert unavailable(exc) is None


def test_a_consumer_with_records_waiting_and_no_progress_is_stalled():
    stall = Stall(after=0.05)
    assert stall.check({0: 5}, {0: 5}) is None          # nothing waiting
    assert stall.check({0: 5}, {0: 9}) is None          # waiting, but only just
    time.sleep(0.06)
    assert "4 records waiting" in stall.check({0: 5}, {0: 9})
    assert stall.check({0: 7}, {0: 9}) is None          # it moved: the clock starts again
    time.sleep(0.06)
    assert stall.check({0: 7}, {0: 9}) is not None
    assert stall.check(None, {0: 9}) is not None        # progress unknown (a query failed): the verdict stands


async def test_readiness_names_each_failing_check_within_its_timeout():
    readiness = Readiness(timeout=0.2)

    async def ok():
        return None

    async def refused():
        raise ConnectionRefusedError(111, "Connection refused")

    async def hangs():
        await asyncio.sleep(10)

    async def stuck():
        return "no progress for 20 s"

    for name, check in {"postgres": refused, "log": ok, "aggregator": hangs, "billing_worker": stuck}.items():
        readiness.add(name, check)
    started = time.monotonic()
    problems = await readiness.problems()
    assert time.monotonic() - started < 1.0
    assert set(problems) == {"postgres", "aggregator", "billing_worker"}
    assert "ConnectionRefusedError" in problems["postgres"] and "no answer within" in problems["aggregator"]
    assert readiness.known_problem("log", "billing_worker") == "billing_worker: no progress for 20 s"
    assert readiness.known_problem("log") is None


class _DeadLog:
    partitions = 1

    async def append(self, topic, items):
        raise ConnectionRefusedError(111, "Connection refused")


class _SilentLog:
    partitions = 1

    async def append(self, topic, items):
        return None  # recorded, but no worker will ever answer


async def test_billing_fails_fast_when_the_command_cannot_be_recorded(db_url):
    pool = await create_pool(db_url)
    try:
        gateway = BillingGateway(pool, _DeadLog(), grace=0)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="may not have been recorded"):
            await gateway.submit("acct_1", "acct_1|cus_1", "customer.create", params={"name": "a"})
        assert time.monotonic() - started < 1.0
    finally:
        await pool.close()


async def test_billing_answers_503_soon_once_the_worker_is_known_to_be_down(db_url):
    # given a gateway whose readiness already knows the billing worker to be stuck
    pool = await create_pool(db_url)
    try:
        readiness = Readiness()
        readiness.last = {"billing_worker": "no progress for 20 s with 3 records waiting"}
        gateway = BillingGateway(pool, _SilentLog(), grace=0, timeout=60, unhealthy_wait=0.3, readiness=readiness)
        started = time.monotonic()
        # when a command is submitted, then the answer is a 503 after the short bound, not the 60 s one
        with pytest.raises(ServiceUnavailable, match="will still be carried out") as raised:
            await gateway.submit("acct_1", "acct_1|cus_1", "customer.create", params={"name": "a"})
        assert 0.3 <= time.monotonic() - started < 1.5
        assert "billing_worker" in raised.value.message
    finally:
        await pool.close()
