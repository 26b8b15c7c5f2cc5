"""The ASGI app factory: routes from the API and ingest services, over injectable Services."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tally_core.errors import ApiError, InvalidRequest
from tally_infra.http import error_response, json_response

from .context import Services


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _not_found(request: Request, exc) -> Response:
    status = getattr(exc, "status_code", 404)
    if status == 405:
        err = InvalidRequest(f"Unrecognized request method {request.method} for {request.url.path}.",
                             code="method_not_allowed")
        err.http_status = 405
        return error_response(err)
    err = InvalidRequest(f"Unrecognized request URL ({request.method}: {request.url.path}).", code="resource_missing")
    err.http_status = 404
    return error_response(err)


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(f"An unexpected error occurred: {type(exc).__name__}"))


def create_app(services: Services, *, ingest: bool = True, api: bool = True) -> Starlette:
    from tally_ingest.routes import routes as ingest_routes

    from . import openapi
    from .billing_routes import routes as billing_routes
    from .catalog_routes import routes as catalog_routes
    from .meters_routes import routes as meter_routes

    routes = [Route("/healthz", _health)]
    if api:
        routes += meter_routes + catalog_routes + billing_routes
    if ingest:
        routes += ingest_routes
    routes.append(Route("/openapi.json", lambda r: json_response(openapi.document(routes))))
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found, 500: _server_error})
    app.state.services = services
    return app
