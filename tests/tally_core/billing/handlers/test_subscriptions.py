"""Subscription commands: proration choices are honoured (reference §4.2, §3.5), metadata follows Stripe's
one rule (§9), and commands written before typed commands decide as they did. Worked on seed 000: 100 USD license + metered tokens, Jan 1 2026."""

from __future__ import annotations

import pytest

from tally_core.billing.decide import decide
from tally_core.billing.subscriptions import ENDED, RENEWING, SubscriptionStatus
from tally_core.errors import InvalidRequest

from ..test_decide import PRICES, Clocked, seed_000, ts


def license_item(c) -> str:
    return c.book.subscriptions["sub_1"].items[0].id


def refused(c, kind, params) -> InvalidRequest:
    before = c.book
    with pytest.raises(InvalidRequest) as err:
        c.send(kind, "sub_1", params)
    assert c.book == before  # nothing of a refused command stays
    return err.value


@pytest.mark.parametrize("behavior", ["create_prorations", "always_invoice", "none"])
def test_changes_that_never_prorate_bill_nothing_whatever_the_behaviour(behavior):
    c, _ = seed_000()
    # §4.3: cancel_at_period_end and metadata do not trigger prorations
    c.send("subscription.update", "sub_1", {"proration_behavior": behavior, "cancel_at_period_end": "true",
                                            "metadata": {"team": "ml"}})
    assert c.book.subscriptions["sub_1"].cancel_at_period_end
    assert not c.book.pending_items and len(c.book.invoices) == 1


def test_a_bogus_proration_behavior_is_refused():
    c, _ = seed_000()
    assert refused(c, "subscription.update", {"proration_behavior": "bogus"}).param == "proration_behavior"


def test_a_quantity_change_shows_at_once_and_prorates_by_default():
    c, _ = seed_000()
    c.advance(ts(2026, 1, 17))  # 15 of January's 31 days left
    c.send("subscription.update", "sub_1", {"items": [{"id": license_item(c), "quantity": "3"}]})
    assert c.book.subscriptions["sub_1"].items[0].quantity == 3
    # 10000 × 15/31 = 4838.71: −4839 for the one seat, +14516 (30000 × 15/31 = 14516.13) for three
    assert sorted(it.amount for it in c.book.pending_items.values()) == [-4839, 14516]


def test_naming_the_same_quantity_is_no_change_and_bills_nothing():
    c, _ = seed_000()
    c.send("subscription.update", "sub_1", {"items": [{"id": license_item(c), "quantity": "1"}]})
    assert not c.book.pending_items


def test_cancel_with_prorate_credits_the_unused_time():
    c, _ = seed_000()
    c.advance(ts(2026, 1, 17))
    c.send("subscription.cancel", "sub_1", {"prorate": "true"})
    assert c.book.subscriptions["sub_1"].status == "canceled"
    assert [it.amount for it in c.book.pending_items.values()] == [-4839]  # waits for the customer's next invoice


def test_create_with_none_and_a_future_anchor_makes_the_first_period_free():
    c = Clocked(frozen=ts(2026, 1, 15))
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    params = {"customer": "cus_1", "items": [{"price": "price_license"}], "billing_cycle_anchor": str(ts(2026, 2, 1))}
    # §3.3: "making the initial period up to the first full invoice date free… doesn't generate an invoice"
    c.send("subscription.create", "sub_1", {**params, "proration_behavior": "none"}, prices=PRICES)
    sub = c.book.subscriptions["sub_1"]
    assert sub.status == "active" and sub.latest_invoice is None and not c.book.invoices
    # the default (create_prorations) bills 17/31 of the month (A.4)
    c.send("subscription.create", "sub_2", {**params, "proration_behavior": "create_prorations"}, prices=PRICES)
    assert c.book.invoices[c.book.subscriptions["sub_2"].latest_invoice].total == 5484


@pytest.mark.parametrize(("raw", "metadata"), [
    pytest.param({"team": "ml"}, {"plan": "pro", "team": "ml"}, id="keys-merge"),
    pytest.param({"plan": ""}, {}, id="empty-value-unsets-the-key"),
    pytest.param("", {}, id="metadata-empty-unsets-all"),
])
def test_update_merges_metadata(raw, metadata):
    c = Clocked()
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    c.send("subscription.create", "sub_1", {"customer": "cus_1", "items": [{"price": "price_license"}],
                                            "metadata": {"plan": "pro"}}, prices=PRICES)
    c.send("subscription.update", "sub_1", {"metadata": raw})
    assert dict(c.book.subscriptions["sub_1"].metadata) == metadata


def test_statuses_are_one_enum_and_the_wire_keeps_the_strings():
    c, sub = seed_000()
    assert c.book.subscriptions["sub_1"].status is SubscriptionStatus.ACTIVE and sub["status"] == "active"
    assert type(sub["status"]) is str
    assert set(RENEWING) == {"active", "past_due", "unpaid"} and set(ENDED) == {"canceled", "incomplete_expired"}


# --- commands written before typed commands (no `version`) decide as they did -------------------------------

def legacy(c, kind, params, **extra):
    """Decide a command as logs hold it from before typed commands: no `version`, raw form strings."""
    c.n += 1
    d = decide(c.book, {"id": f"cmd_{c.n}", "type": kind, "account": "acct_1", "key": c.book.key, "at": 0,
                        "object_id": "sub_1", "params": params, **extra}, c.usage)
    c.book, c.events = d.book, c.events + d.events
    return d


def test_an_old_quantity_change_without_proration_behavior_bills_from_the_next_period_as_it_did():
    # When it was accepted, tally read no proration choice: the change meant `none` (§4.2).
    old, _ = seed_000()
    d = legacy(old, "subscription.update", {"items": [{"id": license_item(old), "quantity": "3"}]})
    assert d.error is None and old.book.subscriptions["sub_1"].items[0].quantity == 3
    assert not old.book.pending_items
    # the same events, byte for byte, as the same change written today with proration_behavior=none
    new, _ = seed_000()
    new.send("subscription.update", "sub_1", {"proration_behavior": "none",
                                              "items": [{"id": license_item(new), "quantity": "3"}]})
    assert old.events == new.events


@pytest.mark.parametrize("kind, params", [
    ("subscription.update", {"proration_behavior": "create_prorations", "cancel_at_period_end": "true"}),
    ("subscription.update", {"proration_behavior": "bogus", "cancel_at_period_end": "true"}),
    ("subscription.cancel", {"prorate": "true"}),
])
def test_old_proration_choices_were_never_read_and_still_are_not(kind, params):
    c, _ = seed_000()
    assert legacy(c, kind, params).error is None
    assert (c.book.subscriptions["sub_1"].cancel_at_period_end if kind == "subscription.update"
            else c.book.subscriptions["sub_1"].status == "canceled")


def test_an_old_create_with_none_and_a_future_anchor_bills_the_prorated_first_period_as_it_did():
    c = Clocked(frozen=ts(2026, 1, 15))
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    d = legacy(c, "subscription.create", {"customer": "cus_1", "items": [{"price": "price_license"}],
                                          "billing_cycle_anchor": str(ts(2026, 2, 1)), "proration_behavior": "none"},
               prices=PRICES)
    assert d.error is None
    assert c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice].total == 5484  # 17/31 (A.4)


def test_a_credit_left_by_a_cancel_goes_on_the_customers_next_invoice():
    c, _ = seed_000()
    c.advance(ts(2026, 1, 17))
    c.send("subscription.cancel", "sub_1", {"prorate": "true"})  # −4839 for the unused 15 of 31 days
    c.send("subscription.create", "sub_2", {"customer": "cus_1", "items": [{"price": "price_license"}]},
           prices=PRICES)
    first = c.book.invoices[c.book.subscriptions["sub_2"].latest_invoice]
    assert [line.amount for line in first.lines] == [-4839, 10000] and first.total == 5161
    assert not c.book.pending_items
