"""Invoices (reference §6): seed 000, customer balance, status machine, wire shape; cents worked by hand per case."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
import stripe

from tally_core.billing import invoice_wire, invoices as inv
from tally_core.billing.invoices import DiscountAmount, Invoice, LineSpec, build_lines, finalize, totals
from tally_core.billing.payments import charge
from tally_core.billing.prices import Price, Recurring, Tier
from tally_core.errors import InvalidRequest

D = Decimal


JAN1, FEB1, MAR1 = 1735689600, 1738368000, 1740787200  # 2025-01-01, 02-01, 03-01 00:00 UTC

# Seed 000 (Alpaca AI): 100 USD/month licensed fee; usage graduated 0–1,000 at 0 USD, 1,001+ at 0.04 USD (4¢).
LICENSE = Price(id="price_license", currency="usd", product="prod_license", unit_amount_decimal=D(10000),
                recurring=Recurring("month"))
TOKENS = Price(id="price_tokens", currency="usd", product="prod_tokens", billing_scheme="tiered",
               tiers_mode="graduated", tiers=(Tier(1000, D(0)), Tier(None, D(4))),
               recurring=Recurring("month", usage_type="metered", meter="mtr_tokens"))


def license_line(start: int = FEB1, end: int = MAR1) -> LineSpec:
    return LineSpec("il_license", LICENSE, 1, start, end, subscription_item="si_license")


def usage_line(usage, start: int = JAN1, end: int = FEB1) -> LineSpec:
    return LineSpec("il_tokens", TOKENS, usage, start, end, subscription_item="si_tokens")


def fixed(amount: int) -> LineSpec:  # a line with a precomputed amount, as prorations arrive (reference A.4)
    return LineSpec("il_fixed", LICENSE, 1, JAN1, FEB1, subscription_item="si_license", amount=amount,
                    proration=amount < 0)


def new_draft(*specs: LineSpec, balance: int = 0, reason: str = "subscription_cycle") -> Invoice:
    return inv.draft(id="in_1", customer="cus_1", subscription="sub_1", currency="usd", billing_reason=reason,
                     created=FEB1, period_start=JAN1, period_end=FEB1, lines=build_lines(specs),
                     customer_balance=balance)


def cycle_invoice(usage=2500, balance: int = 0) -> Invoice:
    # §6.6: licensed Feb→Mar in advance + metered Jan→Feb usage in arrears, one invoice on Feb 1.
    return new_draft(license_line(), usage_line(usage), balance=balance)


@pytest.mark.parametrize(("usage", "quantity", "quantity_decimal", "amount"), [
    pytest.param(0, 0, D(0), 0, id="no-usage"),                    # all in the free tier: 0¢
    pytest.param(1000, 1000, D(1000), 0, id="free-tier-full"),     # 1,000 × 0¢ = 0¢ (up_to inclusive)
    pytest.param(1001, 1001, D(1001), 4, id="first-paid-unit"),    # 1,000 × 0¢ + 1 × 4¢ = 4¢
    pytest.param(2500, 2500, D(2500), 6000, id="seed-2500"),       # 1,000 × 0¢ + 1,500 × 4¢ = 6000¢
    pytest.param(D("2500.7"), 2500, D("2500.7"), 6003, id="decimal-usage"),  # 1,500.7 × 4 = 6002.8 → 6003¢
    # Stripe: a period whose usage sums below zero is billed as 0 and the line shows quantity 0.
    pytest.param(-300, 0, D(0), 0, id="negative-usage-clamped"),
    pytest.param(D("-0.5"), 0, D(0), 0, id="negative-decimal-clamped"),
])
def test_metered_line(usage, quantity, quantity_decimal, amount):
    (line,) = build_lines([usage_line(usage)])
    assert (line.quantity, line.quantity_decimal, line.amount, line.usage_type, line.period_start) == (
        quantity, quantity_decimal, amount, "metered", JAN1)


@pytest.mark.parametrize(("specs", "subtotal"), [
    # First invoice at creation (Jan 1): licensed 1 × 10000¢ in advance, no usage yet → 10000¢.
    pytest.param([license_line(JAN1, FEB1)], 10000, id="seed-first-invoice"),
    # Feb 1 cycle: 10000¢ (Feb licensed) + 1,500 × 4¢ = 6000¢ (Jan usage) → 16000¢.
    pytest.param([license_line(), usage_line(2500)], 16000, id="seed-cycle-2500"),
    # Feb 1 cycle with negative January usage: 10000¢ + 0¢ → 10000¢.
    pytest.param([license_line(), usage_line(-40)], 10000, id="seed-cycle-negative-usage"),
    # Feb 1 cycle, usage within the free 1,000: 10000¢ + 0¢ → 10000¢.
    pytest.param([license_line(), usage_line(999)], 10000, id="seed-cycle-free-usage"),
    # Three seats: 3 × 10000¢ = 30000¢, plus 1,001 units → 4¢ → 30004¢.
    pytest.param([LineSpec("il_3", LICENSE, 3, FEB1, MAR1), usage_line(1001)], 30004, id="seats-and-usage"),
])
def test_seed_000_totals(specs, subtotal):
    lines = build_lines(specs)
    assert totals(lines) == (subtotal, subtotal)  # no discount or tax yet: total = subtotal


def test_seed_000_first_and_cycle_invoices():
    # given the subscription created Jan 1, its first invoice finalizes with 10000¢ due
    first = new_draft(license_line(JAN1, FEB1), reason="subscription_create")
    first, balance = finalize(first, customer_balance=0, now=JAN1)
    assert (first.status, first.total, first.amount_due, first.ending_balance, balance) == ("open", 10000, 10000, 0, 0)
    # when 2,500 units are reported in January, the Feb 1 cycle invoice holds both lines
    cycle, _ = finalize(cycle_invoice(2500), customer_balance=0, now=FEB1)
    licensed, metered = cycle.lines
    # then Feb licensed in advance (10000¢) + Jan usage in arrears (6000¢) = 16000¢
    assert (licensed.amount, licensed.period_start, licensed.period_end) == (10000, FEB1, MAR1)
    assert (metered.amount, metered.quantity, metered.period_start, metered.period_end) == (6000, 2500, JAN1, FEB1)
    assert (cycle.subtotal, cycle.total, cycle.amount_due, cycle.amount_remaining) == (16000, 16000, 16000, 16000)


# (balance before, amount_due, ending_balance, status, applied_balance, too_small) on the 16000¢ cycle invoice.
@pytest.mark.parametrize(("balance", "due", "ending", "status", "applied", "too_small"), [
    pytest.param(0, 16000, 0, "open", 0, 0, id="no-balance"),
    # credit 5000: x = 16000 − 5000 = 11000 → due 11000, ending min(0, 11000) = 0; 5000 of credit used.
    pytest.param(-5000, 11000, 0, "open", 5000, 0, id="credit-5000"),
    # credit 20000: x = 16000 − 20000 = −4000 → due 0, ending −4000; 16000 used; nothing due → paid.
    pytest.param(-20000, 0, -4000, "paid", 16000, 0, id="credit-exceeds-total"),
    # credit exactly 16000: x = 0 → due 0, ending 0 → paid.
    pytest.param(-16000, 0, 0, "paid", 16000, 0, id="credit-equals-total"),
    # debit 300 (customer owes): x = 16300 → due 16300, ending 0; the owed 300 moves onto the invoice.
    pytest.param(300, 16300, 0, "open", -300, 0, id="debit-300"),
    # credit 15970: x = 30 < 50¢ USD minimum → not charged, due 0, 30 carried to the balance → paid.
    pytest.param(-15970, 0, 30, "paid", 15970, 30, id="below-minimum-carried"),
    # credit 15950: x = 50 = minimum → charged normally.
    pytest.param(-15950, 50, 0, "open", 15950, 0, id="at-minimum-charged"),
])
def test_customer_balance_at_finalization(balance, due, ending, status, applied, too_small):
    # given a 16000¢ draft and the customer's balance (negative = credit, §4.7)
    draft = cycle_invoice(2500, balance=balance)
    # then before finalization starting_balance is the current balance and ending_balance is null (§6.3)
    assert (draft.status, draft.starting_balance, draft.ending_balance, draft.applied_balance) == (
        "draft", balance, None, 0)
    # when it is finalized
    final, new_balance = finalize(draft, customer_balance=balance, now=FEB1 + 3600, number="INV-0001")
    # then the balance is applied with Stripe's sign convention
    assert (final.amount_due, final.ending_balance, final.status) == (due, ending, status)
    assert (final.starting_balance, final.applied_balance, final.too_small_amount) == (balance, applied, too_small)
    assert new_balance == ending == balance + applied + too_small  # the balance ledger adds up
    assert (final.finalized_at, final.number, final.amount_remaining) == (FEB1 + 3600, "INV-0001", due)
    # nothing due → paid at finalization (§6.5); otherwise collection is attempted right away
    at, none = FEB1 + 3600, None
    assert (final.paid_at, final.next_payment_attempt) == ((at, none) if status == "paid" else (none, at))


@pytest.mark.parametrize(("amounts", "balance", "due", "ending"), [
    # Downgrade-only invoice, total −334 (reference §4.5 classic): x = −334 → due 0, credit grows to −334.
    pytest.param([-667, 333], 0, 0, -334, id="negative-total-becomes-credit"),
    # Same with 300 owed: x = −334 + 300 = −34 → due 0, ending −34.
    pytest.param([-667, 333], 300, 0, -34, id="negative-total-against-debit"),
    # Trial: a $0 invoice is paid at finalization (§6.5).
    pytest.param([0], 0, 0, 0, id="zero-invoice"),
])
def test_zero_due_invoices_are_paid_at_finalization(amounts, balance, due, ending):
    draft = new_draft(*[dataclasses.replace(fixed(a), id=f"il_{i}") for i, a in enumerate(amounts)], balance=balance)
    final, new_balance = finalize(draft, customer_balance=balance, now=FEB1)
    assert (final.amount_due, final.ending_balance, new_balance, final.status) == (due, ending, ending, "paid")


def test_draft_balance_is_refreshed_at_finalization():
    # given a draft made when the customer had no balance, then a 5000¢ credit is granted before finalization
    draft, (final, new_balance) = cycle_invoice(), finalize(cycle_invoice(), customer_balance=-5000, now=FEB1)
    # then finalization uses the balance at that moment: 16000 − 5000 = 11000 due
    assert (draft.amount_due, final.starting_balance, final.amount_due, new_balance) == (16000, -5000, 11000, 0)
    # and the draft itself is untouched: every transition returns a new frozen invoice
    assert draft.status == "draft"
    with pytest.raises(dataclasses.FrozenInstanceError):
        draft.status = "open"  # type: ignore[misc]


def test_totals_leave_room_for_discounts_and_tax():
    # given a 10000¢ line with a 1000¢ item discount and a 6000¢ line
    lines = (dataclasses.replace(build_lines([license_line()])[0], discount_amounts=(DiscountAmount(1000, "di_1"),)),
             build_lines([usage_line(2500)])[0])
    # then subtotal = 9000 + 6000 = 15000 (item discount inside); total = 15000 − 500 invoice discount + 23 tax
    assert totals(lines, invoice_discounts=(500,), tax=23) == (15000, 14523)


def test_lines_keep_order_share_a_currency_and_prorations_are_not_discountable():
    lines = build_lines([fixed(-667), license_line(), usage_line(10)])
    assert [line.amount for line in lines] == [-667, 10000, 0]
    assert [line.discountable for line in lines] == [False, True, True]
    assert lines[1].description == "1 × prod_license"
    eur = dataclasses.replace(LICENSE, id="price_eur", currency="eur")
    with pytest.raises(ValueError, match="mix currencies"):
        build_lines([license_line(), LineSpec("il_eur", eur, 1, FEB1, MAR1)])


def opened(balance: int = 0) -> Invoice:
    return finalize(cycle_invoice(2500, balance=balance), customer_balance=balance, now=FEB1)[0]


# Invoices in each finalized state, one minute after the Feb 1 finalization.
paid = lambda: inv.pay(opened(), charge("pm_card_visa", 16000), FEB1 + 60)  # noqa: E731
voided = lambda: inv.void(opened(), FEB1 + 60)  # noqa: E731
uncollectible = lambda: inv.mark_uncollectible(opened(), FEB1 + 60)  # noqa: E731
VISA = charge("pm_card_visa", 16000)
NOW = FEB1 + 120
PAY, VOID = (lambda i: inv.pay(i, VISA, NOW)), (lambda i: inv.void(i, NOW))
PARK, FINALIZE = (lambda i: inv.mark_uncollectible(i, NOW)), (lambda i: finalize(i, customer_balance=0, now=NOW))
EDIT = lambda i: inv.set_lines(i, (), customer_balance=0)  # noqa: E731
BAD = "status_transition_invalid"


@pytest.mark.parametrize(("make", "action", "code"), [
    pytest.param(cycle_invoice, VOID, BAD, id="void-draft"),          # a draft is deleted, never voided
    pytest.param(cycle_invoice, PAY, BAD, id="pay-draft"),            # "If … isn't finalized, you can't collect"
    pytest.param(cycle_invoice, PARK, BAD, id="uncollectible-draft"),
    pytest.param(paid, PAY, BAD, id="pay-paid"),                      # paid is terminal
    pytest.param(paid, VOID, BAD, id="void-paid"),
    pytest.param(paid, PARK, BAD, id="uncollectible-paid"),
    pytest.param(voided, PAY, BAD, id="pay-void"),                    # void is terminal
    pytest.param(voided, VOID, BAD, id="void-void"),
    pytest.param(uncollectible, PARK, BAD, id="uncollectible-twice"),
    pytest.param(opened, FINALIZE, BAD, id="finalize-open"),          # finalize only from draft
    pytest.param(paid, FINALIZE, BAD, id="finalize-paid"),
    pytest.param(opened, EDIT, "invoice_not_editable", id="edit-open"),  # only drafts are editable
    pytest.param(paid, EDIT, "invoice_not_editable", id="edit-paid"),
])
def test_invalid_transitions(make, action, code):
    invoice = make()
    with pytest.raises(InvalidRequest) as err:
        action(invoice)
    assert (err.value.code, err.value.http_status) == (code, 400)


@pytest.mark.parametrize(("make", "action", "status", "stamp"), [
    pytest.param(opened, PAY, "paid", "paid_at", id="open-pay"),
    pytest.param(opened, VOID, "void", "voided_at", id="open-void"),
    pytest.param(opened, PARK, "uncollectible", "marked_uncollectible_at", id="open-uncollectible"),
    pytest.param(uncollectible, PAY, "paid", "paid_at", id="uncollectible-pay"),
    pytest.param(uncollectible, VOID, "void", "voided_at", id="uncollectible-void"),
])
def test_valid_transitions(make, action, status, stamp):
    after = action(make())
    # terminal or parked invoices stop automatic collection
    assert (after.status, getattr(after, stamp), after.auto_advance, after.next_payment_attempt) == (
        status, NOW, False, None)


RETRY = NOW + 3 * 86400  # the dunning schedule's next try, chosen by the caller


@pytest.mark.parametrize(("pm", "status", "paid_amount", "remaining", "next_attempt", "paid_at"), [
    pytest.param("pm_card_visa", "paid", 16000, 0, None, NOW, id="visa-pays-in-full"),
    pytest.param("pm_card_0002", "open", 0, 16000, RETRY, None, id="generic-decline-stays-open"),
    pytest.param("pm_card_9995", "open", 0, 16000, RETRY, None, id="insufficient-funds-stays-open"),
    pytest.param(None, "open", 0, 16000, RETRY, None, id="no-payment-method-stays-open"),
])
def test_payment_attempt(pm, status, paid_amount, remaining, next_attempt, paid_at):
    # given the open 16000¢ invoice, when one collection attempt is made
    after = inv.pay(opened(), charge(pm, 16000), NOW, next_payment_attempt=RETRY)
    # then it is paid in full, or stays open with the retry scheduled; either way one attempt is counted
    assert (after.status, after.amount_paid, after.amount_remaining, after.next_payment_attempt, after.paid_at) == (
        status, paid_amount, remaining, next_attempt, paid_at)
    assert (after.attempt_count, after.attempted) == (1, True)


def test_payment_for_the_wrong_amount_is_refused():
    with pytest.raises(ValueError):
        inv.pay(opened(), charge("pm_card_visa", 100), NOW)


@pytest.mark.parametrize(("balance", "restore"), [
    pytest.param(-5000, -5000, id="credit-returned"),  # 5000¢ of credit applied → voiding gives it back
    pytest.param(300, 300, id="debit-returned"),       # the 300¢ owed moved onto the invoice → owed again
    pytest.param(0, 0, id="nothing-applied"),
])
def test_voiding_returns_the_applied_balance(balance, restore):
    final = opened(balance)
    assert inv.unapplied_balance(final) == 0  # not voided: nothing to give back
    assert inv.unapplied_balance(inv.void(final, NOW)) == restore


def test_to_stripe_basil_shape():
    final, _ = finalize(cycle_invoice(2500, balance=-5000), customer_balance=-5000, now=NOW)
    obj = invoice_wire.to_stripe(final)
    keys = ("object", "customer", "currency", "status", "subtotal", "total", "amount_due", "amount_paid",
            "amount_remaining", "starting_balance", "ending_balance", "billing_reason", "period_start", "period_end",
            "created", "attempt_count", "attempted", "auto_advance", "livemode")
    # credit 5000 on 16000: due 11000, ending 0 (see the balance table above)
    assert [obj[k] for k in keys] == ["invoice", "cus_1", "usd", "open", 16000, 16000, 11000, 0, 11000, -5000, 0,
                                      "subscription_cycle", JAN1, FEB1, FEB1, 0, False, True, False]
    assert obj["parent"]["subscription_details"]["subscription"] == "sub_1"
    assert obj["status_transitions"] == {"finalized_at": NOW, "paid_at": None, "voided_at": None,
                                         "marked_uncollectible_at": None}
    lines, metered = obj["lines"], obj["lines"]["data"][1]
    assert (lines["object"], lines["url"], lines["has_more"]) == ("list", "/v1/invoices/in_1/lines", False)
    assert (metered["object"], metered["invoice"], metered["pricing"]["price_details"]) == (
        "line_item", "in_1", {"price": "price_tokens", "product": "prod_tokens"})
    item = metered["parent"]["subscription_item_details"]
    assert (item["subscription_item"], item["subscription"], item["proration"]) == ("si_tokens", "sub_1", False)
    assert (metered["period"], metered["quantity"], metered["quantity_decimal"], metered["amount"]) == (
        {"start": JAN1, "end": FEB1}, 2500, "2500", 6000)


def test_to_stripe_is_read_by_the_stripe_sdk():
    # the official SDK types objects by `object` and reads the basil+ paths
    sdk = stripe.Invoice.construct_from(invoice_wire.to_stripe(paid()), "sk_test_x")
    assert sdk.status == "paid" and sdk.amount_paid == 16000
    assert sdk.parent.subscription_details.subscription == "sub_1"
    line = sdk.lines.data[0]
    assert isinstance(line, stripe.InvoiceLineItem)
    assert line.pricing.price_details.price == "price_license"
    assert line.parent.subscription_item_details.subscription_item == "si_license"
    assert D(str(line.quantity_decimal)) == 1
    # a manual invoice (no subscription) has no parent and, before finalization, a null ending_balance
    manual = inv.draft(id="in_2", customer="cus_1", currency="usd", billing_reason="manual", created=JAN1,
                       period_start=JAN1, period_end=JAN1)
    assert stripe.Invoice.construct_from(invoice_wire.to_stripe(manual), "sk_test_x").parent is None
    assert (invoice_wire.to_stripe(manual)["ending_balance"], invoice_wire.to_stripe(manual)["lines"]["data"]) == (None, [])
