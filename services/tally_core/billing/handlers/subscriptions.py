"""`subscription.create`, `subscription.update`, `subscription.cancel` (reference §3, §4.2)."""

from __future__ import annotations

from dataclasses import replace

from ... import metadata as _metadata
from ...errors import InvalidRequest, invalid, missing_reference
from .. import params as p
from ..collection import finalize
from ..context import Run
from ..invoicing import draft, licensed_spec, usage_specs
from ..payments import card_error
from ..prices import Price
from ..proration import first_period_factor
from ..subscriptions import ENDED, Subscription, SubscriptionStatus as S, create_subscription


def _no_proration(param: str, hint: str) -> InvalidRequest:
    # §4.2: Stripe's default is `create_prorations`. Until proration lines exist (issue 9, proration.py) a
    # request that would prorate is refused rather than billed differently from what the caller asked.
    return InvalidRequest(f"tally does not prorate yet; {hint} (proration comes in a later release).",
                          param=param, code="parameter_invalid")


def _proration_behavior(run: Run) -> str | None:
    """The proration choice a decision honours. Commands written before the models (no `version`) were
    decided when tally read no proration choice and billed every change from the next period: they mean
    `none` (on an update), whatever they say, so re-deciding an old log gives the events it gave."""
    if run.before_models:
        return None if run.command.type == "subscription.create" else "none"
    return run.params.proration_behavior


def end_subscription(run: Run, sub: Subscription, now: int, latest_invoice: str | None = None) -> None:
    """Cancel now: the subscription's open and draft invoices stop advancing (§3.5)."""
    for inv_id in sorted(run.book.invoices):
        inv = run.book.invoices[inv_id]
        if inv.subscription == sub.id and inv.status in ("draft", "open") and inv.auto_advance:
            run.save_invoice("invoice.updated", replace(inv, auto_advance=False, next_payment_attempt=None), now)
    ended = replace(sub, status=S.CANCELED, canceled_at=now, ended_at=now,
                    latest_invoice=latest_invoice or sub.latest_invoice)
    run.save_sub("customer.subscription.deleted", ended, sub, now)


def subscription_create(run: Run, now: int) -> dict:
    params = run.params
    cus = run.customer(params.customer, "customer")
    behaviour = params.payment_behavior or "allow_incomplete"
    prices = {pid: Price.from_stripe(obj) for pid, obj in run.command.prices.items()}
    sub = create_subscription(params, id=run.command.object_id, customer=cus.id, prices=prices,
                              item_ids=[run.new_id("si") for _ in range(len(params.items) or 1)], now=now)
    factor = first_period_factor(sub, now)
    if factor is not None and _proration_behavior(run) == "none":
        # §4.2: "On create, proration_behavior governs the partial period before a future billing_cycle_anchor";
        # tally always bills that period prorated (A.4), which `none` would not.
        raise _no_proration("proration_behavior", "a future billing_cycle_anchor bills the partial first period "
                                                  "prorated, so leave proration_behavior out or pass "
                                                  "create_prorations")
    specs = [licensed_spec(run, it, now, sub.current_period_end, factor=factor) for it in sub.items
             if not it.metered]
    first = draft(run, sub, specs, reason="subscription_create", at=now, start=now, end=now, finalizes_at=None)
    sub = replace(sub, latest_invoice=first.id, status=S.INCOMPLETE)
    # The first invoice "finalizes immediately, regardless of the rules" and is paid in the request (§3.6).
    run.save_sub("customer.subscription.created", sub, None, now)
    run.save_invoice("invoice.created", first, now)
    finalize(run, first, now, collect=behaviour != "default_incomplete")
    if behaviour == "error_if_incomplete" and run.book.invoices[first.id].status != "paid":
        raise card_error(run.last_outcome)  # and nothing of this command stays
    return run.book.subscriptions[sub.id].to_stripe()


def _items(new: Subscription, updates, proration: str | None) -> Subscription:
    items = {it.id: it for it in new.items}
    for i, update in enumerate(updates):
        item = items.get(update.id)
        if item is None:
            raise missing_reference("subscription_item", update.id, f"items[{i}][id]")
        if update.price not in (None, item.price.id) or update.deleted:
            raise invalid(f"items[{i}][price]", "changing or removing an item's price comes with proration "
                                                "(a later release); only quantities can change so far.")
        if "quantity" in update.model_fields_set:
            if item.metered:
                raise invalid(f"items[{i}][quantity]", "metered prices take no quantity; usage decides it.")
            if update.quantity is None:
                raise p.empty(f"items[{i}][quantity]")  # a licensed quantity cannot be unset
            # With proration_behavior=none the new quantity is billed from the next period on (§4.2: "billed
            # the full amount at the new price when the next invoice is generated").
            changed = replace(item, next_quantity=None if update.quantity == item.quantity else update.quantity)
            if changed != item and proration != "none":
                # §4.3: changing a quantity triggers prorations under Stripe's default.
                raise _no_proration("proration_behavior", "pass proration_behavior=none to bill the new "
                                                          "quantity from the next period")
            items[item.id] = changed
    return replace(new, items=tuple(items[it.id] for it in new.items))


def subscription_update(run: Run, now: int) -> dict:
    sub = run.sub(run.command.object_id)
    params = run.params
    if sub.status in ENDED:
        raise InvalidRequest(f"A canceled subscription can only update its metadata; {sub.id} is {sub.status}.",
                             code="subscription_canceled" if sub.status == S.CANCELED else None)
    proration = _proration_behavior(run)
    if proration not in (None, "none"):
        raise _no_proration("proration_behavior", "pass proration_behavior=none")
    new = sub
    if params.cancel_at_period_end is not None:
        flag = params.cancel_at_period_end
        new = replace(new, cancel_at_period_end=flag, canceled_at=now if flag else None)
    if "metadata" in params.model_fields_set:
        new = replace(new, metadata=_metadata.merge(new.metadata, params.metadata))
    if params.items:
        new = _items(new, params.items, proration)
    if new != sub:
        run.save_sub("customer.subscription.updated", new, sub, now)
    return run.book.subscriptions[sub.id].to_stripe()


def subscription_cancel(run: Run, now: int) -> dict:
    sub = run.sub(run.command.object_id)
    params = run.params
    if sub.status in ENDED:
        raise InvalidRequest(f"This subscription is already canceled: {sub.id}.", param="id")
    if params.prorate and not run.before_models:
        # §3.5: `prorate=true` credits the unused licensed time; no proration lines exist yet (proration.py).
        # (Commands written before the models were decided when tally did not read `prorate`.)
        raise _no_proration("prorate", "pass prorate=false or leave it out")
    if not (params.invoice_now and any(it.metered for it in sub.items)):
        end_subscription(run, sub, now)  # "If you don't prorate the subscription, all metered usage gets discarded"
        return run.book.subscriptions[sub.id].to_stripe()
    # "a final invoice that invoices for any un-invoiced metered usage" (§1.10).
    final = draft(run, sub, usage_specs(run, sub, sub.current_period_start, now), reason="subscription_cycle",
                  at=now, start=sub.current_period_start, end=now, finalizes_at=None)
    end_subscription(run, sub, now, latest_invoice=final.id)
    run.save_invoice("invoice.created", final, now)
    finalize(run, final, now)
    return run.book.subscriptions[sub.id].to_stripe()
