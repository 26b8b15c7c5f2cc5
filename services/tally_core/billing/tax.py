"""The tax stage of invoicing (reference §6.7, A.5 step 3): where tax will be computed.

Today tally has no tax rates, so no tax applies: `apply` returns the lines unchanged and no taxes. Issue 10
fills this stage: "Stripe always applies discounts before exclusive tax" (§5.3), so each line's tax is
computed on its amount after its discounts and its share of the invoice-level ones, rounded half-up per
line (§6.7, "line item level"); inclusive tax is inside the amount (4.50 → 0.21 at 5 %), exclusive tax is
added to the total (4.50 → 0.23). The invoice's `total_taxes` are the lines' taxes summed per rate
(`per_rate`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .invoices import DiscountAmount, InvoiceLine, TaxAmount


def per_rate(lines: Iterable[InvoiceLine]) -> tuple[TaxAmount, ...]:
    """The invoice's `total_taxes`: the lines' taxes summed per (tax rate, inclusive), in first-seen order."""
    out: dict[tuple[str, bool], TaxAmount] = {}
    for line in lines:
        for t in line.taxes:
            key = (t.tax_rate, t.inclusive)
            seen = out.get(key)
            out[key] = t if seen is None else TaxAmount(
                seen.amount + t.amount, t.tax_rate, seen.taxable_amount + t.taxable_amount, t.inclusive,
                seen.taxability_reason)
    return tuple(out.values())


def apply(lines: Iterable[InvoiceLine], invoice_discounts: Iterable[DiscountAmount] = ()
          ) -> tuple[tuple[InvoiceLine, ...], tuple[TaxAmount, ...]]:
    """(lines with their `taxes`, the invoice's taxes per rate). No tax rates yet: no line is taxed."""
    lines = tuple(lines)
    return lines, per_rate(lines)
