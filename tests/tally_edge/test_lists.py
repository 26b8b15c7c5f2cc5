"""`list_object`: Stripe's list pages over objects already in list order, rendering only the page."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tally_core.errors import InvalidRequest
from tally_edge.http import list_object


@dataclass
class Thing:
    id: str


THINGS = [Thing(f"thing_{i:04d}") for i in range(1000)]


def page(**params):
    rendered = []

    def render(x: Thing) -> dict:
        rendered.append(x.id)
        return {"id": x.id, "object": "thing"}

    return list_object(THINGS, params, "/v1/things", render), rendered


def test_only_the_page_is_rendered():
    body, rendered = page(limit="100")
    assert rendered == [t.id for t in THINGS[:100]] and body["has_more"]
    body, rendered = page(limit="3", starting_after="thing_0996")
    assert rendered == ["thing_0997", "thing_0998", "thing_0999"] and not body["has_more"]
    body, rendered = page(limit="3", ending_before="thing_0003")
    assert [x["id"] for x in body["data"]] == ["thing_0000", "thing_0001", "thing_0002"] and not body["has_more"]
    body, _ = page(limit="3", ending_before="thing_0004")
    assert [x["id"] for x in body["data"]] == ["thing_0001", "thing_0002", "thing_0003"] and body["has_more"]


def test_dicts_are_paged_as_they_are():
    items = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    assert list_object(items, {"limit": "2", "starting_after": "a"}, "/v1/x") == {
        "object": "list", "url": "/v1/x", "has_more": False, "data": [{"id": "b"}, {"id": "c"}]}


@pytest.mark.parametrize("params, param", [
    ({"starting_after": "thing_x"}, "starting_after"),
    ({"ending_before": "thing_x"}, "ending_before"),
    ({"limit": "101"}, "limit"),
])
def test_a_cursor_not_in_the_list_or_a_bad_limit_is_a_400(params, param):
    with pytest.raises(InvalidRequest) as err:
        page(**params)
    assert err.value.param == param
