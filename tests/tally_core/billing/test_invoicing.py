"""The invoicing pipeline (invoicing.py): specs → lines → discounts → tax → totals → balance, worked by hand.

Today's discount and tax stages apply nothing (no coupons, no tax rates); these tests pin their place in the
order and show that what a stage returns reaches the totals, so filling a stage is the only change needed.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tally_core.billing import discounts, invoices as inv, tax
from tally_core.billing.invoices import DiscountAmount, LineSpec, TaxAmount, build_lines
from tally_core.billing.invoicing import assemble
from tally_core.billing.prices import Price, Recurring
from tally_core.billing.proration import first_period_factor, prorated_amount
from tally_core.billing.subscriptions import Item, Subscription

JAN1, JAN15, FEB1, MAR1 = 1735689600, 1736899200, 1738368000, 1740787200  # 2025-01-01, -15, 02-01, 03-01 UTC
PLAN = Price(id="price_plan", currency="usd", product="prod_plan", unit_amount_decimal=Decimal(10000),
             recurring=Recurring("month"))


def draft(balance: int = 0) -> inv.Invoice:
    return inv.draft(id="in_1", customer="cus_1", subscription="sub_1", currency="usd",
                     billing_reason="subscription_cycle", created=FEB1, period_start=JAN1, period_end=FEB1,
                     customer_balance=balance)


LINES = build_lines([LineSpec("il_1", PLAN, 1, FEB1, MAR1, subscription_item="si_1"),
                     LineSpec("il_2", PLAN, 2, FEB1, MAR1, subscription_item="si_2")])  # 10000 + 20000


def test_todays_discount_and_tax_stages_change_nothing():
    assert discounts.apply(LINES) == (LINES, ())
    assert tax.apply(LINES, ()) == (LINES, ())
    out = assemble(draft(), LINES, customer_balance=0)
    assert (out.subtotal, out.total, out.amount_due, out.total_discount_amounts, out.total_taxes) == (
        30000, 30000, 30000, (), ())


def test_stages_run_in_stripes_order_and_their_amounts_reach_the_totals():
    seen = []

    def discount_stage(lines):
        seen.append("discounts")
        # A.5 step 2: 1000 off the first line (item level), then 500 off the invoice
        first, *rest = lines
        lines = (replace(first, discount_amounts=(DiscountAmount(1000, "di_item"),)), *rest)
        return lines, (DiscountAmount(500, "di_invoice"),)

    def tax_stage(lines, invoice_discounts):
        # discounts come before tax (§5.3): the tax stage sees the invoice-level discount already
        seen.append(("tax", [d.amount for d in invoice_discounts]))
        return tuple(lines), (TaxAmount(1425, "txr_5", taxable_amount=28500),)

    out = assemble(draft(balance=300), LINES, customer_balance=300, discount_stage=discount_stage,
                   tax_stage=tax_stage)
    assert seen == ["discounts", ("tax", [500])]
    # subtotal 30000 − 1000 item discount = 29000; − 500 invoice discount + 1425 tax = 29925; +300 owed → 30225
    assert (out.subtotal, out.total, out.total_excluding_tax, out.amount_due) == (29000, 29925, 28500, 30225)
    assert out.total_discount_amounts == (DiscountAmount(1000, "di_item"), DiscountAmount(500, "di_invoice"))


def test_total_taxes_are_the_lines_taxes_per_rate():
    a = TaxAmount(23, "txr_5", taxable_amount=450)
    b = TaxAmount(45, "txr_5", taxable_amount=900)
    taxed = (replace(LINES[0], taxes=(a,)), replace(LINES[1], taxes=(b,)))
    # §6.7: 0.23 + 0.45 = 0.68 on 13.50
    assert tax.per_rate(taxed) == (TaxAmount(68, "txr_5", taxable_amount=1350),)


def sub(anchor: int, now: int) -> Subscription:
    return Subscription(id="sub_1", customer="cus_1", items=(Item("si_1", PLAN, 1, now),), anchor=anchor,
                        created=now, current_period_start=now, current_period_end=anchor)


def test_a_future_anchor_prorates_the_first_period():
    # Jan 15 → Feb 1 of a Jan 1 → Feb 1 month: 17 of 31 days; 10000 × 17/31 = 5483.87 → 5484 (A.4, A.1)
    factor = first_period_factor(sub(FEB1, JAN15), JAN15)
    assert factor == Decimal(17) / Decimal(31)
    assert prorated_amount(PLAN, 1, factor) == 5484
    assert first_period_factor(sub(JAN15, JAN15), JAN15) is None  # anchored now: a full first period
