"""`/v1/subscription_items` (seed 004; reference §3.1, §3.2, §4): reads from the `billing_subscriptions`
projection (an item lives inside its subscription's object), changes as `subscription.update` commands.

The core has one rule for changing items (subscription_changes.py), so each route here is a translation into
it, and a change made here and the same change made on `POST /v1/subscriptions/{id}` decide, bill and replay
alike:
- create: `items[0][price|quantity|metadata]`, a new item (an update item without an id);
- update: `items[0][id]` + `items[0][price|quantity|metadata|clear_usage]` (a new price puts the quantity back
  to 1 unless it is given, as seed 004 warns);
- delete: `items[0][id]` + `items[0][deleted]=true` (+ `clear_usage`);
with `proration_behavior`, `proration_date` and `payment_behavior` as on the subscription. Prices are pinned as
`update_subscription` pins them (`pinned_prices`). A refusal names this route's parameter (`price`, not
`items[0][price]`), so a caller sees the name it sent.
"""

from __future__ import annotations

import re

import orjson

from tally_billing import queries as store
from tally_core.billing import params as p
from tally_core.errors import ApiError, ResourceMissing, missing
from tally_edge.context import Ctx, route
from tally_edge.http import list_object

from .billing_gateway import RefusedCommand
from .billing_routes import _LIST, _find, _params, _submit, pinned_prices

_TABLE = "billing_subscriptions"
_KIND = "subscription_item"
_CHANGE = ("proration_behavior", "proration_date", "payment_behavior")  # the subscription's, passed as they are
_ONE_ITEM = re.compile(r"items\[0\]\[([a-z_]+)\]")
# Fields of Stripe's subscription_item that a pending update's `subscription_items` leaves out (§3.6).
_ITEM_DEFAULTS = {"discounts": [], "tax_rates": [], "billing_thresholds": None}


def _picked(params: dict, names: tuple[str, ...]) -> dict:
    return {k: params[k] for k in names if k in params}


def _renamed(err: ApiError, whole: str) -> ApiError:
    """The refusal as this route's caller named things: `items[0][x]` → `x`, the item list itself → `whole`."""
    if err.http_status >= 500:
        return err
    body = orjson.loads(orjson.dumps(err.to_dict()))
    changed = False
    for error in [body.get("error", {}), *body.get("error", {}).get("errors", [])]:
        param = error.get("param")
        if isinstance(param, str):
            new = whole if param == "items" else _ONE_ITEM.sub(r"\1", param)
            changed |= new != param
            error["param"] = new
        message = error.get("message")
        if isinstance(message, str):
            new = _ONE_ITEM.sub(r"\1", message.replace("Invalid items:", f"Invalid {whole}:"))
            changed |= new != message
            error["message"] = new
    return RefusedCommand(err.http_status, body) if changed else err


async def _change(ctx: Ctx, key: str, sub_id: str, update: dict, whole: str) -> dict:
    """`update` (a subscription.update's params) submitted for the subscription; its answer, the subscription."""
    try:
        return await _submit(ctx, key, "subscription.update", sub_id, update, prices=pinned_prices(ctx, update))
    except ApiError as err:
        raise _renamed(err, whole) from None


def _item_in(sub: dict, match) -> dict | None:
    """The item of `sub` that `match`es; else the one a pending update holds (`pending_if_incomplete`, §3.6: the
    change waits for its invoice to be paid), in the item's full shape."""
    for item in sub["items"]["data"]:
        if match(item):
            return item
    for item in (sub.get("pending_update") or {}).get("subscription_items") or []:
        if match(item):
            return {**_ITEM_DEFAULTS, "current_period_start": sub["current_period_start"],
                    "current_period_end": sub["current_period_end"], **item}
    return None


async def _holding(ctx: Ctx, item_id) -> tuple[dict, str, dict]:
    """(subscription, billing key, item) of a current item; a removed or unknown id is Stripe's 404 on `id`."""
    found = await store.locate_item(ctx.services.pool, ctx.account, item_id) if isinstance(item_id, str) else None
    item = next((it for it in found[0]["items"]["data"] if it["id"] == item_id), None) if found else None
    if item is None:
        raise ResourceMissing(_KIND, str(item_id))
    return found[0], found[1], item


async def create_subscription_item(ctx: Ctx) -> dict:
    params = _params(ctx)
    for name in ("subscription", "price"):
        if params.get(name) in (None, ""):
            raise missing(name)
        p.string(params[name], name, max_len=255)
    _, key, _ = await _find(ctx, _TABLE, "subscription", params["subscription"], "subscription")
    update = {"items": [_picked(params, ("price", "quantity", "metadata"))], **_picked(params, _CHANGE)}
    sub = await _change(ctx, key, params["subscription"], update, "price")
    # The new item is the one holding the price sent: a subscription holds each price at most once.
    item = _item_in(sub, lambda it: it["price"]["id"] == params["price"])
    if item is None:  # the change was decided without the item: a bug, not the caller's
        raise RuntimeError(f"subscription {sub['id']} came back without an item for {params['price']}")
    return item


async def retrieve_subscription_item(ctx: Ctx) -> dict:
    return (await _holding(ctx, ctx.params["id"]))[2]


async def update_subscription_item(ctx: Ctx) -> dict:
    sub, key, item = await _holding(ctx, ctx.params["id"])
    params = _params(ctx)
    changes = {"id": item["id"], **_picked(params, ("price", "quantity", "metadata", "clear_usage"))}
    changed = await _change(ctx, key, sub["id"], {"items": [changes], **_picked(params, _CHANGE)}, "price")
    return _item_in(changed, lambda it: it["id"] == item["id"]) or item


async def delete_subscription_item(ctx: Ctx) -> dict:
    sub, key, item = await _holding(ctx, ctx.params["id"])
    params = _params(ctx)
    gone = {"id": item["id"], "deleted": True, **_picked(params, ("clear_usage",))}
    await _change(ctx, key, sub["id"], {"items": [gone], **_picked(params, ("proration_behavior", "proration_date"))},
                  "id")
    return {"id": item["id"], "object": _KIND, "deleted": True}


async def list_subscription_items(ctx: Ctx) -> dict:
    """The subscription's items in the order its own `items` list holds them: that list is the first page of
    this one (its `url` says so, §3.1)."""
    p.check_keys(ctx.params, _LIST | {"subscription"})
    if ctx.params.get("subscription") in (None, ""):
        raise missing("subscription")
    sub_id = p.string(ctx.params["subscription"], "subscription", max_len=255)
    sub = (await _find(ctx, _TABLE, "subscription", sub_id, "subscription"))[0]
    return list_object(sub["items"]["data"], ctx.params, "/v1/subscription_items")


routes = [
    route("/v1/subscription_items", create_subscription_item, ["POST"]),
    route("/v1/subscription_items", list_subscription_items, ["GET"]),
    route("/v1/subscription_items/{id}", retrieve_subscription_item, ["GET"]),
    route("/v1/subscription_items/{id}", update_subscription_item, ["POST"]),
    route("/v1/subscription_items/{id}", delete_subscription_item, ["DELETE"]),
]
