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

PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")


def _no_proration(param: str, hint: str) -> InvalidRequest:
    # §4.2: Stripe's default is `create_prorations`. Until proration lines exist (issue 9, proration.py) a
    # request that would prorate is refused rather than billed differently from what the caller asked.
    return InvalidRequest(f"tally does not prorate yet; {hint} (proration comes in a later release).",
                          param=param, code="parameter_invalid")


def _proration_behavior(params: dict) -> str | None:
    if "proration_behavior" not in params:
        return None
    return p.enum(params["proration_behavior"], "proration_behavior", PRORATION_BEHAVIORS)


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
    params = dict(run.params)
    cus = run.customer(params.get("customer") or "", "customer")
    behaviour = p.enum(params.get("payment_behavior", "allow_incomplete"), "payment_behavior",
                       ("allow_incomplete", "default_incomplete", "error_if_incomplete"))
    if params.get("collection_method", "charge_automatically") != "charge_automatically":
        raise invalid("collection_method", "only `charge_automatically` is supported so far.")
    if params.get("default_payment_method") not in (None, ""):
        # Charging another method than the customer's default is not built: refuse rather than ignore it.
        raise invalid("default_payment_method", "set the customer's invoice_settings[default_payment_method] "
                                                "instead; a subscription's own payment method is not supported yet.")
    prices = {pid: Price.from_stripe(obj) for pid, obj in run.command["prices"].items()}
    sub = create_subscription(params, id=run.command["object_id"], customer=cus.id, prices=prices,
                              item_ids=[run.new_id("si") for _ in range(len(params.get("items") or []) or 1)],
                              now=now)
    proration = _proration_behavior(params)
    factor = first_period_factor(sub, now)
    if factor is not None and proration == "none":
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


def _items(new: Subscription, raw_items, proration: str | None) -> Subscription:
    raw_items = list(raw_items.values()) if isinstance(raw_items, dict) else raw_items
    items = {it.id: it for it in new.items}
    for i, raw in enumerate(p.array(raw_items, "items")):
        raw = p.hash_(raw, f"items[{i}]")
        p.check_keys(raw, {"id", "quantity", "price", "deleted", "metadata"}, f"items[{i}]")
        if not raw.get("id"):
            raise invalid(f"items[{i}][id]", "adding items comes with proration (a later release); "
                                             "name an existing item by id.")
        item = items.get(raw["id"])
        if item is None:
            raise missing_reference("subscription_item", raw["id"], f"items[{i}][id]")
        if raw.get("price") not in (None, "", item.price.id) or raw.get("deleted"):
            raise invalid(f"items[{i}][price]", "changing or removing an item's price comes with proration "
                                                "(a later release); only quantities can change so far.")
        if "quantity" in raw:
            if item.metered:
                raise invalid(f"items[{i}][quantity]", "metered prices take no quantity; usage decides it.")
            q = p.quantity(raw["quantity"], f"items[{i}][quantity]")
            # With proration_behavior=none the new quantity is billed from the next period on (§4.2: "billed
            # the full amount at the new price when the next invoice is generated").
            changed = replace(item, next_quantity=None if q == item.quantity else q)
            if changed != item and proration != "none":
                # §4.3: changing a quantity triggers prorations under Stripe's default.
                raise _no_proration("proration_behavior", "pass proration_behavior=none to bill the new "
                                                          "quantity from the next period")
            items[item.id] = changed
    return replace(new, items=tuple(items[it.id] for it in new.items))


def subscription_update(run: Run, now: int) -> dict:
    sub = run.sub(run.command["object_id"])
    params = run.params
    p.check_keys(params, {"items", "cancel_at_period_end", "metadata", "proration_behavior", "expand", "id"})
    if sub.status in ENDED:
        raise InvalidRequest(f"A canceled subscription can only update its metadata; {sub.id} is {sub.status}.",
                             code="subscription_canceled" if sub.status == S.CANCELED else None)
    proration = _proration_behavior(params)
    if proration not in (None, "none"):
        raise _no_proration("proration_behavior", "pass proration_behavior=none")
    new = sub
    if "cancel_at_period_end" in params:
        flag = p.boolean(params["cancel_at_period_end"], "cancel_at_period_end")
        new = replace(new, cancel_at_period_end=flag, canceled_at=now if flag else None)
    if "metadata" in params:
        new = replace(new, metadata=_metadata.merge(new.metadata, params["metadata"]))
    if params.get("items") not in (None, ""):
        new = _items(new, params["items"], proration)
    if new != sub:
        run.save_sub("customer.subscription.updated", new, sub, now)
    return run.book.subscriptions[sub.id].to_stripe()


def subscription_cancel(run: Run, now: int) -> dict:
    sub = run.sub(run.command["object_id"])
    params = run.params
    p.check_keys(params, {"invoice_now", "prorate", "cancellation_details", "expand", "id"})
    if sub.status in ENDED:
        raise InvalidRequest(f"This subscription is already canceled: {sub.id}.", param="id")
    if "prorate" in params and p.boolean(params["prorate"], "prorate"):
        # §3.5: `prorate=true` credits the unused licensed time; no proration lines exist yet (proration.py).
        raise _no_proration("prorate", "pass prorate=false or leave it out")
    invoice_now = p.boolean(params["invoice_now"], "invoice_now") if "invoice_now" in params else False
    if not (invoice_now and any(it.metered for it in sub.items)):
        end_subscription(run, sub, now)  # "If you don't prorate the subscription, all metered usage gets discarded"
        return run.book.subscriptions[sub.id].to_stripe()
    # "a final invoice that invoices for any un-invoiced metered usage" (§1.10).
    final = draft(run, sub, usage_specs(run, sub, sub.current_period_start, now), reason="subscription_cycle",
                  at=now, start=sub.current_period_start, end=now, finalizes_at=None)
    end_subscription(run, sub, now, latest_invoice=final.id)
    run.save_invoice("invoice.created", final, now)
    finalize(run, final, now)
    return run.book.subscriptions[sub.id].to_stripe()
