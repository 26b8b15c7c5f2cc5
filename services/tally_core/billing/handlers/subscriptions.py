"""`subscription.create` and `subscription.cancel` (reference §3, §4.2); `subscription.update` is changes.py."""

from __future__ import annotations

from dataclasses import replace

from ...errors import InvalidRequest
from ..collection import finalize
from ..context import Run
from ..invoicing import draft, item_line, licensed_spec, pending_for, pending_lines, usage_specs
from ..payments import card_error
from ..prices import Price
from ..proration import credit, first_period_factor, full_amount
from ..subscriptions import ENDED, Subscription, SubscriptionStatus as S, create_subscription
from .changes import proration_item


def end_subscription(run: Run, sub: Subscription, now: int, latest_invoice: str | None = None) -> None:
    """Cancel now: the subscription's open and draft invoices stop advancing (§3.5)."""
    for inv_id in sorted(run.book.invoices):
        inv = run.book.invoices[inv_id]
        if inv.subscription == sub.id and inv.status in ("draft", "open") and inv.auto_advance:
            run.save_invoice("invoice.updated", replace(inv, auto_advance=False, next_payment_attempt=None), now)
    ended = replace(sub, status=S.CANCELED, canceled_at=now, ended_at=now,
                    latest_invoice=latest_invoice or sub.latest_invoice, pending_update=None)
    run.save_sub("customer.subscription.deleted", ended, sub, now)


def subscription_create(run: Run, now: int) -> dict:
    params = run.params
    cus = run.customer(params.customer, "customer")
    behaviour = params.payment_behavior or "allow_incomplete"
    prices = {pid: Price.from_stripe(obj) for pid, obj in run.command.prices.items()}
    # Subscriptions created before billing modes existed were classic (all tally then knew).
    mode = "classic" if run.before_models else (params.billing_mode.type if params.billing_mode else "flexible")
    sub = create_subscription(params, id=run.command.object_id, customer=cus.id, prices=prices,
                              item_ids=[run.new_id("si") for _ in range(len(params.items) or 1)], now=now,
                              billing_mode=mode)
    sub = replace(sub, test_clock=cus.test_clock)  # Stripe: a subscription is on its customer's clock
    factor = first_period_factor(sub, now)
    if factor is not None and params.proration_behavior == "none" and not run.before_models:
        # §3.3: with `none` "the initial period up to the first full invoice date [is] free… doesn't generate an
        # invoice at all until the first billing period".
        run.save_sub("customer.subscription.created", sub, None, now)
        return run.book.subscriptions[sub.id].to_stripe()
    specs = [licensed_spec(run, it, now, sub.current_period_end, factor=factor) for it in sub.items
             if not it.metered]
    # The customer's pending invoice items that belong to no subscription go on the first invoice too (§4.4).
    first = draft(run, sub, specs, reason="subscription_create", at=now, start=now, end=now, finalizes_at=None,
                  pending=pending_lines(run, sub))
    sub = replace(sub, latest_invoice=first.id, status=S.INCOMPLETE,
                  items=tuple(it if it.metered else replace(it, billed=full_amount(it)) for it in sub.items))
    # The first invoice "finalizes immediately, regardless of the rules" and is paid in the request (§3.6).
    run.save_sub("customer.subscription.created", sub, None, now)
    run.save_invoice("invoice.created", first, now)
    finalize(run, first, now, collect=behaviour != "default_incomplete")
    if behaviour == "error_if_incomplete" and run.book.invoices[first.id].status != "paid":
        raise card_error(run.last_outcome)  # and nothing of this command stays
    return run.book.subscriptions[sub.id].to_stripe()


def subscription_cancel(run: Run, now: int) -> dict:
    """§3.5: `prorate` credits the unused licensed time as pending items; `invoice_now` bills a final invoice
    with the metered usage and the pending items ("Will generate a final invoice that invoices for any
    un-invoiced metered usage and new/pending proration invoice items"); with neither, the subscription's
    pending prorations are removed and its metered usage is discarded."""
    sub = run.sub(run.command.object_id)
    params = run.params
    if sub.status in ENDED:
        raise InvalidRequest(f"This subscription is already canceled: {sub.id}.", param="id")
    # Commands written before the models were decided when tally did not read `prorate`.
    prorate = bool(params.prorate) and not run.before_models
    items = []
    if prorate and sub.current_period_start <= now < sub.current_period_end:
        items = [proration_item(run, sub, line, now) for it in sub.items
                 if (line := credit(sub, it, now, sub.current_period_end)) is not None]
    if not params.invoice_now and not prorate:
        if not run.before_models:
            for item in [it for it in pending_for(run, sub) if it.subscription == sub.id and it.proration]:
                run.emit("invoiceitem.deleted", {"id": item.id, "object": "invoiceitem", "deleted": True}, now)
        end_subscription(run, sub, now)  # "If you don't prorate the subscription, all metered usage gets discarded"
        return run.book.subscriptions[sub.id].to_stripe()
    for item in items:
        run.emit("invoiceitem.created", item.to_stripe(), now)
    if not params.invoice_now:
        end_subscription(run, sub, now)  # the credits wait for the customer's next invoice
        return run.book.subscriptions[sub.id].to_stripe()
    specs = usage_specs(run, sub, sub.current_period_start, now)
    theirs = [it for it in pending_for(run, sub) if it.subscription == sub.id] if not run.before_models else []
    if not specs and not theirs:
        end_subscription(run, sub, now)  # nothing left to bill
        return run.book.subscriptions[sub.id].to_stripe()
    final = draft(run, sub, specs, reason="subscription_cycle", at=now, start=sub.current_period_start, end=now,
                  finalizes_at=None, pending=[item_line(run, it) for it in theirs])
    end_subscription(run, sub, now, latest_invoice=final.id)
    run.save_invoice("invoice.created", final, now)
    finalize(run, final, now)
    return run.book.subscriptions[sub.id].to_stripe()
