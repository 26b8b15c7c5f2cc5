"""`invoice.finalize`, `invoice.pay`, `invoice.void`, `invoice.mark_uncollectible` (reference §6.1), and
the upcoming invoice that `POST /v1/invoices/create_preview` shows (previews.py, no events)."""

from __future__ import annotations

from dataclasses import replace

from ...errors import InvalidRequest, invalid
from .. import invoice_wire, invoices as inv_
from ..collection import after_payment, attempt_collection, finalize, void
from ..context import Run
from ..invoicing import cycle_specs, draft, pending_lines
from ..payments import card_error
from ..subscriptions import RENEWING, SubscriptionStatus as S, roll_over


def invoice_finalize(run: Run, now: int) -> dict:
    inv = run.invoice(run.command.object_id)
    if run.params.auto_advance is not None:
        inv = replace(inv, auto_advance=run.params.auto_advance)
    finalize(run, inv, now, collect=inv.auto_advance)
    return invoice_wire.to_stripe(run.book.invoices[inv.id])


def invoice_pay(run: Run, now: int) -> dict:
    inv = run.invoice(run.command.object_id)
    params = run.params
    if inv.status == "draft":
        finalize(run, inv, now, collect=False)
        inv = run.book.invoices[inv.id]
    if inv.status not in ("open", "uncollectible"):
        raise InvalidRequest("Invoice is already paid." if inv.status == "paid"
                             else f"You can't pay an invoice with status {inv.status}.")
    if params.paid_out_of_band:
        paid = replace(inv, status="paid", paid_at=now, amount_paid=inv.amount_remaining, amount_remaining=0,
                       next_payment_attempt=None, auto_advance=False)
        run.save_invoice("invoice.paid", paid, now)
        after_payment(run, paid, now)
    elif not attempt_collection(run, inv, now, params.payment_method or None, retry=False):
        run.error = card_error(run.last_outcome)
    return invoice_wire.to_stripe(run.book.invoices[inv.id])


def invoice_void(run: Run, now: int) -> dict:
    inv = run.invoice(run.command.object_id)
    void(run, inv, now)
    sub = run.subscription_of(inv)
    if sub is not None and sub.status == S.INCOMPLETE and inv.billing_reason == "subscription_create":
        # "Voiding the first invoice of an incomplete sub → incomplete_expired" (§3.6).
        run.save_sub("customer.subscription.updated", replace(sub, status=S.INCOMPLETE_EXPIRED, ended_at=now),
                     sub, now)
    elif sub is not None and sub.pending_update is not None and sub.pending_update.invoice == inv.id:
        # The change waited for this invoice (§3.6 pending_if_incomplete): voided, it never happens.
        run.save_sub("customer.subscription.pending_update_expired", replace(sub, pending_update=None), sub, now)
    return invoice_wire.to_stripe(run.book.invoices[inv.id])


def invoice_mark_uncollectible(run: Run, now: int) -> dict:
    inv = inv_.mark_uncollectible(run.invoice(run.command.object_id), now)
    run.save_invoice("invoice.marked_uncollectible", inv, now)
    # "Invoices marked as uncollectable are treated as paid when determining subscription status" (§3.6).
    after_payment(run, inv, now)
    return invoice_wire.to_stripe(run.book.invoices[inv.id])


def upcoming(run: Run, subscription_id: str) -> dict:
    """The subscription's next invoice with the usage so far: the cycle the renewal will build
    (invoicing.cycle_specs, pending items first) at the period's end; not saved (previews.py)."""
    sub = run.sub(subscription_id, "subscription")
    if sub.status not in RENEWING:
        raise invalid("subscription", f"has no upcoming invoice: it is {sub.status}.",
                      code="invoice_upcoming_none")
    start, end = sub.current_period_start, sub.current_period_end
    new = roll_over(sub)
    ending = sub.cancel_at_period_end or (sub.cancel_at is not None and sub.cancel_at <= end)
    upcoming = draft(run, new, cycle_specs(run, sub, new, licensed=not ending), reason="upcoming", at=end,
                     start=start, end=end, finalizes_at=None, pending=pending_lines(run, sub))
    return invoice_wire.to_stripe(upcoming)
