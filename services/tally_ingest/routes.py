"""Meter event ingestion over HTTP: Stripe's v1 and v2 paths, and an NDJSON batch variant."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tally_core.errors import InvalidRequest, invalid, missing
from tally_core.meter_events import adjustment_response, event_response
from tally_edge.auth import authenticate, bearer_or_basic
from tally_edge.context import Ctx, endpoint
from tally_edge.http import NDJSON, json_response, media_type

from . import sessions
from .ingestor import BatchResult, duplicate_error

MAX_STREAM_EVENTS = 100
MAX_NDJSON_EVENTS = 10_000


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identifier_from_key(ctx: Ctx) -> str | None:
    """A retried SDK call reuses its Idempotency-Key; deriving the identifier from it makes the retry a duplicate
    even if the idempotency record was lost, so a retry can never count twice."""
    key = ctx.request.headers.get("idempotency-key")
    return "idk_" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() if key else None


async def _single(ctx: Ctx, raw: dict) -> dict:
    result = await ctx.services.ingestor.record(ctx.account, [raw], default_identifiers=[_identifier_from_key(ctx)])
    if result.errors:
        raise result.errors[0][1]
    if result.duplicates:
        raise duplicate_error(result.duplicates[0][1])
    return result.accepted[0]


async def create_meter_event(ctx: Ctx) -> dict:
    """`POST /v1/billing/meter_events` (form-encoded, as `stripe.billing.MeterEvent.create` sends it)."""
    return event_response(await _single(ctx, ctx.params))


async def create_meter_event_v2(ctx: Ctx) -> dict:
    record = await _single(ctx, ctx.params)
    return {"object": "v2.billing.meter_event", "created": _iso(record["received_at"] / 1000),
            "event_name": record["event_name"], "identifier": record["identifier"], "livemode": False,
            "payload": record["payload"], "timestamp": _iso(record["timestamp"])}


async def create_adjustment(ctx: Ctx) -> dict:
    return adjustment_response(await ctx.services.ingestor.cancel(ctx.account, ctx.params))


async def create_adjustment_v2(ctx: Ctx) -> dict:
    """`POST /v2/billing/meter_event_adjustments` (JSON): the v2 object has an id and ISO times."""
    record = await ctx.services.ingestor.cancel(ctx.account, ctx.params)
    digest = hashlib.blake2b(f"{record['account']}|{record['identifier']}|{record['received_at']}".encode(),
                             digest_size=12).hexdigest()
    return {**adjustment_response(record), "id": "mea_" + digest, "object": "v2.billing.meter_event_adjustment",
            "created": _iso(record["received_at"] / 1000)}


async def create_session(ctx: Ctx) -> dict:
    token, expires = sessions.issue(ctx.services.session_secret, ctx.account, ctx.now())
    return {"id": "mes_session_" + hashlib.blake2b(token.encode(), digest_size=8).hexdigest(),
            "object": "v2.billing.meter_event_session", "authentication_token": token,
            "created": _iso(ctx.now()), "expires_at": _iso(expires), "livemode": False}


async def session_or_key(request: Request, keys) -> str:
    """The stream takes a session token (Stripe) or, for convenience, a secret key."""
    token = bearer_or_basic(request)
    account = sessions.verify(request.app.state.services.session_secret, token, int(request.app.state.edge.clock()))
    return account if account is not None else await authenticate(request, keys)


def _batch_response(result: BatchResult) -> Response:
    body = {"object": "meter_event_batch_result", "accepted": len(result.accepted)}
    if result.duplicates:
        body["duplicates"] = [{"index": i, "identifier": ident} for i, ident in result.duplicates]
    if result.errors:
        body["errors"] = [{"index": i, **err.to_dict()} for i, err in result.errors]
    return json_response(body)


async def meter_event_stream(ctx: Ctx) -> Response:
    """`POST /v2/billing/meter_event_stream`: JSON `{"events": [...]}` (≤100), or NDJSON (≤10,000 lines)."""
    if media_type(ctx.request.headers.get("content-type", "")) in NDJSON:
        return await _ndjson(ctx)
    events = ctx.params.get("events")
    if events is None:
        raise missing("events")
    if not isinstance(events, list):
        raise invalid("events", "must be an array of meter events.")
    if len(events) > MAX_STREAM_EVENTS:
        raise invalid("events", f"at most {MAX_STREAM_EVENTS} events per request; use NDJSON for larger batches.")
    return _batch_response(await ctx.services.ingestor.record(ctx.account, events, prefix="events"))


async def _ndjson(ctx: Ctx) -> Response:
    events, lines = [], ctx.body.splitlines()
    if len(lines) > MAX_NDJSON_EVENTS:
        raise invalid("body", f"at most {MAX_NDJSON_EVENTS} lines per request.")
    bad: list[tuple[int, InvalidRequest]] = []
    index_map = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
            index_map.append(n)
        except orjson.JSONDecodeError as exc:
            bad.append((n, InvalidRequest(f"Line {n} is not valid JSON: {exc}", param=f"line[{n}]",
                                          code="parameter_invalid")))
    result = await ctx.services.ingestor.record(ctx.account, events, prefix="line")
    # Report indexes as line numbers of the body.
    result.errors = sorted(bad + [(index_map[i], _renumber(e, i, index_map[i])) for i, e in result.errors],
                           key=lambda x: x[0])
    result.duplicates = [(index_map[i], ident) for i, ident in result.duplicates]
    return _batch_response(result)


def _renumber(err, i: int, line: int):
    if err.param:
        err.param = err.param.replace(f"line[{i}]", f"line[{line}]", 1)
    return err


routes = [
    Route("/v1/billing/meter_events", endpoint(create_meter_event), methods=["POST"]),
    Route("/v1/billing/meter_event_adjustments", endpoint(create_adjustment), methods=["POST"]),
    Route("/v2/billing/meter_events", endpoint(create_meter_event_v2), methods=["POST"]),
    Route("/v2/billing/meter_event_adjustments", endpoint(create_adjustment_v2), methods=["POST"]),
    Route("/v2/billing/meter_event_session", endpoint(create_session), methods=["POST"]),
    # Events are checked one by one (tally_core.strings via validate_event) so a bad one is reported by index.
    Route("/v2/billing/meter_event_stream", endpoint(meter_event_stream, auth=session_or_key, ndjson=True,
                                                     batch=frozenset({"events"})), methods=["POST"]),
]
