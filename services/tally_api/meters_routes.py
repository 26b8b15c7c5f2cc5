"""`/v1/billing/meters`: create, retrieve, update, list, deactivate, reactivate, event summaries."""

from __future__ import annotations

from decimal import Decimal

import orjson
from starlette.routing import Route

from tally_aggregator.usage import usage_buckets
from tally_core import meters as m
from tally_core.aggregation import Usage
from tally_core.errors import InvalidRequest, ResourceMissing, invalid
from tally_core.ids import new_id
from tally_core.summaries import NO_GROUP, not_in_list, parse_query, summary_id
from tally_edge.context import Ctx, endpoint
from tally_edge.http import list_object


def _meter(ctx: Ctx) -> m.Meter:
    meter = ctx.services.catalog.meter(ctx.account, ctx.params["id"])
    if meter is None:
        raise ResourceMissing("billing.meter", ctx.params["id"])
    return meter


async def create_meter(ctx: Ctx) -> dict:
    meter = m.create_meter(ctx.params, id=new_id("mtr"), account=ctx.account, now=ctx.now())
    if meter.event_time_window is not None:
        raise invalid("event_time_window", "pre-aggregated meters (hour/day windows) are not supported yet; "
                      "omit it to handle every event on its own.", code="parameter_unsupported")
    clash = ctx.services.catalog.meter_by_event_name(ctx.account, meter.event_name)
    if clash is not None:
        raise InvalidRequest(f"A meter with event_name {meter.event_name} already exists: {clash.id}. "
                             "An event name can belong to one meter only.", param="event_name",
                             code="resource_already_exists")
    await ctx.services.catalog.save_meter("billing.meter.created", meter, new_id("evt"))
    return meter.to_stripe()


async def retrieve_meter(ctx: Ctx) -> dict:
    return _meter(ctx).to_stripe()


async def update_meter(ctx: Ctx) -> dict:
    meter = _meter(ctx)
    params = {k: v for k, v in ctx.params.items() if k != "id"}
    updated = m.update_meter(meter, params, now=ctx.now())
    if updated is not meter:
        await ctx.services.catalog.save_meter("billing.meter.updated", updated, new_id("evt"))
    return updated.to_stripe()


async def deactivate_meter(ctx: Ctx) -> dict:
    meter = m.deactivate(_meter(ctx), now=ctx.now())
    await ctx.services.catalog.save_meter("billing.meter.deactivated", meter, new_id("evt"))
    return meter.to_stripe()


async def reactivate_meter(ctx: Ctx) -> dict:
    meter = m.reactivate(_meter(ctx), now=ctx.now())
    await ctx.services.catalog.save_meter("billing.meter.reactivated", meter, new_id("evt"))
    return meter.to_stripe()


async def list_meters(ctx: Ctx) -> dict:
    status = ctx.params.get("status")
    if status not in (None, "", "active", "inactive"):
        raise invalid("status", "must be one of active, inactive.", code="parameter_invalid_enum")
    meters = ctx.services.catalog.meters(ctx.account)
    items = [x for x in meters if not status or x.status == status]
    return list_object(items, ctx.params, "/v1/billing/meters", m.Meter.to_stripe)


def _number(value: Decimal):
    """Stripe's aggregated_value is a JSON number; integers stay integers."""
    return int(value) if value == value.to_integral_value() else float(value)


def _summary(meter: m.Meter, query, start: int, group: str, usage: Usage) -> dict:
    item = {
        "id": summary_id(meter.id, start, group),
        "object": "billing.meter_event_summary",
        "aggregated_value": _number(usage.value(meter.formula)),
        "end_time": min(start + query.width, query.end_time),
        "livemode": False,
        "meter": meter.id,
        "start_time": start,
    }
    if query.group_by:
        item["dimensions"] = orjson.loads(group)
    return item


async def event_summaries(ctx: Ctx) -> dict:
    """Summaries in (start_time, group) order; only the page's windows are read (see tally_core.summaries)."""
    meter = _meter(ctx)
    query = parse_query(ctx.params, meter)
    scope = dict(origin=query.start_time, width=query.width, group_by=query.group_by,
                 filters=dict(query.filters), with_last=meter.formula == "last")
    pool, url = ctx.services.pool, f"/v1/billing/meters/{meter.id}/event_summaries"
    if not query.group_by:
        # Stripe returns one summary per window, zero where nothing was reported: the page is arithmetic.
        lo, hi, has_more = query.page(meter.id)
        rows = await usage_buckets(pool, ctx.account, meter.id, query.customer, lo=lo, hi=hi, **scope)
        found = {bucket: usage for bucket, _, usage in rows}
        data = [_summary(meter, query, t, NO_GROUP, found.get(t, Usage())) for t in range(lo, hi, query.width)]
        return {"object": "list", "url": url, "has_more": has_more, "data": data}
    cursor, mark = query.cursor, {}
    if cursor is not None:
        hits = await usage_buckets(pool, ctx.account, meter.id, query.customer, lo=cursor.start,
                                   hi=min(query.end_time, cursor.start + query.width), digest=cursor.digest,
                                   limit=1, **{**scope, "with_last": False})
        if not hits or hits[0][0] != cursor.start:
            raise not_in_list(cursor)
        mark = {"after" if cursor.after else "before": (cursor.start, hits[0][1])}
    lo, hi = query.scan_range()
    rows = await usage_buckets(pool, ctx.account, meter.id, query.customer, lo=lo, hi=hi, limit=query.limit + 1,
                               **mark, **scope)
    has_more = len(rows) > query.limit
    rows = (rows[1:] if cursor is not None and not cursor.after else rows[:query.limit]) if has_more else rows
    data = [_summary(meter, query, bucket, group, usage) for bucket, group, usage in rows]
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


routes = [
    Route("/v1/billing/meters", endpoint(create_meter), methods=["POST"]),
    Route("/v1/billing/meters", endpoint(list_meters), methods=["GET"]),
    Route("/v1/billing/meters/{id}", endpoint(retrieve_meter), methods=["GET"]),
    Route("/v1/billing/meters/{id}", endpoint(update_meter), methods=["POST"]),
    Route("/v1/billing/meters/{id}/deactivate", endpoint(deactivate_meter), methods=["POST"]),
    Route("/v1/billing/meters/{id}/reactivate", endpoint(reactivate_meter), methods=["POST"]),
    Route("/v1/billing/meters/{id}/event_summaries", endpoint(event_summaries), methods=["GET"]),
]
