"""The API edge's state-free checks of `subscription.create`, `.update` and `.cancel` (edge.py's scheme):
names, types and Stripe's bounds; what needs the book is the handlers' (handlers/subscriptions.py,
handlers/changes.py)."""

from __future__ import annotations

from ..errors import invalid, missing
from ..metadata import check as check_metadata
from . import params as p, subscriptions as subs
from .edge_refusals import Refusals, blank, boolean_value, check_carried, metadata_value, refuse, string_value
from .subscriptions import PAYMENT_BEHAVIORS, PRORATION_BEHAVIORS


def _items(raw) -> list:
    raw = list(raw.values()) if isinstance(raw, dict) else raw
    return raw if isinstance(raw, list) else []


def _item_quantities(refusals: Refusals, raw_items) -> None:
    """What the edge refused first before the worker looked at items: bad quantities, item metadata."""
    for i, item in enumerate(_items(raw_items)):
        if not isinstance(item, dict):
            continue
        if not blank(item.get("quantity")):
            refusals.run(p.quantity, item["quantity"], f"items[{i}][quantity]")
        if "metadata" in item:
            refusals.run(check_metadata, item["metadata"], f"items[{i}][metadata]")


def _create_item(i: int, raw: dict, params: dict) -> dict:
    item = {"price": raw["price"]}
    if "quantity" in raw:
        item["quantity"] = p.quantity(raw["quantity"], f"items[{i}][quantity]")  # checked by check_items
    elif "quantity" in _items(params["items"])[i]:
        item["quantity"] = None  # sent empty
    return item


def subscription_create(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    # First what the API refused before the worker saw the command, in that order.
    if blank(params.get("customer")):
        refusals.run(refuse, missing("customer"))
    else:
        ok, customer = refusals.run(p.string, params["customer"], "customer", max_len=255)
        if ok:
            values["customer"] = customer
    metadata_value(refusals, params, values)
    if "billing_cycle_anchor" in params:
        if blank(params["billing_cycle_anchor"]):
            values["billing_cycle_anchor"] = None
        else:
            ok, anchor = refusals.run(p.timestamp, params["billing_cycle_anchor"], "billing_cycle_anchor")
            if ok:
                values["billing_cycle_anchor"] = anchor
    _item_quantities(refusals, params.get("items"))
    # Then the rules the worker once ran before its state-dependent ones, in its order (since typed commands
    # they are only here; handlers/subscriptions.subscription_create, subscriptions.create_subscription).
    if "payment_behavior" in params:
        ok, behaviour = refusals.run(p.enum, params["payment_behavior"], "payment_behavior", PAYMENT_BEHAVIORS)
        if ok:
            values["payment_behavior"] = behaviour
    if "collection_method" in params:
        if params["collection_method"] != "charge_automatically":
            refusals.run(refuse, invalid("collection_method", "only `charge_automatically` is supported so far."))
        else:
            values["collection_method"] = "charge_automatically"
    if not blank(params.get("default_payment_method")):
        # Charging another method than the customer's default is not built: refuse rather than ignore it.
        refusals.run(refuse, invalid("default_payment_method", "set the customer's invoice_settings["
                                     "default_payment_method] instead; a subscription's own payment method "
                                     "is not supported yet."))
    for key in params:
        refusals.run(p.check_keys, {key: None}, subs._CREATE)
    # An empty quantity is left to the worker, which refuses it for its own reason (metered or not).
    raw_items = _items(params.get("items")) or params.get("items")
    if isinstance(raw_items, list):
        raw_items = [{k: v for k, v in it.items() if not (k == "quantity" and blank(v))}
                     if isinstance(it, dict) else it for it in raw_items]
    ok, _ = refusals.run(subs.check_items, raw_items)
    if ok:
        values["items"] = [_create_item(i, raw, params) for i, raw in enumerate(raw_items)]
    anchor_set = not blank(params.get("billing_cycle_anchor"))
    config = params.get("billing_cycle_anchor_config")
    if anchor_set and not blank(config):
        refusals.run(refuse, p.exclusive("billing_cycle_anchor", "billing_cycle_anchor_config"))
    elif not blank(config):
        ok, hash_ = refusals.run(p.hash_, config, "billing_cycle_anchor_config")
        if ok:
            ok, day = refusals.run(p.integer, hash_.get("day_of_month"), "billing_cycle_anchor_config[day_of_month]",
                                   minimum=1, maximum=31)
            if ok:
                values["billing_cycle_anchor_config"] = {"day_of_month": day}
    boolean_value(refusals, params, "cancel_at_period_end", values)
    _proration_behavior(refusals, params, values)
    if not blank(params.get("billing_mode")):
        ok, mode = refusals.run(p.hash_, params["billing_mode"], "billing_mode")
        if ok:
            for key in mode:
                refusals.run(p.check_keys, {key: None}, {"type"}, "billing_mode")
            ok, kind = refusals.run(p.enum, mode.get("type"), "billing_mode[type]", subs.BILLING_MODES)
            if ok:
                values["billing_mode"] = {"type": kind}
    _cancel_at(refusals, params, values, "cancel_at_period_end")
    return values


def _cancel_at(refusals: Refusals, params: dict, values: dict, other: str) -> None:
    """`cancel_at` (a timestamp, or "" to clear it on an update); §3.5: it and `cancel_at_period_end=true`
    name two ends of one subscription, so they are refused together."""
    if "cancel_at" not in params:
        return
    if blank(params["cancel_at"]):
        values["cancel_at"] = None
        return
    ok, at = refusals.run(p.timestamp, params["cancel_at"], "cancel_at")
    if ok:
        values["cancel_at"] = at
        if values.get(other):
            refusals.run(refuse, p.exclusive("cancel_at", other))


def _item_update(refusals: Refusals, i: int, raw: dict) -> dict | None:
    good, raw = refusals.run(p.hash_, raw, f"items[{i}]")
    if not good:
        return None
    for key in raw:
        refusals.run(p.check_keys, {key: None}, {"id", "quantity", "price", "deleted", "metadata", "clear_usage"},
                     f"items[{i}]")
    item: dict = {}
    if not blank(raw.get("id")):
        ok, item_id = refusals.run(p.string, raw["id"], f"items[{i}][id]", max_len=255)
        if ok:
            item["id"] = item_id
    if "price" in raw:
        string_value(refusals, raw["price"], f"items[{i}][price]", item, "price")
    for flag in ("deleted", "clear_usage"):
        if not blank(raw.get(flag)):
            ok, value = refusals.run(p.boolean, raw[flag], f"items[{i}][{flag}]")
            if ok:
                item[flag] = value
    if "quantity" in raw and blank(raw["quantity"]):
        item["quantity"] = None
    elif "quantity" in raw:
        good, quantity = refusals.run(p.quantity, raw["quantity"], f"items[{i}][quantity]")
        if good:
            item["quantity"] = quantity
    if "metadata" in raw:
        item["metadata"] = None if blank(raw["metadata"]) else dict(raw["metadata"])
    if "id" not in raw:
        # seed 004: an item without an id is a new item, so it needs its price.
        if item.get("deleted"):
            refusals.run(refuse, invalid(f"items[{i}][deleted]", "name the item to delete with items[n][id]."))
        elif blank(raw.get("price")):
            refusals.run(refuse, missing(f"items[{i}][price]"))
    return item


def _proration_behavior(refusals: Refusals, params: dict, values: dict) -> None:
    # Whether the behaviour asked for can be honoured (tally does not prorate yet) is the worker's rule
    # (handlers/subscriptions.py).
    if "proration_behavior" in params:
        ok, behaviour = refusals.run(p.enum, params["proration_behavior"], "proration_behavior", PRORATION_BEHAVIORS)
        if ok:
            values["proration_behavior"] = behaviour


_UPDATE = {"items", "cancel_at_period_end", "cancel_at", "metadata", "proration_behavior", "proration_date",
           "payment_behavior", "billing_cycle_anchor"}


def subscription_update(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    metadata_value(refusals, params, values)
    _item_quantities(refusals, params.get("items"))
    check_carried(refusals, params, _UPDATE)
    _proration_behavior(refusals, params, values)
    boolean_value(refusals, params, "cancel_at_period_end", values)
    _cancel_at(refusals, params, values, "cancel_at_period_end")
    if not blank(params.get("proration_date")):
        ok, at = refusals.run(p.timestamp, params["proration_date"], "proration_date")
        if ok:
            values["proration_date"] = at
    if not blank(params.get("payment_behavior")):
        ok, behaviour = refusals.run(p.enum, params["payment_behavior"], "payment_behavior",
                                     subs.UPDATE_PAYMENT_BEHAVIORS)
        if ok:
            values["payment_behavior"] = behaviour
    if not blank(params.get("billing_cycle_anchor")):
        # §3.3: on an update the anchor can only be reset to now (or left unchanged).
        ok, anchor = refusals.run(p.enum, params["billing_cycle_anchor"], "billing_cycle_anchor",
                                  ("now", "unchanged"))
        if ok:
            values["billing_cycle_anchor"] = anchor
    raw_items = params.get("items")
    if not blank(raw_items):
        raw_items = list(raw_items.values()) if isinstance(raw_items, dict) else raw_items
        ok, raw_items = refusals.run(p.array, raw_items, "items")
        if ok and len(raw_items) > subs.MAX_ITEMS:
            refusals.run(refuse, invalid("items", f"a subscription can have at most {subs.MAX_ITEMS} items."))
        items = [_item_update(refusals, i, raw) for i, raw in enumerate(raw_items if ok else [])]
        if ok:
            values["items"] = [it for it in items if it is not None]
    elif "items" in params:
        values["items"] = None
    return values


def subscription_cancel(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    check_carried(refusals, params, {"invoice_now", "prorate", "cancellation_details"})
    boolean_value(refusals, params, "prorate", values)  # whether it can be honoured is the worker's rule
    boolean_value(refusals, params, "invoice_now", values)
    if "cancellation_details" in params:
        values["cancellation_details"] = params["cancellation_details"]  # accepted, not read yet
    return values
