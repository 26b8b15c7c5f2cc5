"""Time acting on a book: everything schedule.py says is due, each at the moment it falls due.

A decision first lets time act up to the command's time, so it makes no difference how often time arrives
(a tick every second or one advance of a month give the same events).
"""

from __future__ import annotations

from dataclasses import replace

from .collection import attempt_collection, finalize, void
from .context import Run
from .invoicing import cycle_specs, draft, pending_lines
from .proration import full_amount
from .schedule import due_at, due_invoices, due_subscriptions, invoice_due, subscription_due
from .subscriptions import Subscription, SubscriptionStatus as S, roll_over


def renew(run: Run, sub: Subscription, at: int) -> None:
    """A period ends: bill pending items, metered usage in arrears and licensed items in advance on one draft
    (§6.6, A.5 step 1)."""
    start, end = sub.current_period_start, sub.current_period_end
    if sub.cancel_at_period_end or (sub.cancel_at is not None and sub.cancel_at <= end):
        # §3.5: the subscription ends with the period; its last usage is still billed in arrears, and "any
        # pending prorations are left in place and still collected at the end of the period".
        ended = replace(sub, status=S.CANCELED, ended_at=at, canceled_at=sub.canceled_at or at)
        pending = pending_lines(run, sub)
        if pending or any(it.metered for it in sub.items):
            last = draft(run, sub, cycle_specs(run, sub, sub, licensed=False), reason="subscription_cycle", at=at,
                         start=start, end=end, finalizes_at=at + run.grace, pending=pending)
            ended = replace(ended, latest_invoice=last.id)
            run.save_invoice("invoice.created", last, at)
        run.save_sub("customer.subscription.deleted", ended, sub, at)
        return
    new = roll_over(sub)
    # What each licensed item is billed for the new period (flexible mode credits from it, proration.py).
    new = replace(new, items=tuple(it if it.metered else replace(it, billed=full_amount(it)) for it in new.items))
    pending = pending_lines(run, sub)
    cycle = draft(run, new, cycle_specs(run, sub, new), reason="subscription_cycle", at=at, start=start, end=end,
                  finalizes_at=at + run.grace, auto_advance=sub.status != S.UNPAID, pending=pending)
    run.save_sub("customer.subscription.updated", replace(new, latest_invoice=cycle.id), sub, at)
    run.save_invoice("invoice.created", cycle, at)


def expire(run: Run, sub: Subscription, at: int) -> None:
    """An incomplete subscription whose first invoice stayed unpaid for 23 hours (§3.6)."""
    first = run.book.invoices.get(sub.latest_invoice) if sub.latest_invoice else None
    if first is not None and first.status in ("open", "uncollectible"):
        void(run, first, at)
    sub = run.book.subscriptions[sub.id]
    run.save_sub("customer.subscription.updated", replace(sub, status=S.INCOMPLETE_EXPIRED, ended_at=at), sub, at)


def expire_pending_update(run: Run, sub: Subscription, at: int) -> None:
    """§3.6: a pending update whose invoice stayed unpaid 23 hours is dropped, and its invoice voided (it bills a
    change that never happened)."""
    invoice = run.book.invoices.get(sub.pending_update.invoice)
    if invoice is not None and invoice.status in ("open", "uncollectible"):
        void(run, invoice, at)
    sub = run.book.subscriptions[sub.id]
    run.save_sub("customer.subscription.pending_update_expired", replace(sub, pending_update=None), sub, at)


_SUBSCRIPTION_DUE = {"renewal": renew, "incomplete_expiry": expire, "pending_update_expiry": expire_pending_update}


def advance(run: Run, now: int) -> None:
    """Let time act on the book up to `now`, each change at the moment it falls due."""
    for _ in range(100_000):
        at = due_at(run.book)
        if at is None or at > now:
            return
        for due in due_subscriptions(run.book, at):
            sub = run.book.subscriptions[due.id]
            if subscription_due(sub) != due:  # what came before at this moment changed it
                continue
            _SUBSCRIPTION_DUE[due.kind](run, sub, at)
        for due in due_invoices(run.book, at):
            inv = run.book.invoices[due.id]
            if invoice_due(inv) != due:
                continue
            if due.kind == "draft_finalization":
                finalize(run, inv, at)
            else:
                attempt_collection(run, inv, at)
    raise RuntimeError(f"time did not settle in book {run.book.key}")
