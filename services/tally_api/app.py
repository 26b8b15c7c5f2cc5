"""The ASGI app factory: routes from the API and ingest services, over injectable Services."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route

from tally_core.errors import ApiError, InvalidRequest, ServiceUnavailable
from tally_edge.context import REQUEST_ID
from tally_edge.health import Readiness, postgres_check, unavailable
from tally_edge.http import error_response, json_response

from .services import Services
from .stripe_paths import WHAT_WORKS, is_stripe_path


async def _health(request: Request) -> Response:
    """Liveness: the process and its event loop answer. No dependency is asked (see `/readyz`)."""
    return PlainTextResponse("ok")


async def _ready(request: Request) -> Response:
    """Readiness: 200 when every dependency answers, else 503 naming each one that does not."""
    readiness: Readiness = request.app.state.readiness
    problems = await readiness.problems()
    checks = {name: problems.get(name, "ok") for name in readiness.checks}
    if not problems:
        return json_response({"object": "readiness", "status": "ready", "checks": checks})
    err = ServiceUnavailable("Not ready: " + "; ".join(f"{n}: {why}" for n, why in problems.items()),
                             param=next(iter(problems)))
    return json_response({**err.to_dict(), "object": "readiness", "status": "not_ready", "checks": checks},
                         err.http_status, {"Stripe-Should-Retry": "true"})


async def _not_found(request: Request, exc) -> Response:
    status = getattr(exc, "status_code", 404)
    method, path = request.method, request.url.path
    if status == 405:
        allowed = _allowed(request)
        err = InvalidRequest(f"tally does not implement {method} {path} (this path takes {allowed}); "
                             + WHAT_WORKS, code="method_not_allowed")
        err.http_status = 405
        response = error_response(err)
        response.headers["Allow"] = allowed
        return response
    if is_stripe_path(path):
        err = InvalidRequest(f"tally does not implement {method} {path} yet; " + WHAT_WORKS,
                             code="resource_missing")
    else:
        err = InvalidRequest(f"Unrecognized request URL ({method}: {path}).", code="resource_missing")
    err.http_status = 404
    return error_response(err)


def _allowed(request: Request) -> str:
    """Every method some route takes at this path: one path is often split over several routes by method,
    so the 405 that starlette raises for the first of them would name only that route's methods."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match is Match.PARTIAL and getattr(route, "methods", None):
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(f"An unexpected error occurred: {type(exc).__name__}"))


class _Unavailable:
    """A lost dependency met outside a handler (authentication's key lookup, for one) is answered 503, to retry,
    like one met inside (`endpoint`): Starlette would answer 500, log it as a crash and drop the connection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        started = False

        async def send_tracked(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            err = unavailable(exc) if scope["type"] == "http" and not started else None
            if err is None:
                raise
            await error_response(err)(scope, receive, send)


class _RequestId:
    """Every response carries a `Request-Id` (Stripe's header, ARCHITECTURE "Interfaces"); a billing command
    records it, so the events it causes name the request (`request.id`, as Stripe's events do)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope[REQUEST_ID] = "req_" + secrets.token_hex(7)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"request-id", request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(services: Services, *, ingest: bool = True, api: bool = True,
               readiness: Readiness | None = None) -> Starlette:
    from tally_ingest.routes import routes as ingest_routes

    from . import contracts, openapi
    from .balance_routes import routes as balance_routes
    from .billing_routes import routes as billing_routes
    from .catalog_routes import routes as catalog_routes
    from .invoice_item_routes import routes as invoice_item_routes
    from .meters_routes import routes as meter_routes
    from .preview_routes import routes as preview_routes
    from .subscription_item_routes import routes as subscription_item_routes

    routes = [Route("/healthz", _health), Route("/readyz", _ready)]
    if api:
        routes += meter_routes + catalog_routes + preview_routes + billing_routes + balance_routes
        routes += invoice_item_routes + subscription_item_routes
    if ingest:
        routes += ingest_routes
    app_undeclared = contracts.attach(routes)  # tests/tally_api/test_openapi.py requires it to be empty
    services.edge.check_params = contracts.check_route
    document = json_response(openapi.document(routes))  # the routes are fixed from here on: built once
    routes.append(Route("/openapi.json", lambda r: Response(document.body, media_type="application/json")))
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found, 500: _server_error},
                    middleware=[Middleware(_RequestId), Middleware(_Unavailable)])
    app.state.services = services
    app.state.edge = services.edge
    app.state.undeclared = app_undeclared
    if readiness is None:
        readiness = Readiness()
        readiness.add("postgres", postgres_check(services.pool))
    app.state.readiness = readiness
    return app
