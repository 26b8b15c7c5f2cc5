"""Issue 9's money when a change is invoiced, worked by hand (continued from test_proration_worked.py, whose
header states the rule): `always_invoice` and the customer balance (§4.2, §4.7), resets of the billing period
(§3.3), a failed immediate payment and pending updates (§3.6), metered items (§1.11), cancel now with
`prorate`/`invoice_now` and `cancel_at` (§3.5). Times are 00:00 UTC unless a row says otherwise.
"""

from __future__ import annotations

import pytest

from tally_core.errors import InvalidRequest

from .test_decide import PRICES, Clocked, ts
from .test_proration_worked import amounts, balance, change, item, latest, pending, replays, started, sub, swap

# --- always_invoice and the customer balance (§4.2, §4.7) -----------------------------------------------------

def test_always_invoice_bills_the_upgrade_at_once():
    c = started(ts(2026, 1, 1), "basic")
    c.advance(ts(2026, 1, 17))
    swap(c, "pro", proration_behavior="always_invoice")
    # 15 of 31 days: 10000 × 15/31 = 4838.71 → −4839; 20000 × 15/31 = 9677.42 → +9677; total 4838, charged now
    inv = latest(c)
    assert (inv.billing_reason, inv.status, amounts(inv), inv.total, inv.amount_paid) == (
        "subscription_update", "paid", [-4839, 9677], 4838, 4838)
    assert all(line.proration for line in inv.lines) and not c.book.pending_items
    # the renewal bills Pro alone: the prorations were already invoiced
    c.advance(ts(2026, 2, 1, 1))
    assert amounts(latest(c)) == [20000] and latest(c).status == "paid"


def test_a_downgrade_invoiced_at_once_credits_the_balance_and_the_next_invoice_uses_it():
    c = started(ts(2026, 1, 1), "pro")
    c.advance(ts(2026, 1, 17))
    swap(c, "basic", proration_behavior="always_invoice")
    # −9677 + 4839 = −4838: nothing due, the credit goes on the balance
    inv = latest(c)
    assert (amounts(inv), inv.total, inv.amount_due, inv.ending_balance, inv.status) == (
        [-9677, 4839], -4838, 0, -4838, "paid")
    assert balance(c) == -4838
    assert [(t.type, t.amount, t.ending_balance) for t in c.book.balance_transactions.values()] == [
        ("applied_to_invoice", -4838, -4838)]
    # Feb 1: Basic 10000 − 4838 credit = 5162 due, charged at finalization (an hour later)
    c.advance(ts(2026, 2, 1, 1))
    renewal = latest(c)
    assert (renewal.total, renewal.starting_balance, renewal.amount_due, renewal.amount_paid,
            renewal.ending_balance) == (10000, -4838, 5162, 5162, 0)
    assert balance(c) == 0


def test_a_credit_larger_than_the_next_invoice_stays_on_the_balance():
    c = started(ts(2026, 1, 1), ("basic", 10))
    c.advance(ts(2026, 1, 2))
    change(c, proration_behavior="always_invoice", items=[{"id": item(c), "quantity": "1"}])
    # 30 of 31 days left: 100000 × 30/31 = 96774.19 → −96774; 10000 × 30/31 = 9677.42 → +9677; total −87097
    assert latest(c).total == -87097 and balance(c) == -87097
    # Feb 1: 10000 is all paid by credit: nothing due, −87097 + 10000 = −77097 stays
    c.advance(ts(2026, 2, 1, 1))
    renewal = latest(c)
    assert (renewal.total, renewal.amount_due, renewal.ending_balance, renewal.status) == (10000, 0, -77097, "paid")
    assert balance(c) == -77097


# --- resets of the billing period (§3.3, §4.2, §4.3) -----------------------------------------------------------

@pytest.mark.parametrize(("behavior", "lines"), [
    # the credit for unused time (15/31 of 10000 = 4838.71 → −4839), then the year in advance: 95161
    ("create_prorations", [-4839, 100000]),
    # `none`: no credit for unused time, "still resets date and bills immediately"
    ("none", [100000]),
])
def test_monthly_to_yearly_resets_the_anchor_and_invoices_at_once(behavior, lines):
    c = started(ts(2026, 1, 1), "basic")
    c.advance(ts(2026, 1, 17))
    swap(c, "annual", proration_behavior=behavior)
    s, inv = sub(c), latest(c)
    assert (s.anchor, s.current_period_start, s.current_period_end) == (ts(2026, 1, 17), ts(2026, 1, 17),
                                                                         ts(2027, 1, 17))
    assert (inv.billing_reason, amounts(inv), inv.total, inv.status) == (
        "subscription_update", lines, sum(lines), "paid")
    assert (inv.lines[-1].period_start, inv.lines[-1].period_end) == (ts(2026, 1, 17), ts(2027, 1, 17))
    assert not c.book.pending_items


def test_a_zero_amount_price_to_a_paid_one_resets_and_invoices_at_once():
    c = started(ts(2026, 1, 1), "free")
    assert latest(c).total == 0 and latest(c).status == "paid"
    c.advance(ts(2026, 1, 17))
    swap(c, "basic")
    # nothing was paid, so nothing is credited; a full month of Basic from Jan 17
    s, inv = sub(c), latest(c)
    assert (inv.billing_reason, amounts(inv), inv.status) == ("subscription_update", [10000], "paid")
    assert (s.anchor, s.current_period_end) == (ts(2026, 1, 17), ts(2026, 2, 17))


def test_a_zero_quantity_becoming_non_zero_does_not_reset():
    c = started(ts(2026, 1, 1), ("basic", 0))
    c.advance(ts(2026, 1, 17))
    change(c, items=[{"id": item(c), "quantity": "2"}])
    # no reset: the anchor stays, no invoice now; 0 seats credit nothing, 2 seats: 20000 × 15/31 = 9677.42 → +9677
    assert (sub(c).anchor, sub(c).current_period_end, len(c.book.invoices)) == (ts(2026, 1, 1), ts(2026, 2, 1), 1)
    assert pending(c) == [(9677, "Remaining time on 2 × Basic after 17 Jan 2026")]


# --- a failed immediate payment (§3.6) -------------------------------------------------------------------------

def _declining_upgrade(**params):
    c = started(ts(2026, 1, 1), "basic")
    c.send("customer.update", "cus_1", {"payment_method": "pm_card_chargeDeclined"})
    c.advance(ts(2026, 1, 17))
    swap(c, "pro", proration_behavior="always_invoice", **params)
    return c


def test_a_failed_immediate_payment_keeps_the_change_and_goes_past_due():
    c = _declining_upgrade()
    inv = latest(c)
    assert (inv.status, inv.amount_due, inv.amount_paid) == ("open", 4838, 0)
    assert sub(c).status == "past_due" and sub(c).items[0].price.id == "price_pro"


def test_pending_if_incomplete_waits_for_the_invoice_then_applies():
    c = _declining_upgrade(payment_behavior="pending_if_incomplete")
    # the subscription keeps Basic, shows the update waiting for its invoice
    s = sub(c)
    shown = s.to_stripe()["pending_update"]
    assert s.items[0].price.id == "price_basic" and s.status == "active"
    assert [it["price"]["id"] for it in shown["subscription_items"]] == ["price_pro"]
    assert shown["expires_at"] == ts(2026, 1, 17) + 23 * 3600
    # paying the invoice with a good card applies the update
    c.send("invoice.pay", s.pending_update.invoice, {"payment_method": "pm_card_visa"})
    assert "customer.subscription.pending_update_applied" in c.types()
    s = sub(c)
    assert (s.items[0].price.id, s.pending_update, s.status) == ("price_pro", None, "active")
    assert c.book.invoices[s.latest_invoice].amount_paid == 4838
    assert replays(c)


def test_pending_if_incomplete_expires_after_23_hours():
    c = _declining_upgrade(payment_behavior="pending_if_incomplete")
    invoice = sub(c).pending_update.invoice
    c.advance(ts(2026, 1, 17) + 23 * 3600)
    assert "customer.subscription.pending_update_expired" in c.types()
    assert (sub(c).items[0].price.id, sub(c).pending_update) == ("price_basic", None)
    assert c.book.invoices[invoice].status == "void"
    assert replays(c)


# --- metered items are never prorated (§1.11, §4.3) -----------------------------------------------------------

def _metered(mode):
    """Basic + Tokens A (2 cents a token); 100 tokens on Jan 5, 200 on Jan 20."""
    c = started(ts(2026, 1, 1), "basic", "tokens_a", mode=mode)
    c.usage.add("cus_1", ts(2026, 1, 5), 100)
    c.usage.add("cus_1", ts(2026, 1, 20), 200)
    c.advance(ts(2026, 1, 16))
    return c


@pytest.mark.parametrize(("mode", "now", "renewal"), [
    # flexible: the 100 tokens before the change at Tokens A's 2 cents, as a pending item (200); Feb 1 takes it
    # first, then Basic for February, then the 200 tokens since Jan 16 at Tokens B's 3 cents (600): 10800
    ("flexible", [(200, "100 × Tokens A (usage until the price changed)")], [200, 10000, 600]),
    # classic: "Usage from January 1 to January 16 isn't billed": Basic + 600 = 10600
    ("classic", [], [10000, 600]),
])
def test_a_metered_price_swapped_mid_period(mode, now, renewal):
    c = _metered(mode)
    swap(c, "tokens_b", n=1)
    assert pending(c) == now  # and no proration line for a metered price
    if now:
        it = next(iter(c.book.pending_items.values()))
        assert (it.period_start, it.period_end, it.proration) == (ts(2026, 1, 1), ts(2026, 1, 16), False)
    c.advance(ts(2026, 2, 1, 1))
    inv = latest(c)
    assert amounts(inv) == renewal
    assert (inv.lines[-1].price_id, inv.lines[-1].period_start) == ("price_tokens_b", ts(2026, 1, 16))
    assert replays(c)


@pytest.mark.parametrize(("mode", "now", "renewal"), [
    # flexible: the usage up to the removal is billed (200); Feb 1: 200 + Basic 10000
    ("flexible", [200], [200, 10000]),
    # classic: "the invoice doesn't reflect any usage from that item": Basic alone
    ("classic", [], [10000]),
])
def test_a_metered_item_removed_mid_period(mode, now, renewal):
    c = _metered(mode)
    change(c, items=[{"id": item(c, 1), "deleted": "true"}])
    assert [a for a, _ in pending(c)] == now
    c.advance(ts(2026, 2, 1, 1))
    assert amounts(latest(c)) == renewal


@pytest.mark.parametrize("update", [
    pytest.param(lambda c: [{"id": item(c, 1), "quantity": "3"}], id="metered-item"),
    pytest.param(lambda c: [{"id": item(c, 0), "price": "price_tokens_b", "quantity": "3"}], id="swap-to-metered"),
])
def test_a_quantity_on_a_metered_price_is_refused(update):
    c = _metered("flexible")
    before = c.book
    with pytest.raises(InvalidRequest) as err:
        change(c, items=update(c))
    assert err.value.param == "items[0][quantity]" and c.book == before


# --- cancel now: prorate × invoice_now (§3.5) -----------------------------------------------------------------

def _cancel(prorate, invoice_now):
    """Basic + Tokens A from Jan 1 (100 tokens on Jan 5 = 200); Jan 11 (21/31 left) 1 → 2 seats:
    10000 × 21/31 = 6774.19 → −6774, 20000 × 21/31 = 13548.39 → +13548, pending; cancel on Jan 17 (15/31 left)."""
    c = started(ts(2026, 1, 1), "basic", "tokens_a")
    c.usage.add("cus_1", ts(2026, 1, 5), 100)
    c.advance(ts(2026, 1, 11))
    change(c, items=[{"id": item(c), "quantity": "2"}])
    assert [a for a, _ in pending(c)] == [-6774, 13548]
    c.advance(ts(2026, 1, 17))
    c.send("subscription.cancel", "sub_1", {"prorate": str(prorate).lower(), "invoice_now": str(invoice_now).lower()})
    assert sub(c).status == "canceled"
    return c


def test_cancel_with_neither_removes_the_pending_prorations():
    # "pending prorations are removed if invoice_now and prorate are both set to false"; usage discarded
    c = _cancel(False, False)
    assert not c.book.pending_items and len(c.book.invoices) == 1
    assert c.types().count("invoiceitem.deleted") == 2


def test_cancel_with_prorate_credits_the_unused_time_for_the_next_invoice():
    # two seats were billed (the Jan 11 debit): 20000 × 15/31 = 9677.42 → −9677, pending with the others
    c = _cancel(True, False)
    assert pending(c) == [(-6774, "Unused time on Basic after 11 Jan 2026"),
                          (13548, "Remaining time on 2 × Basic after 11 Jan 2026"),
                          (-9677, "Unused time on 2 × Basic after 17 Jan 2026")]
    assert len(c.book.invoices) == 1


def test_cancel_with_invoice_now_bills_the_pending_items_and_the_usage():
    # −6774 + 13548 + 200 (100 tokens × 2) = 6974
    c = _cancel(False, True)
    inv = latest(c)
    assert (amounts(inv), inv.total, inv.status) == ([-6774, 13548, 200], 6974, "paid")
    assert (inv.lines[-1].period_start, inv.lines[-1].period_end) == (ts(2026, 1, 1), ts(2026, 1, 17))
    assert not c.book.pending_items


def test_cancel_with_both_invoices_the_credit_too():
    # newest first: −9677 (Jan 17), −6774, +13548 (Jan 11), then the usage 200: total −2703, a credit
    c = _cancel(True, True)
    inv = latest(c)
    assert (amounts(inv), inv.total, inv.amount_due, inv.status) == ([-9677, -6774, 13548, 200], -2703, 0, "paid")
    assert balance(c) == -2703 and not c.book.pending_items
    assert replays(c)


# --- cancel_at (§3.5's worked example, per second) ----------------------------------------------------------------

def _yearly_ending_jul_1_2024():
    """120 USD/year from Jan 1 2023, told on Jan 1 2023 to end on Jul 1 2024, renewed Jan 1 2024."""
    c = started(ts(2023, 1, 1), "yearly")
    change(c, cancel_at=str(ts(2024, 7, 1)))
    assert not c.book.pending_items  # cancel_at after this period's end moves nothing yet
    c.advance(ts(2024, 1, 1, 1))
    return c


def test_cancel_at_bills_the_share_of_the_year_until_it():
    c = _yearly_ending_jul_1_2024()
    # 2024 has 366 days; Jan 1 → Jul 1 is 31+29+31+30+31+30 = 182: 12000 × 182/366 = 5967.21 → 5967
    # (the docs' "60 USD" is half a year)
    renewal = latest(c)
    assert (amounts(renewal), renewal.status) == ([5967], "paid")
    assert (renewal.lines[0].period_start, renewal.lines[0].period_end) == (ts(2024, 1, 1), ts(2024, 7, 1))
    assert sub(c).current_period_end == ts(2024, 7, 1)


@pytest.mark.parametrize(("moved_to", "line", "left"), [
    # later, to Oct 1: Jul 1 → Oct 1 is 31+31+30 = 92 days more: 12000 × 92/366 = 3016.39 → +3016 (docs: +30 USD)
    pytest.param(ts(2024, 10, 1), (3016, ts(2024, 7, 1), ts(2024, 10, 1)), 0, id="to-oct-1-debit"),
    # earlier, to Apr 1: Apr 1 → Jul 1 is 30+31+30 = 91 days less: 12000 × 91/366 = 2983.61 → −2984 (docs: −30 USD)
    pytest.param(ts(2024, 4, 1), (-2984, ts(2024, 4, 1), ts(2024, 7, 1)), -2984, id="to-apr-1-credit"),
])
def test_moving_cancel_at_within_the_period_prorates_and_the_subscription_ends_there(moved_to, line, left):
    c = _yearly_ending_jul_1_2024()
    c.advance(ts(2024, 2, 15))
    change(c, cancel_at=str(moved_to))
    assert [(it.amount, it.period_start, it.period_end) for it in c.book.pending_items.values()] == [line]
    assert sub(c).current_period_end == moved_to
    # at the end: canceled, and "any pending prorations are … still collected at the end of the period" (§3.5)
    c.advance(moved_to + 3600)
    assert (sub(c).status, sub(c).ended_at) == ("canceled", moved_to)
    assert (amounts(latest(c)), latest(c).status, balance(c)) == ([line[0]], "paid", left)
    assert replays(c)


def test_voiding_a_pending_updates_invoice_drops_the_update():
    c = Clocked()
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa"})
    c.send("subscription.create", "sub_1", {"customer": "cus_1", "items": [{"price": "price_license"}]},
           prices=PRICES)
    c.send("customer.update", "cus_1", {"payment_method": "pm_card_chargeDeclined"})
    item = c.book.subscriptions["sub_1"].items[0].id
    c.send("subscription.update", "sub_1", {"items": [{"id": item, "quantity": "2"}],
                                            "proration_behavior": "always_invoice",
                                            "payment_behavior": "pending_if_incomplete"})
    sub = c.book.subscriptions["sub_1"]
    assert sub.pending_update is not None and sub.items[0].quantity == 1
    # while it waits, the items cannot change
    with pytest.raises(InvalidRequest) as err:
        c.send("subscription.update", "sub_1", {"items": [{"id": item, "quantity": "3"}]})
    assert err.value.param == "items"
    c.send("invoice.void", sub.pending_update.invoice, {})
    sub = c.book.subscriptions["sub_1"]
    assert sub.pending_update is None and sub.items[0].quantity == 1
    assert c.types()[-2:] == ["invoice.voided", "customer.subscription.pending_update_expired"]
