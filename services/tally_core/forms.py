"""Stripe's form encoding: `a[b][c]=1`, `items[0][price]=x`, `expand[]=y` into nested dicts and lists."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from .errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_DEPTH = 8


def parse_form(body: bytes | str) -> dict:
    """Parse an x-www-form-urlencoded body with bracket notation into nested dicts/lists."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="strict")
    return nest(parse_qsl(body, keep_blank_values=True, strict_parsing=False))


def nest(pairs) -> dict:
    root: dict = {}
    for raw_key, value in pairs:
        m = _KEY.match(raw_key)
        if not m:
            raise invalid(raw_key, "malformed parameter name", code="parameter_invalid")
        parts = [m.group(1)] + _PART.findall(m.group(2))
        if len(parts) > MAX_DEPTH:
            raise invalid(raw_key, "nested too deeply")
        _insert(root, parts, value, raw_key)
    return _lists(root)


def _insert(node: dict, parts: list[str], value: str, raw_key: str) -> None:
    for i, part in enumerate(parts[:-1]):
        if part == "":
            # `a[][b]=1&a[][c]=2`: Stripe groups consecutive keys into one element until a key repeats.
            part = _append_slot(node, parts[i + 1])
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise invalid(raw_key, "conflicts with another parameter of the same name")
        node = child
    last = parts[-1]
    if last == "":
        last = str(len(node))
    if isinstance(node.get(last), dict):
        raise invalid(raw_key, "conflicts with another parameter of the same name")
    node[last] = value


def _append_slot(node: dict, next_part: str) -> str:
    n = len(node)
    if n and next_part not in node[str(n - 1)]:
        return str(n - 1)
    return str(n)


def _lists(node):
    """Turn dicts whose keys are exactly 0..n-1 into lists (the SDK always indexes arrays)."""
    if not isinstance(node, dict):
        return node
    out = {k: _lists(v) for k, v in node.items()}
    if out and all(k.isdigit() for k in out):
        idx = sorted(int(k) for k in out)
        if idx == list(range(len(idx))):
            return [out[str(i)] for i in idx]
    return out
