"""Previews of a change (reference §4.6): the docs' worked example to the cent, and Stripe's refusals."""

from __future__ import annotations

import pytest

from tally_core.billing.prices import create_price
from tally_core.billing.previews import preview
from tally_core.errors import InvalidRequest

from .test_decide import Clocked

# §4.1: the proration preview in Stripe's docs.
PERIOD_START, PERIOD_END, PRORATION_DATE = 1596749288, 1599427688, 1598982148
SILVER = create_price({"currency": "usd", "unit_amount": "1000", "product": "prod_silver", "nickname": "Silver plan",
                       "recurring": {"interval": "month"}}, id="price_silver", now=0)
GOLD = create_price({"currency": "usd", "unit_amount": "3252", "product": "prod_gold", "nickname": "Gold plan",
                     "recurring": {"interval": "month"}}, id="price_gold", now=0)
PRICES = {p.id: p.to_stripe(expand=["tiers"]) for p in (SILVER, GOLD)}


def silver_subscription():
    c = Clocked(frozen=PERIOD_START)
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    c.send("subscription.create", "sub_1", {"customer": "cus_1", "items": [{"price": "price_silver"}]},
           prices=PRICES)
    c.advance(PRORATION_DATE + 3600)  # an hour after the proration date, still in the first period
    return c


def change(c, params: dict, kind="subscription.update") -> dict:
    return {"id": "cmd_preview", "type": kind, "version": 1, "account": "acct_1", "key": c.book.key, "at": 0,
            "object_id": "sub_1", "params": params, "prices": PRICES}


def swap_to_gold(c, **more) -> dict:
    item = c.book.subscriptions["sub_1"].items[0].id
    return {"items": [{"id": item, "price": "price_gold"}], "proration_date": str(PRORATION_DATE), **more}


def test_the_docs_example_to_the_cent():
    c = silver_subscription()
    before = c.book
    obj = preview(c.book, "sub_1", 0, c.usage, change(c, swap_to_gold(c)))
    lines = obj["lines"]["data"]
    assert [line["amount"] for line in lines] == [-166, 541, 3252]
    assert [line["description"] for line in lines] == [
        "Unused time on Silver plan after 01 Sep 2020", "Remaining time on Gold plan after 01 Sep 2020",
        "1 × Gold plan"]
    for line in lines[:2]:
        assert line["period"] == {"start": PRORATION_DATE, "end": PERIOD_END}
        assert line["parent"]["subscription_item_details"]["proration"] is True and line["discountable"] is False
    assert lines[2]["period"] == {"start": PERIOD_END, "end": 1602019688}
    assert lines[2]["parent"]["subscription_item_details"]["proration"] is False
    assert obj["subtotal"] == obj["total"] == obj["amount_due"] == 3627
    assert obj["billing_reason"] == "upcoming" and obj["id"] is None
    assert c.book == before  # nothing of a preview stays


def test_always_invoice_previews_the_invoice_made_at_once():
    c = silver_subscription()
    obj = preview(c.book, "sub_1", 0, c.usage, change(c, swap_to_gold(c, proration_behavior="always_invoice")))
    assert [line["amount"] for line in obj["lines"]["data"]] == [-166, 541]
    assert obj["billing_reason"] == "subscription_update" and obj["total"] == 375


def test_cancel_now_previews_the_final_invoice_with_the_credit():
    c = silver_subscription()
    obj = preview(c.book, "sub_1", 0, c.usage, change(c, {"invoice_now": True, "prorate": True},
                                                       "subscription.cancel"))
    # 1000 × (1599427688 − 1598985748) / 2678400 = 165.00 → −165 (the credit from the clock's time, an hour on)
    assert [line["amount"] for line in obj["lines"]["data"]] == [-165]


def test_a_proration_date_outside_the_period_is_refused():
    c = silver_subscription()
    with pytest.raises(InvalidRequest) as err:
        preview(c.book, "sub_1", 0, c.usage, change(c, {**swap_to_gold(c), "proration_date": str(PERIOD_END + 1)}))
    assert err.value.param == "proration_date"
