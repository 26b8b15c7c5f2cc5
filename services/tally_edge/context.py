"""What a route handler gets (`Ctx`: the caller's account, its parameters, its process's services) and the
endpoint wrapper that gives it to them under Stripe's conventions.

The edge knows nothing of the routes above it: each process hands it an `Edge` (its key ring, idempotency
cache, body limit and the check of each route's declared parameters) and its own services object, which
the handlers of that process know how to use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tally_core.errors import ApiError, InternalError, InvalidRequest, invalid
from tally_core.strings import check_path_params

from .accounts import KeyRing
from .auth import authenticate
from .health import unavailable
from .http import error_response, json_response, parse_params, read_body
from .idempotency import CommandPending, IdempotencyCache

log = logging.getLogger("tally.api")
REQUEST_ID = "tally.request_id"  # the ASGI scope key under which the app's middleware keeps the Request-Id
ParamCheck = Callable[[Callable, str, dict], None]  # (route, method, params): refuse undeclared parameters


def _no_check(route: Callable, method: str, params: dict) -> None:
    return None


@dataclass
class Edge:
    """What the endpoint wrapper needs of its process."""

    keys: KeyRing
    max_body_bytes: int
    idempotency: IdempotencyCache = field(default_factory=IdempotencyCache)
    clock: Callable[[], float] = time.time
    check_params: ParamCheck = _no_check
    # The answer of a command a first request with an Idempotency-Key appended (processes that append some).
    first_result: Callable[[str], Awaitable[tuple[int, bytes]]] | None = None


@dataclass
class Ctx:
    account: str
    params: dict
    request: Request
    services: Any  # the process's services (tally_api.services.Services for api and ingest)
    edge: Edge
    body: bytes = b""

    def now(self) -> int:
        return int(self.edge.clock())


Handler = Callable[[Ctx], Awaitable["dict | Response"]]


def endpoint(handler: Handler, *, auth: Callable | None = None, ndjson: bool = False,
             batch: frozenset[str] = frozenset()) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with Stripe's conventions: auth, body parsing, idempotent POSTs, error objects.

    Every parameter (query, body, path) passes `tally_core.strings` before the handler sees it; `ndjson`
    lets the route take an NDJSON body, `batch` names arrays the handler checks element by element.
    """

    async def route(request: Request) -> Response:
        edge: Edge = request.app.state.edge
        idem_slot = None
        try:
            account = await (auth or authenticate)(request, edge.keys)
            body = await read_body(request, edge.max_body_bytes) if request.method != "GET" else b""
            params = parse_params(body, request.headers.get("content-type", ""),
                                  request.scope.get("query_string", b""), ndjson=ndjson, batch=batch)
            edge.check_params(route, request.method, params)  # the route's declared names and shapes
            params.update(_path_params(request))
            key = request.headers.get("idempotency-key") if request.method == "POST" else None
            if key:
                fp = edge.idempotency.fingerprint(request.method, request.url.path, body)
                stored = edge.idempotency.begin(account, key, fp)
                idem_slot = (account, key, fp)
                if isinstance(stored, str):  # the first request's command is still being carried out
                    command_id = stored
                    try:
                        stored = await _first_result(edge, command_id)
                    except BaseException:
                        # Not answered (still pending, cancelled, a failure): the key goes on naming that
                        # command, so the next retry waits for it again rather than finding the key stuck in
                        # flight (409 until restart) or appending a second command.
                        edge.idempotency.pend(*idem_slot, command_id)
                        idem_slot = None
                        raise
                    edge.idempotency.finish(*idem_slot, *stored)
                    idem_slot = None
                if stored is not None:
                    return Response(stored[1], status_code=stored[0], media_type="application/json",
                                    headers={"Idempotent-Replayed": "true"})
            ctx = Ctx(account, params, request, request.app.state.services, edge, body)
            try:
                result = await handler(ctx)
            except ApiError:
                raise
            except Exception as exc:  # noqa: BLE001 - turned into Stripe's api_error
                down = unavailable(exc)
                if down is None:  # a bug: the answer says little, so the log must say everything
                    log.exception("%s %s failed (account %s)", request.method, request.url.path, account)
                raise down or InternalError(f"An unexpected error occurred: {type(exc).__name__}") from exc
            response = result if isinstance(result, Response) else json_response(result)
            if idem_slot:
                edge.idempotency.finish(*idem_slot, response.status_code, response.body)
                idem_slot = None
            return response
        except ApiError as err:
            response = error_response(err)
            if idem_slot:
                if isinstance(err, CommandPending):
                    edge.idempotency.pend(*idem_slot, err.command_id)
                elif err.http_status < 500 and not isinstance(err, InvalidRequest):
                    edge.idempotency.finish(*idem_slot, response.status_code, response.body)
                else:
                    # Stripe saves results of executed requests, not of requests rejected by validation.
                    edge.idempotency.abandon(idem_slot[0], idem_slot[1])
            return response

    route.__name__ = handler.__name__
    route.__doc__ = handler.__doc__
    return route


async def _first_result(edge: Edge, command_id: str) -> tuple[int, bytes]:
    """(status, body) of the command a first request with this Idempotency-Key appended."""
    if edge.first_result is None:
        raise InternalError(f"command {command_id} was recorded by a process with a billing gateway")
    return await edge.first_result(command_id)


def _path_params(request: Request) -> dict:
    """Ids from the URL. The server has already percent-decoded the path, replacing invalid UTF-8 with U+FFFD,
    so two different bad ids would read as one: the raw path is decoded again, strictly."""
    path_params = request.path_params
    raw = request.scope.get("raw_path")
    if path_params and raw:
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            name = next((k for k, v in path_params.items() if "\ufffd" in str(v)), next(iter(path_params)))
            raise invalid(name, "is not valid UTF-8 (the bytes are refused, not repaired).") from None
    return check_path_params(dict(path_params))


def route(path: str, handler: Handler, methods: list[str]) -> Route:
    """A starlette route whose endpoint is `handler` behind the edge (`endpoint`)."""
    return Route(path, endpoint(handler), methods=methods)
