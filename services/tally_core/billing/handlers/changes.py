"""`subscription.update` (seed 004; reference §3.3, §3.5, §4): a change and what it bills.

A change within the period prorates licensed items (proration.py) under `proration_behavior`:
- `create_prorations` (the default) leaves the lines as pending invoice items that the next invoice takes
  first (§4.2, §4.4);
- `always_invoice` invoices them at once (`billing_reason=subscription_update`), finalized and charged;
- `none` bills nothing now; the next invoice bills the new price in full (§4.2).

A change that resets the period (subscription_changes.resets_period) invoices at once in every behaviour:
the credit for unused time (not with `none`), the metered usage so far, and the new period in advance.

Metered items are never prorated. In `flexible` mode a metered price swapped out or removed bills its usage
up to the change as a pending invoice item (§1.11: "we create an invoice item that bills for previously
reported metered usage"); the new price counts usage from the change on. In `classic` mode Stripe bills
only the usage after the update (§1.11: "Usage from January 1 to January 16 isn't billed"), and so does
tally. Which side of the change an event falls on is the minute rule (README): the minute holding the change
counts for the old price.

When the immediate payment fails the change stands and the subscription becomes `past_due` (seed 004),
unless `payment_behavior=pending_if_incomplete` keeps it as a `pending_update` until the invoice is paid
(collection.after_payment applies it, advance.py expires it), or `error_if_incomplete` refuses the whole
request.
"""

from __future__ import annotations

from dataclasses import replace

from ... import metadata as _metadata
from ...errors import InvalidRequest, invalid
from ...strings import decimal_text as _text
from ..collection import finalize
from ..context import Run
from ..invoice_items import InvoiceItem
from ..invoicing import draft, item_line, licensed_spec, metered_spec, newest_first, pending_for, usage_start
from ..invoices import Invoice
from ..payments import card_error
from ..prices import Price
from ..pricing import line_detail
from ..proration import Proration, credit, full_amount, item_prorations, period_end_prorations
from ..schedule import PENDING_EXPIRES
from ..subscription_changes import changed_items, resets_period
from ..subscriptions import ENDED, Item, PendingUpdate, Subscription, SubscriptionStatus as S


def proration_item(run: Run, sub: Subscription, line: Proration, at: int) -> InvoiceItem:
    """A proration line as the pending invoice item it is (§4.4): `proration=True`, never discountable."""
    return InvoiceItem(
        id=run.new_id("ii"), customer=sub.customer, currency=sub.currency, amount=line.amount,
        period_start=line.period_start, period_end=line.period_end, date=at, description=line.description,
        price_id=line.price.id, product=line.price.product, quantity=line.quantity, proration=True,
        subscription=sub.id, subscription_item=line.item)


def usage_item(run: Run, sub: Subscription, item: Item, at: int) -> InvoiceItem | None:
    """Flexible mode: the usage of a metered price leaving the subscription, billed up to the change (§1.11)."""
    start = usage_start(item, sub.current_period_start)
    if start >= at:
        return None
    usage = run.usage(item.price.recurring.meter, sub.customer, start, at)
    detail = line_detail(item.price, usage)
    name = item.price.nickname or item.price.product or item.price.id
    return InvoiceItem(
        id=run.new_id("ii"), customer=sub.customer, currency=sub.currency, amount=detail.amount,
        period_start=start, period_end=at, date=at, description=f"{_text(detail.quantity)} × {name} (usage "
        "until the price changed)", price_id=item.price.id, product=item.price.product,
        quantity=int(detail.quantity), subscription=sub.id, subscription_item=item.id,
        quantity_decimal=detail.quantity)


def _metered_leaving(old: Subscription, new: Subscription) -> list[Item]:
    after = {it.id: it for it in new.items}
    return [it for it in old.items if it.metered and (it.id not in after or after[it.id].price.id != it.price.id)]


def _with_billed(new: Subscription, lines: list[Proration]) -> Subscription:
    """What each item has now been billed for the period: its debit's full amount (flexible credits it)."""
    debited = {line.item for line in lines if not line.credit}
    return replace(new, items=tuple(replace(it, billed=full_amount(it)) if it.id in debited else it
                                    for it in new.items))


def _proration_date(run: Run, sub: Subscription, now: int) -> int:
    at = run.params.proration_date
    if at is None:
        return now
    # §4.6: prorations "calculated as though the subscription was updated at the given time", which must
    # lie within the current period.
    if not sub.current_period_start <= at <= sub.current_period_end:
        raise invalid("proration_date", f"must be within the current period ({sub.current_period_start}–"
                                        f"{sub.current_period_end}).")
    return at


def planned(run: Run, sub: Subscription, now: int) -> Subscription:
    """The subscription as the request asks it to be (nothing billed yet)."""
    params = run.params
    sent = params.model_fields_set
    new = sub
    if "metadata" in sent:
        new = replace(new, metadata=_metadata.merge(new.metadata, params.metadata))
    if sub.status == S.INCOMPLETE and sent - {"metadata", "payment_behavior", "proration_behavior"}:
        raise InvalidRequest(f"An incomplete subscription can only update its metadata until its first invoice "
                             f"is paid; {sub.id} is incomplete.", code="subscription_incomplete")
    if params.cancel_at_period_end is not None:
        flag = params.cancel_at_period_end
        new = replace(new, cancel_at_period_end=flag, canceled_at=now if flag else None)
    if "cancel_at" in sent:
        if params.cancel_at is not None and params.cancel_at <= now:
            raise invalid("cancel_at", "must be in the future.")
        # `canceled_at` reflects the request that set the end (§3.1), and goes when the end is cleared.
        canceled_at = now if params.cancel_at else (new.canceled_at if new.cancel_at_period_end else None)
        new = replace(new, cancel_at=params.cancel_at, canceled_at=canceled_at)
    if new.cancel_at is not None and new.cancel_at_period_end:
        raise invalid("cancel_at_period_end", "the subscription already ends at cancel_at; clear cancel_at first.")
    if params.items:
        prices = {pid: Price.from_stripe(obj) for pid, obj in run.command.prices.items()}
        new = replace(new, items=changed_items(sub, params.items, prices, run.new_id, now))
    return new


def subscription_update(run: Run, now: int) -> dict:
    sub = run.sub(run.command.object_id)
    params = run.params
    if sub.status in ENDED:
        raise InvalidRequest(f"A canceled subscription can only update its metadata; {sub.id} is {sub.status}.",
                             code="subscription_canceled" if sub.status == S.CANCELED else None)
    # A pending update replaces the subscription when its invoice is paid, so nothing it would overwrite may
    # change meanwhile (metadata and cancel_at_period_end may).
    blocked = [k for k in ("items", "cancel_at", "billing_cycle_anchor") if k in params.model_fields_set]
    if sub.pending_update is not None and blocked:
        raise InvalidRequest(f"{sub.id} has a pending update waiting for invoice {sub.pending_update.invoice} "
                             "to be paid; pay or void that invoice first.", param=blocked[0])
    if run.before_models:
        _legacy(run, sub)
    # Commands written before the models were decided when tally read no proration choice and billed every
    # change from the next period: they mean `none`, whatever they say, so an old log re-decides the same.
    behaviour = "none" if run.before_models else params.proration_behavior or "create_prorations"
    at = _proration_date(run, sub, now)
    new = planned(run, sub, now)
    if resets_period(sub, new, params.billing_cycle_anchor):
        return _reset(run, sub, new, now, at, behaviour)
    lines: list[Proration] = []
    if behaviour != "none":
        lines = item_prorations(sub, new, at)
        new = _with_billed(new, lines)
    end = new.period_end_after(new.current_period_start)
    if end != sub.current_period_end:  # cancel_at moved into, within or out of the current period (§3.5)
        moved = replace(new, current_period_end=sub.current_period_end)
        if behaviour != "none":
            lines += period_end_prorations(moved, end)
        new = replace(new, current_period_end=end)
    items = [proration_item(run, sub, line, now) for line in lines]
    if sub.flexible and behaviour != "none":
        items += [u for it in _metered_leaving(sub, new) if (u := usage_item(run, sub, it, now)) is not None]
    if behaviour == "always_invoice":
        theirs = [it for it in pending_for(run, sub) if it.subscription == sub.id]
        if items or theirs:
            inv = draft(run, sub, [], reason="subscription_update", at=now, start=sub.current_period_start,
                        end=now, finalizes_at=None,
                        pending=[item_line(run, it) for it in sorted([*theirs, *items], key=lambda it: -it.date)])
            return _invoice_now(run, sub, new, items, inv, now)
    return _save(run, sub, new, items, now)


def _legacy(run: Run, sub: Subscription) -> None:
    """What a command written before the models was refused then: any price change or removal (tally could
    not prorate), and any non-empty `deleted`, even `false` (its truth was read then)."""
    for i, update in enumerate(run.params.items or ()):
        current = next((it for it in sub.items if it.id == update.id), None)
        if current is not None and (update.price not in (None, current.price.id) or update.deleted):
            raise invalid(f"items[{i}][price]", "changing or removing an item's price comes with proration "
                                                "(a later release); only quantities can change so far.")


def _save(run: Run, sub: Subscription, new: Subscription, items: list[InvoiceItem], now: int) -> dict:
    if new != sub:
        run.save_sub("customer.subscription.updated", new, sub, now)
    for item in items:
        run.emit("invoiceitem.created", item.to_stripe(), now)
    return run.book.subscriptions[sub.id].to_stripe()


def _reset(run: Run, sub: Subscription, new: Subscription, now: int, at: int, behaviour: str) -> dict:
    """The period starts again now, invoiced at once (§3.3, §4.2: "we apply a credit for the unused time on the
    previous price, immediately charge the customer using the new price, and reset the billing date")."""
    credits = [] if behaviour == "none" else [
        line for it in sub.items if (line := credit(sub, it, at, sub.current_period_end)) is not None]
    items = [proration_item(run, sub, line, now) for line in credits]
    renewed = replace(new, anchor=now, day_of_month=None, current_period_start=now, current_period_end=now,
                      items=tuple(replace(it, since=None) for it in new.items))
    renewed = replace(renewed, current_period_end=renewed.period_end_after(now))
    # The old metered prices' usage so far, in arrears; the licensed items for the new period, in advance.
    specs = [metered_spec(run, sub, it, usage_start(it, sub.current_period_start), now, run.new_id("il"))
             for it in newest_first(sub.items) if it.metered]
    specs += [licensed_spec(run, it, renewed.current_period_start, renewed.current_period_end)
              for it in newest_first(renewed.items) if not it.metered]
    renewed = replace(renewed, items=tuple(it if it.metered else replace(it, billed=full_amount(it))
                                           for it in renewed.items))
    theirs = [it for it in pending_for(run, sub) if it.subscription in (sub.id, None)]
    inv = draft(run, sub, specs, reason="subscription_update", at=now, start=sub.current_period_start, end=now,
                finalizes_at=None,
                pending=[item_line(run, it) for it in sorted([*theirs, *items], key=lambda it: -it.date)])
    return _invoice_now(run, sub, renewed, items, inv, now)


def _invoice_now(run: Run, sub: Subscription, new: Subscription, items: list[InvoiceItem], inv: Invoice,
                 now: int) -> dict:
    """Invoice the change at once: finalized and charged in the request (seed 004 "immediate payment")."""
    behaviour = run.params.payment_behavior or "allow_incomplete"
    if behaviour == "pending_if_incomplete":
        # The change waits for the invoice: the subscription stays as it is until it is paid (§3.6).
        pending = PendingUpdate(inv.id, now + PENDING_EXPIRES, new.to_stripe(), new.state(),
                                new.anchor if new.anchor != sub.anchor else None)
        waiting = replace(sub, latest_invoice=inv.id, pending_update=pending)
        run.save_sub("customer.subscription.updated", waiting, sub, now)
    else:
        run.save_sub("customer.subscription.updated", replace(new, latest_invoice=inv.id), sub, now)
    for item in items:
        run.emit("invoiceitem.created", item.to_stripe(), now)
    run.save_invoice("invoice.created", inv, now)
    finalize(run, inv, now, collect=behaviour != "default_incomplete")
    paid = run.book.invoices[inv.id].status == "paid"
    if behaviour == "error_if_incomplete" and not paid:
        raise card_error(run.last_outcome)  # and nothing of this command stays
    current = run.book.subscriptions[sub.id]
    if behaviour == "default_incomplete" and not paid and current.status == S.ACTIVE:
        # §3.6: "transition the subscription to status=past_due when payment is required and await explicit
        # confirmation of the invoice's payment".
        run.save_sub("customer.subscription.updated", replace(current, status=S.PAST_DUE), current, now)
    return run.book.subscriptions[sub.id].to_stripe()
