"""`POST /v1/invoices/create_preview` (reference §4.6): the next invoice, or what a change would invoice,
decided on the current book with the usage so far (tally_core/billing/previews.py); nothing is saved."""

from __future__ import annotations

from decimal import Decimal

from tally_aggregator import usage as usage_port
from tally_billing import queries as store
from tally_core.billing import params as p
from tally_core.billing.commands import parse, to_params
from tally_core.billing.previews import preview
from tally_core.errors import ApiError, invalid, missing
from tally_core.ids import new_id
from tally_edge.context import Ctx, route

from .billing_routes import _RENEWING, _find, _params, pinned_prices

PREVIEW_USAGE_WAIT = 10.0  # seconds a preview waits for the aggregator, as the worker does before a usage read


_DETAILS = ("items", "proration_behavior", "proration_date", "billing_cycle_anchor", "cancel_at",
            "cancel_at_period_end", "cancel_now")


def _in_details(err: ApiError) -> ApiError:
    """A refusal of a `subscription_details` param names it where the request put it."""
    for e in (err, *getattr(err, "errors", ())):
        if e.param and not e.param.startswith("subscription_details"):
            head, _, rest = e.param.partition("[")
            e.param = f"subscription_details[{head}]" + (f"[{rest}" if rest else "")
    return err


def _preview_change(ctx: Ctx, details, sub_id: str, key: str) -> dict | None:
    """The command record `subscription_details` describe (§4.6), typed as the update's or the cancel's."""
    if details in (None, ""):
        return None
    details = p.hash_(details, "subscription_details")
    p.check_keys(details, set(_DETAILS), "subscription_details")
    if details.get("proration_date") not in (None, ""):
        # §4.6: "If set, `subscription`, and one of `subscription_details.items`, or
        # `subscription_details.trial_end` are required. Also, `subscription_details.proration_behavior`
        # cannot be set to 'none'."
        if details.get("items") in (None, "", [], {}):
            raise missing("subscription_details[items]")
        if details.get("proration_behavior") == "none":
            raise invalid("subscription_details[proration_behavior]", "cannot be `none` with a proration_date.")
    if details.get("cancel_now") not in (None, "") and p.boolean(details["cancel_now"],
                                                                 "subscription_details[cancel_now]"):
        others = set(details) - {"cancel_now", "proration_behavior"}
        if others:
            raise invalid(f"subscription_details[{sorted(others)[0]}]", "cannot be previewed with cancel_now.")
        kind = "subscription.cancel"
        params = {"invoice_now": True, "prorate": details.get("proration_behavior") != "none"}
    else:
        kind = "subscription.update"
        params = {k: v for k, v in details.items() if k != "cancel_now"}
    try:
        typed = parse(kind, params, object_id=sub_id, account=ctx.account, now=ctx.now())
        prices = pinned_prices(ctx, params)
    except ApiError as err:
        raise _in_details(err) from None
    return {"id": new_id("cmd_preview"), "type": kind, "version": 1, "account": ctx.account, "key": key,
            "at": ctx.now(), "object_id": sub_id, "params": to_params(typed), "prices": prices}


async def create_preview(ctx: Ctx) -> dict:
    """`POST /v1/invoices/create_preview`: decided on the current book with the usage so far; nothing saved."""
    params = _params(ctx)
    p.check_keys(params, {"customer", "subscription", "subscription_details", "expand"})
    for name in ("customer", "subscription"):
        if params.get(name) not in (None, ""):
            p.string(params[name], name, max_len=255)
    sub_id = params.get("subscription")
    if sub_id in (None, ""):
        if params.get("customer") in (None, ""):
            raise missing("subscription")
        listed = await store.list_page(ctx.services.pool, "billing_subscriptions", ctx.account,
                                       {"customer": params["customer"], "status": _RENEWING},
                                       limit=2, after=None, before=None)
        if len(listed[0]) != 1:
            raise invalid("subscription", "name the subscription to preview (the customer has "
                                          f"{len(listed[0])}{'+' if listed[1] else ''} active).")
        sub_id = listed[0][0]["id"]
    _, key, _ = await _find(ctx, "billing_subscriptions", "subscription", sub_id, "subscription")
    change = _preview_change(ctx, params.get("subscription_details"), sub_id, key)
    # "The usage so far" includes what was just sent: read once the aggregator has folded it (as the worker does).
    await usage_port.caught_up(ctx.services.pool, ctx.services.log, ctx.services.settings.consumer_group,
                               timeout=PREVIEW_USAGE_WAIT)
    book = await store.load_book(ctx.services.pool, ctx.account, key)
    values: dict[tuple, Decimal] = {}
    for _ in range(3):
        absent = set()

        def usage(meter, customer, start, end):
            key = (ctx.account, meter, customer, start, end)
            if key not in values:
                absent.add(key)
                return Decimal(0)
            return values[key]

        try:
            obj = preview(book, sub_id, ctx.now(), usage, change)
        except ApiError as err:
            raise _in_details(err) if change is not None else err from None
        if not absent:
            return obj
        values.update(await usage_port.period_usage(ctx.services.pool, ctx.services.catalog.meter, absent))
    raise RuntimeError("preview usage did not settle")


routes = [route("/v1/invoices/create_preview", create_preview, ["POST"])]
