"""What an update asks of a subscription's items (seed 004, reference §3.2): the items as they will be.

Pure: the handler (handlers/changes.py) decides what the change bills. The rules, from seed 004 and §3.2:
- `items[n][id]` + `items[n][price]` swaps the item's price; "the quantity goes back to the default of 1"
  unless it is given;
- an item without an id is a new item (the seed's "common mistake": both prices are then active);
- `items[n][deleted]=true` removes the item; a subscription keeps at least one item;
- `clear_usage` has no effect on a price with a billing meter attached, which every tally metered price has
  (§1.10); it is accepted for that reason and changes nothing;
- item metadata merges key by key, as everywhere.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from .. import metadata as _metadata
from ..errors import invalid, missing_reference
from . import params as p
from .prices import Price
from .subscriptions import MAX_ITEMS, Item, Subscription, check_shared, checked_price, item_quantity, zero_amount


def changed_items(sub: Subscription, updates, prices: Mapping[str, Price], new_id: Callable[[str], str],
                  now: int) -> tuple[Item, ...]:
    """The items after `updates` (command_params.SubscriptionItemUpdate, in the order given)."""
    items: dict[str, Item] = {it.id: it for it in sub.items}
    for i, update in enumerate(updates):
        sent = update.model_fields_set
        if update.id is None:
            price = checked_price(prices, update.price, f"items[{i}][price]")
            quantity = item_quantity(price, "quantity" in sent, update.quantity, f"items[{i}][quantity]")
            item = Item(new_id("si"), price, quantity, now, _metadata.check(update.metadata, f"items[{i}][metadata]"),
                        since=now if price.recurring.usage_type == "metered" else None)
            items[item.id] = item
            continue
        item = items.get(update.id)
        if item is None:
            raise missing_reference("subscription_item", update.id, f"items[{i}][id]")
        if update.deleted:
            del items[item.id]
            continue
        if "price" in sent and update.price is None:
            raise p.empty(f"items[{i}][price]")
        if update.price is not None and update.price != item.price.id:
            price = checked_price(prices, update.price, f"items[{i}][price]")
            # seed 004: a new price puts the quantity back to 1 unless the request gives it.
            quantity = item_quantity(price, "quantity" in sent, update.quantity, f"items[{i}][quantity]")
            item = replace(item, price=price, quantity=quantity,
                           since=now if price.recurring.usage_type == "metered" else None)
        elif "quantity" in sent:
            if item.metered:
                raise invalid(f"items[{i}][quantity]", "metered prices take no quantity; usage decides it.")
            if update.quantity is None:
                raise p.empty(f"items[{i}][quantity]")  # a licensed quantity cannot be unset
            item = replace(item, quantity=update.quantity)
        if "metadata" in sent:
            item = replace(item, metadata=_metadata.merge(item.metadata, update.metadata, f"items[{i}][metadata]"))
        items[item.id] = item
    out = tuple(items.values())
    if not out:
        raise invalid("items", "a subscription keeps at least one item; cancel the subscription instead.")
    if len(out) > MAX_ITEMS:
        raise invalid("items", f"a subscription can have at most {MAX_ITEMS} items.")
    seen: set[str] = set()
    for it in out:
        if it.price.id in seen:
            raise invalid("items", f"the price {it.price.id} would appear twice on the subscription; "
                                   "change the existing item instead.")
        seen.add(it.price.id)
    check_shared(out, "items")
    return out


def resets_period(old: Subscription, new: Subscription, billing_cycle_anchor: str | None) -> bool:
    """§3.3/§4.2: the billing period starts again at the change, invoiced at once, when the interval changes,
    when all-zero-amount prices give way to a paid one, or on `billing_cycle_anchor=now`. A zero quantity
    becoming non-zero does not (seed 004)."""
    if billing_cycle_anchor == "now":
        return True
    if new.interval != old.interval:
        return True
    return all(zero_amount(it.price) for it in old.items) and not all(zero_amount(it.price) for it in new.items)
