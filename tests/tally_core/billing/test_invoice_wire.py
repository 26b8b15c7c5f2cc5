"""The fold keeps every field an invoice and its lines carry: from_stripe(to_stripe(x)) == x, discounts and
taxes included (reference §6.3, §6.4); with neither, the wire form is the one old events hold."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

from hypothesis import given, strategies as st

from tally_core.billing import invoice_wire, invoices as inv
from tally_core.billing.invoices import DiscountAmount, InvoiceLine, TaxAmount

D = Decimal
JAN1, FEB1 = 1735689600, 1738368000


def line(**kw) -> InvoiceLine:
    base = dict(id="il_1", subscription_item="si_1", price_id="price_1", description="1 × Plan", quantity=1,
                quantity_decimal=D(1), amount=10000, period_start=JAN1, period_end=FEB1, product="prod_1",
                unit_amount_decimal=D(10000))
    return InvoiceLine(**{**base, **kw})


def invoice(lines, **kw) -> inv.Invoice:
    return inv.Invoice(**{**dict(id="in_1", customer="cus_1", subscription="sub_1", currency="usd", status="draft",
                                 billing_reason="subscription_cycle", created=FEB1, period_start=JAN1,
                                 period_end=FEB1, lines=tuple(lines)), **kw})


def round_trip(x: inv.Invoice) -> inv.Invoice:
    return invoice_wire.from_stripe(json.loads(json.dumps(invoice_wire.to_stripe(x))))  # through JSON, as the log holds it


# Worked example (§6.7): a 5.00 line with 10 % off (0.50) and exclusive 5 % tax on 4.50 → 0.23 (0.225 rounded).
TEN_OFF = DiscountAmount(50, "di_10pct")
VAT = TaxAmount(23, "txr_5pct", taxable_amount=450)
DISCOUNTED = line(amount=500, discount_amounts=(TEN_OFF,), taxes=(VAT,))


def test_a_discounted_taxed_line_survives_the_fold():
    draft = inv.set_lines(invoice([]), [DISCOUNTED], customer_balance=0, taxes=(VAT,))
    # subtotal 450 (the item discount is inside it, §6.3); total = 450 + 23 exclusive tax = 473
    assert (draft.subtotal, draft.total, draft.total_excluding_tax, draft.amount_due) == (450, 473, 450, 473)
    assert draft.total_discount_amounts == (TEN_OFF,) and draft.total_taxes == (VAT,)
    assert round_trip(draft) == draft


def test_the_wire_shapes_are_stripes():
    draft = inv.set_lines(invoice([]), [DISCOUNTED], customer_balance=0, invoice_discounts=(DiscountAmount(
        100, "di_5off"),), taxes=(VAT,))
    obj = invoice_wire.to_stripe(draft)
    wire_line = obj["lines"]["data"][0]
    assert wire_line["discount_amounts"] == [{"amount": 50, "discount": "di_10pct"}]
    assert wire_line["discounts"] == ["di_10pct"]
    assert wire_line["taxes"] == [{"amount": 23, "tax_behavior": "exclusive", "tax_rate_details": {
        "tax_rate": "txr_5pct"}, "taxability_reason": None, "taxable_amount": 450, "type": "tax_rate_details"}]
    # total_discount_amounts: every discount once, line-level and invoice-level (§6.3)
    assert obj["total_discount_amounts"] == [{"amount": 50, "discount": "di_10pct"},
                                             {"amount": 100, "discount": "di_5off"}]
    # 450 − 100 invoice discount + 23 tax = 373; excluding tax 350
    assert (obj["subtotal"], obj["total"], obj["total_excluding_tax"], obj["subtotal_excluding_tax"]) == (
        450, 373, 350, 450)
    assert round_trip(draft) == draft


def test_inclusive_tax_is_inside_the_total():
    # §6.7: inclusive 5 % on 4.50 → 0.21 included; the total stays 450, excluding tax 429.
    tax = TaxAmount(21, "txr_incl", taxable_amount=429, inclusive=True)
    draft = inv.set_lines(invoice([]), [line(amount=450, taxes=(tax,))], customer_balance=0, taxes=(tax,))
    assert (draft.total, draft.total_excluding_tax, draft.subtotal_excluding_tax) == (450, 429, 429)
    assert round_trip(draft) == draft


def test_without_discounts_or_taxes_the_wire_form_is_unchanged():
    # What every event written before discounts existed holds: empty lists, *_excluding_tax equal to the amounts.
    obj = invoice_wire.to_stripe(inv.set_lines(invoice([]), [line()], customer_balance=0))
    assert (obj["total_discount_amounts"], obj["total_taxes"], obj["discounts"]) == ([], [], [])
    assert (obj["subtotal_excluding_tax"], obj["total_excluding_tax"]) == (obj["subtotal"], obj["total"]) == (
        10000, 10000)
    wire_line = obj["lines"]["data"][0]
    assert (wire_line["discounts"], wire_line["discount_amounts"], wire_line["taxes"]) == ([], [], [])


ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
amounts = st.integers(-10**9, 10**9)
discount_amounts = st.builds(DiscountAmount, amounts, ids.map(lambda s: f"di_{s}"))
tax_amounts = st.builds(TaxAmount, amounts, ids.map(lambda s: f"txr_{s}"), amounts, st.booleans(),
                        st.none() | st.sampled_from(["standard_rated", "not_collecting"]))
lines = st.builds(
    line, id=ids.map(lambda s: f"il_{s}"), amount=amounts, proration=st.booleans(),
    quantity_decimal=st.decimals(0, 10**6, places=3).map(lambda d: d.normalize()),
    discount_amounts=st.lists(discount_amounts, max_size=3).map(tuple),
    taxes=st.lists(tax_amounts, max_size=3).map(tuple),
    subscription_item=st.none() | ids.map(lambda s: f"si_{s}"),
    invoice_item=st.none() | ids.map(lambda s: f"ii_{s}"))


@given(st.lists(lines, max_size=4), st.lists(discount_amounts, max_size=3), st.lists(tax_amounts, max_size=3),
       st.integers(-10**6, 10**6), st.sampled_from(["draft", "open", "paid", "void", "uncollectible"]))
def test_from_stripe_inverts_to_stripe(lines_, invoice_discounts, taxes, balance, status):
    x = inv.set_lines(invoice([]), [dataclasses.replace(ln, quantity=int(ln.quantity_decimal)) for ln in lines_],
                      customer_balance=balance, invoice_discounts=invoice_discounts, taxes=taxes)
    x = dataclasses.replace(x, status=status)
    assert round_trip(x) == x
