"""An invoice's way from draft to paid (reference §3.6, §6.1): finalize, collect, retry, void.

Used by time (advance.py: grace periods ending, payment retries) and by commands (handlers/): one place says
what finalizing or a payment attempt does to the invoice, the customer's balance and the subscription.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ResourceMissing
from . import invoices as inv_
from .balance_transactions import invoice_changes
from .context import Run
from .customers import Customer, invoice_prefix
from .invoices import Invoice
from .invoicing import refresh_usage
from .payments import NO_PAYMENT_METHOD, PaymentOutcome, charge
from .subscriptions import REACTIVATES, SubscriptionStatus as S

# After a failed renewal payment: retry 3, 5 and 7 days later (a Stripe custom retry schedule allows up to
# 3 retries, §3.6); when the last one fails the subscription becomes `unpaid`.
RETRY_DELAYS = (3 * 86_400, 5 * 86_400, 7 * 86_400)


def _number(run: Run, customer: str) -> str:
    return f"{invoice_prefix(customer)}-{run.book.sequences.get(customer, 0) + 1:04d}"


def finalize(run: Run, inv: Invoice, at: int, *, collect: bool = True) -> None:
    """draft → open (or paid when nothing is due), late usage refreshed first (§1.10), then one attempt."""
    inv = refresh_usage(run, inv)
    cus = run.book.customers[inv.customer]
    inv, _ = inv_.finalize(inv, customer_balance=cus.balance, now=at, number=_number(run, inv.customer))
    inv = replace(inv, automatically_finalizes_at=None)
    run.save_invoice("invoice.finalized", inv, at)
    # §4.7/§6.5: the balance applied, then an amount due below the minimum carried to the balance: one ledger
    # entry each (together they make the ending balance); the customer takes the invoice's currency if it has none.
    run.change_balance(inv.customer, invoice_changes(inv.applied_balance, inv.too_small_amount), at, invoice=inv.id)
    if inv.status == "paid":
        run.save_invoice("invoice.paid", inv, at)
        after_payment(run, inv, at)
    elif collect and inv.collection_method == "charge_automatically":
        attempt_collection(run, inv, at)


def _attempt(cus: Customer, payment_method: str | None, amount: int) -> PaymentOutcome:
    try:
        return charge(payment_method or cus.default_payment_method, amount)
    except ResourceMissing as err:  # a payment method we do not know declines like a bad card
        return PaymentOutcome(False, None, err.message or NO_PAYMENT_METHOD)


def attempt_collection(run: Run, inv: Invoice, at: int, payment_method: str | None = None, *,
                       retry: bool = True) -> bool:
    """One payment attempt; on failure schedule the next retry (renewals only) and mark the subscription."""
    cus = run.book.customers[inv.customer]
    outcome = _attempt(cus, payment_method, inv.amount_remaining)
    if outcome.succeeded:
        paid = inv_.pay(inv, outcome, at)
        run.save_invoice("invoice.paid", paid, at)
        run.save_invoice("invoice.payment_succeeded", paid, at)
        after_payment(run, paid, at)
        return True
    run.last_outcome = outcome
    attempt = inv.attempt_count + 1
    renewal = inv.billing_reason != "subscription_create"  # a first invoice is not retried; it expires (§3.6)
    if not retry:
        later = inv.next_payment_attempt  # a manual /pay keeps the automatic schedule
    else:
        later = at + RETRY_DELAYS[attempt - 1] if renewal and attempt <= len(RETRY_DELAYS) else None
    failed = inv_.pay(inv, outcome, at, next_payment_attempt=later)
    if not retry and inv.attempt_count > 0:
        # attempt_count: "Any payment attempt counts as the first attempt, and subsequently only automatic
        # retries increment the attempt count" (Invoice.attempt_count, stripe-python).
        failed = replace(failed, attempt_count=inv.attempt_count)
    run.save_invoice("invoice.payment_failed", failed, at)
    sub = run.subscription_of(inv)
    waiting = sub is not None and sub.pending_update is not None and sub.pending_update.invoice == inv.id
    # A pending update's invoice failing leaves the subscription as it was (§3.6 pending_if_incomplete).
    if renewal and not waiting and sub is not None and sub.latest_invoice == inv.id and sub.status in (
            S.ACTIVE, S.PAST_DUE):
        status = S.UNPAID if retry and later is None else S.PAST_DUE
        if status != sub.status:
            run.save_sub("customer.subscription.updated", replace(sub, status=status), sub, at)
    return False


def after_payment(run: Run, inv: Invoice, at: int) -> None:
    """Paying (or marking uncollectible) the latest invoice makes its subscription active again (§3.6), and
    paying a pending update's invoice applies the update (`customer.subscription.pending_update_applied`)."""
    sub = run.subscription_of(inv)
    if sub is not None and sub.pending_update is not None and sub.pending_update.invoice == inv.id:
        if inv.status == "paid":
            applied = replace(sub.pending_update.subscription(), latest_invoice=inv.id, status=sub.status)
            run.save_sub("customer.subscription.updated", applied, sub, at)
            run.save_sub("customer.subscription.pending_update_applied", applied, sub, at)
            sub = applied
    if sub is not None and sub.latest_invoice == inv.id and sub.status in REACTIVATES:
        run.save_sub("customer.subscription.updated", replace(sub, status=S.ACTIVE), sub, at)


def void(run: Run, inv: Invoice, at: int) -> None:
    """open/uncollectible → void; the balance the invoice applied goes back to the customer (§4.7)."""
    voided = inv_.void(inv, at)
    run.save_invoice("invoice.voided", voided, at)
    back = inv_.unapplied_balance(voided)
    if back:
        run.set_balance(inv.customer, run.book.customers[inv.customer].balance + back, at,
                        type="unapplied_from_invoice", invoice=inv.id)
