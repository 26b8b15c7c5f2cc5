"""`/v1/invoiceitems` (reference §4.4, §6; commands `invoiceitem.*`, handlers/invoice_items.py): reads from the
`billing_invoice_items` projection, changes as commands to the customer's billing key (its clock's, when it
has one, so the item moves through time with the customer's invoices).

A price an item names is pinned in the command, as subscription create pins its prices: re-deciding prices the
item with that snapshot. An update pins the item's own price too, so a new quantity prices the same way.
"""

from __future__ import annotations


from tally_core.billing import params as p
from tally_core.errors import missing, missing_reference
from tally_core.ids import new_id
from tally_edge.context import Ctx, route

from .billing_routes import _LIST, _find, _page, _params, _submit, find_live

_TABLE = "billing_invoice_items"


def _named_price(params: dict) -> str | None:
    """`price`, or `pricing[price]` (its basil spelling); the edge refuses both at once."""
    pricing = params.get("pricing")
    price = pricing.get("price") if isinstance(pricing, dict) else None
    price = params.get("price") or price
    return price if isinstance(price, str) and price else None


def _pin(ctx: Ctx, prices: dict, price_id: str | None, param: str | None) -> None:
    if price_id is None or price_id in prices:
        return
    price = ctx.services.catalog.price(ctx.account, price_id)
    if price is None:
        if param is None:
            return  # the item's own price, gone from the catalog: an update that needs it says so
        raise missing_reference("price", price_id, param)
    prices[price_id] = price.to_stripe(expand=["tiers"])


async def create_invoice_item(ctx: Ctx) -> dict:
    params = _params(ctx)
    if params.get("customer") in (None, ""):
        raise missing("customer")
    p.string(params["customer"], "customer", max_len=255)
    _, key, deleted = await _find(ctx, "billing_customers", "customer", params["customer"], "customer")
    if deleted:
        raise missing_reference("customer", params["customer"], "customer")
    prices: dict = {}
    _pin(ctx, prices, _named_price(params), "pricing[price]" if "pricing" in params else "price")
    params.pop("expand", None)
    return await _submit(ctx, key, "invoiceitem.create", new_id("ii"), params, prices=prices)


async def _live(ctx: Ctx) -> tuple[dict, str]:
    return await find_live(ctx, _TABLE, "invoiceitem")


async def retrieve_invoice_item(ctx: Ctx) -> dict:
    return (await _live(ctx))[0]


async def update_invoice_item(ctx: Ctx) -> dict:
    obj, key = await _live(ctx)
    params = _params(ctx)
    prices: dict = {}
    _pin(ctx, prices, _named_price(params), "pricing[price]" if "pricing" in params else "price")
    _pin(ctx, prices, obj["pricing"]["price_details"]["price"], None)
    params.pop("expand", None)
    return await _submit(ctx, key, "invoiceitem.update", obj["id"], params, prices=prices)


async def delete_invoice_item(ctx: Ctx) -> dict:
    obj, key = await _live(ctx)
    return await _submit(ctx, key, "invoiceitem.delete", obj["id"], {})


async def list_invoice_items(ctx: Ctx) -> dict:
    p.check_keys(ctx.params, _LIST | {"customer", "invoice", "pending"})
    filters: dict = {k: p.string(ctx.params[k], k, max_len=255) for k in ("customer", "invoice")
                     if ctx.params.get(k) not in (None, "")}
    if ctx.params.get("pending") not in (None, ""):
        filters["pending"] = p.boolean(ctx.params["pending"], "pending")
    if not {"customer", "invoice"} & filters.keys():
        filters["test_clock"] = None  # list-all omits test-clock objects, as Stripe's lists do (reference §7)
    filters["deleted"] = False
    return await _page(ctx, _TABLE, "/v1/invoiceitems", filters, order="date")


routes = [
    route("/v1/invoiceitems", create_invoice_item, ["POST"]),
    route("/v1/invoiceitems", list_invoice_items, ["GET"]),
    route("/v1/invoiceitems/{id}", retrieve_invoice_item, ["GET"]),
    route("/v1/invoiceitems/{id}", update_invoice_item, ["POST"]),
    route("/v1/invoiceitems/{id}", delete_invoice_item, ["DELETE"]),
]
