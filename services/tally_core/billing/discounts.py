"""The discount stage of invoicing (reference §5.3, A.5 step 2): where coupons will take amounts off.

Today tally has no coupons, so no discount applies: `apply` returns the lines unchanged and no invoice-level
discount. Issue 10 fills this stage, in Stripe's order:
1. item-level discounts first ("Line item discounts are applied before invoice discounts"), on `discountable`
   lines only (prorations are not: "You can't discount proration line items further", §4.4); each sets the
   line's `discount_amounts` (an item discount is inside `subtotal`, §6.3);
2. then subscription/invoice-level discounts in the order given, `amount_off` spread across the discountable
   lines in proportion (500 over 1000/2000 → 166/334), never below zero ("doesn't increase the Customer
   account balance if the discount is greater than the invoice amount").
The stage always recomputes from the lines' gross `amount`, so running it again (the finalization refresh
of late usage, §1.10) gives the same result.
"""

from __future__ import annotations

from collections.abc import Iterable

from .invoices import DiscountAmount, InvoiceLine


def apply(lines: Iterable[InvoiceLine]) -> tuple[tuple[InvoiceLine, ...], tuple[DiscountAmount, ...]]:
    """(lines with their item-level `discount_amounts`, the invoice-level discount amounts). No coupons yet."""
    return tuple(lines), ()
