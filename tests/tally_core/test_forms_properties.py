"""Properties of Stripe's form encoding (`tally_core.forms`): what an SDK encodes parses back to the same
nested hashes and lists, and any input at all either parses or is refused with `InvalidRequest`."""

from __future__ import annotations

import re
from urllib.parse import quote

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally_core.errors import InvalidRequest
from tally_core.forms import MAX_DEPTH, parse_form

PROPS = settings(max_examples=400, deadline=None)
_INDEX = re.compile(r"0|[1-9][0-9]*", re.ASCII)

text = st.characters(exclude_categories=("Cs",))  # any code point a UTF-8 body can carry
# Hash keys: anything without brackets, except what reads as an array index (a hash of those is a list).
names = st.text(text.filter(lambda c: c not in "[]"), min_size=1, max_size=8).filter(lambda k: not _INDEX.fullmatch(k))
values = st.text(text, max_size=12)
trees = st.recursive(values, lambda inner: st.dictionaries(names, inner, min_size=1, max_size=3)
                     | st.lists(inner, min_size=1, max_size=3), max_leaves=10)


def depth(node) -> int:
    if isinstance(node, dict):
        return 1 + max(map(depth, node.values()))
    if isinstance(node, list):
        return 1 + max(map(depth, node))
    return 0


params = st.dictionaries(names, trees, min_size=1, max_size=4).filter(lambda d: depth(d) <= MAX_DEPTH)


def encode(params: dict) -> str:
    """As the SDKs do: `a[b][0][c]=v`, every name and value percent-encoded, arrays indexed from 0."""
    pairs: list[tuple[str, str]] = []

    def walk(key: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{key}[{quote(k, safe='')}]", v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(f"{key}[{i}]", v)
        else:
            pairs.append((key, quote(node, safe="")))

    for name, value in params.items():
        walk(quote(name, safe=""), value)
    return "&".join(f"{k}={v}" for k, v in pairs)


@PROPS
@given(params)
@example({"items": [{"price": "p1", "quantity": "3"}, {"price": "p2"}], "metadata": {"k": ""}})
@example({"0": "x"}).via("a digit parameter name stays a name at the top level")
@example({"a b": "c+d", "é": "&="})
def test_what_an_sdk_encodes_parses_back_to_the_same_params(p):
    body = encode(p)
    assert parse_form(body) == p
    assert parse_form(body.encode()) == p  # a body and a query string are the same grammar


def _parses_or_is_refused(body) -> None:
    try:
        parsed = parse_form(body)
    except InvalidRequest as err:
        assert err.http_status == 400 and err.message
        return
    assert isinstance(parsed, dict) and all(isinstance(k, str) for k in parsed)


@PROPS
@given(st.binary(max_size=200))
@example(b"x[00]=1").via("issue 7")
@example(b"x[5]=a&x[][b]=1").via("issue 7")
@example("x[²]=1&metadata[٠]=1".encode()).via("issue 7")
@example(b"name=%ff%fe").via("issue 7: refused, not repaired")
def test_any_bytes_parse_or_are_refused_with_invalid_request(body):
    _parses_or_is_refused(body)


# Text built from the characters that matter to the grammar, so that deep and odd bracket shapes come up often.
grammar = st.text(st.sampled_from(list("ab0159[]=&%+2F5BD ²٠é")) | text, max_size=120)


@PROPS
@given(grammar)
@example("a" + "[x]" * 50 + "=1")
@example("a[][]=1&a[][]=2&a[0][b]=3")
@example("\ud800=1").via("a lone surrogate in an already-decoded query string")
def test_any_text_parses_or_is_refused_with_invalid_request(query):
    _parses_or_is_refused(query)
