"""HTTP conventions every endpoint follows: Stripe error responses, form/JSON bodies, lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tally_core.errors import (
    ApiError,
    BodyTooLarge,
    InvalidRequest,
    UnsupportedMediaType,
    invalid,
)
from tally_core.forms import parse_form
from tally_core.strings import ASCII_INTEGER, check_params


def json_response(obj, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def error_response(err: ApiError) -> Response:
    headers = {"Stripe-Should-Retry": "true" if err.retriable else "false"}
    return json_response(err.to_dict(), err.http_status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and ASCII_INTEGER.fullmatch(declared) and len(declared) < 20 and int(declared) > limit:
        raise BodyTooLarge(f"Request body is larger than the limit of {limit} bytes.", code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"Request body is larger than the limit of {limit} bytes.", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


FORM, JSON = "application/x-www-form-urlencoded", "application/json"
NDJSON = ("application/x-ndjson", "application/jsonl")


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_params(body: bytes, content_type: str, query: bytes | str = b"", *, ndjson: bool = False,
                 batch: frozenset[str] = frozenset()) -> dict:
    """Query string, plus a form (bracket notation) or JSON body, checked by `tally_core.strings`.

    The body's Content-Type is honoured strictly: form or JSON (none at all is read as a form, as Stripe
    does), NDJSON only where the route reads it line by line (`ndjson=True`); anything else is a 415.
    `batch` names arrays whose elements the route checks one by one, to report bad ones by index.
    """
    params = parse_form(query) if query else {}
    kind = media_type(content_type)
    if not body:
        data: dict = {}
    elif kind in NDJSON:
        if not ndjson:
            raise _unsupported(kind)
        data = {}  # read line by line by the route
    elif kind == JSON:
        data = _json(body)
    elif kind in (FORM, ""):
        data = parse_form(body)
    else:
        raise _unsupported(kind)
    for key in data:
        if key in params:
            raise invalid(key, "is given both in the query string and in the body.")
    params.update(data)
    return check_params(params, skip=batch)


def _unsupported(kind: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"Content-Type {kind[:100]!r} is not accepted here; send application/x-www-form-urlencoded or "
        "application/json.", param="Content-Type", code="unsupported_content_type")


def _json(body: bytes) -> dict:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON body: {exc}", code="parameter_invalid") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The JSON body must be an object.", code="parameter_invalid")
    return data


def page_params(params: dict) -> tuple[int, str | None, str | None]:
    raw = params.get("limit", 10)
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or (
            isinstance(raw, str) and not (ASCII_INTEGER.fullmatch(raw) and len(raw) < 20)):
        raise invalid("limit", "must be an integer between 1 and 100.", code="parameter_invalid_integer")
    limit = int(raw)
    if not 1 <= limit <= 100:
        raise invalid("limit", "must be an integer between 1 and 100.", code="parameter_invalid_integer")
    after, before = params.get("starting_after") or None, params.get("ending_before") or None
    for name, cursor in (("starting_after", after), ("ending_before", before)):
        if cursor is not None and not isinstance(cursor, str):
            raise invalid(name, "must be a string (an object id).")
    if after and before:
        raise InvalidRequest("You may only specify one of these parameters: starting_after, ending_before.",
                             param="ending_before", code="parameters_exclusive")
    return limit, after, before


def list_object(items: Sequence, params: dict, url: str, render: Callable[[object], dict] | None = None) -> dict:
    """Page `items` (already in list order) the Stripe way: dicts with an `id`, or objects with an `.id`
    that `render` turns into dicts. Only the page is rendered, so a list costs one pass over the ids, and
    a page of at most 100 objects (`limit`), whatever the size of the list."""
    limit, after, before = page_params(params)
    cursor = after or before
    if cursor:
        index = next((i for i, x in enumerate(items) if (x["id"] if isinstance(x, dict) else x.id) == cursor), None)
        if index is None:
            param = "starting_after" if after else "ending_before"
            raise invalid(param, f"no object with id {cursor} in this list.", code="resource_missing")
        if after:
            page, has_more = items[index + 1:index + 1 + limit], index + 1 + limit < len(items)
        else:
            page, has_more = items[max(0, index - limit):index], index - limit > 0
    else:
        page, has_more = items[:limit], len(items) > limit
    data = [render(x) for x in page] if render else list(page)
    return {"object": "list", "url": url, "has_more": has_more, "data": data}
