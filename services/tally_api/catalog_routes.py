"""`/v1/products` and `/v1/prices`: create, retrieve, update, list; delete a product without prices.

Validation is the pure core's (`tally_core.billing.products`, `tally_core.billing.prices`); these handlers add
the checks that need the catalog (does the product / meter exist in this account, is the lookup key free)
and write through `ctx.services.catalog` (a `Catalog`). Check-then-write runs under the catalog's lock.

Error statuses: a missing object in the path is 404 `resource_missing`; a missing object named by a body
param (`product`, `recurring[meter]`, `default_price`) is 400 `resource_missing` naming that param, as Stripe
answers e.g. "No such product: 'prod_x'" on `POST /v1/prices`.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.routing import Route

from tally_catalog.catalog import Catalog
from tally_catalog.records import price_record, product_record
from tally_core.billing import params as p, products as bp
from tally_core.billing.prices import INTERVALS, Price, create_price as core_create_price
from tally_core.billing.products import Product
from tally_core.errors import InvalidRequest, ResourceMissing, invalid, missing_reference, unknown
from tally_core.ids import new_id
from tally_edge.context import Ctx, endpoint
from tally_edge.http import list_object

_PAGING = {"limit", "starting_after", "ending_before", "expand"}


def _catalog(ctx: Ctx) -> Catalog:
    return ctx.services.catalog


# --- output ---------------------------------------------------------------------------------------------

def _product_out(ctx: Ctx, product: Product, expand: set[str], prefix: str = "") -> dict:
    obj = product.to_stripe()
    if prefix + "default_price" in expand and product.default_price:
        price = _catalog(ctx).price(ctx.account, product.default_price)
        if price is not None:
            obj["default_price"] = price.to_stripe()
    return obj


def _price_out(ctx: Ctx, price: Price, expand: set[str], prefix: str = "") -> dict:
    obj = price.to_stripe(expand=["tiers"] if prefix + "tiers" in expand else ())
    if prefix + "product" in expand:
        product = _catalog(ctx).product(ctx.account, price.product)
        if product is not None:
            obj["product"] = product.to_stripe()
    return obj


# --- list filters ---------------------------------------------------------------------------------------

def _created_filter(raw):
    """`created=<ts>` or `created[gt|gte|lt|lte]=<ts>` → predicate on an object's `created`."""
    if raw is None:
        return lambda _: True
    if not isinstance(raw, dict):
        ts = p.timestamp(raw, "created")
        return lambda c: c == ts
    p.check_keys(raw, {"gt", "gte", "lt", "lte"}, "created")
    bounds = {k: p.timestamp(v, f"created[{k}]") for k, v in raw.items()}
    ops = {"gt": lambda c, v: c > v, "gte": lambda c, v: c >= v, "lt": lambda c, v: c < v, "lte": lambda c, v: c <= v}
    return lambda c: all(ops[k](c, v) for k, v in bounds.items())


def _currency_filter(raw) -> str:
    """A three-letter ISO code, as on create: a filter that can match nothing must not answer an empty list."""
    currency = p.string(raw, "currency").lower()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise invalid("currency", "must be a three-letter ISO currency code (e.g. usd).")
    return currency


def _string_list(raw, param: str, max_items: int | None = None) -> list[str]:
    items = [raw] if isinstance(raw, str) else p.array(raw, param)
    if max_items is not None and len(items) > max_items:
        raise invalid(param, f"can have at most {max_items} entries.")
    return [p.string(x, f"{param}[{i}]") for i, x in enumerate(items)]


# --- products -------------------------------------------------------------------------------------------

async def create_product(ctx: Ctx) -> dict:
    """Create a product (Stripe `POST /v1/products`; `default_price_data` creates its default price)."""
    params = dict(ctx.params)
    expand = bp.expand_of(params)
    bp.check_expand(expand, {"default_price"})
    if params.get("type") == "good":
        # Stripe: `good` products are for Orders and SKUs, which tally does not have; every tally product is
        # Stripe's default `service`, usable in prices and subscriptions. Refused rather than ignored.
        raise invalid("type", "tally products are all of type service (usable with subscriptions); "
                              "good (for Orders and SKUs) is not supported.", code="parameter_unsupported")
    default_price_data = params.pop("default_price_data", None)
    now = ctx.now()
    product = bp.create_product(params, id=new_id("prod"), account=ctx.account, now=now)
    price = None
    if default_price_data is not None:
        price_params = bp.default_price_params(default_price_data, product.id)
        try:
            price = core_create_price(price_params, id=new_id("price"), now=now)
        except InvalidRequest as err:
            raise bp.nested_error(err, "default_price_data") from None
        product = replace(product, default_price=price.id)
    cat = _catalog(ctx)
    async with cat.lock:
        if cat.product(ctx.account, product.id) is not None:
            raise InvalidRequest("Product already exists.", param="id", code="resource_already_exists")
        records = [product_record("product.created", product, new_id("evt"))]
        if price is not None:
            records.append(price_record("price.created", price, ctx.account, new_id("evt")))
        await cat.commit(records)
    return _product_out(ctx, product, expand)


def _product(ctx: Ctx) -> Product:
    product = _catalog(ctx).product(ctx.account, ctx.params["id"])
    if product is None:
        raise ResourceMissing("product", ctx.params["id"])
    return product


async def retrieve_product(ctx: Ctx) -> dict:
    """Retrieve a product."""
    expand = bp.expand_of(ctx.params)
    bp.check_expand(expand, {"default_price"})
    return _product_out(ctx, _product(ctx), expand)


async def update_product(ctx: Ctx) -> dict:
    """Update a product (`x=` unsets a nullable field; `metadata[k]=` removes a key)."""
    params = {k: v for k, v in ctx.params.items() if k != "id"}
    expand = bp.expand_of(params)
    bp.check_expand(expand, {"default_price"})
    cat = _catalog(ctx)
    async with cat.lock:
        product = _product(ctx)
        updated = bp.update_product(product, params, now=ctx.now())
        if updated.default_price is not None and updated.default_price != product.default_price:
            price = cat.price(ctx.account, updated.default_price)
            if price is None:
                raise missing_reference("price", updated.default_price, "default_price")
            if price.product != product.id:
                raise invalid("default_price", f"the price {price.id} belongs to another product ({price.product}).")
            if not price.active:
                raise invalid("default_price", f"the price {price.id} is archived (active=false).")
        if updated is not product:
            await cat.save_product("product.updated", updated, new_id("evt"))
    return _product_out(ctx, updated, expand)


async def delete_product(ctx: Ctx) -> dict:
    """Delete a product that has no prices."""
    cat = _catalog(ctx)
    async with cat.lock:
        product = _product(ctx)
        if cat.prices_of(ctx.account, product.id):
            # Stripe's wording; archived prices count too (archive the product instead: active=false).
            raise InvalidRequest("This product cannot be deleted because it has one or more user-created prices.")
        await cat.commit([product_record("product.deleted", product, new_id("evt"), now=ctx.now())])
    return {"id": product.id, "object": "product", "deleted": True}


async def list_products(ctx: Ctx) -> dict:
    """List products, newest first (filters: active, ids, created, shippable, url)."""
    q = ctx.params
    p.check_keys(q, _PAGING | {"active", "created", "ids", "shippable", "url"})
    expand = bp.expand_of(q)
    bp.check_expand(expand, {"data.default_price"})
    active = p.boolean(q["active"], "active") if "active" in q else None
    shippable = p.boolean(q["shippable"], "shippable") if "shippable" in q else None
    ids = set(_string_list(q["ids"], "ids")) if "ids" in q else None
    url = p.string(q["url"], "url") if "url" in q else None
    created = _created_filter(q.get("created"))
    items = [
        x for x in _catalog(ctx).products(ctx.account)
        if (active is None or x.active == active) and (shippable is None or x.shippable == shippable)
        and (ids is None or x.id in ids) and (url is None or x.url == url) and created(x.created)
    ]
    return list_object(items, q, "/v1/products", lambda x: _product_out(ctx, x, expand, "data."))


# --- prices ---------------------------------------------------------------------------------------------

def _check_meter(ctx: Ctx, price: Price) -> None:
    """A metered price needs an existing, active meter of this account."""
    r = price.recurring
    if r is None or r.meter is None:
        return
    meter = ctx.services.catalog.meter(ctx.account, r.meter)
    if meter is None:
        raise missing_reference("billing.meter", r.meter, "recurring[meter]")
    if str(meter.status) != "active":
        raise invalid("recurring[meter]", f"the meter {r.meter} is inactive; reactivate it or use an active meter.")


def _lookup_key_moves(ctx: Ctx, price: Price, transfer: bool, now: int) -> list[dict]:
    """Records that free `price.lookup_key` from another price (transfer_lookup_key=true), or an error."""
    if price.lookup_key is None:
        return []
    holder = _catalog(ctx).by_lookup_key(ctx.account, price.lookup_key)
    if holder is None or holder.id == price.id:
        return []
    if not transfer:
        raise InvalidRequest(
            f"A price ({holder.id}) already uses that lookup key. Pass transfer_lookup_key=true to move it.",
            param="lookup_key", code="resource_already_exists")
    return [price_record("price.updated", replace(holder, lookup_key=None), ctx.account, new_id("evt"), now=now)]


async def create_price(ctx: Ctx) -> dict:
    """Create a price (`product_data` creates its product inline; a metered price needs an active meter)."""
    params = dict(ctx.params)
    expand = bp.expand_of(params)
    bp.check_expand(expand, {"tiers", "product"})
    if isinstance(params.get("metadata"), dict):
        bp.check_metadata(params["metadata"])
    now = ctx.now()
    price = core_create_price(params, id=new_id("price"), now=now)
    product = None
    if price.product_data is not None:
        product = bp.create_product(dict(price.product_data), id=new_id("prod"), account=ctx.account, now=now,
                                    prefix="product_data")
        price = replace(price, product=product.id, product_data=None)
    _check_meter(ctx, price)
    transfer = p.boolean(params.get("transfer_lookup_key", False), "transfer_lookup_key")
    cat = _catalog(ctx)
    async with cat.lock:
        if product is not None:
            if cat.product(ctx.account, product.id) is not None:
                raise InvalidRequest("Product already exists.", param="product_data[id]",
                                     code="resource_already_exists")
        elif cat.product(ctx.account, price.product) is None:
            raise missing_reference("product", price.product, "product")
        records = [product_record("product.created", product, new_id("evt"))] if product is not None else []
        records += _lookup_key_moves(ctx, price, transfer, now)
        records.append(price_record("price.created", price, ctx.account, new_id("evt")))
        await cat.commit(records)
    return _price_out(ctx, price, expand)


def _price(ctx: Ctx) -> Price:
    price = _catalog(ctx).price(ctx.account, ctx.params["id"])
    if price is None:
        raise ResourceMissing("price", ctx.params["id"])
    return price


async def retrieve_price(ctx: Ctx) -> dict:
    """Retrieve a price (`expand[]=tiers`, `expand[]=product`)."""
    expand = bp.expand_of(ctx.params)
    bp.check_expand(expand, {"tiers", "product"})
    return _price_out(ctx, _price(ctx), expand)


async def update_price(ctx: Ctx) -> dict:
    """Update a price's active, nickname, metadata, lookup_key or tax_behavior (amounts never change)."""
    params = {k: v for k, v in ctx.params.items() if k != "id"}
    expand = bp.expand_of(params)
    bp.check_expand(expand, {"tiers", "product"})
    now = ctx.now()
    cat = _catalog(ctx)
    async with cat.lock:
        price = _price(ctx)
        updated = bp.update_price(price, params, now=now)
        if price.active and not updated.active:
            product = cat.product(ctx.account, price.product)
            if product is not None and product.default_price == price.id:
                raise InvalidRequest("This price cannot be archived because it is the default price of its product.",
                                     param="active")
        if updated is not price:
            transfer = p.boolean(params.get("transfer_lookup_key", False), "transfer_lookup_key")
            records = _lookup_key_moves(ctx, updated, transfer, now) if updated.lookup_key != price.lookup_key else []
            records.append(price_record("price.updated", updated, ctx.account, new_id("evt"), now=now))
            await cat.commit(records)
    return _price_out(ctx, updated, expand)


async def list_prices(ctx: Ctx) -> dict:
    """List prices, newest first (filters: active, product, type, currency, recurring[...], lookup_keys, created)."""
    q = ctx.params
    p.check_keys(q, _PAGING | {"active", "created", "currency", "lookup_keys", "product", "recurring", "type"})
    expand = bp.expand_of(q)
    bp.check_expand(expand, {"data.tiers", "data.product"})
    active = p.boolean(q["active"], "active") if "active" in q else None
    currency = _currency_filter(q["currency"]) if "currency" in q else None
    product = p.string(q["product"], "product") if "product" in q else None
    type_ = p.enum(q["type"], "type", ("one_time", "recurring")) if "type" in q else None
    lookup_keys = set(_string_list(q["lookup_keys"], "lookup_keys", 10)) if "lookup_keys" in q else None
    rec = p.hash_(q["recurring"], "recurring") if "recurring" in q else {}
    for key in rec:
        if key not in ("interval", "usage_type", "meter"):
            raise unknown(f"recurring[{key}]")
    interval = p.enum(rec["interval"], "recurring[interval]", INTERVALS) if "interval" in rec else None
    usage = p.enum(rec["usage_type"], "recurring[usage_type]", ("licensed", "metered")) if "usage_type" in rec else None
    meter = p.string(rec["meter"], "recurring[meter]") if "meter" in rec else None
    created = _created_filter(q.get("created"))

    def keep(x: Price) -> bool:
        r = x.recurring
        return ((active is None or x.active == active) and (currency is None or x.currency == currency)
                and (product is None or x.product == product) and (type_ is None or x.type == type_)
                and (lookup_keys is None or x.lookup_key in lookup_keys) and created(x.created)
                and (interval is None or (r is not None and r.interval == interval))
                and (usage is None or (r is not None and r.usage_type == usage))
                and (meter is None or (r is not None and r.meter == meter)))

    items = [x for x in _catalog(ctx).prices(ctx.account) if keep(x)]
    return list_object(items, q, "/v1/prices", lambda x: _price_out(ctx, x, expand, "data."))


routes = [
    Route("/v1/products", endpoint(create_product), methods=["POST"]),
    Route("/v1/products", endpoint(list_products), methods=["GET"]),
    Route("/v1/products/{id}", endpoint(retrieve_product), methods=["GET"]),
    Route("/v1/products/{id}", endpoint(update_product), methods=["POST"]),
    Route("/v1/products/{id}", endpoint(delete_product), methods=["DELETE"]),
    Route("/v1/prices", endpoint(create_price), methods=["POST"]),
    Route("/v1/prices", endpoint(list_prices), methods=["GET"]),
    Route("/v1/prices/{id}", endpoint(retrieve_price), methods=["GET"]),
    Route("/v1/prices/{id}", endpoint(update_price), methods=["POST"]),
]
