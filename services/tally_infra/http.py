"""HTTP conventions every endpoint follows: Stripe errors, auth, form/JSON bodies, lists, idempotency."""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tally_core.errors import (
    ApiError, AuthenticationFailed, BodyTooLarge, IdempotencyError, IdempotencyKeyInUse, InvalidRequest, invalid,
)
from tally_core.forms import parse_form

from .accounts import KeyRing


def json_response(obj, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def error_response(err: ApiError) -> Response:
    headers = {"Stripe-Should-Retry": "true" if err.retriable else "false"}
    return json_response(err.to_dict(), err.http_status, headers)


def bearer_or_basic(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, cred = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and cred.strip():
        return cred.strip()
    if scheme == "basic" and cred.strip():
        try:
            user = base64.b64decode(cred.strip()).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            user = ""
        if user:
            return user
    raise AuthenticationFailed(
        "You did not provide an API key. You need to provide your API key in the Authorization header, using "
        "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY') or Basic auth with the key as the user name."
    )


async def authenticate(request: Request, keys: KeyRing) -> str:
    key = bearer_or_basic(request)
    account = await keys.account_for(key)
    if account is None:
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "***"
        raise AuthenticationFailed(f"Invalid API Key provided: {shown}")
    return account


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"Request body is larger than the limit of {limit} bytes.", code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"Request body is larger than the limit of {limit} bytes.", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_params(body: bytes, content_type: str, query: str = "") -> dict:
    """Form (bracket notation) or JSON body; query parameters for GET."""
    if query and not body:
        return parse_form(query)
    if not body or content_type.startswith(("application/x-ndjson", "application/jsonl")):
        return {}  # NDJSON bodies are read line by line by their route
    if content_type.startswith("application/json"):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Invalid JSON body: {exc}", code="parameter_invalid") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The JSON body must be an object.", code="parameter_invalid")
        return data
    try:
        return parse_form(body)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8.", code="parameter_invalid") from None


def page_params(params: dict) -> tuple[int, str | None, str | None]:
    raw = params.get("limit", 10)
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise invalid("limit", "must be an integer between 1 and 100.", code="parameter_invalid_integer") from None
    if not 1 <= limit <= 100:
        raise invalid("limit", "must be an integer between 1 and 100.", code="parameter_invalid_integer")
    after, before = params.get("starting_after") or None, params.get("ending_before") or None
    if after and before:
        raise InvalidRequest("You may only specify one of these parameters: starting_after, ending_before.",
                             param="ending_before", code="parameters_exclusive")
    return limit, after, before


def list_object(items: list[dict], params: dict, url: str) -> dict:
    """Page `items` (already in list order, each with an `id`) the Stripe way."""
    limit, after, before = page_params(params)
    ids = [i["id"] for i in items]
    if after:
        if after not in ids:
            raise invalid("starting_after", f"no object with id {after} in this list.", code="resource_missing")
        start = ids.index(after) + 1
        page = items[start:start + limit]
        has_more = start + limit < len(items)
    elif before:
        if before not in ids:
            raise invalid("ending_before", f"no object with id {before} in this list.", code="resource_missing")
        end = ids.index(before)
        page = items[max(0, end - limit):end]
        has_more = end - limit > 0
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "url": url, "has_more": has_more, "data": page}


class IdempotencyCache:
    """Stripe idempotency: same key + same request → the first response; same key + other request → error.

    Lookups are in memory (the SDK sends a fresh key with every POST, so a database read per request would
    bound ingestion); records are written behind in batches so they survive restarts for 24 h.
    """

    TTL_MS = 24 * 3600 * 1000

    def __init__(self, max_entries: int = 500_000):
        self._entries: OrderedDict[tuple[str, str], tuple[bytes, int, bytes, int] | None] = OrderedDict()
        self._max = max_entries
        self.unsaved: list[tuple[str, str, bytes, int, bytes, int]] = []

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> bytes:
        return hashlib.blake2b(method.encode() + b" " + path.encode() + b"\n" + body, digest_size=16).digest()

    def begin(self, account: str, key: str, fingerprint: bytes) -> tuple[int, bytes] | None:
        """Return a stored (status, body) to replay, or None after marking the key in flight."""
        if len(key) > 255:
            raise invalid("Idempotency-Key", "must be at most 255 characters.")
        slot = (account, key)
        if slot in self._entries:
            entry = self._entries[slot]
            if entry is None:
                raise IdempotencyKeyInUse(
                    "There is currently another in-progress request using this Idempotent Key. "
                    "Please try again later.", code="idempotency_key_in_use")
            fp, status, body, created = entry
            if created >= _now_ms() - self.TTL_MS:
                if fp != fingerprint:
                    raise IdempotencyError(
                        f"Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.")
                return status, body
        self._entries[slot] = None
        return None

    def finish(self, account: str, key: str, fingerprint: bytes, status: int, body: bytes) -> None:
        now = _now_ms()
        self._entries[(account, key)] = (fingerprint, status, body, now)
        self._entries.move_to_end((account, key))
        self.unsaved.append((account, key, fingerprint, status, body, now))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def abandon(self, account: str, key: str) -> None:
        """Validation failed before execution: Stripe does not save the key."""
        if self._entries.get((account, key), 1) is None:
            del self._entries[(account, key)]

    def restore(self, rows) -> None:
        for account, key, fp, status, body, created in rows:
            self._entries[(account, key)] = (bytes(fp), status, bytes(body), created)

    def take_unsaved(self) -> list:
        rows, self.unsaved = self.unsaved, []
        return rows


def _now_ms() -> int:
    return int(time.time() * 1000)
