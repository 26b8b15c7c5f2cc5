"""`/v1/billing/meters`: create, retrieve, update, list, deactivate, reactivate, event summaries."""

from __future__ import annotations

from decimal import Decimal

import orjson
from starlette.routing import Route

from tally_core import meters as m
from tally_core.aggregation import Usage
from tally_core.errors import InvalidRequest, ResourceMissing, invalid
from tally_core.ids import new_id
from tally_core.summaries import parse_query, summary_id
from tally_infra.http import list_object
from tally_infra.usage_store import usage_buckets

from .context import Ctx, endpoint


def _meter(ctx: Ctx) -> m.Meter:
    meter = ctx.services.catalog.get(ctx.account, ctx.params["id"])
    if meter is None:
        raise ResourceMissing("billing.meter", ctx.params["id"])
    return meter


async def create_meter(ctx: Ctx) -> dict:
    meter = m.create_meter(ctx.params, id=new_id("mtr"), account=ctx.account, now=ctx.now())
    if meter.event_time_window is not None:
        raise invalid("event_time_window", "pre-aggregated meters (hour/day windows) are not supported yet; "
                      "omit it to handle every event on its own.", code="parameter_unsupported")
    clash = ctx.services.catalog.by_event_name(ctx.account, meter.event_name)
    if clash is not None:
        raise InvalidRequest(f"A meter with event_name {meter.event_name} already exists: {clash.id}. "
                             "An event name can belong to one meter only.", param="event_name",
                             code="resource_already_exists")
    await ctx.services.catalog.save("billing.meter.created", meter, new_id("evt"))
    return meter.to_stripe()


async def retrieve_meter(ctx: Ctx) -> dict:
    return _meter(ctx).to_stripe()


async def update_meter(ctx: Ctx) -> dict:
    meter = _meter(ctx)
    params = {k: v for k, v in ctx.params.items() if k != "id"}
    updated = m.update_meter(meter, params, now=ctx.now())
    if updated is not meter:
        await ctx.services.catalog.save("billing.meter.updated", updated, new_id("evt"))
    return updated.to_stripe()


async def deactivate_meter(ctx: Ctx) -> dict:
    meter = m.deactivate(_meter(ctx), now=ctx.now())
    await ctx.services.catalog.save("billing.meter.deactivated", meter, new_id("evt"))
    return meter.to_stripe()


async def reactivate_meter(ctx: Ctx) -> dict:
    meter = m.reactivate(_meter(ctx), now=ctx.now())
    await ctx.services.catalog.save("billing.meter.reactivated", meter, new_id("evt"))
    return meter.to_stripe()


async def list_meters(ctx: Ctx) -> dict:
    status = ctx.params.get("status")
    if status not in (None, "", "active", "inactive"):
        raise invalid("status", "must be one of active, inactive.", code="parameter_invalid_enum")
    meters = ctx.services.catalog.list(ctx.account)
    items = [x.to_stripe() for x in meters if not status or x.status == status]
    return list_object(items, ctx.params, "/v1/billing/meters")


def _number(value: Decimal):
    """Stripe's aggregated_value is a JSON number; integers stay integers."""
    return int(value) if value == value.to_integral_value() else float(value)


async def event_summaries(ctx: Ctx) -> dict:
    meter = _meter(ctx)
    query = parse_query(ctx.params, meter)
    width = query.window or (query.end_time - query.start_time)
    rows = await usage_buckets(ctx.services.pool, ctx.account, meter.id, query.customer, query.start_time,
                               query.end_time, width)
    groups: dict[tuple[int, str], Usage] = {}
    for bucket, dims_text, usage in rows:
        dims = orjson.loads(dims_text)
        if any(dims.get(k) != v for k, v in query.filters):
            continue
        group = orjson.dumps({k: dims.get(k) for k in query.group_by}, option=orjson.OPT_SORT_KEYS).decode()
        groups[(bucket, group)] = groups.get((bucket, group), Usage()).merge(usage)
    if not query.group_by:
        # Stripe returns one summary per window, zero where nothing was reported.
        for start, _ in query.windows():
            groups.setdefault((start, "{}"), Usage())
    items = []
    for (start, group), usage in sorted(groups.items()):
        item = {
            "id": summary_id(meter.id, start, group),
            "object": "billing.meter_event_summary",
            "aggregated_value": _number(usage.value(meter.formula)),
            "end_time": min(start + width, query.end_time),
            "livemode": False,
            "meter": meter.id,
            "start_time": start,
        }
        if query.group_by:
            item["dimensions"] = orjson.loads(group)
        items.append(item)
    return list_object(items, ctx.params, f"/v1/billing/meters/{meter.id}/event_summaries")


routes = [
    Route("/v1/billing/meters", endpoint(create_meter), methods=["POST"]),
    Route("/v1/billing/meters", endpoint(list_meters), methods=["GET"]),
    Route("/v1/billing/meters/{id}", endpoint(retrieve_meter), methods=["GET"]),
    Route("/v1/billing/meters/{id}", endpoint(update_meter), methods=["POST"]),
    Route("/v1/billing/meters/{id}/deactivate", endpoint(deactivate_meter), methods=["POST"]),
    Route("/v1/billing/meters/{id}/reactivate", endpoint(reactivate_meter), methods=["POST"]),
    Route("/v1/billing/meters/{id}/event_summaries", endpoint(event_summaries), methods=["GET"]),
]
