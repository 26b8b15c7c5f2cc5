"""Proration (reference §4, A.4): where a partial period's amount is computed.

Today one proration exists: the partial first period before a future `billing_cycle_anchor` (§3.3, §4.2 "On
create, `proration_behavior` governs the partial period before a future billing_cycle_anchor"). Issue 9 adds
the credit and debit lines of a mid-period change here (A.4 `proration_lines`: "Unused time on <old>" /
"Remaining time on <new>", both `proration=True`, `discountable=False`, period [proration_date, period_end]),
left as pending invoice items (invoice_items.py) for the next invoice.
"""

from __future__ import annotations

from decimal import Decimal

from .periods import add_interval
from .prices import Price
from .pricing import price_amount, to_minor
from .subscriptions import Subscription


def first_period_factor(sub: Subscription, now: int) -> Decimal | None:
    """With a future anchor the first period is partial: the share of a full period it covers (A.4).

    None when the first period is a full one (the anchor is now)."""
    if sub.anchor <= now:
        return None
    interval, count = sub.interval
    full_start = add_interval(sub.anchor, interval, count, -1, day_of_month=sub.day_of_month)
    return Decimal(sub.anchor - now) / Decimal(sub.anchor - full_start)


def prorated_amount(price: Price, quantity: int, factor: Decimal) -> int:
    """A.4: the full amount × time left / period length, rounded to minor units once (A.1)."""
    return to_minor(Decimal(price_amount(price, quantity)) * factor)
