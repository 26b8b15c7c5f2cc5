"""Which failures the worker loops wait out (retriable) and which make a record quarantined; the backoff."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RecordTooLargeError

from tally_core.errors import InternalError, InvalidRequest
from tally_infra.faults import Backoff, is_retriable


def _wrapped() -> Exception:
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise RuntimeError("while applying") from inner
    except RuntimeError as outer:
        return outer


RETRIABLE = [
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.UndefinedTableError('relation "usage_minutes" does not exist'),
    asyncpg.InterfaceError("connection is closed"),
    ConnectionRefusedError(111, "Connection refused"),
    OSError(113, "No route to host"),
    asyncio.TimeoutError(),
    KafkaConnectionError("Unable to bootstrap"),
    KafkaTimeoutError(),
    NodeNotReadyError(),
    InternalError("try again"),
    _wrapped(),
]
DATA_ERRORS = [
    asyncpg.exceptions.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
    asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"),
    asyncpg.exceptions.NumericValueOutOfRangeError("bigint out of range"),
    asyncpg.exceptions.DataError("invalid input for query argument $1 (value out of int64 range)"),
    orjson.JSONDecodeError("unexpected end of data", "", 0),
    TypeError("Integer exceeds 64-bit range"),
    KeyError("customer"),
    ValueError("not a meter-event record"),
    RecordTooLargeError(),
    InvalidRequest("Invalid balance"),
]


@pytest.mark.parametrize("exc", RETRIABLE, ids=lambda e: type(e).__name__)
def test_infrastructure_failures_are_retriable(exc):
    assert is_retriable(exc)


@pytest.mark.parametrize("exc", DATA_ERRORS, ids=lambda e: type(e).__name__)
def test_bad_records_are_not(exc):
    assert not is_retriable(exc)


async def test_backoff_doubles_to_its_cap_logs_each_wait_once_and_resets(monkeypatch, caplog):
    slept = []

    async def sleep(delay):
        slept.append(delay)

    monkeypatch.setattr("tally_infra.faults.asyncio.sleep", sleep)
    backoff = Backoff("the test loop", logging.getLogger("test.backoff"), cap=1.0)
    with caplog.at_level(logging.WARNING, logger="test.backoff"):
        for _ in range(6):
            await backoff.wait(ConnectionResetError("reset"))
        backoff.reset()
        await backoff.wait(ConnectionResetError("reset"))
    assert slept == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 0.1]
    assert sum("retrying in" in r.message for r in caplog.records) == 7
    assert any("recovered after 6 failed attempts" in r.message for r in caplog.records)
