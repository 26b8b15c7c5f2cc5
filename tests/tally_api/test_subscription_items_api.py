"""`/v1/subscription_items` over HTTP with the billing worker in-process (seed 004; reference §3.1, §3.2, §4):
each route is a `subscription.update` of the item's subscription, so an item added, changed or removed here
prorates exactly as on `POST /v1/subscriptions/{id}`; a refusal names the parameter this route took.

The money, worked by hand: a test clock at Mar 1 2026 (March: 31 days), Basic 10 USD and Premium 30 USD a month,
nicknamed so the proration descriptions read as Stripe's. A change on Mar 16 00:00 leaves 16 of 31 days:
- Premium × 2 added: 6000 × 16/31 = 3096.77 → +3097;
- Basic removed: 1000 × 16/31 = 516.13 → −516;
- 2 × Basic swapped for Premium (quantity back to 1): −2000 × 16/31 = −1032.26 → −1032, +3000 × 16/31 =
  1548.39 → +1548: 516 due at once with `always_invoice`.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.factories import assert_rebuilt_and_redecided
from tests.tally_api.test_billing_api import ok, ts

MAR_1, MAR_16, APR_1 = ts(2026, 3, 1), ts(2026, 3, 16), ts(2026, 4, 1)


@pytest.fixture
def api(billing_client):
    return billing_client


async def _price(api, nickname: str, amount: int) -> dict:
    return await ok(await api.post("/v1/prices", data={
        "currency": "usd", "unit_amount": str(amount), "nickname": nickname, "product_data[name]": nickname,
        "recurring[interval]": "month"}))


async def _subscribed(api, quantity: int = 1) -> tuple[dict, dict, dict, dict, dict]:
    """(clock, customer, subscription, Basic, Premium): Basic × `quantity` since Mar 1, its invoice paid."""
    basic, premium = await _price(api, "Basic", 1000), await _price(api, "Premium", 3000)
    clock = await ok(await api.post("/v1/test_helpers/test_clocks", data={"frozen_time": MAR_1}))
    cus = await ok(await api.post("/v1/customers", data={"test_clock": clock["id"], "payment_method": "pm_card_visa"}))
    sub = await ok(await api.post("/v1/subscriptions", data={
        "customer": cus["id"], "items[0][price]": basic["id"], "items[0][quantity]": str(quantity)}))
    return clock, cus, sub, basic, premium


async def _advance(api, clock: dict, to: int) -> None:
    await ok(await api.post(f"/v1/test_helpers/test_clocks/{clock['id']}/advance", data={"frozen_time": to}))
    for _ in range(200):
        if (await ok(await api.get(f"/v1/test_helpers/test_clocks/{clock['id']}")))["status"] == "ready":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the clock never became ready")


async def _pending(api, cus: dict) -> dict[str, int]:
    listed = await ok(await api.get("/v1/invoiceitems", params={"customer": cus["id"], "pending": "true"}))
    return {i["description"]: i["amount"] for i in listed["data"]}


async def test_add_change_and_remove_items_prorate_onto_the_next_invoice(api, runtime):
    # given Basic since Mar 1, on Mar 16
    clock, cus, sub, basic, premium = await _subscribed(api)
    basic_item = sub["items"]["data"][0]["id"]
    await _advance(api, clock, MAR_16)

    # when Premium × 2 is added (create_prorations, the default)
    added = await ok(await api.post("/v1/subscription_items", data={
        "subscription": sub["id"], "price": premium["id"], "quantity": "2", "metadata[seats]": "team"}))
    # then the answer is the new item, and its remaining time waits as a pending proration
    assert (added["object"], added["price"]["id"], added["quantity"], added["subscription"], added["metadata"]) == (
        "subscription_item", premium["id"], 2, sub["id"], {"seats": "team"})
    assert added["id"].startswith("si_") and added["id"] != basic_item
    assert (added["current_period_start"], added["current_period_end"]) == (MAR_1, APR_1)
    assert await ok(await api.get(f"/v1/subscription_items/{added['id']}")) == added
    assert await _pending(api, cus) == {"Remaining time on 2 × Premium after 16 Mar 2026": 3097}

    # the list is the subscription's own `items` list, paged
    listed = await ok(await api.get("/v1/subscription_items", params={"subscription": sub["id"]}))
    assert (listed["url"], [i["id"] for i in listed["data"]], listed["has_more"]) == (
        "/v1/subscription_items", [basic_item, added["id"]], False)
    held = (await ok(await api.get(f"/v1/subscriptions/{sub['id']}")))["items"]["data"]
    assert listed["data"] == held
    first = await ok(await api.get("/v1/subscription_items", params={"subscription": sub["id"], "limit": "1"}))
    assert ([i["id"] for i in first["data"]], first["has_more"]) == ([basic_item], True)
    rest = await ok(await api.get("/v1/subscription_items", params={"subscription": sub["id"],
                                                                     "starting_after": basic_item}))
    assert ([i["id"] for i in rest["data"]], rest["has_more"]) == ([added["id"]], False)

    # when the quantity goes down without prorations, and the metadata merges
    changed = await ok(await api.post(f"/v1/subscription_items/{added['id']}", data={
        "quantity": "1", "proration_behavior": "none", "metadata[seats]": "", "metadata[plan]": "pro"}))
    # then the item shows it at once, and nothing more is pending
    assert (changed["id"], changed["quantity"], changed["metadata"]) == (added["id"], 1, {"plan": "pro"})
    assert len(await _pending(api, cus)) == 1

    # when Basic is removed: its unused time is credited
    gone = await ok(await api.delete(f"/v1/subscription_items/{basic_item}"))
    assert gone == {"id": basic_item, "object": "subscription_item", "deleted": True}
    assert await _pending(api, cus) == {"Remaining time on 2 × Premium after 16 Mar 2026": 3097,
                                        "Unused time on Basic after 16 Mar 2026": -516}
    r = await api.get(f"/v1/subscription_items/{basic_item}")
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["param"]) == (404, "resource_missing", "id")

    # then April's invoice takes the prorations first (newest first; two of one moment in the order they were
    # made), then Premium × 1 for April: 3097 − 516 + 3000 = 5581
    await _advance(api, clock, APR_1 + 2 * 3600)
    cycle = (await ok(await api.get("/v1/invoices", params={"subscription": sub["id"]})))["data"][0]
    assert [(line["amount"], line["period"]["start"], line["period"]["end"]) for line in cycle["lines"]["data"]] == [
        (3097, MAR_16, APR_1), (-516, MAR_16, APR_1), (3000, APR_1, ts(2026, 5, 1))]
    assert [line["parent"]["subscription_item_details"]["proration"] for line in cycle["lines"]["data"]] == [
        True, True, False]
    assert (cycle["billing_reason"], cycle["total"], cycle["status"]) == ("subscription_cycle", 5581, "paid")

    # and replay rebuilds every projection row for row; re-deciding gives the same events
    await assert_rebuilt_and_redecided(runtime)


async def test_a_price_swap_with_always_invoice_is_invoiced_and_paid_at_once(api):
    # given 2 × Basic since Mar 1, on Mar 16
    clock, cus, sub, basic, premium = await _subscribed(api, quantity=2)
    item = sub["items"]["data"][0]
    await _advance(api, clock, MAR_16)
    # when the item's price becomes Premium, invoiced at once (seed 004: the quantity goes back to 1)
    swapped = await ok(await api.post(f"/v1/subscription_items/{item['id']}", data={
        "price": premium["id"], "proration_behavior": "always_invoice"}))
    assert (swapped["id"], swapped["price"]["id"], swapped["quantity"]) == (item["id"], premium["id"], 1)
    # then: −1032 + 1548 = 516, on an invoice of its own, charged
    sub = await ok(await api.get(f"/v1/subscriptions/{sub['id']}", params={"expand[]": "latest_invoice"}))
    inv = sub["latest_invoice"]
    assert [(line["description"], line["amount"]) for line in inv["lines"]["data"]] == [
        ("Unused time on 2 × Basic after 16 Mar 2026", -1032), ("Remaining time on Premium after 16 Mar 2026", 1548)]
    assert (inv["billing_reason"], inv["total"], inv["amount_paid"], inv["status"]) == (
        "subscription_update", 516, 516, "paid")
    assert await _pending(api, cus) == {}


async def test_refusals_name_the_parameter_this_route_took(api):
    clock, cus, sub, basic, premium = await _subscribed(api)
    item = sub["items"]["data"][0]["id"]
    await _advance(api, clock, MAR_16)
    cases = [
        ("POST", "/v1/subscription_items", {"subscription": sub["id"]}, 400, "price", "parameter_missing"),
        ("POST", "/v1/subscription_items", {"price": premium["id"]}, 400, "subscription", "parameter_missing"),
        ("POST", "/v1/subscription_items", {"subscription": "sub_nope", "price": premium["id"]}, 400,
         "subscription", "resource_missing"),
        ("POST", "/v1/subscription_items", {"subscription": sub["id"], "price": "price_nope"}, 400, "price",
         "resource_missing"),
        # a subscription holds each price once: change the item that has it instead
        ("POST", "/v1/subscription_items", {"subscription": sub["id"], "price": basic["id"]}, 400, "price", None),
        ("POST", "/v1/subscription_items", {"subscription": sub["id"], "price": premium["id"],
                                            "quantity": "-1"}, 400, "quantity", None),
        ("POST", "/v1/subscription_items", {"subscription": sub["id"], "price": premium["id"],
                                            "proration_date": str(MAR_1 - 1)}, 400, "proration_date", None),
        ("POST", "/v1/subscription_items/si_nope", {"quantity": "2"}, 404, "id", "resource_missing"),
        ("POST", f"/v1/subscription_items/{item}", {"quantity": ""}, 400, "quantity", None),
        ("POST", f"/v1/subscription_items/{item}", {"price": "price_nope"}, 400, "price", "resource_missing"),
        ("POST", f"/v1/subscription_items/{item}", {"metadata[k]": "x" * 501}, 400, "metadata[k]", None),
        ("POST", f"/v1/subscription_items/{item}", {"proration_behavior": "bogus"}, 400, "proration_behavior",
         None),
        ("POST", f"/v1/subscription_items/{item}", {"colour": "red"}, 400, "colour", "parameter_unknown"),
        ("DELETE", f"/v1/subscription_items/{item}", {}, 400, "id", None),  # the last item: cancel instead
        ("DELETE", "/v1/subscription_items/si_nope", {}, 404, "id", "resource_missing"),
        ("GET", "/v1/subscription_items", {}, 400, "subscription", "parameter_missing"),
        ("GET", "/v1/subscription_items", {"subscription": "sub_nope"}, 400, "subscription", "resource_missing"),
        ("GET", "/v1/subscription_items", {"subscription": sub["id"], "starting_after": "si_nope"}, 400,
         "starting_after", "resource_missing"),
    ]
    for method, path, data, status, param, code in cases:
        if method == "POST":
            r = await api.post(path, data=data)
        else:
            r = await api.request(method, path, params=data)
        err = r.json().get("error", {})
        assert (r.status_code, err.get("param")) == (status, param), (method, path, data, r.text)
        assert code is None or err["code"] == code, (method, path, data, r.text)
        assert "items[" not in err["message"], r.text
    # nothing was changed by any of them
    held = await ok(await api.get(f"/v1/subscriptions/{sub['id']}"))
    assert [(i["id"], i["quantity"]) for i in held["items"]["data"]] == [(item, 1)]
    assert await _pending(api, cus) == {}
