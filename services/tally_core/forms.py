"""Stripe's form encoding: `a[b][c]=1`, `items[0][price]=x`, `expand[]=y` into nested dicts and lists.

Bytes are percent-decoded and then decoded as strict UTF-8: an invalid sequence is refused naming its
parameter, never repaired into U+FFFD (two different bad ids must not become one). A hash whose keys are
exactly the ASCII indexes `0`…`n-1` (written without leading zeros, as the SDKs write them) becomes a list;
any other keys (`x[00]`, `x[²]`, `metadata[٠]`) stay hash keys, so a route that wants an array refuses them
by name. `x[]` appends; mixing it with explicit indexes (`x[5]=a&x[][b]=1`) is refused.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from .errors import InvalidRequest, invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_INDEX = re.compile(r"0|[1-9][0-9]{0,5}", re.ASCII)
MAX_DEPTH = 8


def parse_form(body: bytes | str) -> dict:
    """Parse an x-www-form-urlencoded body (or query string) with bracket notation into nested dicts/lists."""
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in an already-decoded string
            raise InvalidRequest("The request is not valid UTF-8.", code="parameter_invalid") from None
    return nest(_pairs(body))


def _pairs(body: bytes) -> list[tuple[str, str]]:
    pairs = []
    for chunk in body.split(b"&"):
        if not chunk:
            continue
        raw_key, _, raw_value = chunk.partition(b"=")
        key = _decode(raw_key, None)
        pairs.append((key, _decode(raw_value, key)))
    return pairs


def _decode(raw: bytes, key: str | None) -> str:
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        if key is None:
            shown = raw[:60].decode("ascii", errors="backslashreplace")
            raise InvalidRequest(f"The parameter name {shown!r} is not valid UTF-8.", param=shown,
                                 code="parameter_invalid") from None
        raise invalid(key, "is not valid UTF-8 (the bytes are refused, not repaired).") from None


class _Node(dict):
    """One level of the nested form. `mixed` is set when a key other than the next index lands in it; `x[]` may
    only append to a node that is not mixed (kept as a flag: checking every key on each append would make a
    body of n `x[]` pairs cost n² steps)."""

    __slots__ = ("mixed",)

    def __init__(self) -> None:
        super().__init__()
        self.mixed = False

    def put(self, key: str, value) -> None:
        if key not in self and key != str(len(self)):
            self.mixed = True
        self[key] = value


def nest(pairs) -> dict:
    root = _Node()
    for raw_key, value in pairs:
        m = _KEY.match(raw_key)
        if not m:
            raise invalid(raw_key, "malformed parameter name", code="parameter_invalid")
        parts = [m.group(1)] + _PART.findall(m.group(2))
        if len(parts) > MAX_DEPTH:
            raise invalid(raw_key, "nested too deeply")
        _insert(root, parts, value, raw_key)
    return {k: _lists(v) for k, v in root.items()}  # the top level names parameters, never a list (`0=x`)


def _insert(node: _Node, parts: list[str], value: str, raw_key: str) -> None:
    for i, part in enumerate(parts[:-1]):
        if part == "":
            # `a[][b]=1&a[][c]=2`: Stripe groups consecutive keys into one element until a key repeats.
            part = _append_slot(node, parts[i + 1], raw_key)
        child = node.get(part)
        if child is None:
            child = _Node()
            node.put(part, child)
        elif not isinstance(child, dict):
            raise invalid(raw_key, "conflicts with another parameter of the same name")
        node = child
    last = parts[-1]
    if last == "":
        last = _next_index(node, raw_key)
    if isinstance(node.get(last), dict):
        raise invalid(raw_key, "conflicts with another parameter of the same name")
    node.put(last, value)


def _next_index(node: _Node, raw_key: str) -> str:
    """The slot `x[]` appends to: only after `x[]` or `x[0]…x[n-1]`, never next to other keys."""
    if node.mixed:
        raise invalid(raw_key, "cannot mix `[]` with explicit indexes or names in the same array.")
    return str(len(node))


def _append_slot(node: _Node, next_part: str, raw_key: str) -> str:
    n = len(node)
    if n:
        _next_index(node, raw_key)
        last = node[str(n - 1)]
        if isinstance(last, dict) and next_part not in last:
            return str(n - 1)
    return str(n)


def _lists(node):
    """Turn dicts whose keys are exactly 0..n-1 into lists (the SDK always indexes arrays)."""
    if not isinstance(node, dict):
        return node
    out = {k: _lists(v) for k, v in node.items()}
    if out and all(_INDEX.fullmatch(k) for k in out):
        idx = sorted(int(k) for k in out)
        if idx == list(range(len(idx))):
            return [out[str(i)] for i in idx]
    return out
