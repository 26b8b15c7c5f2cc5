"""What a route handler gets: the caller's account, its parameters, and the process's services."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from tally_core.errors import ApiError, InternalError, InvalidRequest
from tally_infra.accounts import KeyRing
from tally_infra.catalog import MeterCatalog
from tally_infra.clock_times import ClockTimes
from tally_infra.http import (
    IdempotencyCache, authenticate, error_response, json_response, parse_params, read_body,
)
from tally_infra.logs.ports import EventLog
from tally_infra.price_catalog import PriceCatalog
from tally_infra.settings import Settings
from tally_ingest.ingestor import Ingestor

from .billing_gateway import BillingGateway


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    log: EventLog
    catalog: MeterCatalog
    ingestor: Ingestor
    keys: KeyRing
    prices: PriceCatalog
    idempotency: IdempotencyCache = field(default_factory=IdempotencyCache)
    clock: Callable[[], float] = time.time
    session_secret: bytes = b""
    billing: "BillingGateway | None" = None
    clock_times: ClockTimes | None = None


@dataclass
class Ctx:
    account: str
    params: dict
    request: Request
    services: Services
    body: bytes = b""

    def now(self) -> int:
        return int(self.services.clock())


Handler = Callable[[Ctx], Awaitable["dict | Response"]]


def endpoint(handler: Handler, *, auth: Callable | None = None) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler with Stripe's conventions: auth, body parsing, idempotent POSTs, error objects."""

    async def route(request: Request) -> Response:
        services: Services = request.app.state.services
        idem_slot = None
        try:
            account = await (auth or authenticate)(request, services.keys)
            body = await read_body(request, services.settings.max_body_bytes) if request.method != "GET" else b""
            params = parse_params(body, request.headers.get("content-type", ""), request.url.query)
            params.update(request.path_params)
            key = request.headers.get("idempotency-key") if request.method == "POST" else None
            if key:
                fp = services.idempotency.fingerprint(request.method, request.url.path, body)
                stored = services.idempotency.begin(account, key, fp)
                if stored is not None:
                    return Response(stored[1], status_code=stored[0], media_type="application/json",
                                    headers={"Idempotent-Replayed": "true"})
                idem_slot = (account, key, fp)
            ctx = Ctx(account, params, request, services, body)
            try:
                result = await handler(ctx)
            except ApiError:
                raise
            except Exception as exc:  # noqa: BLE001 - turned into Stripe's api_error, logged by the server
                raise InternalError(f"An unexpected error occurred: {type(exc).__name__}") from exc
            response = result if isinstance(result, Response) else json_response(result)
            if idem_slot:
                services.idempotency.finish(*idem_slot, response.status_code, response.body)
                idem_slot = None
            return response
        except ApiError as err:
            response = error_response(err)
            if idem_slot:
                if err.http_status < 500 and not isinstance(err, InvalidRequest):
                    services.idempotency.finish(*idem_slot, response.status_code, response.body)
                else:
                    # Stripe saves results of executed requests, not of requests rejected by validation.
                    services.idempotency.abandon(idem_slot[0], idem_slot[1])
            return response

    route.__name__ = handler.__name__
    route.__doc__ = handler.__doc__
    return route
