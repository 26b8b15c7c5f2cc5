"""What any string or number in a request may be, checked once at the edge before a route reads it.

Every route (billing, catalog, meters, ingest) passes its parsed parameters, query string and path
parameters through `check_params`, so a value PostgreSQL or the log cannot store never gets past the edge:

- strings and hash keys: valid UTF-8 (the parsers refuse invalid bytes instead of repairing them), no lone
  surrogates, no C0 control characters except tab, newline and carriage return (PostgreSQL text/jsonb refuses
  NUL; Stripe refuses control characters in ids), at most `MAX_STRING` characters (Stripe's usual
  `maxLength: 5000`), ids at most `MAX_ID`;
- numbers (JSON bodies): integers within int64, floats finite;
- nesting at most `MAX_DEPTH` levels (forms stop at `forms.MAX_DEPTH`, JSON here).

Typed bounds (timestamps, amounts, quantities) are the coercions in `billing.params`, built on the
constants below. Every error names the offending value by its bracketed path, e.g. `payload[customer]`.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .errors import InvalidRequest, invalid

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STRING = 5000
MAX_ID = 255
MAX_DEPTH = 20
# Unix seconds of 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years a datetime (and Stripe) can name.
MIN_TIMESTAMP, MAX_TIMESTAMP = 0, 253_402_300_799

# `str.isdigit`, `\d` and `int()` accept "٣", "５" and "²": every number we parse is ASCII.
ASCII_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# Parameters that name an object: Stripe ids are short; 255 leaves room for our own prefixes and callers' ids.
ID_PARAMS = frozenset({
    "id", "customer", "subscription", "invoice", "test_clock", "price", "product", "default_price", "meter",
    "payment_method", "default_payment_method", "starting_after", "ending_before", "coupon", "promotion_code",
})
_FREE_HASHES = frozenset({"metadata", "payload"})  # their keys are the caller's words, not parameter names


def decimal_text(d: Decimal | None) -> str | None:
    """Stripe's decimal_string wire form: plain digits, no exponent, no trailing zeros."""
    if d is None:
        return None
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def bracket(prefix: str, key) -> str:
    return f"{prefix}[{key}]" if prefix else str(key)


def check_text(value: str, param: str, *, max_len: int = MAX_STRING) -> str:
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        ch = ord(bad.group())
        what = "a lone surrogate" if 0xD800 <= ch <= 0xDFFF else "a control character"
        raise invalid(param, f"contains {what} (U+{ch:04X}); strings must be valid UTF-8 text without control "
                             "characters other than tab, newline and carriage return.")
    if len(value) > max_len:
        raise invalid(param, f"must be at most {max_len} characters.")
    return value


def check_int64(value: int, param: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise invalid(param, f"must be between {INT64_MIN} and {INT64_MAX}.", code="parameter_invalid_integer")
    return value


def check_params(params: dict, *, prefix: str = "", skip: frozenset[str] = frozenset()) -> dict:
    """Walk parsed parameters; raise `InvalidRequest` naming the first value that breaks a rule above.

    `skip` names top-level keys whose elements a handler checks one by one (a batch reports bad events
    by index instead of refusing the whole request); only their nesting depth is checked here.
    """
    stack: list[tuple[object, str, int, str | None]] = [(params, prefix, 0, None)]
    while stack:
        node, path, depth, name = stack.pop()
        if depth > MAX_DEPTH:
            raise invalid(path or "body", f"is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(node, dict):
            for key, value in node.items():
                key_path = bracket(path, key)
                if not isinstance(key, str):
                    raise invalid(key_path, "parameter names must be strings.")
                check_text(key, key_path)
                if depth == 0 and not prefix and key in skip:
                    _check_depth(value, key_path, 1)
                    continue
                stack.append((value, key_path, depth + 1, None if name in _FREE_HASHES else key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                stack.append((value, bracket(path, i), depth + 1, name))
        elif isinstance(node, str):
            check_text(node, path, max_len=MAX_ID if name in ID_PARAMS else MAX_STRING)
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            check_int64(node, path)
        elif isinstance(node, float):
            if node != node or node in (float("inf"), float("-inf")):
                raise invalid(path, "must be a finite number.")
        else:
            raise InvalidRequest(f"Invalid {path}: unsupported value.", param=path, code="parameter_invalid")
    return params


def _check_depth(node, path: str, depth: int) -> None:
    stack = [(node, depth)]
    while stack:
        n, d = stack.pop()
        if d > MAX_DEPTH:
            raise invalid(path, f"is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(n, dict):
            stack.extend((v, d + 1) for v in n.values())
        elif isinstance(n, list):
            stack.extend((v, d + 1) for v in n)


def check_path_params(path_params: dict) -> dict:
    """Ids in the URL: the same text rules, at most `MAX_ID` characters."""
    for name, value in path_params.items():
        if isinstance(value, str):
            check_text(value, name, max_len=MAX_ID)
    return path_params
