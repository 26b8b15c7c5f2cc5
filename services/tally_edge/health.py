"""Is a dependency down? Which one? Turning lost connections into 503s, and the readiness report.

A request that meets a lost connection (PostgreSQL killed or restarting, the broker unreachable) is answered
at once with 503 `service_unavailable` and `Stripe-Should-Retry: true`: nothing about the request was wrong,
and the same request (with the same identifier or Idempotency-Key) may be sent again.

Which failures are outages is `faults.is_lost`, the one list of them; it is narrower than
`faults.is_retriable` (what a worker loop waits out): a serialization conflict or a schema error is retried
by the workers, but it is no outage to report to a client.

Readiness names what is missing. The checks run in the background every second (`Readiness.problems`, from
the runtime), so code on a request's path (the billing gateway) can ask "is the billing worker known to be
stuck?" without a query of its own (`known_problem`); `/readyz` runs them afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka import errors as kafka_errors

from tally_core.errors import ServiceUnavailable
from tally_infra.faults import is_lost

log = logging.getLogger("tally.health")

Check = Callable[[], Awaitable["str | None"]]  # None when healthy, else why not


def is_unavailable(exc: BaseException) -> bool:
    """True if `exc` (or what caused it) says a dependency cannot be reached, not that the request was bad."""
    return isinstance(exc, ServiceUnavailable) or is_lost(exc)


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 to answer for `exc`, or None if `exc` is not a lost dependency."""
    if isinstance(exc, ServiceUnavailable):
        return exc
    if not is_unavailable(exc):
        return None
    which = "the event broker" if _is_kafka(exc) else "the database"
    return ServiceUnavailable(f"tally cannot reach {which} right now ({type(exc).__name__}); retry the request "
                              "(with the same identifier or Idempotency-Key).")


def _is_kafka(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, kafka_errors.KafkaError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class Stall:
    """A consumer that has records waiting and has not moved for `after` seconds is stalled."""

    def __init__(self, after: float):
        self.after = after
        self._seen: dict[int, int] | None = None
        self._since = time.monotonic()
        self.last: str | None = None

    def check(self, positions: dict[int, int] | None, ends: dict[int, int] | None) -> str | None:
        """The verdict; with positions or ends unknown (their query failed), the previous one stands."""
        if positions is None or ends is None:
            return self.last
        now = time.monotonic()
        if positions != self._seen:
            self._seen, self._since = dict(positions), now
        waiting = sum(max(0, end - positions.get(p, 0)) for p, end in ends.items())
        if not waiting:
            self._since = now
        stalled = waiting and now - self._since >= self.after
        self.last = f"no progress for {now - self._since:.0f} s with {waiting} records waiting" if stalled else None
        return self.last


class Readiness:
    """Named checks; `problems()` runs them all (each bounded by `timeout`) and keeps the answer."""

    def __init__(self, *, timeout: float = 2.0):
        self.timeout = timeout
        self.checks: dict[str, Check] = {}
        self.last: dict[str, str] = {}
        self._refreshed = 0.0

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def _run(self, check: Check) -> str | None:
        try:
            return await asyncio.wait_for(check(), self.timeout)
        except asyncio.TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - a failing check is the answer, not an error of the probe
            return f"{type(exc).__name__}: {exc}"[:300]

    async def problems(self) -> dict[str, str]:
        names = list(self.checks)
        answers = await asyncio.gather(*(self._run(self.checks[n]) for n in names))
        problems = {n: why for n, why in zip(names, answers) if why is not None}
        for name in problems.keys() - self.last.keys():
            log.warning("%s is not ready: %s", name, problems[name])
        for name in self.last.keys() - problems.keys():
            log.warning("%s is ready again", name)
        self.last, self._refreshed = problems, time.monotonic()
        return problems

    def known_problem(self, *names: str) -> str | None:
        """From the last refresh (no I/O): why the first of `names` that is down is down, else None."""
        for name in names:
            if name in self.last:
                return f"{name}: {self.last[name]}"
        return None


def postgres_check(pool: asyncpg.Pool) -> Check:
    async def check() -> str | None:
        await pool.fetchval("select 1")
        return None
    return check


def log_check(event_log) -> Check:
    async def check() -> str | None:
        await event_log.ping()
        return None
    return check


def task_alive(task: asyncio.Task, what: str) -> Check:
    async def check() -> str | None:
        if not task.done():
            return None
        if task.cancelled():
            return f"{what} was cancelled"
        exc = task.exception()
        return f"{what} stopped: {type(exc).__name__}: {exc}" if exc else f"{what} returned"
    return check
