"""One schedule of what is due in a book: the only place that says when time next changes something.

Time acts on a book in five ways, each at the moment it falls due:
- a subscription's period ends: it renews, or ends when `cancel_at_period_end` or `cancel_at` (§3.5, §6.6);
- a pending update waits 23 hours for its invoice to be paid, then expires (§3.6);
- an `incomplete` subscription's first invoice stays unpaid 23 hours: `incomplete_expired` (§3.6);
- a cycle draft's grace period ends: it finalizes, late usage included (§1.10);
- an open invoice reaches `next_payment_attempt`: payment is retried (§3.6).

`advance` (advance.py) handles what is due at one moment in this order: subscriptions first, by id, then
invoices, by id, each re-checked on the book as it is then (a renewal's new draft is due later, or, with a
grace of 0, at the next pass of the same moment). `due_at` is when the next thing falls due, and `usage_needs`
is the usage those things will read, so the worker can fetch it before deciding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

from .book import Book
from .invoices import Invoice
from .subscriptions import RENEWING, Subscription, SubscriptionStatus as S

INCOMPLETE_EXPIRES = 23 * 3600  # "If the first invoice is not paid within 23 hours … incomplete_expired" (§3.6)
# A pending update "expires 23 hours" after it is made, like an incomplete first invoice (seed 004, §3.6).
PENDING_EXPIRES = 23 * 3600

Kind = Literal["renewal", "incomplete_expiry", "pending_update_expiry", "draft_finalization", "payment_retry"]
INVOICE_KINDS = ("draft_finalization", "payment_retry")


@dataclass(frozen=True, slots=True)
class Due:
    """One thing time will do: `kind` to the object `id` at `at`."""

    at: int
    kind: Kind
    id: str


def subscription_due(sub: Subscription) -> Due | None:
    if sub.pending_update is not None and sub.pending_update.expires_at < sub.current_period_end:
        return Due(sub.pending_update.expires_at, "pending_update_expiry", sub.id)
    if sub.status in RENEWING:
        return Due(sub.current_period_end, "renewal", sub.id)
    if sub.status == S.INCOMPLETE:
        return Due(sub.created + INCOMPLETE_EXPIRES, "incomplete_expiry", sub.id)
    return None


def invoice_due(inv: Invoice) -> Due | None:
    # auto_advance=false stops both: Stripe's "pause automatic collection" (§6.2), also set when a
    # subscription is canceled or unpaid.
    if inv.status == "draft" and inv.auto_advance and inv.automatically_finalizes_at is not None:
        return Due(inv.automatically_finalizes_at, "draft_finalization", inv.id)
    if inv.status == "open" and inv.auto_advance and inv.next_payment_attempt is not None:
        return Due(inv.next_payment_attempt, "payment_retry", inv.id)
    return None


def _all(book: Book) -> Iterator[Due]:
    for sub in book.subscriptions.values():
        if (d := subscription_due(sub)) is not None:
            yield d
    for inv in book.invoices.values():
        if (d := invoice_due(inv)) is not None:
            yield d


def due_at(book: Book) -> int | None:
    """When time next changes something in this book: a renewal, a grace period's end, a payment retry."""
    return min((d.at for d in _all(book)), default=None)


def due_subscriptions(book: Book, at: int) -> list[Due]:
    """What falls due at `at` for subscriptions, in the order it is handled (by subscription id)."""
    return sorted((d for d in map(subscription_due, book.subscriptions.values()) if d is not None and d.at == at),
                  key=lambda d: d.id)


def due_invoices(book: Book, at: int) -> list[Due]:
    """What falls due at `at` for invoices, in the order it is handled (by invoice id)."""
    return sorted((d for d in map(invoice_due, book.invoices.values()) if d is not None and d.at == at),
                  key=lambda d: d.id)


def schedule(book: Book, until: int) -> list[Due]:
    """Everything due by `until` as far as it is known now (what is due sets off more: a renewal's draft)."""
    return sorted((d for d in _all(book) if d.at <= until), key=lambda d: (d.at, d.kind in INVOICE_KINDS, d.id))


def usage_needs(book: Book, at: int) -> set[tuple[str, str, int, int]]:
    """The (meter, customer, start, end) reads time will make in this book by `at`, as far as they are known
    now (the next renewal and drafts finishing their grace): the worker fetches them before deciding."""
    needs = set()
    for due in schedule(book, at):
        if due.kind == "renewal":
            sub = book.subscriptions[due.id]
            # A renewal bills the ended period's metered usage in arrears (§6.6).
            start = sub.current_period_start
            needs.update((it.price.recurring.meter, sub.customer, max(it.since or start, start),
                          sub.current_period_end) for it in sub.items if it.metered)
        elif due.kind == "draft_finalization":
            inv = book.invoices[due.id]
            sub = book.subscriptions.get(inv.subscription) if inv.subscription else None
            if sub is None:
                continue
            # Finalization re-reads the metered lines' usage: late usage counts until then (§1.10).
            meters = {it.id: it.price.recurring.meter for it in sub.items if it.metered}
            needs.update((meters[line.subscription_item], inv.customer, line.period_start, line.period_end)
                         for line in inv.lines if line.subscription_item in meters and line.invoice_item is None)
    return needs
