"""The walk of `/v1/invoiceitems` for tests/tally_api/test_every_parameter.py (EFFECTS): every parameter does
what Stripe documents (reference §4.4), or is refused naming it."""

from __future__ import annotations

from tests.tally_api.parameter_walk import EXPAND, NOW, PAGE, E, Walk, every, reflects


async def _cus(w) -> str:
    async def make():
        return (await w.customer(payment_method="pm_card_visa"))["id"]
    return await w.once("item_customer", make)


async def _one_time(w) -> str:
    async def make():
        return (await w.post("/v1/prices", {"currency": "usd", "unit_amount": 250,
                                             "product": (await w.product())["id"]}))["id"]
    return await w.once("item_price", make)


async def _with_sub(w) -> dict:
    async def make():
        customer = await w.customer(payment_method="pm_card_visa")
        return {"customer": customer["id"], "subscription": (await w.subscription(customer))["id"]}
    return await w.once("item_sub", make)


async def _draft(w) -> dict:
    """A renewal draft in its grace hour (parameter_walk.World.draft_invoice) and its customer."""
    async def make():
        inv = await w.draft_invoice()
        return {"invoice": inv, "customer": (await w.api.get(f"/v1/invoices/{inv}")).json()["customer"]}
    return await w.once("item_draft", make)


async def _base(w) -> dict:
    return {"customer": await _cus(w), "amount": 1000, "currency": "usd"}


async def _item_id(w) -> str:
    """A fresh pending item of 10 USD (quantity 1) for each trial."""
    return (await w.post("/v1/invoiceitems", await _base(w)))["id"]


async def _seed(w) -> dict:
    async def make():
        await _item_id(w), await _item_id(w)
        draft = await _draft(w)
        await w.post("/v1/invoiceitems", {"customer": draft["customer"], "amount": 300, "invoice": draft["invoice"]})
        return True
    await w.once("items_seeded", make)
    return {}


def _merged_metadata() -> E:
    async def value(w):
        await w.post(w.cache["path"], {"metadata": {"tier": "gold", "team": "a"}})
        return {"plan": "walk", "tier": ""}
    return E(value, lambda o, v, w: o["metadata"] == {"team": "a", "plan": "walk"})


_PERIOD = {"start": NOW - 86400, "end": NOW}
_CHANGES = {
    "amount": E(-700, lambda o, v, w: (o["amount"], o["discountable"]) == (-700, o["discountable"])),
    "description": E("Walked", reflects("description")),
    "discountable": E(False, reflects("discountable")),
    "metadata": E({"plan": "walk"}, lambda o, v, w: o["metadata"] == {"plan": "walk"}),
    "period": E(_PERIOD, reflects("period", _PERIOD)),
    "price": E(_one_time, reflects("pricing.price_details.price"), without=("amount",)),
    "pricing": E(lambda w: _pricing(w), lambda o, v, w: o["pricing"]["price_details"]["price"] == v["price"],
                 without=("amount",)),
    # 3 × 10 USD of unit amount: the amount is unit × quantity, rounded once
    "quantity": E(3, lambda o, v, w: (o["quantity"], o["amount"]) == (3, 3000), without=("amount",),
                  extra={"unit_amount_decimal": "1000"}),
    "unit_amount_decimal": E("12.5", lambda o, v, w: o["amount"] == 13, without=("amount",)),
    "expand": EXPAND,
}


async def _pricing(w) -> dict:
    return {"price": await _one_time(w)}


async def _on_draft(obj, value, w) -> bool:
    inv = (await w.api.get(f"/v1/invoices/{value}")).json()
    return obj["invoice"] == value and any(
        (line["parent"]["invoice_item_details"] or {}).get("invoice_item") == obj["id"] for line in inv["lines"]["data"])


async def _listed_pending(obj, value, w) -> bool:
    return bool(obj["data"]) and all(x["invoice"] is None for x in obj["data"])


ITEM_WALKS: dict[tuple[str, str], Walk] = {
    ("POST", "/v1/invoiceitems"): Walk(base=_base, params={
        **_CHANGES,
        "currency": E("usd", reflects("currency")),
        "customer": E(_cus, reflects("customer"), bad="cus_nope"),
        "invoice": E(lambda w: _value(w, _draft, "invoice"), _on_draft,
                     extra={"customer": lambda w: _value(w, _draft, "customer")}),
        "subscription": E(lambda w: _value(w, _with_sub, "subscription"),
                          reflects("parent.subscription_details.subscription"),
                          extra={"customer": lambda w: _value(w, _with_sub, "customer")}),
    }),
    ("GET", "/v1/invoiceitems"): Walk(base=_seed, params={
        "customer": E(_cus, every(lambda x, v: x["customer"] == v)),
        "invoice": E(lambda w: _value(w, _draft, "invoice"), every(lambda x, v: x["invoice"] == v)),
        "pending": E(True, _listed_pending),
        "limit": PAGE, "starting_after": PAGE, "ending_before": PAGE, "expand": EXPAND}),
    ("GET", "/v1/invoiceitems/{id}"): Walk(_item_id, params={"expand": EXPAND}),
    ("POST", "/v1/invoiceitems/{id}"): Walk(_item_id, params={
        **_CHANGES, "metadata": _merged_metadata(),
        # a new quantity of the item's 10 USD: 4 × 1000
        "quantity": E(4, lambda o, v, w: (o["quantity"], o["amount"]) == (4, 4000)),
        "unit_amount_decimal": E("2.5", lambda o, v, w: o["amount"] == 3)}),  # 2.5 × 1, half-up
    ("DELETE", "/v1/invoiceitems/{id}"): Walk(_item_id),
}


async def _value(w, make, key: str):
    return (await make(w))[key]

