"""How the API changes billing state: append a command to `billing-commands`, wait for the worker's result.

The API never decides: it checks what needs the catalog or the projections (does the customer exist, which
price snapshot does `items[0][price]` mean), writes the command, and answers with what the worker decided.
A worker in the same process hands results over directly; otherwise they are read from `billing_results`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import orjson

from tally_core.codec import encode
from tally_core.errors import ApiError, InternalError
from tally_core.ids import new_id
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
    def __init__(self, pool: asyncpg.Pool, log: EventLog, *, grace: int, clock: Callable[[], float] = time.time,
                 timeout: float = 60.0):
        self.pool, self.log, self.grace, self.clock, self.timeout = pool, log, grace, clock, timeout
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
        cmd = {"id": new_id("cmd"), "type": kind, "account": account, "key": key, "at": int(self.clock()),
               "grace": self.grace, "object_id": object_id, "params": params or {}, "request_id": request_id,
               "idempotency_key": idempotency_key, **extra}
        fut = asyncio.get_running_loop().create_future()
        self._waiting[cmd["id"]] = fut
        try:
            await self.log.append(BILLING_COMMANDS, [(key.encode(), encode(cmd))])
            status, body = await self._wait(cmd["id"], fut)
        finally:
            self._waiting.pop(cmd["id"], None)
        obj = orjson.loads(body)
        if status >= 400:
            raise RefusedCommand(status, obj)
        return obj

    async def _wait(self, command_id: str, fut: asyncio.Future) -> tuple[int, bytes]:
        deadline = time.monotonic() + self.timeout
        pause = 0.005
        while time.monotonic() < deadline:
            try:
                return await asyncio.wait_for(asyncio.shield(fut), pause)
            except asyncio.TimeoutError:
                pass
            row = await self.pool.fetchrow("select status, body from billing_results where command_id = $1",
                                           command_id)
            if row is not None:
                return row[0], bytes(row[1])
            pause = min(pause * 2, 0.2)
        raise InternalError("The billing worker did not answer in time; the command is in the log and will "
                            "still be carried out.")
