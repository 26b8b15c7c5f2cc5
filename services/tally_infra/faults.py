"""Which failures are worth waiting out, and how long to wait.

A worker loop retries forever only what `is_retriable` says will heal by itself: a lost connection, a
database or broker that is restarting, a serialization conflict. Everything else is a property of the record
being processed (bad bytes, a number PostgreSQL cannot hold, a key our fold does not expect): retrying it
would stop the partition for good, so the caller isolates and quarantines that record instead.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

try:  # aiokafka marks its own transient errors (`retriable = True`): connection, leader moves, timeouts
    from aiokafka.errors import KafkaError, KafkaTimeoutError
except ImportError:  # pragma: no cover - aiokafka is a dependency
    KafkaError = KafkaTimeoutError = ()  # type: ignore[assignment,misc]

# A dependency that cannot be reached: the outage a request is answered 503 for (`health.unavailable`), and
# the first thing a worker loop waits out.
_LOST = (
    asyncpg.PostgresConnectionError,           # class 08: connection lost, refused, failed
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown, cannot connect now, canceled
    asyncpg.exceptions.TooManyConnectionsError,
    # asyncpg, on a connection that died mid-statement ("cannot switch to state …"): the connection's fault.
    asyncpg.exceptions.InternalClientError,
    OSError,  # sockets: refused, reset, unreachable; a unix socket gone with its server (file errors elsewhere
    #           do not reach the loops, and a request meeting one is told to retry, which is harmless)
    TimeoutError,  # asyncio.TimeoutError is TimeoutError since Python 3.11
    asyncio.TimeoutError,
)
# What else a worker loop waits out: it heals by itself, but it is no outage to report to a client.
_TRANSIENT = (
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, out of memory
    asyncpg.exceptions.TransactionRollbackError,   # class 40: serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby during a failover
    asyncpg.exceptions.InvalidCachedStatementError,  # the schema changed under a prepared statement
    # Class 42 (undefined table or column, privileges): our statements are fixed text, so a record can never
    # cause one; the deployment is wrong, and quarantining every record until it is fixed would be worse.
    asyncpg.exceptions.SyntaxOrAccessError,
)


def _chain(exc: BaseException | None):
    """`exc` and what caused it (at most 8 links)."""
    for _ in range(8):
        if exc is None:
            return
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_retriable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is infrastructure that may come back, not a bad record."""
    return any(lost_connection(e) or _transient(e) for e in _chain(exc))


def is_lost(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says a dependency cannot be reached right now."""
    return any(lost_connection(e) for e in _chain(exc))


def lost_connection(exc: BaseException) -> bool:
    """One exception (not its causes): PostgreSQL or the broker cannot be reached."""
    if isinstance(exc, _LOST):
        return True
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, asyncpg.exceptions.DataError):
        text = str(exc)
        return "connection" in text and ("closed" in text or "lost" in text or "released" in text)
    if KafkaError and isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or isinstance(exc, KafkaTimeoutError)
    return False


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # "pool is closing", "another operation is in progress" after a cut: about the connection, never the
        # record. An InterfaceError about an argument is a DataError subclass.
        return not isinstance(exc, asyncpg.exceptions.DataError)
    # Our own error tree (tally_core.errors) and collaborators' "unavailable" errors say so themselves.
    return getattr(exc, "retriable", False) is True


class Backoff:
    """Capped exponential delay between retries: 0.1 s doubling to `cap`, back to the start on success.

    Each failure is logged once, when its wait starts, so a dependency that stays down costs one line per
    `cap` seconds, never a hot loop."""

    def __init__(self, what: str, logger: logging.Logger, *, first: float = 0.1, cap: float = 5.0):
        self.what, self.log, self.first, self.cap = what, logger, first, cap
        self.delay = 0.0
        self.failures = 0
        self.since: float | None = None

    def reset(self) -> None:
        if self.failures:
            self.log.warning("%s recovered after %d failed attempts (%.1f s)", self.what, self.failures,
                             time.monotonic() - (self.since or time.monotonic()))
        self.delay, self.failures, self.since = 0.0, 0, None

    def next_delay(self) -> float:
        self.delay = self.first if not self.delay else min(self.delay * 2, self.cap)
        return self.delay

    async def wait(self, exc: BaseException) -> None:
        """Log `exc` and sleep the next delay."""
        delay = self.next_delay()
        if not self.failures:
            self.since = time.monotonic()
        self.failures += 1
        if is_retriable(exc):
            self.log.warning("%s failed (%s: %s); retrying in %.1f s", self.what, type(exc).__name__,
                             str(exc)[:300], delay)
        else:
            self.log.error("%s failed; retrying in %.1f s", self.what, delay, exc_info=exc)
        await asyncio.sleep(delay)
