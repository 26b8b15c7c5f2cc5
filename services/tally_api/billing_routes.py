"""Customers, subscriptions, invoices, test clocks and events: reads from the billing projections, changes as
commands through `BillingGateway` (the worker decides and answers).

Which billing key a command goes to: a customer's own (`account:cus_…`), or its test clock's
(`account:clock_…`) when it is attached to one, so a clock and its customers move through time together.
"""

from __future__ import annotations



from tally_billing import queries as store
from tally_core.billing import params as p
from tally_core.billing.commands import parse, to_params
from tally_core.billing.products import expand_of
from tally_core.billing.subscriptions import ENDED, RENEWING, SubscriptionStatus
from tally_core.errors import ResourceMissing, invalid, missing, missing_reference
from tally_core.ids import new_id
from tally_edge.context import REQUEST_ID, Ctx, route
from tally_edge.http import list_object, page_params

_LIST = {"limit", "starting_after", "ending_before", "expand"}
_STATUSES = tuple(str(s) for s in SubscriptionStatus)
_ENDED = tuple(str(s) for s in ENDED)
_RENEWING = tuple(str(s) for s in RENEWING)
# Listed without a `status` filter: every status but the ended ones (Stripe's default list).
_CURRENT = tuple(s for s in _STATUSES if s not in _ENDED)


def _params(ctx: Ctx) -> dict:
    return {k: v for k, v in ctx.params.items() if k != "id"}


async def _submit(ctx: Ctx, key: str, kind: str, object_id: str | None, params: dict | None = None, **extra) -> dict:
    params = params if params is not None else _params(ctx)
    # ARCHITECTURE decision 10: every state-free rule is checked here, and the log holds the typed, normalized
    # params; the worker decides only what needs the book, so tightening a rule never changes a re-decision.
    typed = parse(kind, params, object_id=object_id, account=ctx.account, now=ctx.now())
    return await ctx.services.billing.submit(
        ctx.account, key, kind, object_id=object_id, params=to_params(typed),
        request_id=ctx.request.scope.get(REQUEST_ID),
        idempotency_key=ctx.request.headers.get("idempotency-key"), **extra)


async def _find(ctx: Ctx, table: str, kind: str, id_: str, param: str = "id") -> tuple[dict, str, bool]:
    found = await store.locate(ctx.services.pool, table, ctx.account, id_) if isinstance(id_, str) else None
    if found is None:
        raise ResourceMissing(kind, str(id_)) if param == "id" else missing_reference(kind, str(id_), param)
    return found


async def _page(ctx: Ctx, table: str, url: str, filters: dict, order: str = "created") -> dict:
    limit, after, before = page_params(ctx.params)
    objs, has_more, found = await store.list_page(ctx.services.pool, table, ctx.account, filters, limit=limit,
                                                  after=after, before=before, order=order)
    if not found:
        param = "starting_after" if after else "ending_before"
        raise invalid(param, f"no object with id {after or before} in this list.", code="resource_missing")
    return {"object": "list", "url": url, "has_more": has_more, "data": objs}


def _filter(ctx: Ctx, allowed: set[str]) -> dict:
    p.check_keys(ctx.params, allowed | _LIST)
    return {k: p.string(ctx.params[k], k) for k in allowed if ctx.params.get(k) not in (None, "")}


# --- customers -----------------------------------------------------------------------------------------------

async def create_customer(ctx: Ctx) -> dict:
    params = _params(ctx)
    cus_id = new_id("cus")
    key = f"{ctx.account}:{cus_id}"
    clock = params.get("test_clock")
    if clock not in (None, ""):
        p.string(clock, "test_clock", max_len=255)
        found = await _find(ctx, "test_clocks", "test_clock", clock, "test_clock")
        if found[2]:
            raise missing_reference("test_clock", clock, "test_clock")
        key = found[1]
    obj = await _submit(ctx, key, "customer.create", cus_id, params)
    if clock and ctx.services.clock_times is not None:
        ctx.services.clock_times.set_customer_clock(ctx.account, cus_id, clock)
    return await _expand_customer(ctx, obj)


async def _expand_customer(ctx: Ctx, obj: dict) -> dict:
    """`expand[]=test_clock`, the one customer expansion tally performs (the contract refuses the others)."""
    if "test_clock" in expand_of(ctx.params) and obj.get("test_clock"):
        found = await store.locate(ctx.services.pool, "test_clocks", ctx.account, obj["test_clock"])
        if found:
            obj["test_clock"] = found[0]
    return obj


async def retrieve_customer(ctx: Ctx) -> dict:
    obj, _, deleted = await _find(ctx, "billing_customers", "customer", ctx.params["id"])
    return {"id": obj["id"], "object": "customer", "deleted": True} if deleted else await _expand_customer(ctx, obj)


async def update_customer(ctx: Ctx) -> dict:
    _, key, deleted = await _find(ctx, "billing_customers", "customer", ctx.params["id"])
    if deleted:
        raise ResourceMissing("customer", ctx.params["id"])
    return await _expand_customer(ctx, await _submit(ctx, key, "customer.update", ctx.params["id"]))


async def delete_customer(ctx: Ctx) -> dict:
    _, key, deleted = await _find(ctx, "billing_customers", "customer", ctx.params["id"])
    if deleted:
        raise ResourceMissing("customer", ctx.params["id"])
    return await _submit(ctx, key, "customer.delete", ctx.params["id"])


async def list_customers(ctx: Ctx) -> dict:
    filters: dict = _filter(ctx, {"email", "test_clock"})
    filters.setdefault("test_clock", None)  # list-all omits test-clock objects (reference §7)
    filters["deleted"] = False
    return await _page(ctx, "billing_customers", "/v1/customers", filters)


# --- subscriptions -------------------------------------------------------------------------------------------

async def _expand_subscription(ctx: Ctx, obj: dict) -> dict:
    expand = expand_of(ctx.params)  # the contract refuses any other expansion, rather than ignore it
    if "latest_invoice" in expand and obj.get("latest_invoice"):
        found = await store.locate(ctx.services.pool, "billing_invoices", ctx.account, obj["latest_invoice"])
        if found:
            obj["latest_invoice"] = found[0]
    return obj


async def create_subscription(ctx: Ctx) -> dict:
    params = _params(ctx)
    if params.get("customer") in (None, ""):
        raise missing("customer")
    p.string(params["customer"], "customer", max_len=255)
    _, key, deleted = await _find(ctx, "billing_customers", "customer", params["customer"], "customer")
    if deleted:
        raise missing_reference("customer", params["customer"], "customer")
    params.pop("expand", None)
    obj = await _submit(ctx, key, "subscription.create", new_id("sub"), params, prices=pinned_prices(ctx, params))
    return await _expand_subscription(ctx, obj)


def pinned_prices(ctx: Ctx, params: dict) -> dict:
    """The prices `items[n][price]` names, as snapshots the command carries: a replay prices with these."""
    raw = params.get("items")
    raw = list(raw.values()) if isinstance(raw, dict) else raw
    prices = {}
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        price_id = item.get("price") if isinstance(item, dict) else None
        if isinstance(price_id, str) and price_id:
            price = ctx.services.catalog.price(ctx.account, price_id)
            if price is None:
                raise missing_reference("price", price_id, f"items[{i}][price]")
            prices[price_id] = price.to_stripe(expand=["tiers"])
    return prices


async def retrieve_subscription(ctx: Ctx) -> dict:
    obj, _, _ = await _find(ctx, "billing_subscriptions", "subscription", ctx.params["id"])
    return await _expand_subscription(ctx, obj)


async def update_subscription(ctx: Ctx) -> dict:
    _, key, _ = await _find(ctx, "billing_subscriptions", "subscription", ctx.params["id"])
    params = _params(ctx)
    obj = await _submit(ctx, key, "subscription.update", ctx.params["id"], params, prices=pinned_prices(ctx, params))
    return await _expand_subscription(ctx, obj)


async def cancel_subscription(ctx: Ctx) -> dict:
    if ctx.params.get("cancellation_details") not in (None, "", {}):
        # Stripe keeps `cancellation_details{comment,feedback}` on the subscription (reference §3.1, §3.5);
        # tally's subscription has no such field yet, so they would be dropped without a word: refused instead.
        raise invalid("cancellation_details", "is not recorded by tally yet; cancel without it.",
                      code="parameter_unsupported")
    _, key, _ = await _find(ctx, "billing_subscriptions", "subscription", ctx.params["id"])
    return await _expand_subscription(ctx, await _submit(ctx, key, "subscription.cancel", ctx.params["id"]))


async def list_subscriptions(ctx: Ctx) -> dict:
    filters: dict = _filter(ctx, {"customer", "status", "test_clock"})
    status = filters.pop("status", None)
    if status is None:
        filters["status"] = _CURRENT
    elif status == "ended":
        filters["status"] = _ENDED
    elif status != "all":
        filters["status"] = p.enum(status, "status", _STATUSES)
    if "customer" not in filters:
        filters.setdefault("test_clock", None)
    return await _page(ctx, "billing_subscriptions", "/v1/subscriptions", filters)


# --- invoices ------------------------------------------------------------------------------------------------

async def retrieve_invoice(ctx: Ctx) -> dict:
    return (await _find(ctx, "billing_invoices", "invoice", ctx.params["id"]))[0]


async def list_invoices(ctx: Ctx) -> dict:
    filters: dict = _filter(ctx, {"customer", "subscription", "status", "test_clock"})
    if "status" in filters:
        filters["status"] = p.enum(filters["status"], "status", ("draft", "open", "paid", "uncollectible", "void"))
    if not {"customer", "subscription", "test_clock"} & filters.keys():
        filters["test_clock"] = None
    return await _page(ctx, "billing_invoices", "/v1/invoices", filters)


async def list_invoice_lines(ctx: Ctx) -> dict:
    p.check_keys(ctx.params, _LIST | {"id"})
    obj = (await _find(ctx, "billing_invoices", "invoice", ctx.params["id"]))[0]
    return list_object(obj["lines"]["data"], ctx.params, f"/v1/invoices/{obj['id']}/lines")


def _off_session(params: dict) -> None:
    """Stripe's default, `off_session=true` (no customer present to authenticate), is how tally charges every
    invoice; `false` would ask for an on-session payment tally cannot hold, so it is refused, not ignored."""
    if params.get("off_session") not in (None, "") and not p.boolean(params["off_session"], "off_session"):
        raise invalid("off_session", "tally pays invoices off-session only; leave it out or pass true.",
                      code="parameter_unsupported")


def _invoice_command(kind: str):
    async def handler(ctx: Ctx) -> dict:
        if kind == "invoice.pay":
            _off_session(ctx.params)
        _, key, _ = await _find(ctx, "billing_invoices", "invoice", ctx.params["id"])
        return await _submit(ctx, key, kind, ctx.params["id"])
    handler.__name__ = kind.replace(".", "_")
    handler.__doc__ = f"`{kind}` through the billing worker."
    return handler


# --- test clocks ---------------------------------------------------------------------------------------------

async def create_clock(ctx: Ctx) -> dict:
    clock_id = new_id("clock")
    obj = await _submit(ctx, f"{ctx.account}:{clock_id}", "test_clock.create", clock_id)
    if ctx.services.clock_times is not None:
        ctx.services.clock_times.set_clock_time(ctx.account, clock_id, obj["frozen_time"])
    return obj


async def find_live(ctx: Ctx, table: str, kind: str) -> tuple[dict, str]:
    """(object, billing key) of the object the URL names; a deleted one answers 404, as Stripe does."""
    obj, key, deleted = await _find(ctx, table, kind, ctx.params["id"])
    if deleted:
        raise ResourceMissing(kind, ctx.params["id"])
    return obj, key


async def _live_clock(ctx: Ctx) -> tuple[dict, str]:
    return await find_live(ctx, "test_clocks", "test_helpers.test_clock")


async def retrieve_clock(ctx: Ctx) -> dict:
    return (await _live_clock(ctx))[0]


async def advance_clock(ctx: Ctx) -> dict:
    _, key = await _live_clock(ctx)
    obj = await _submit(ctx, key, "test_clock.advance", ctx.params["id"])
    if ctx.services.clock_times is not None:
        ctx.services.clock_times.set_clock_time(ctx.account, obj["id"], obj["status_details"]["advancing"][
            "target_frozen_time"])
    return obj


async def delete_clock(ctx: Ctx) -> dict:
    _, key = await _live_clock(ctx)
    obj = await _submit(ctx, key, "test_clock.delete", ctx.params["id"])
    if ctx.services.clock_times is not None:
        ctx.services.clock_times.forget_clock(ctx.account, ctx.params["id"])
    return obj


async def list_clocks(ctx: Ctx) -> dict:
    p.check_keys(ctx.params, _LIST)
    return await _page(ctx, "test_clocks", "/v1/test_helpers/test_clocks", {"deleted": False})


# --- events --------------------------------------------------------------------------------------------------

async def retrieve_event(ctx: Ctx) -> dict:
    return (await _find(ctx, "billing_events", "event", ctx.params["id"]))[0]


async def list_events(ctx: Ctx) -> dict:
    if "delivery_success" in ctx.params:
        # Stripe filters on webhook delivery outcomes; tally delivers no webhooks yet, so the filter would
        # silently match nothing or everything: refuse it.
        raise invalid("delivery_success", "webhook delivery is not built yet, so events cannot be filtered by it.",
                      code="parameter_unknown")
    p.check_keys(ctx.params, _LIST | {"type", "types"})
    filters: dict = {}
    if ctx.params.get("type"):
        filters["type"] = p.string(ctx.params["type"], "type")
        if "*" in filters["type"]:
            raise invalid("type", "wildcards are not supported; name the event type.")
    if ctx.params.get("types"):
        raw = ctx.params["types"]
        filters["type"] = [p.string(x, "types") for x in (raw.values() if isinstance(raw, dict) else raw)]
    return await _page(ctx, "billing_events", "/v1/events", filters)


routes = [
    route("/v1/customers", create_customer, ["POST"]),
    route("/v1/customers", list_customers, ["GET"]),
    route("/v1/customers/{id}", retrieve_customer, ["GET"]),
    route("/v1/customers/{id}", update_customer, ["POST"]),
    route("/v1/customers/{id}", delete_customer, ["DELETE"]),
    route("/v1/subscriptions", create_subscription, ["POST"]),
    route("/v1/subscriptions", list_subscriptions, ["GET"]),
    route("/v1/subscriptions/{id}", retrieve_subscription, ["GET"]),
    route("/v1/subscriptions/{id}", update_subscription, ["POST"]),
    route("/v1/subscriptions/{id}", cancel_subscription, ["DELETE"]),
    route("/v1/invoices", list_invoices, ["GET"]),
    route("/v1/invoices/{id}", retrieve_invoice, ["GET"]),
    route("/v1/invoices/{id}/lines", list_invoice_lines, ["GET"]),
    route("/v1/invoices/{id}/finalize", _invoice_command("invoice.finalize"), ["POST"]),
    route("/v1/invoices/{id}/pay", _invoice_command("invoice.pay"), ["POST"]),
    route("/v1/invoices/{id}/void", _invoice_command("invoice.void"), ["POST"]),
    route("/v1/invoices/{id}/mark_uncollectible", _invoice_command("invoice.mark_uncollectible"), ["POST"]),
    route("/v1/test_helpers/test_clocks", create_clock, ["POST"]),
    route("/v1/test_helpers/test_clocks", list_clocks, ["GET"]),
    route("/v1/test_helpers/test_clocks/{id}", retrieve_clock, ["GET"]),
    route("/v1/test_helpers/test_clocks/{id}", delete_clock, ["DELETE"]),
    route("/v1/test_helpers/test_clocks/{id}/advance", advance_clock, ["POST"]),
    route("/v1/events", list_events, ["GET"]),
    route("/v1/events/{id}", retrieve_event, ["GET"]),
]
