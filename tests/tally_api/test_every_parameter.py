"""Every parameter every route declares, sent for real: it does what Stripe documents, or it is refused naming it.

Issue 8 item 5: a parameter accepted and then ignored is worse than a refusal (a caller who passed
`proration_behavior` believes an upgrade was billed). `EFFECTS` holds, per route and per declared parameter,
a plausible value and how its effect shows (the answer reflects it, a list is filtered by it, …), or
`REFUSED` when tally refuses the parameter outright. The walker sends each one and also an obviously wrong
value (derived from the contract's schema unless the entry names one), which must be a 4xx whose `param`
names the parameter. A parameter a contract declares without an entry here fails the first test: add one.

Every value of an enum is walked (`also=`), since `proration_behavior=none` and `=always_invoice` are two
different promises. `expand` and the paging parameters are walked generically: every expansion the contract
declares must come back expanded, any other must be refused; `limit`, `starting_after`, `ending_before` must
page. On every update route `metadata` follows Stripe's one rule: keys merge, an empty value unsets one.
"""

from __future__ import annotations

import pytest

from tally_api.contracts import CONTRACTS
from tests.factories import send_event
from tests.tally_api.invoice_item_walks import ITEM_WALKS
from tests.tally_api.subscription_item_walks import walks as subscription_item_walks
from tests.tally_api.parameter_walk import (
    EXPAND,
    HOUR,
    NOW,
    PAGE,
    REFUSED,
    E,
    Walk,
    World,
    day_of,
    every,
    form,
    only,
    reflects,
    unique,
    walk_route,
)


async def _none(w):
    return {}


async def _meter_id(w):
    return (await w.meter())["id"]


async def _fresh_meter_id(w):
    return (await w.new_meter())["id"]


async def _inactive_meter_id(w):
    return (await w.inactive_meter())["id"]


async def _product_id(w):
    return (await w.new_product())["id"]


_TIERED = {"billing_scheme": "tiered", "tiers_mode": "volume", "tiers": [{"up_to": "inf", "unit_amount": 5}],
           "recurring": {"interval": "month"}}


async def _price_id(w):
    """A fresh tiered price each time (a tax_behavior, once set, cannot change: Stripe's rule)."""
    return (await w.price(unique("tiered_price")(w), lookup_key=unique("lk")(w), unit_amount=None, **_TIERED))["id"]


async def _clocked_customer_id(w):
    return (await w.customer(test_clock=(await w.clock())["id"]))["id"]


async def _metered_sub_id(w):
    """A subscription with a metered item and 5 units of usage this period, counted by the aggregator."""
    metered = await w.price("metered_price", recurring={"interval": "month", "usage_type": "metered",
                                                        "meter": (await w.meter())["id"]})
    customer = await w.customer(payment_method="pm_card_visa")
    sub = await w.subscription(customer, items=[{"price": metered["id"]}, {"price": (await w.price())["id"]}])
    at = int(w.clock_())
    r = await send_event(w.api, customer=customer["id"], value="5", event_name="walk_tokens", region="eu",
                         timestamp=str(at))
    assert r.status_code == 200, r.text
    meter = (await w.meter())["id"]
    for _ in range(200):
        s = (await w.api.get(f"/v1/billing/meters/{meter}/event_summaries", params={
            "customer": customer["id"], "start_time": at // 60 * 60, "end_time": at // 60 * 60 + 60})).json()
        if s["data"] and s["data"][0]["aggregated_value"] == 5:
            w.clock_.advance(60)  # "usage so far" needs a period that has begun
            return sub["id"]
    raise AssertionError("usage never aggregated")


async def _customer_id(w):
    return (await w.customer())["id"]


async def _customer_with_ledger(w):
    """A customer with two balance transactions (a page of one, then the other)."""
    async def make():
        cus = await _customer_id(w)
        for amount in (-100, 300):
            await w.post(f"/v1/customers/{cus}/balance_transactions", {"amount": amount, "currency": "usd"})
        return cus
    return await w.once("customer_with_ledger", make)


async def _ledger_entry(w):
    cus = await _customer_id(w)
    txn = await w.post(f"/v1/customers/{cus}/balance_transactions", {"amount": -100, "currency": "usd"})
    return {"id": cus, "transaction": txn["id"]}


async def _subscription_id(w):
    return (await w.subscription())["id"]


async def _invoice_id(w):
    return await w.two_line_invoice()


async def _open_invoice_id(w):
    return await w.open_invoice()


async def _draft_invoice_id(w):
    return await w.draft_invoice()


async def _clock_id(w):
    return (await w.clock())["id"]


async def _event_id(w):
    await w.customer()
    return (await w.api.get("/v1/events")).json()["data"][0]["id"]


async def _meter_base(w):
    return {"display_name": "Walk", "event_name": unique("walk")(w), "default_aggregation": {"formula": "sum"}}


async def _price_base(w):
    return {"currency": "usd", "unit_amount": 1000, "product": (await w.product())["id"]}


async def _sub_base(w):
    customer = await w.customer(payment_method="pm_card_visa")
    return {"customer": customer["id"], "items": [{"price": (await w.price())["id"]}]}


async def _summaries_base(w):
    u = await w.usage()
    return {"customer": "cus_walk", "start_time": u["t0"], "end_time": u["t0"] + 2 * HOUR}


async def _seed_lists(w):
    await w.once("seeded", lambda: _seed(w))
    return {}


async def _seed(w):
    """Two or more of every listed object, so that a filter or a page that changes nothing shows."""
    await w.meter(), await w.inactive_meter()
    await w.new_product(active=False, shippable=True, url="https://walk.example/x")
    await w.price(), await w.price("metered_price", recurring={"interval": "month", "usage_type": "metered",
                                                               "meter": (await w.meter())["id"]})
    await w.price("one_time", unit_amount=300, recurring=None)
    await _price_id(w)
    await w.two_line_invoice(), await w.open_invoice()
    canceled = await w.subscription()
    r = await w.api.delete(f"/v1/subscriptions/{canceled['id']}")
    assert r.status_code == 200, r.text
    await w.clock(), await w.clock()
    return True


async def _invoices_of(w, sub_id: str) -> list[dict]:
    return (await w.api.get("/v1/invoices", params={"subscription": sub_id})).json()["data"]


async def _sub_with_item(w):
    """A 10 USD/month subscription whose customer's card then declines (an immediate invoice fails)."""
    customer = await w.customer(payment_method="pm_card_visa")
    sub = await w.subscription(customer)
    await w.post(f"/v1/customers/{customer['id']}", {"payment_method": "pm_card_chargeDeclined"})
    w.cache["walked_item"] = sub["items"]["data"][0]["id"]
    w.cache["walked_sub"] = sub
    return sub["id"]


def _walked_item(quantity: int):
    return lambda w: [{"id": w.cache["walked_item"], "quantity": quantity}]


def _day(n: int):
    """`n` days into the walked subscription's current period."""
    return lambda w: w.cache["walked_sub"]["current_period_start"] + n * 86400


async def _prorations(w, sub_id: str) -> list[int]:
    """The proration lines the subscription's next invoice will bill first (create_preview, §4.6)."""
    r = await w.api.post("/v1/invoices/create_preview", data=form({"subscription": sub_id}))
    assert r.status_code == 200, r.text
    return [line["amount"] for line in r.json()["lines"]["data"]
            if (line["parent"]["subscription_item_details"] or {}).get("proration")]


def _prorated(expected):
    async def sees(obj, value, w):
        got = await _prorations(w, obj["id"])
        return got == expected if isinstance(expected, list) else expected(got)
    return sees


def _quantity_and_prorated(quantity, expected):
    async def sees(obj, value, w):
        return obj["items"]["data"][0]["quantity"] == quantity and await _prorated(expected)(obj, value, w)
    return sees


async def _preview_details(w) -> dict:
    sub = await w.subscription()
    w.cache["previewed"] = sub["id"]
    return {"items": [{"id": sub["items"]["data"][0]["id"], "quantity": 3}], "proration_behavior": "always_invoice"}


def _invoiced_at_once(*statuses):
    def sees(obj, value, w):
        inv = obj["latest_invoice"]
        return inv["billing_reason"] == "subscription_update" and inv["status"] in statuses
    return sees


async def _prices_can_use(obj, value, w):
    r = await w.api.post("/v1/prices", data=form({"currency": "usd", "unit_amount": 1, "product": obj["id"],
                                                  "recurring": {"interval": "month"}}))
    return r.status_code == 200


async def _default_price_is(obj, value, w):
    price = (await w.api.get(f"/v1/prices/{obj['default_price']}")).json()
    return (price["unit_amount"], price["product"]) == (500, obj["id"])


async def _product_with_price(w):
    product = await w.new_product(default_price_data={"currency": "usd", "unit_amount": 600})
    price = await w.post("/v1/prices", {"currency": "usd", "unit_amount": 700, "product": product["id"]})
    w.cache["update_product_price"] = price["id"]
    return product["id"]


def merged_metadata() -> E:
    """Stripe's one metadata rule on an update: the keys sent merge into those held, and an empty value unsets
    its key. The object first gets {tier: gold, team: a}; then {plan: walk, tier: ""} leaves {team, plan}."""
    async def value(w):
        await w.post(w.cache["path"], {"metadata": {"tier": "gold", "team": "a"}})
        return {"plan": "walk", "tier": ""}
    return E(value, lambda o, v, w: o["metadata"] == {"team": "a", "plan": "walk"})


_PRODUCT_FIELDS = {
    "active": E(False, reflects("active")),
    "description": E("Walked", reflects("description")),
    "images": E(["https://walk.example/a.png"], reflects("images")),
    "marketing_features": E([{"name": "Fast"}], reflects("marketing_features", [{"name": "Fast"}])),
    "metadata": E({"plan": "walk"}, lambda o, v, w: o["metadata"].get("plan") == "walk"),
    "name": E("Walked", reflects("name")),
    "package_dimensions": REFUSED({"height": 1, "length": 1, "weight": 1, "width": 1}),
    "shippable": E(True, reflects("shippable")),
    "statement_descriptor": E("WALK", reflects("statement_descriptor")),
    "tax_code": E("txcd_10000000", reflects("tax_code")),
    "tax_details": REFUSED({"tax_code": "txcd_10000000"}),
    "unit_label": E("seat", reflects("unit_label")),
    "url": E("https://walk.example", reflects("url")),
    "expand": EXPAND,
}

_CUSTOMER_FIELDS = {
    "address": E({"city": "Lyon", "country": "FR"}, lambda o, v, w: (o["address"]["city"], o["address"]["country"])
                 == ("Lyon", "FR")),
    "balance": E(-500, reflects("balance")),
    "description": E("Walked", reflects("description")),
    "email": E("walked@example.com", reflects("email")),
    "invoice_settings": E({"default_payment_method": "pm_card_visa"},
                          reflects("invoice_settings.default_payment_method", "pm_card_visa")),
    "metadata": E({"plan": "walk"}, lambda o, v, w: o["metadata"].get("plan") == "walk"),
    "name": E("Walked", reflects("name")),
    "payment_method": E("pm_card_visa", reflects("invoice_settings.default_payment_method", "pm_card_visa")),
    "phone": E("+33100000000", reflects("phone")),
    "shipping": E({"name": "Walked", "address": {"city": "Lyon", "country": "FR"}},
                  lambda o, v, w: (o["shipping"]["name"], o["shipping"]["address"]["city"]) == ("Walked", "Lyon")),
    "expand": EXPAND,
}


async def _on_clock(obj, value, w):
    return obj["test_clock"] == value or (isinstance(obj["test_clock"], dict) and obj["test_clock"]["id"] == value)


async def _clock_value(w):
    return (await w.clock())["id"]


async def _a_clock_with_customer(w):
    async def make():
        clock = await w.clock()
        customer = await w.customer(test_clock=clock["id"], payment_method="pm_card_visa")
        sub = await w.subscription(customer)
        return {"clock": clock["id"], "customer": customer["id"], "subscription": sub["id"]}
    return await w.once("clocked", make)


def _clocked_value(key):
    async def value(w):
        return (await _a_clock_with_customer(w))[key]
    return value


async def _declined_customer_id(w):
    return (await w.customer(payment_method="pm_card_chargeDeclined"))["id"]


def _prorated_first_invoice(sub, value, w) -> bool:
    return sub["latest_invoice"]["total"] == round(1000 * 10 / 31) and sub["status"] == "active"


def _of_clocked_customer(obj, value, w) -> bool:
    """Subscriptions and invoices carry no `test_clock` here: the clock's objects are its customer's."""
    return bool(obj["data"]) and all(x["customer"] == w.cache["clocked"]["customer"] for x in obj["data"])


WALKS: dict[tuple[str, str], Walk] = {
    # --- meters
    ("POST", "/v1/billing/meters"): Walk(base=_meter_base, params={
        "customer_mapping": E({"event_payload_key": "cust", "type": "by_id"},
                              reflects("customer_mapping.event_payload_key", "cust")),
        "default_aggregation": E({"formula": "count"}, reflects("default_aggregation.formula", "count")),
        "dimension_payload_keys": E(["region"], reflects("dimension_payload_keys")),
        "display_name": E("Walked", reflects("display_name")),
        "event_name": E(unique("walked"), reflects("event_name")),
        "event_time_window": REFUSED("hour", also={"day": REFUSED(None)}),
        "value_settings": E({"event_payload_key": "tokens"}, reflects("value_settings.event_payload_key", "tokens")),
        "expand": EXPAND}),
    ("GET", "/v1/billing/meters"): Walk(base=_seed_lists, params={
        "status": E("inactive", every(lambda x, v: x["status"] == v),
                    also={"active": E(sees=every(lambda x, v: x["status"] == v))}),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/billing/meters/{id}"): Walk(_meter_id, params={"expand": EXPAND}),
    ("POST", "/v1/billing/meters/{id}"): Walk(_fresh_meter_id, params={
        "display_name": E("Renamed", reflects("display_name")), "expand": EXPAND}),
    ("POST", "/v1/billing/meters/{id}/deactivate"): Walk(_fresh_meter_id, params={"expand": EXPAND}),
    ("POST", "/v1/billing/meters/{id}/reactivate"): Walk(_inactive_meter_id, params={"expand": EXPAND}),
    ("GET", "/v1/billing/meters/{id}/event_summaries"): Walk(_meter_id, _summaries_base, {
        "customer": E("cus_other", lambda o, v, w: o["data"][0]["aggregated_value"] == 100),
        "start_time": E(lambda w: w.cache["usage"]["t0"] + HOUR,
                        lambda o, v, w: (o["data"][0]["start_time"], o["data"][0]["aggregated_value"]) == (v, 7)),
        "end_time": E(lambda w: w.cache["usage"]["t0"] + HOUR,
                      lambda o, v, w: (o["data"][-1]["end_time"], o["data"][-1]["aggregated_value"]) == (v, 15)),
        "value_grouping_window": E("hour", lambda o, v, w: [x["aggregated_value"] for x in o["data"]] == [15, 7],
                                   also={"day": E(sees=lambda o, v, w: [x["aggregated_value"] for x in o["data"]]
                                                  == [22], extra={"start_time": NOW - 86400, "end_time": NOW})}),
        "dimension_group_by_keys": E(["region"], lambda o, v, w: sorted(
            (x["dimensions"]["region"], x["aggregated_value"]) for x in o["data"]) == [("eu", 17), ("us", 5)]),
        "dimension_filters": E({"region": "us"}, lambda o, v, w: o["data"][0]["aggregated_value"] == 5),
        "limit": E(1, lambda o, v, w: len(o["data"]) == 1 and o["has_more"], extra={"value_grouping_window": "hour"}),
        "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    # --- products
    ("POST", "/v1/products"): Walk(base=lambda w: _async({"name": "Walk"}), expand_extra={
        "default_price_data": {"currency": "usd", "unit_amount": 500}}, params={
        **_PRODUCT_FIELDS,
        "default_price_data": E({"currency": "usd", "unit_amount": 500}, _default_price_is),
        "id": E(unique("prod_walk"), reflects("id")),
        "type": E("service", _prices_can_use, also={"good": REFUSED(None)})}),  # Orders/SKUs: not in tally
    ("GET", "/v1/products"): Walk(base=_seed_lists, params={
        "active": E(False, every(lambda x, v: x["active"] is False)),
        "created": E({"gte": NOW}, every(lambda x, v: x["created"] >= NOW), bad={"gte": "soon"}),
        "ids": E(lambda w: [w.cache["product"]["id"]], every(lambda x, v: x["id"] in v)),
        "shippable": E(True, every(lambda x, v: x["shippable"] is True)),
        "url": E("https://walk.example/x", every(lambda x, v: x["url"] == v)),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/products/{id}"): Walk(_product_with_price, params={"expand": EXPAND}),
    ("POST", "/v1/products/{id}"): Walk(_product_with_price, params={
        **_PRODUCT_FIELDS, "metadata": merged_metadata(),
        "default_price": E(lambda w: w.cache["update_product_price"], reflects("default_price"), bad="price_nope")}),
    ("DELETE", "/v1/products/{id}"): Walk(_product_id),
    # --- prices
    ("POST", "/v1/prices"): Walk(base=_price_base, expand_extra=_TIERED, expand_without=("unit_amount",), params={
        "active": E(False, reflects("active")),
        "billing_scheme": E("tiered", reflects("billing_scheme"), without=("unit_amount",), extra={
            "tiers_mode": "volume", "tiers": [{"up_to": "inf", "unit_amount": 5}], "recurring": {"interval": "month"}},
            also={"per_unit": E(sees=reflects("billing_scheme"))}),
        "currency": E("eur", reflects("currency")),
        "currency_options": REFUSED({"eur": {"unit_amount": 900}}),
        "custom_unit_amount": REFUSED({"enabled": True}, without=("unit_amount",)),
        "lookup_key": E(unique("lk"), reflects("lookup_key")),
        "metadata": E({"plan": "walk"}, lambda o, v, w: o["metadata"].get("plan") == "walk"),
        "nickname": E("Walk monthly", reflects("nickname")),
        "product": E(lambda w: w.cache["product"]["id"], reflects("product"), bad="prod_nope"),
        "product_data": E({"name": "Inline"}, lambda o, v, w: o["product"].startswith("prod_"), without=("product",)),
        "recurring": E({"interval": "week", "interval_count": 2},
                       lambda o, v, w: (o["recurring"]["interval"], o["recurring"]["interval_count"]) == ("week", 2)),
        "tax_behavior": E("exclusive", reflects("tax_behavior"), also={
            "inclusive": E(sees=reflects("tax_behavior")), "unspecified": E(sees=reflects("tax_behavior"))}),
        "tiers": E([{"up_to": 10, "unit_amount": 5}, {"up_to": "inf", "unit_amount": 3}],
                   lambda o, v, w: o["billing_scheme"] == "tiered",  # tiers come back with expand[]=tiers
                   without=("unit_amount",), extra={"billing_scheme": "tiered", "tiers_mode": "graduated",
                                                    "recurring": {"interval": "month"}, "expand": ["tiers"]}),
        "tiers_mode": E("graduated", reflects("tiers_mode"), without=("unit_amount",), extra=(_TIERS := {
            "billing_scheme": "tiered", "tiers": [{"up_to": "inf", "unit_amount": 5}],
            "recurring": {"interval": "month"}}),
            also={"volume": E(sees=reflects("tiers_mode"), without=("unit_amount",), extra=_TIERS)}),
        "transfer_lookup_key": E(True, reflects("lookup_key", "walk_moved"), extra={"lookup_key": "walk_moved"}),
        "transform_quantity": E({"divide_by": 10, "round": "up"}, reflects("transform_quantity",
                                                                          {"divide_by": 10, "round": "up"})),
        "unit_amount": E(1234, reflects("unit_amount")),
        "unit_amount_decimal": E("12.5", reflects("unit_amount_decimal"), without=("unit_amount",)),
        "expand": EXPAND}),
    ("GET", "/v1/prices"): Walk(base=_seed_lists, params={
        "active": E(True, every(lambda x, v: x["active"] is True)),
        "created": E({"lte": NOW}, every(lambda x, v: x["created"] <= NOW), bad={"lte": "later"}),
        "currency": E("usd", every(lambda x, v: x["currency"] == v)),
        "lookup_keys": E(["walk_moved"], every(lambda x, v: x["lookup_key"] == "walk_moved")),
        "product": E(lambda w: w.cache["product"]["id"], every(lambda x, v: x["product"] == v), bad="x" * 300),
        "recurring": E({"usage_type": "metered"}, every(lambda x, v: x["recurring"]["usage_type"] == "metered")),
        "type": E("one_time", every(lambda x, v: x["type"] == v),
                  also={"recurring": E(sees=every(lambda x, v: x["type"] == v))}),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/prices/{id}"): Walk(_price_id, params={"expand": EXPAND}),
    ("POST", "/v1/prices/{id}"): Walk(_price_id, params={
        "active": E(False, reflects("active")),
        "currency_options": REFUSED({"eur": {"unit_amount": 900}}),
        "lookup_key": E(unique("lk"), reflects("lookup_key")),
        "metadata": merged_metadata(),
        "nickname": E("Renamed", reflects("nickname")),
        "tax_behavior": E("inclusive", reflects("tax_behavior"), also={
            "exclusive": E(sees=reflects("tax_behavior")), "unspecified": E(sees=reflects("tax_behavior"))}),
        "transfer_lookup_key": E(True, reflects("lookup_key", "walk_moved_again"),
                                 extra={"lookup_key": "walk_moved_again"}),
        "expand": EXPAND}),
    # --- customers
    ("POST", "/v1/customers"): Walk(base=_none, expand_extra={"test_clock": _clock_value}, params={
        **_CUSTOMER_FIELDS, "test_clock": E(_clock_value, _on_clock, bad="clock_nope")}),
    ("GET", "/v1/customers"): Walk(base=_seed_lists, params={
        "email": E("walked@example.com", every(lambda x, v: x["email"] == v)),
        "test_clock": E(_clocked_value("clock"), every(lambda x, v: x["test_clock"] == v)),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/customers/{id}"): Walk(lambda w: _clocked_value("customer")(w), params={"expand": EXPAND}),
    ("POST", "/v1/customers/{id}"): Walk(_clocked_customer_id, params={**_CUSTOMER_FIELDS,
                                                                       "metadata": merged_metadata()}),
    ("DELETE", "/v1/customers/{id}"): Walk(_customer_id),
    # --- the customer balance ledger (§4.7)
    ("POST", "/v1/customers/{id}/balance_transactions"): Walk(
        _customer_id, base=lambda w: _async({"amount": -250, "currency": "usd"}), params={
            "amount": E(-400, lambda o, v, w: (o["amount"], o["ending_balance"]) == (-400, -400)),
            "currency": E("usd", reflects("currency")),
            "description": E("goodwill", reflects("description")),
            "metadata": E({"ticket": "T-1"}, reflects("metadata", {"ticket": "T-1"})),
            "expand": EXPAND}),
    ("GET", "/v1/customers/{id}/balance_transactions"): Walk(_customer_with_ledger, params={
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/customers/{id}/balance_transactions/{transaction}"): Walk(_ledger_entry, params={
        "expand": EXPAND}),
    ("POST", "/v1/customers/{id}/balance_transactions/{transaction}"): Walk(_ledger_entry, params={
        "description": E("renamed", reflects("description")),
        "metadata": merged_metadata(),
        "expand": EXPAND}),
    # --- subscriptions
    ("POST", "/v1/subscriptions"): Walk(base=_sub_base, params={
        "billing_cycle_anchor": E(NOW + 10 * 86400, reflects("billing_cycle_anchor")),
        "billing_cycle_anchor_config": E({"day_of_month": 15},
                                         lambda o, v, w: day_of(o["items"]["data"][0]["current_period_end"]) == 15),
        "cancel_at_period_end": E(True, reflects("cancel_at_period_end")),
        "collection_method": E("charge_automatically", reflects("collection_method"),
                               also={"send_invoice": REFUSED(None)}),  # not built yet (README)
        "customer": E(lambda w: _customer_id(w), reflects("customer"), bad="cus_nope"),
        "default_payment_method": REFUSED("pm_card_visa"),
        "items": E(lambda w: [{"price": w.cache["price"]["id"], "quantity": 3}],
                   lambda o, v, w: o["items"]["data"][0]["quantity"] == 3),
        "metadata": E({"plan": "walk"}, lambda o, v, w: o["metadata"].get("plan") == "walk"),
        # Stripe §3.6: default_incomplete leaves the first invoice unattempted; on a declined card
        # allow_incomplete keeps the subscription `incomplete`, error_if_incomplete answers the card error.
        "payment_behavior": E("default_incomplete", lambda o, v, w: (o["status"], o["latest_invoice"]["attempted"])
                              == ("incomplete", False), extra={"expand": ["latest_invoice"]}, also={
            "allow_incomplete": E(sees=lambda o, v, w: (o["status"], o["latest_invoice"]["status"])
                                  == ("incomplete", "open"),
                                  extra={"customer": _declined_customer_id, "expand": ["latest_invoice"]}),
            "error_if_incomplete": E(sees=lambda o, v, w: o["error"]["code"] == "card_declined", status=402,
                                     extra={"customer": _declined_customer_id})}),
        "billing_mode": E({"type": "classic"}, reflects("billing_mode.type", "classic")),
        "cancel_at": E(NOW + 5 * 86400, lambda o, v, w: o["cancel_at"] == v == o["current_period_end"]),
        # §3.3: with `none` the partial period before a future anchor is free: no first invoice at all.
        "proration_behavior": E("none", lambda o, v, w: o["latest_invoice"] is None and o["status"] == "active",
                                extra=(_ANCHORED := {"billing_cycle_anchor": NOW + 10 * 86400}), also={
            # on create both bill the prorated partial period at once: 10 of 31 days of 10 USD
            "create_prorations": E(sees=_prorated_first_invoice, extra={**_ANCHORED, "expand": ["latest_invoice"]}),
            "always_invoice": E(sees=_prorated_first_invoice, extra={**_ANCHORED, "expand": ["latest_invoice"]})}),
        "expand": EXPAND}),
    ("GET", "/v1/subscriptions"): Walk(base=_seed_lists, params={
        "customer": E(_clocked_value("customer"), every(lambda x, v: x["customer"] == v)),
        "status": E("canceled", every(lambda x, v: x["status"] == v), also={
            **{s: E(sees=only(lambda x, v: x["status"] == v)) for s in (
                "active", "past_due", "unpaid", "incomplete", "incomplete_expired", "trialing", "paused")},
            "all": E(sees=lambda o, v, w: {"active", "canceled", "incomplete"} <= {x["status"] for x in o["data"]},
                     extra={"limit": 100}),
            "ended": E(sees=every(lambda x, v: x["status"] in ("canceled", "incomplete_expired")))}),
        "test_clock": E(_clocked_value("clock"), _of_clocked_customer),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/subscriptions/{id}"): Walk(_subscription_id, params={"expand": EXPAND}),
    ("POST", "/v1/subscriptions/{id}"): Walk(_sub_with_item, params={
        "cancel_at_period_end": E(True, reflects("cancel_at_period_end")),
        # §3.5: the period ends at cancel_at; the 10 days it loses are credited.
        "cancel_at": E(_day(21), lambda o, v, w: o["cancel_at"] == v == o["current_period_end"]),
        # the item shows 4 at once; the rest of the period is credited for 1 and charged for 4 (f = 1 here)
        "items": E(_walked_item(4), _quantity_and_prorated(4, lambda got: len(got) == 2 and got[0] < 0 < got[1]),
                   bad=[{"id": "si_nope", "quantity": 4}]),
        "metadata": merged_metadata(),
        # 15 days into a 31-day period: 1000 × 16/31 = 516.13 → −516; 4000 × 16/31 = 2064.52 → +2065
        "proration_date": E(_day(15), _prorated([-516, 2065]), extra={"items": _walked_item(4)}),
        "proration_behavior": E("none", _quantity_and_prorated(5, []), extra={"items": _walked_item(5)}, also={
            "create_prorations": E(sees=_quantity_and_prorated(5, lambda got: len(got) == 2),
                                   extra={"items": _walked_item(5)}),
            # the customer's card now declines: the change stands, its invoice stays open (seed 004)
            "always_invoice": E(sees=_invoiced_at_once("open"),
                                extra={"items": _walked_item(5), "expand": ["latest_invoice"]})}),
        "payment_behavior": E("pending_if_incomplete", lambda o, v, w: o["pending_update"] is not None
                              and o["items"]["data"][0]["quantity"] == 1 and o["status"] == "active",
                              extra=(_NOW_INVOICED := {"items": _walked_item(3),
                                                       "proration_behavior": "always_invoice"}), also={
            "allow_incomplete": E(sees=lambda o, v, w: (o["status"], o["items"]["data"][0]["quantity"])
                                  == ("past_due", 3), extra=_NOW_INVOICED),
            "default_incomplete": E(sees=lambda o, v, w: o["status"] == "past_due", extra=_NOW_INVOICED),
            "error_if_incomplete": E(sees=lambda o, v, w: o["error"]["code"] == "card_declined", status=402,
                                     extra=_NOW_INVOICED)}),
        # §3.3: the period starts again now and is invoiced at once (here at its first second: the credit for
        # the whole period and the new period in advance net to 0, paid without a charge)
        "billing_cycle_anchor": E("now", _invoiced_at_once("paid"), extra={"expand": ["latest_invoice"]}, also={
            "unchanged": E(sees=lambda o, v, w: o["latest_invoice"]["billing_reason"] == "subscription_create",
                           extra={"expand": ["latest_invoice"]})}),
        "expand": EXPAND}),
    ("DELETE", "/v1/subscriptions/{id}"): Walk(_metered_sub_id, params={
        "cancellation_details": REFUSED({"comment": "walked away"}),
        "invoice_now": E(True, lambda o, v, w: _final_invoice(o, w)),
        # §3.5: the unused licensed time is credited on the final invoice (the metered usage is never prorated)
        "prorate": E(True, lambda o, v, w: _final_invoice_credits(o, w), extra={"invoice_now": True}),
        "expand": EXPAND}),
    # --- invoices
    ("POST", "/v1/invoices/create_preview"): Walk(base=_none, params={
        "customer": E(_clocked_value("customer"), reflects("customer")),
        "subscription": E(_clocked_value("subscription"), reflects("parent.subscription_details.subscription"),
                          bad="sub_nope"),
        # §4.6: the change decided on a copy of the book; always_invoice previews the invoice it makes at once
        "subscription_details": E(_preview_details, lambda o, v, w: o["billing_reason"] == "subscription_update"
                                  and o["lines"]["data"][1]["quantity"] == 3,
                                  extra={"subscription": lambda w: w.cache["previewed"]}, bad={"colour": "red"}),
        "expand": EXPAND}),
    ("GET", "/v1/invoices"): Walk(base=_seed_lists, params={
        "customer": E(_clocked_value("customer"), every(lambda x, v: x["customer"] == v)),
        "status": E("open", every(lambda x, v: x["status"] == v), also={
            "paid": E(sees=every(lambda x, v: x["status"] == v)),
            **{s: E(sees=only(lambda x, v: x["status"] == v)) for s in ("draft", "uncollectible", "void")}}),
        "subscription": E(_clocked_value("subscription"),
                          every(lambda x, v: x["parent"]["subscription_details"]["subscription"] == v)),
        "test_clock": E(_clocked_value("clock"), _of_clocked_customer),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/invoices/{id}"): Walk(_invoice_id, params={"expand": EXPAND}),
    ("GET", "/v1/invoices/{id}/lines"): Walk(_invoice_id, params={
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("POST", "/v1/invoices/{id}/finalize"): Walk(_draft_invoice_id, params={
        "auto_advance": E(False, lambda o, v, w: (o["status"], o["auto_advance"]) == ("open", False)),
        "expand": EXPAND}),
    ("POST", "/v1/invoices/{id}/pay"): Walk(_open_invoice_id, params={
        "off_session": E(True, lambda o, v, w: o["status"] == "paid", extra={"payment_method": "pm_card_visa"}),
        "paid_out_of_band": E(True, lambda o, v, w: o["status"] == "paid"),
        "payment_method": E("pm_card_visa", lambda o, v, w: o["status"] == "paid"),
        "expand": EXPAND}),
    ("POST", "/v1/invoices/{id}/void"): Walk(_open_invoice_id, params={"expand": EXPAND}),
    ("POST", "/v1/invoices/{id}/mark_uncollectible"): Walk(_open_invoice_id, params={"expand": EXPAND}),
    # --- test clocks
    ("POST", "/v1/test_helpers/test_clocks"): Walk(base=lambda w: _async({"frozen_time": NOW}), params={
        "frozen_time": E(NOW - 86400, reflects("frozen_time")),
        "name": E("Walked", reflects("name")),
        "expand": EXPAND}),
    ("GET", "/v1/test_helpers/test_clocks"): Walk(base=_seed_lists, params={
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/test_helpers/test_clocks/{id}"): Walk(_clock_id, params={"expand": EXPAND}),
    ("DELETE", "/v1/test_helpers/test_clocks/{id}"): Walk(_clock_id),
    ("POST", "/v1/test_helpers/test_clocks/{id}/advance"): Walk(
        _clock_id, lambda w: _async({"frozen_time": NOW + HOUR}), {
            "frozen_time": E(NOW + 2 * HOUR, reflects("status_details.advancing.target_frozen_time")),
            "expand": EXPAND}),
    # --- events
    ("GET", "/v1/events"): Walk(base=_seed_lists, params={
        "delivery_success": REFUSED(True),
        "type": E("customer.created", every(lambda x, v: x["type"] == v)),
        "types": E(["invoice.paid", "invoice.created"], every(lambda x, v: x["type"] in v)),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/events/{id}"): Walk(_event_id, params={"expand": EXPAND}),
    # --- ingest
    ("POST", "/v1/billing/meter_events"): Walk(base=lambda w: _event_base(w), params=(_INGEST := {
        "event_name": E("walk_tokens", reflects("event_name")),
        "identifier": E(unique("walk-id"), reflects("identifier")),
        "payload": E({"stripe_customer_id": "cus_walk", "value": "3", "region": "eu"},
                     lambda o, v, w: o["payload"]["value"] == "3"),
        "timestamp": E(NOW - 600, lambda o, v, w: o["timestamp"] in (v, "2025-12-31T23:50:00.000Z"))})),
    ("POST", "/v2/billing/meter_events"): Walk(base=lambda w: _event_base(w), params=_INGEST),
    ("POST", "/v1/billing/meter_event_adjustments"): Walk(base=lambda w: _adjust_base(w), params=(_ADJUST := {
        "event_name": E("walk_tokens", reflects("event_name")),
        "cancel": E(lambda w: {"identifier": w.cache["to_cancel"]},
                    lambda o, v, w: o["cancel"]["identifier"] == v["identifier"],
                    bad={"identifier": "never-sent"}),
        "type": E("cancel", reflects("type"))})),
    ("POST", "/v2/billing/meter_event_adjustments"): Walk(base=lambda w: _adjust_base(w), params=_ADJUST),
    ("POST", "/v2/billing/meter_event_session"): Walk(base=_none),
    ("POST", "/v2/billing/meter_event_stream"): Walk(base=_none, params={
        "events": E([{"event_name": "walk_tokens", "payload": {"stripe_customer_id": "cus_walk", "value": "1",
                                                               "region": "eu"}}],
                    lambda o, v, w: o["accepted"] == 1)}),
}


async def _final_invoice(sub: dict, w) -> bool:
    """`invoice_now=true` bills the usage so far on a final invoice (5 units at 10 USD)."""
    return sub["status"] == "canceled" and [i["total"] for i in await _invoices_of(w, sub["id"])] == [5000, 1000]


async def _final_invoice_credits(sub: dict, w) -> bool:
    """`prorate=true` with `invoice_now=true`: the final invoice bills the usage and credits the licensed item's
    unused time (10 USD × the share of the period left)."""
    final = (await _invoices_of(w, sub["id"]))[0]
    amounts = sorted(line["amount"] for line in final["lines"]["data"])
    return sub["status"] == "canceled" and len(amounts) == 2 and -1000 <= amounts[0] < 0 and amounts[1] == 5000



async def _async(value):
    return value


async def _event_base(w):
    await w.meter()
    return {"event_name": "walk_tokens", "payload": {"stripe_customer_id": "cus_walk", "value": "1", "region": "eu"}}


async def _adjust_base(w):
    await w.meter()
    identifier = unique("to-cancel")(w)
    r = await send_event(w.api, customer="cus_walk", value="1", event_name="walk_tokens", region="eu",
                         identifier=identifier)
    assert r.status_code == 200, r.text
    w.cache["to_cancel"] = identifier
    return {"event_name": "walk_tokens", "type": "cancel", "cancel": {"identifier": identifier}}


WALKS.update(ITEM_WALKS)  # /v1/invoiceitems (tests/tally_api/invoice_item_walks.py)
WALKS.update(subscription_item_walks(merged_metadata()))  # tests/tally_api/subscription_item_walks.py
EFFECTS = {route: walk.params for route, walk in WALKS.items()}



# --- the walk ----------------------------------------------------------------------------------------------------

def test_every_declared_parameter_has_an_entry():
    missing = [f"add an entry for {name} of {m} {path} in EFFECTS"
               for (m, path), contract in CONTRACTS.items() for name in contract.params
               if name not in EFFECTS.get((m, path), {})]
    surplus = [f"{m} {path} {name}: in EFFECTS, not in the contract" for (m, path), params in EFFECTS.items()
               for name in params if name not in CONTRACTS.get((m, path), type("", (), {"params": {}})).params]
    # An enum's every value is walked: each does what Stripe documents for it, or is refused.
    values = [f"walk {name}={choice} of {m} {path} too (E(also=...) in EFFECTS)"
              for (m, path), contract in CONTRACTS.items() for name, schema in contract.params.items()
              if name != "expand" and "enum" in schema and (entry := EFFECTS.get((m, path), {}).get(name))
              for choice in schema["enum"] if choice != entry.value and choice not in entry.also]
    assert not missing and not surplus and not values, "\n".join(missing + surplus + values)


@pytest.fixture
def world(billing_client, clock):
    return World(billing_client, clock)


GROUPS = {
    "meters": "/v1/billing/meters", "products": "/v1/products", "prices": "/v1/prices",
    "customers": "/v1/customers", "subscriptions": "/v1/subscriptions", "invoices": "/v1/invoices",
    "test_clocks": "/v1/test_helpers/test_clocks", "events": "/v1/events", "ingest": "meter_event",
    "invoiceitems": "/v1/invoiceitems", "subscription_items": "/v1/subscription_items",
}


@pytest.mark.parametrize("group", list(GROUPS))
async def test_every_parameter_does_what_stripe_documents_or_is_refused(world, group):
    prefix = GROUPS[group]
    problems: list[str] = []
    for (method, path), walk in WALKS.items():
        inside = prefix in path if group == "ingest" else path.startswith(prefix) and "meter_event" not in path
        if inside:
            await walk_route(world, method, path, walk, problems)
    assert not problems, "\n".join(problems)


async def test_the_issues_three_offenders_are_refused_naming_their_parameter(world):
    """Issue 8's examples, which answered 200 and did nothing: each is now a 400 that names what it refuses, or
    (issue 9) does what Stripe documents."""
    sub = await world.subscription()
    customer = sub["customer"]
    r = await world.api.post(f"/v1/subscriptions/{sub['id']}", data={"proration_behavior": "bogus"})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "proration_behavior")
    r = await world.api.request("DELETE", f"/v1/subscriptions/{sub['id']}", params={"prorate": "maybe"})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "prorate")
    r = await world.api.get(f"/v1/customers/{customer}", params={"expand[]": "subscriptions"})
    assert r.status_code == 400
    assert (r.json()["error"]["param"], r.json()["error"]["message"]) == (
        "expand", "This property cannot be expanded (subscriptions).")
    assert (await world.api.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "active"  # nothing done
