"""The catalog's records and projection: meters, products and prices as Stripe-shaped events on the `catalog`
log (`billing.meter.created`, `product.updated`, `price.created`, ...), each carrying the whole object, and
their idempotent upserts into the `meters`, `products` and `prices` tables (a rebuild replays them here).

Records that must land together (a product and its inline price, a lookup key moving between prices) are
appended in one `append` call, so the log never holds half of such a change.

Version pinning: Stripe never changes a price's amounts after creation: `currency`, `unit_amount(_decimal)`,
`billing_scheme`, `tiers`, `tiers_mode`, `transform_quantity`, `recurring` and `product` are fixed; only
`active`, `nickname`, `metadata`, `lookup_key` and (once, from `unspecified`) `tax_behavior` may change. So a
billing command that names a price id is already pinned: every version of that price prices usage the same
way, and a replay that reads any later catalog state computes the same amounts. (A command that resolves a
*lookup key* must carry the price id it resolved, since lookup keys move.) A meter's formula is fixed at
creation too (only `display_name` and `status` change), so a usage read is pinned by the meter id.
"""

from __future__ import annotations

import orjson

from tally_core.billing.prices import Price
from tally_core.billing.products import Product
from tally_core.meters import Meter

CATALOG_VERSION = 1
METER_EVENTS = ("billing.meter.created", "billing.meter.updated", "billing.meter.deactivated",
                "billing.meter.reactivated")
PRODUCT_EVENTS = ("product.created", "product.updated", "product.deleted")
PRICE_EVENTS = ("price.created", "price.updated")

SCHEMA = """
create table if not exists meters (
  seq bigserial,
  account text not null,
  id text not null,
  event_name text not null,
  status text not null,
  created bigint not null,
  data jsonb not null,
  primary key (account, id),
  unique (account, event_name)
);
create table if not exists products (
  seq bigserial,
  account text not null,
  id text not null,
  created bigint not null,
  data jsonb not null,
  primary key (account, id)
);
create table if not exists prices (
  seq bigserial,
  account text not null,
  id text not null,
  created bigint not null,
  lookup_key text,
  data jsonb not null,
  primary key (account, id)
);
create index if not exists prices_lookup_key on prices (account, lookup_key) where lookup_key is not null;
"""
TABLES = ("meters", "products", "prices")


def meter_record(event_type: str, meter: Meter, event_id: str) -> dict:
    assert event_type in METER_EVENTS, event_type
    return {"type": event_type, "version": CATALOG_VERSION, "id": event_id, "account": meter.account,
            "created": meter.updated, "object": meter.to_stripe()}


def product_record(event_type: str, product: Product, event_id: str, *, now: int | None = None) -> dict:
    assert event_type in PRODUCT_EVENTS, event_type
    return {"type": event_type, "version": CATALOG_VERSION, "id": event_id, "account": product.account,
            "created": product.updated if now is None else now, "object": product.to_stripe()}


def price_record(event_type: str, price: Price, account: str, event_id: str, *, now: int | None = None) -> dict:
    """The log form keeps the tiers expanded, so `Price.from_stripe` can rebuild the price."""
    assert event_type in PRICE_EVENTS, event_type
    if price.product is None:
        raise ValueError("a price must have its product before it is saved")
    return {"type": event_type, "version": CATALOG_VERSION, "id": event_id, "account": account,
            "created": price.created if now is None else now, "object": price.to_stripe(expand=["tiers"])}


async def project(conn, record: dict) -> None:
    """Upsert (or delete) what a catalog record carries; idempotent, since records hold absolute state."""
    kind, obj, account = record.get("type"), record.get("object"), record.get("account")
    data = orjson.dumps(obj).decode()
    if kind in METER_EVENTS:
        await conn.execute(
            "insert into meters (account, id, event_name, status, created, data) values ($1, $2, $3, $4, $5, $6) "
            "on conflict (account, id) do update set status = excluded.status, data = excluded.data",
            account, obj["id"], obj["event_name"], obj["status"], obj["created"], data)
    elif kind == "product.deleted":
        await conn.execute("delete from products where account = $1 and id = $2", account, obj["id"])
    elif kind in PRODUCT_EVENTS:
        await conn.execute(
            "insert into products (account, id, created, data) values ($1, $2, $3, $4) "
            "on conflict (account, id) do update set data = excluded.data",
            account, obj["id"], obj["created"], data)
    elif kind in PRICE_EVENTS:
        await conn.execute(
            "insert into prices (account, id, created, lookup_key, data) values ($1, $2, $3, $4, $5) "
            "on conflict (account, id) do update set lookup_key = excluded.lookup_key, data = excluded.data",
            account, obj["id"], obj["created"], obj.get("lookup_key"), data)
    else:
        raise ValueError(f"not a catalog record: {kind!r}")
