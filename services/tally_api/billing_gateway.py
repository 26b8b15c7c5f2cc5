"""How the API changes billing state: append a command to `billing-commands`, wait for the worker's result.

The API never decides: it checks what needs the catalog or the projections (does the customer exist, which
price snapshot does `items[0][price]` mean), writes the command, and answers with what the worker decided.
A worker in the same process hands results over directly; otherwise they are read from `billing_results`.

While a dependency is down the caller hears so at once, with a 503 (`service_unavailable`, retriable):
- the command cannot be appended (PostgreSQL or the broker unreachable): at once (an append that failed at
  its commit, or a Kafka record given up on, may still land: the answer cannot say it was not recorded);
- it was appended, but `billing_results` cannot be read, or the readiness checks already know PostgreSQL, the
  log or the billing worker to be down (stopped, or records waiting and no progress): the answer comes after
  at most `unhealthy_wait` seconds, and says that the command is in the log and will still be carried out;
- otherwise the wait is bounded by `timeout` (a busy worker), with the same 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import orjson

from tally_core.billing.commands import VERSION as COMMAND_VERSION
from tally_core.codec import encode
from tally_core.errors import ApiError, ServiceUnavailable
from tally_core.ids import new_id
from tally_edge.health import Readiness, unavailable
from tally_edge.idempotency import CommandPending
from tally_infra.logs.ports import BILLING_COMMANDS, EventLog


class RefusedCommand(ApiError):
    """A refusal decided by the worker, answered with the status and body it recorded."""

    def __init__(self, status: int, body: dict):
        err = body.get("error", {})
        super().__init__(err.get("message", ""), param=err.get("param"), code=err.get("code"))
        self.http_status, self.type, self.body = status, err.get("type", "api_error"), body

    def to_dict(self) -> dict:
        return self.body


class BillingGateway:
    # The readiness checks whose failure means no answer is coming soon.
    NEEDS = ("postgres", "log", "billing_worker")

    def __init__(self, pool: asyncpg.Pool, log: EventLog, *, grace: int, clock: Callable[[], float] = time.time,
                 timeout: float = 60.0, unhealthy_wait: float = 2.0, readiness: Readiness | None = None):
        self.pool, self.log, self.grace, self.clock, self.timeout = pool, log, grace, clock, timeout
        self.unhealthy_wait, self.readiness = unhealthy_wait, readiness
        self._waiting: dict[str, asyncio.Future] = {}

    def resolve(self, command_id: str, status: int, body: bytes) -> None:
        """Called by a billing worker in this process when it has committed a result."""
        fut = self._waiting.get(command_id)
        if fut is not None and not fut.done():
            fut.set_result((status, body))

    async def submit(self, account: str, key: str, kind: str, *, object_id: str | None = None,
                     params: dict | None = None, request_id: str | None = None,
                     idempotency_key: str | None = None, **extra) -> dict:
        """Append one command and return the worker's answer (or raise its refusal)."""
        cmd = {"id": new_id("cmd"), "type": kind, "version": COMMAND_VERSION, "account": account, "key": key, "at": int(self.clock()),
               "grace": self.grace, "object_id": object_id, "params": params or {}, "request_id": request_id,
               "idempotency_key": idempotency_key, **extra}
        fut = asyncio.get_running_loop().create_future()
        self._waiting[cmd["id"]] = fut
        try:
            try:
                await self.log.append(BILLING_COMMANDS, [(key.encode(), encode(cmd))])
            except Exception as exc:
                down = unavailable(exc)
                if down is None:
                    raise
                raise ServiceUnavailable(f"{down.message} The command may not have been recorded.") from exc
            status, body = await self._wait(cmd["id"], fut)
        finally:
            self._waiting.pop(cmd["id"], None)
        return answer(status, body)

    async def result_of(self, command_id: str) -> tuple[int, bytes]:
        """Wait for the result of a command appended earlier (a retry with the same Idempotency-Key)."""
        fut = self._waiting.get(command_id) or asyncio.get_running_loop().create_future()
        self._waiting[command_id] = fut
        try:
            return await self._wait(command_id, fut)
        finally:
            self._waiting.pop(command_id, None)

    async def _wait(self, command_id: str, fut: asyncio.Future) -> tuple[int, bytes]:
        deadline = time.monotonic() + self.timeout
        pause, why = 0.005, "it did not answer in time"
        while time.monotonic() < deadline:
            try:
                return await asyncio.wait_for(asyncio.shield(fut), pause)
            except asyncio.TimeoutError:
                pass
            try:
                row = await self.pool.fetchrow("select status, body from billing_results where command_id = $1",
                                               command_id)
            except Exception as exc:
                if unavailable(exc) is None:
                    raise
                why = f"the database is unreachable ({type(exc).__name__})"
                break
            if row is not None:
                return row[0], bytes(row[1])
            problem = self.readiness.known_problem(*self.NEEDS) if self.readiness else None
            if problem is not None:
                why = problem
                deadline = min(deadline, time.monotonic() + self.unhealthy_wait)
            pause = min(pause * 2, 0.2)
        raise CommandPending(command_id, f"The billing worker cannot answer now ({why}); the command is in the log "
                             "and will still be carried out. Retry with the same Idempotency-Key to get its result.")


def answer(status: int, body: bytes) -> dict:
    """A worker's result as the API returns it: the object, or its refusal raised."""
    obj = orjson.loads(body)
    if status >= 400:
        raise RefusedCommand(status, obj)
    return obj
