"""The billing worker's decisions, as worked examples: seed 000 on a test clock, renewals, payments, cancels."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from tally_core.billing.book import USAGE_OBSERVED, Book, apply, from_objects, to_json
from tally_core.billing.decide import decide
from tally_core.billing.previews import preview
from tally_core.billing.prices import create_price
from tally_core.billing.schedule import due_at


def ts(y, m, d, h=0):
    return int(datetime(y, m, d, h, tzinfo=timezone.utc).timestamp())


JAN1 = ts(2026, 1, 1)
LICENSE = create_price({"currency": "usd", "unit_amount": "10000", "product": "prod_fee",
                        "recurring": {"interval": "month"}}, id="price_license", now=0)
TOKENS = create_price({"currency": "usd", "product": "prod_tokens", "billing_scheme": "tiered",
                       "tiers_mode": "graduated",
                       "tiers": [{"up_to": "1000", "unit_amount": "0"}, {"up_to": "inf", "unit_amount_decimal": "4"}],
                       "recurring": {"interval": "month", "usage_type": "metered", "meter": "mtr_tokens"}},
                      id="price_tokens", now=0)
PRICES = {p.id: p.to_stripe(expand=["tiers"]) for p in (LICENSE, TOKENS)}


class Usage:
    """Usage per (meter, customer) as (timestamp, value) pairs; sums the events in [start, end)."""

    def __init__(self):
        self.events = []

    def add(self, customer, at, value):
        self.events.append((customer, at, Decimal(value)))

    def __call__(self, meter, customer, start, end):
        return sum((v for c, t, v in self.events if c == customer and start <= t < end), Decimal(0))


class Clocked:
    """A book on a test clock, driven by commands the way the API writes them."""

    def __init__(self, frozen=JAN1):
        self.book = Book("acct_1", "acct_1:clock_1")
        self.usage = Usage()
        self.events = []
        self.n = 0
        self.send("test_clock.create", "clock_1", {"frozen_time": str(frozen)})

    def send(self, kind, object_id, params, **extra):
        self.n += 1
        cmd = {"id": f"cmd_{self.n}", "type": kind, "version": 1, "account": "acct_1", "key": self.book.key,
               "at": 0, "object_id": object_id, "params": params, **extra}
        d = decide(self.book, cmd, self.usage)
        self.book = d.book
        self.events += d.events
        if d.error:
            raise d.error
        return d.result

    def advance(self, when):
        return self.send("test_clock.advance", "clock_1", {"frozen_time": str(when)})

    def types(self):
        return [e["type"] for e in self.events if e["type"] != USAGE_OBSERVED]


def seed_000(pm="pm_card_visa"):
    c = Clocked()
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": pm})
    sub = c.send("subscription.create", "sub_1",
                 {"customer": "cus_1", "items": [{"price": "price_license"}, {"price": "price_tokens"}]},
                 prices=PRICES)
    return c, sub


def test_seed_000_first_invoice_then_usage_in_arrears():
    c, sub = seed_000()
    # The first invoice bills the 100 USD license for January, in advance, and is paid at once.
    first = c.book.invoices[sub["latest_invoice"]]
    assert (first.status, first.total, first.amount_paid) == ("paid", 10000, 10000)
    assert sub["status"] == "active" and sub["current_period_end"] == ts(2026, 2, 1)
    # 3,000 tokens in January: the first 1,000 are free, 2,000 × 0.04 USD = 80 USD.
    c.usage.add("cus_1", ts(2026, 1, 10), 1200)
    c.usage.add("cus_1", ts(2026, 1, 31, 23), 1800)
    c.usage.add("cus_1", ts(2026, 2, 1), 999)  # February's: not on this invoice
    c.advance(ts(2026, 2, 1))
    cycle = c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice]
    assert cycle.status == "draft" and cycle.automatically_finalizes_at == ts(2026, 2, 1, 1)
    assert [(l.price_id, l.quantity, l.amount, l.period_start, l.period_end) for l in cycle.lines] == [
        ("price_license", 1, 10000, ts(2026, 2, 1), ts(2026, 3, 1)),     # in advance: February
        ("price_tokens", 3000, 8000, ts(2026, 1, 1), ts(2026, 2, 1))]    # in arrears: January
    # Late January usage reported during the grace hour still counts at finalization: 2,500 × 4 = 100 USD.
    c.usage.add("cus_1", ts(2026, 1, 20), 500)
    c.advance(ts(2026, 2, 1, 1))
    cycle = c.book.invoices[cycle.id]
    assert (cycle.status, cycle.total, cycle.amount_paid) == ("paid", 20000, 20000)
    assert cycle.lines[1].quantity == 3500
    assert c.types().count("invoice.paid") == 2
    assert c.types()[-1] == "test_helpers.test_clock.ready"


def test_declined_card_renewal_goes_past_due_then_unpaid():
    c, _ = seed_000(pm="pm_card_visa")
    c.send("customer.update", "cus_1", {"payment_method": "pm_card_chargeDeclined"})
    c.advance(ts(2026, 2, 1, 1))
    sub = c.book.subscriptions["sub_1"]
    inv = c.book.invoices[sub.latest_invoice]
    assert (sub.status, inv.status, inv.attempt_count) == ("past_due", "open", 1)
    assert inv.next_payment_attempt == ts(2026, 2, 4, 1)  # retried 3 days later
    assert "invoice.payment_failed" in c.types()
    c.advance(ts(2026, 2, 17, 1))  # retries at +3, +5 and +7 days all fail
    assert c.book.subscriptions["sub_1"].status == "unpaid"
    assert c.book.invoices[inv.id].attempt_count == 4


def test_paying_with_a_good_card_makes_it_active_again():
    c, _ = seed_000(pm="pm_card_chargeDeclined")
    # The first invoice declines: the subscription is incomplete, not active.
    sub = c.book.subscriptions["sub_1"]
    assert sub.status == "incomplete"
    c.send("invoice.pay", sub.latest_invoice, {"payment_method": "pm_card_visa"})
    assert c.book.subscriptions["sub_1"].status == "active"


def test_incomplete_expires_after_23_hours():
    c, sub = seed_000(pm="pm_card_chargeDeclined")
    c.advance(JAN1 + 23 * 3600)
    assert c.book.subscriptions["sub_1"].status == "incomplete_expired"
    assert c.book.invoices[sub["latest_invoice"]].status == "void"


def test_quantity_change_with_none_shows_at_once_and_bills_in_full_from_the_next_period():
    c, _ = seed_000()
    c.send("subscription.update", "sub_1", {"proration_behavior": "none",
                                            "items": [{"id": c.book.subscriptions["sub_1"].items[0].id,
                                                       "quantity": "3"}]})
    assert c.book.subscriptions["sub_1"].items[0].quantity == 3  # Stripe's shape: the item shows it now
    assert not c.book.pending_items  # §4.2 `none`: no prorations
    c.advance(ts(2026, 2, 1))
    inv = c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice]
    assert inv.lines[0].quantity == 3 and inv.lines[0].amount == 30000


def test_cancel_at_period_end_bills_last_usage_only():
    c, _ = seed_000()
    c.send("subscription.update", "sub_1", {"cancel_at_period_end": "true"})
    c.usage.add("cus_1", ts(2026, 1, 5), 1100)  # 100 over the free tier: 4 USD
    c.advance(ts(2026, 2, 1, 1))
    sub = c.book.subscriptions["sub_1"]
    inv = c.book.invoices[sub.latest_invoice]
    assert sub.status == "canceled" and sub.ended_at == ts(2026, 2, 1)
    assert [(l.price_id, l.amount) for l in inv.lines] == [("price_tokens", 400)]
    assert inv.status == "paid"
    assert due_at(c.book) is None


def test_cancel_now_with_invoice_now_bills_usage_so_far():
    c, _ = seed_000()
    c.usage.add("cus_1", ts(2026, 1, 2), 2000)
    c.advance(ts(2026, 1, 15))
    c.send("subscription.cancel", "sub_1", {"invoice_now": "true"})
    sub = c.book.subscriptions["sub_1"]
    inv = c.book.invoices[sub.latest_invoice]
    assert (sub.status, inv.total, inv.period_end) == ("canceled", 4000, ts(2026, 1, 15))


def test_customer_credit_is_applied_at_finalization():
    c = Clocked()
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa",
                                        "balance": "-2500"})
    c.send("subscription.create", "sub_1", {"customer": "cus_1", "items": [{"price": "price_license"}]},
           prices=PRICES)
    inv = c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice]
    assert (inv.total, inv.starting_balance, inv.amount_due, inv.ending_balance) == (10000, -2500, 7500, 0)
    assert c.book.customers["cus_1"].balance == 0


def test_future_anchor_prorates_the_first_partial_period():
    c = Clocked(frozen=ts(2026, 1, 15))
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    c.send("subscription.create", "sub_1", {"customer": "cus_1", "items": [{"price": "price_license"}],
                                            "billing_cycle_anchor": str(ts(2026, 2, 1))}, prices=PRICES)
    inv = c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice]
    # 17 of January's 31 days: 10000 × 17 / 31 = 5483.87 → 5484.
    assert inv.total == 5484


def test_advance_is_limited_to_two_intervals_and_moves_forward_only():
    c, _ = seed_000()
    with pytest.raises(Exception) as err:
        c.advance(ts(2026, 3, 2))
    assert err.value.param == "frozen_time"
    with pytest.raises(Exception):
        c.advance(JAN1)


def test_replaying_events_rebuilds_the_same_book_and_redeciding_gives_the_same_events():
    c, _ = seed_000()
    c.usage.add("cus_1", ts(2026, 1, 3), 5000)
    for month in (2, 3):
        c.advance(ts(2026, month, 1, 2))
    folded = Book("acct_1", "acct_1:clock_1")
    for e in c.events:
        folded = apply(folded, e)
    assert folded == c.book
    snap = to_json(c.book)
    assert from_objects("acct_1", snap["key"], clock=snap["clock"], customers=snap["customers"],
                        subscriptions=snap["subscriptions"], invoices=snap["invoices"],
                        subscription_states=snap["subscription_states"]) == c.book
    observed = {(o["meter"], o["customer"], o["start"], o["end"]): Decimal(o["value"])
                for o in (e["data"]["object"] for e in c.events if e["type"] == USAGE_OBSERVED)}
    again = Clocked()
    again.usage = lambda *k: observed[k]
    again.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    again.send("subscription.create", "sub_1",
               {"customer": "cus_1", "items": [{"price": "price_license"}, {"price": "price_tokens"}]}, prices=PRICES)
    for month in (2, 3):
        again.advance(ts(2026, month, 1, 2))
    assert again.events == c.events


def test_preview_shows_next_invoice_with_usage_so_far():
    c, _ = seed_000()
    c.usage.add("cus_1", ts(2026, 1, 3), 1500)
    c.advance(ts(2026, 1, 10))
    obj = preview(c.book, "sub_1", ts(2026, 1, 10), c.usage)
    assert obj["total"] == 10000 + 500 * 4
    assert obj["id"] is None and obj["billing_reason"] == "upcoming"
