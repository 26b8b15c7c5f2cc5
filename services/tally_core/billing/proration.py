"""Proration (reference §4, A.4): what a mid-period change credits and charges, by the second.

A licensed item is billed in advance for its period, so a change in the middle of it is settled in two lines
per changed item (A.4 `proration_lines`), both `proration=True`, `discountable=False`, covering
[proration date, period end]:
- a credit, "Unused time on <old> after <date>", for what was billed and will not be used;
- a debit, "Remaining time on <new> after <date>", for the new price and quantity until the period ends.
Each is the full period's amount × the share of the period left, rounded half-up once (A.1), so a credit and a
debit never net before rounding (§4.5: −667 + 333 → −334).

The share is (period end − proration date) / (period end − period start) (§4.1), where the period is the full
one from boundary to boundary (a partial first period before a future anchor, or one cut short by
`cancel_at`, is billed as its share of the full one, so its changes are too).

Billing modes differ in the credit only (§4.5): `classic` credits the item's current price and quantity,
`flexible` credits what was last billed for it (`Item.billed`), so a change made with
`proration_behavior=none` and then undone credits nothing twice.

Metered items are never prorated ("Usage-based billing isn't subject to proration", §4.3); they are settled
by usage (handlers/changes.py). Discounts (issue 10) will be baked into these amounts, since "You can't
discount proration line items further" (§4.4): `full_amount` is the one place to take them off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from .periods import add_interval
from .prices import Price
from .pricing import price_amount, to_minor
from .subscriptions import Item, Subscription


@dataclass(frozen=True, slots=True)
class Proration:
    """One proration line, before it becomes a pending invoice item: `amount` signed (a credit is negative)."""

    item: str
    price: Price
    quantity: int
    amount: int
    period_start: int
    period_end: int
    description: str

    @property
    def credit(self) -> bool:
        return self.amount < 0


def first_period_factor(sub: Subscription, now: int) -> Decimal | None:
    """With a future anchor the first period is partial: the share of a full period it covers (A.4).

    None when the first period is a full one (the anchor is now)."""
    if sub.anchor <= now:
        return None
    interval, count = sub.interval
    full_start = add_interval(sub.anchor, interval, count, -1, day_of_month=sub.day_of_month)
    return Decimal(sub.current_period_end - now) / Decimal(sub.anchor - full_start)


def share(sub: Subscription, start: int, end: int) -> Decimal:
    """The share of the subscription's full period that [start, end) covers (§4.1, by the second)."""
    natural_start, natural_end = sub.natural_period()
    return Decimal(end - start) / Decimal(natural_end - natural_start)


def prorated_amount(price: Price, quantity: int, factor: Decimal) -> int:
    """A.4: the full amount × time left / period length, rounded to minor units once (A.1)."""
    return to_minor(Decimal(price_amount(price, quantity)) * factor)


def full_amount(item: Item) -> int:
    """What a full period of the item costs at its price and quantity."""
    return price_amount(item.price, item.quantity)


def _name(item: Item) -> str:
    name = item.price.nickname or item.price.product or item.price.id
    return name if item.quantity == 1 else f"{item.quantity} × {name}"


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%d %b %Y")


def credit(sub: Subscription, item: Item, start: int, end: int) -> Proration | None:
    """Unused time on `item` over [start, end): classic credits its current price, flexible what was billed."""
    if item.metered:
        return None
    base = item.billed if sub.flexible else full_amount(item)
    if not base:
        return None
    amount = -to_minor(Decimal(base) * share(sub, start, end))
    return Proration(item.id, item.price, item.quantity, amount, start, end,
                     f"Unused time on {_name(item)} after {_date(start)}") if amount else None


def debit(sub: Subscription, item: Item, start: int, end: int) -> Proration | None:
    """Remaining time on `item` over [start, end) at its (new) price and quantity."""
    if item.metered:
        return None
    amount = to_minor(Decimal(full_amount(item)) * share(sub, start, end))
    return Proration(item.id, item.price, item.quantity, amount, start, end,
                     f"Remaining time on {_name(item)} after {_date(start)}") if amount else None


def changed(old: Item | None, new: Item | None) -> bool:
    """§4.3: a price or quantity change, an item added or removed, triggers prorations (metadata does not)."""
    if old is None or new is None:
        return True
    return old.price.id != new.price.id or old.quantity != new.quantity or old.price != new.price


def item_prorations(old: Subscription, new: Subscription, at: int) -> list[Proration]:
    """The proration lines of changing `old` into `new` at `at` within one period (no reset): per changed
    licensed item its credit, then its debit; items in the old order, then the added ones."""
    end = old.current_period_end
    if not old.current_period_start <= at < end:
        return []
    before = {it.id: it for it in old.items}
    after = {it.id: it for it in new.items}
    out: list[Proration] = []
    for item_id in [*before, *(i for i in after if i not in before)]:
        o, n = before.get(item_id), after.get(item_id)
        if not changed(o, n):
            continue
        for line in (o and credit(old, o, at, end), n and debit(new, n, at, end)):
            if line is not None:
                out.append(line)
    return out


def period_end_prorations(old: Subscription, new_end: int) -> list[Proration]:
    """§3.5: moving `cancel_at` within the current period moves its end: time added is charged ("+30 USD"),
    time taken away is credited ("−30 USD"), for each licensed item at its current price."""
    old_end = old.current_period_end
    out = []
    for item in old.items:
        if new_end > old_end:
            line = debit(old, item, old_end, new_end)
        else:
            line = credit(old, item, new_end, old_end)
        if line is not None:
            out.append(line)
    return out
