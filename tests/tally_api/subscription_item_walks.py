"""The walks of `/v1/subscription_items` for tests/tally_api/test_every_parameter.py (seed 004).

Each trial changes a fresh 10 USD/month subscription at the second it began (the FakeClock stands still), so
a proration covers the whole period (share 1, §4.1): adding the 5 USD price charges +500; 1 → 2 seats credits
−1000 and charges +2000; removing the 5 USD item credits −500. A subscription "whose card declines" was paid
for with a good card, then its customer's card was switched to a declining one, so that the immediate
invoice of `always_invoice` fails (seed 004 "immediate payment").
"""

from __future__ import annotations

from tests.tally_api.parameter_walk import EXPAND, PAGE, E, Walk, World, reflects

DAY = 86400


async def _fresh(w: World, *, declines: bool = False, second: bool = False) -> dict:
    """A new subscription, its first invoice paid; the walked one (`_walked_sub`) from here on."""
    customer = await w.customer(payment_method="pm_card_visa")
    items = [{"price": (await w.price())["id"]}]
    if second:
        items.append({"price": (await _second(w))["id"]})
    sub = await w.subscription(customer, items=items)
    if declines:
        await w.post(f"/v1/customers/{customer['id']}", {"payment_method": "pm_card_chargeDeclined"})
    w.cache["item_sub"] = sub
    return sub


async def _second(w: World) -> dict:
    return await w.price("price2", unit_amount=500)


async def _create_base(w: World) -> dict:
    return {"subscription": (await _fresh(w, declines=True))["id"], "price": (await _second(w))["id"]}


async def _sub_id(w: World) -> str:
    return (await _fresh(w, declines=True))["id"]


async def _item_id(w: World) -> str:
    return (await _fresh(w, declines=True))["items"]["data"][0]["id"]


async def _second_id(w: World) -> str:
    return (await _second(w))["id"]


async def _third_id(w: World) -> str:
    return (await w.price("price3", unit_amount=700))["id"]


def _ten_days_in(w: World) -> int:
    """Ten days into the period of a subscription made now (the FakeClock stands still during a walk)."""
    return int(w.clock_()) + 10 * DAY


async def _second_item_id(w: World) -> str:
    """The 5 USD item of a fresh two-item subscription (a subscription keeps at least one item)."""
    sub = await _fresh(w, second=True)
    return next(it["id"] for it in sub["items"]["data"] if it["price"]["unit_amount"] == 500)


async def _listed_sub(w: World) -> dict:
    async def make():
        return {"subscription": (await _fresh(w, second=True))["id"]}
    return await w.once("listed_item_sub", make)


async def _listed_id(w: World) -> str:
    return (await _listed_sub(w))["subscription"]


def _walked_sub(w: World) -> dict:
    return w.cache["item_sub"]


async def _now_sub(w: World) -> dict:
    r = await w.api.get(f"/v1/subscriptions/{_walked_sub(w)['id']}", params={"expand[]": "latest_invoice"})
    assert r.status_code == 200, r.text
    return r.json()


async def _pending(w: World) -> list[tuple[int, int]]:
    """(amount, period start) of the walked subscription's pending prorations, by amount."""
    r = await w.api.get("/v1/invoiceitems", params={"customer": _walked_sub(w)["customer"], "pending": "true"})
    assert r.status_code == 200, r.text
    return sorted((i["amount"], i["period"]["start"]) for i in r.json()["data"] if i["proration"])


def _prorated(*amounts: int):
    async def sees(obj, value, w):
        return [a for a, _ in await _pending(w)] == list(amounts)
    return sees


async def _from(obj, value, w) -> bool:
    """`proration_date`: every proration covers the period from that date on (§4.6)."""
    got = await _pending(w)
    return bool(got) and all(start == value for _, start in got)


def _invoiced(total: int, status: str = "paid", attempted: bool = True):
    """The change was invoiced at once (`billing_reason=subscription_update`), nothing left pending."""
    async def sees(obj, value, w):
        inv = (await _now_sub(w))["latest_invoice"]
        return (inv["billing_reason"], inv["total"], inv["status"], inv["attempted"]) == (
            "subscription_update", total, status, attempted) and await _pending(w) == []
    return sees


def _status(status: str, *, pending_update: bool = False):
    async def sees(obj, value, w):
        sub = await _now_sub(w)
        return sub["status"] == status and (sub["pending_update"] is not None) == pending_update
    return sees


def _both(*checks):
    async def sees(obj, value, w):
        for check in checks:
            result = check(obj, value, w)
            if not (await result if hasattr(result, "__await__") else result):
                return False
        return True
    return sees


def _balance(amount: int):
    async def sees(obj, value, w):
        r = await w.api.get(f"/v1/customers/{_walked_sub(w)['customer']}")
        return r.json()["balance"] == amount
    return sees


async def _gone(obj, value, w) -> bool:
    r = await w.api.get(f"/v1/subscription_items/{obj['id']}")
    return obj["deleted"] is True and r.status_code == 404


_NOW = {"proration_behavior": "always_invoice"}
_TWO_SEATS = {"quantity": 2}
_TWO_SEATS_NOW = {**_TWO_SEATS, **_NOW}


def walks(merged_metadata: E) -> dict[tuple[str, str], Walk]:
    """Every subscription's card declines once it has paid its first invoice, except those an item is removed
    from (a credit invoiced at once is a negative invoice: nothing to charge, the customer's balance takes it)."""
    item_path = "/v1/subscription_items/{id}"
    return {
        ("POST", "/v1/subscription_items"): Walk(base=_create_base, params={
            "subscription": E(_sub_id, reflects("subscription"), bad="sub_nope"),
            "price": E(_third_id, lambda o, v, w: o["price"]["id"] == v, bad="price_nope"),
            "quantity": E(3, reflects("quantity")),
            "metadata": E({"plan": "walk"}, reflects("metadata", {"plan": "walk"})),
            "proration_behavior": E("create_prorations", _prorated(500), also={
                "always_invoice": E(sees=_invoiced(500, "open")),
                "none": E(sees=_prorated())}),
            "proration_date": E(_ten_days_in, _from),
            # the 500 of the new item invoiced at once, on the card that declines (seed 004, §3.6)
            "payment_behavior": E("allow_incomplete", _both(reflects("quantity", 1), _status("past_due")),
                                  extra=_NOW, also={
                "default_incomplete": E(sees=_both(_invoiced(500, "open", attempted=False), _status("past_due")),
                                        extra=_NOW),
                "error_if_incomplete": E(sees=lambda o, v, w: o["error"]["code"] == "card_declined", status=402,
                                         extra=_NOW),
                # the new item waits in the pending update until its invoice is paid
                "pending_if_incomplete": E(sees=_both(lambda o, v, w: o["object"] == "subscription_item",
                                                      _status("active", pending_update=True)), extra=_NOW)}),
            "expand": EXPAND}),
        ("GET", "/v1/subscription_items"): Walk(base=_listed_sub, params={
            "subscription": E(_listed_id, lambda o, v, w: len(o["data"]) == 2
                              and all(x["subscription"] == v for x in o["data"]), bad="sub_nope"),
            "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
        ("GET", item_path): Walk(_item_id, params={"expand": EXPAND}),
        ("POST", item_path): Walk(_item_id, params={
            # seed 004: a new price puts the quantity back to 1
            "price": E(_second_id, lambda o, v, w: (o["price"]["id"], o["quantity"]) == (v, 1), bad="price_nope"),
            "quantity": E(4, reflects("quantity")),
            "metadata": merged_metadata,
            # §1.10: no effect on a price with a billing meter (every tally metered price has one)
            "clear_usage": E(True, _both(reflects("quantity", 1), _prorated())),
            "proration_behavior": E("create_prorations", _prorated(-1000, 2000), extra=_TWO_SEATS, also={
                "always_invoice": E(sees=_invoiced(1000, "open"), extra=_TWO_SEATS),
                "none": E(sees=_both(reflects("quantity", 2), _prorated()), extra=_TWO_SEATS)}),
            "proration_date": E(_ten_days_in, _from,
                                extra=_TWO_SEATS),
            "payment_behavior": E("allow_incomplete", _both(reflects("quantity", 2), _status("past_due")),
                                  extra=_TWO_SEATS_NOW, also={
                "default_incomplete": E(sees=_both(_invoiced(1000, "open", attempted=False), _status("past_due")),
                                        extra=_TWO_SEATS_NOW),
                "error_if_incomplete": E(sees=lambda o, v, w: o["error"]["code"] == "card_declined", status=402,
                                         extra=_TWO_SEATS_NOW),
                # the item stays as it is until the invoice is paid
                "pending_if_incomplete": E(sees=_both(reflects("quantity", 1),
                                                      _status("active", pending_update=True)),
                                           extra=_TWO_SEATS_NOW)}),
            "expand": EXPAND}),
        ("DELETE", item_path): Walk(_second_item_id, params={
            "proration_behavior": E("create_prorations", _prorated(-500), also={
                "always_invoice": E(sees=_both(_invoiced(-500, attempted=False), _balance(-500))),
                "none": E(sees=_both(_gone, _prorated()))}),
            "proration_date": E(_ten_days_in, _from),
            "clear_usage": E(True, _both(_gone, _prorated(-500))),
        }),
    }
