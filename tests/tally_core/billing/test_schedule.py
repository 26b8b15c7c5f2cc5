"""One schedule of what is due (schedule.py): what `advance` does, when (`due_at`) and what it reads
(`usage_needs`) all come from the same list. Worked on seed 000 (reference §1.10, §3.6, §6.6)."""

from __future__ import annotations

from tally_core.billing.schedule import INCOMPLETE_EXPIRES, Due, due_at, schedule, usage_needs

from .test_decide import JAN1, PRICES, Clocked, seed_000, ts

FEB1, MAR1 = ts(2026, 2, 1), ts(2026, 3, 1)
HOUR = 3600


def test_an_active_subscription_is_due_to_renew_at_its_period_end():
    c, _ = seed_000()
    assert schedule(c.book, MAR1) == [Due(FEB1, "renewal", "sub_1")]
    assert due_at(c.book) == FEB1
    # the renewal will read January's token usage, in arrears (§6.6)
    assert usage_needs(c.book, FEB1) == {("mtr_tokens", "cus_1", JAN1, FEB1)}
    assert usage_needs(c.book, FEB1 - 1) == set()  # not due yet: nothing to fetch


def test_after_the_renewal_the_draft_finalizes_an_hour_later_and_rereads_its_usage():
    c, _ = seed_000()
    c.advance(FEB1)
    draft = c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice]
    # §1.10: the cycle draft waits out the 1-hour grace period, then late usage is read again
    assert schedule(c.book, FEB1 + HOUR) == [Due(FEB1 + HOUR, "draft_finalization", draft.id)]
    assert usage_needs(c.book, FEB1 + HOUR) == {("mtr_tokens", "cus_1", JAN1, FEB1)}
    # what is due next month is not due by then, and the schedule lists everything in time order
    assert [d.kind for d in schedule(c.book, MAR1)] == ["draft_finalization", "renewal"]


def test_an_incomplete_subscription_expires_23_hours_after_creation():
    c, _ = seed_000(pm="pm_card_chargeDeclined")
    assert schedule(c.book, JAN1 + INCOMPLETE_EXPIRES) == [Due(JAN1 + 23 * HOUR, "incomplete_expiry", "sub_1")]
    c.advance(JAN1 + INCOMPLETE_EXPIRES)
    assert due_at(c.book) is None  # incomplete_expired: nothing more happens


def test_a_failed_renewal_payment_is_retried_three_days_later():
    c, _ = seed_000()
    c.send("customer.update", "cus_1", {"payment_method": "pm_card_chargeDeclined"})
    c.advance(FEB1 + HOUR)
    invoice = c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice]
    assert (invoice.status, c.book.subscriptions["sub_1"].status) == ("open", "past_due")
    assert Due(FEB1 + HOUR + 3 * 86_400, "payment_retry", invoice.id) in schedule(c.book, MAR1)


def test_at_one_moment_subscriptions_renew_by_id_then_invoices_follow():
    c = Clocked()
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    for sub_id in ("sub_b", "sub_a"):  # created b first; both renew Feb 1
        c.send("subscription.create", sub_id, {"customer": "cus_1", "items": [{"price": "price_license"}]},
               prices=PRICES)
    assert [d.id for d in schedule(c.book, FEB1)] == ["sub_a", "sub_b"]
    start = len(c.events)
    c.advance(FEB1 + HOUR)
    renewed = [e["data"]["object"]["id"] for e in c.events[start:] if e["type"] == "customer.subscription.updated"]
    finalized = [e["data"]["object"]["parent"]["subscription_details"]["subscription"] for e in c.events[start:]
                 if e["type"] == "invoice.finalized"]
    assert renewed == ["sub_a", "sub_b"]  # by id, at Feb 1 00:00
    assert sorted(finalized) == ["sub_a", "sub_b"]  # their drafts an hour later, after both renewals
