"""The product & price catalog: account-wide records on the `catalog` log, projected into `products` and
`prices`, cached in memory (ARCHITECTURE decision 5: small, read in full by every worker).

Every change is first appended to the log as a Stripe-shaped event (`product.created`, `product.updated`,
`product.deleted`, `price.created`, `price.updated`) carrying the whole object, then written to the
projection; a rebuild replays those events through `project_price_catalog_record` (idempotent upserts of
absolute state). Records that must land together (a product and its inline price, a lookup key moving
between prices) are appended in one `append` call, so the log never holds half of such a change.

Version pinning: Stripe never changes a price's amounts after creation: `currency`, `unit_amount(_decimal)`,
`billing_scheme`, `tiers`, `tiers_mode`, `transform_quantity`, `recurring` and `product` are fixed; only
`active`, `nickname`, `metadata`, `lookup_key` and (once, from `unspecified`) `tax_behavior` may change. So a
billing command that names a price id is already pinned: every version of that price prices usage the same
way, and a replay that reads any later catalog state computes the same amounts. (A command that resolves a
*lookup key* must carry the price id it resolved, since lookup keys move.)
"""

from __future__ import annotations

import asyncio

import asyncpg
import orjson

from tally_core.billing.prices import Price
from tally_core.billing.products import Product
from tally_core.codec import encode

from .logs.ports import CATALOG, EventLog

CATALOG_VERSION = 1
PRODUCT_EVENTS = ("product.created", "product.updated", "product.deleted")
PRICE_EVENTS = ("price.created", "price.updated")

SCHEMA = """
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


async def create_price_catalog_tables(conn) -> None:
    """Idempotent DDL (also needed before a replay into an empty database). The advisory lock lets several
    processes start at once (concurrent `create table if not exists` can otherwise collide)."""
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(7421002)")
        await conn.execute(SCHEMA)


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


def is_price_catalog_record(record: dict) -> bool:
    return record.get("type") in PRODUCT_EVENTS + PRICE_EVENTS


async def project_price_catalog_record(conn, record: dict) -> bool:
    """Upsert (or delete) what a product/price record carries; idempotent, since records hold absolute state.
    Returns False (and does nothing) for other catalog records, e.g. meters."""
    kind, obj, account = record.get("type"), record.get("object"), record.get("account")
    if kind == "product.deleted":
        await conn.execute("delete from products where account = $1 and id = $2", account, obj["id"])
    elif kind in ("product.created", "product.updated"):
        await conn.execute(
            "insert into products (account, id, created, data) values ($1, $2, $3, $4) "
            "on conflict (account, id) do update set data = excluded.data",
            account, obj["id"], obj["created"], orjson.dumps(obj).decode())
    elif kind in PRICE_EVENTS:
        await conn.execute(
            "insert into prices (account, id, created, lookup_key, data) values ($1, $2, $3, $4, $5) "
            "on conflict (account, id) do update set lookup_key = excluded.lookup_key, data = excluded.data",
            account, obj["id"], obj["created"], obj.get("lookup_key"), orjson.dumps(obj).decode())
    else:
        return False
    return True


_Key = tuple[str, str]


class PriceCatalog:
    """Products and prices of every account, in memory, in creation order (the `seq` column keeps it).

    `lock` serialises check-then-write sequences (custom ids, lookup keys, "no prices before delete") within
    this process; the API process is the catalog's writer.
    """

    def __init__(self, pool: asyncpg.Pool, log: EventLog):
        self.pool = pool
        self.log = log
        self.lock = asyncio.Lock()
        self._products: dict[_Key, Product] = {}
        self._prices: dict[_Key, Price] = {}
        self._price_account: dict[str, str] = {}
        self._writes = 0
        # key -> (write number, value or None for a deletion): saves a concurrent load() must not undo.
        self._touched_products: dict[_Key, tuple[int, Product | None]] = {}
        self._touched_prices: dict[_Key, tuple[int, Price]] = {}
        self._tables = False

    async def _ensure_tables(self) -> None:
        if not self._tables:
            async with self.pool.acquire() as conn:
                await create_price_catalog_tables(conn)
            self._tables = True

    async def load(self) -> None:
        """(Re)read every product and price; other processes see a change within one refresh."""
        await self._ensure_tables()
        start = self._writes
        async with self.pool.acquire() as conn:
            product_rows = await conn.fetch("select account, data from products order by seq")
            price_rows = await conn.fetch("select account, data from prices order by seq")
        products = {}
        for account, data in product_rows:
            prod = Product.from_stripe(orjson.loads(data), account)
            products[(account, prod.id)] = prod
        prices = {}
        for account, data in price_rows:
            price = Price.from_stripe(orjson.loads(data))
            prices[(account, price.id)] = price
        # Saved here after the read began: keep the newer value.
        for key, (n, prod) in self._touched_products.items():
            if n > start:
                if prod is None:
                    products.pop(key, None)
                else:
                    products[key] = prod
        for key, (n, price) in self._touched_prices.items():
            if n > start:
                prices[key] = price
        self._touched_products = {k: v for k, v in self._touched_products.items() if v[0] > start}
        self._touched_prices = {k: v for k, v in self._touched_prices.items() if v[0] > start}
        self._products, self._prices = products, prices

    # --- reads ---------------------------------------------------------------------------------------------

    def product(self, account: str, id: str) -> Product | None:
        return self._products.get((account, id))

    def price(self, account: str, id: str) -> Price | None:
        return self._prices.get((account, id))

    def products(self, account: str) -> list[Product]:
        """Newest first."""
        return [x for (a, _), x in reversed(self._products.items()) if a == account]

    def prices(self, account: str) -> list[Price]:
        """Newest first."""
        return [x for (a, _), x in reversed(self._prices.items()) if a == account]

    def prices_of(self, account: str, product_id: str) -> list[Price]:
        return [x for x in self.prices(account) if x.product == product_id]

    def by_lookup_key(self, account: str, lookup_key: str) -> Price | None:
        for (a, _), x in self._prices.items():
            if a == account and x.lookup_key == lookup_key:
                return x
        return None

    # --- writes --------------------------------------------------------------------------------------------

    async def save_product(self, event_type: str, product: Product, event_id: str) -> dict:
        """Log the change, then project it; returns the catalog record (a Stripe event)."""
        record = product_record(event_type, product, event_id)
        await self.commit([record])
        return record

    async def save_price(self, event_type: str, price: Price, account: str, event_id: str, *,
                         now: int | None = None) -> dict:
        record = price_record(event_type, price, account, event_id, now=now)
        await self.commit([record])
        return record

    async def commit(self, records: list[dict]) -> None:
        """Append records (built with `product_record` / `price_record`) in one log append, project them in
        one transaction, then update the cache."""
        if not records:
            return
        await self._ensure_tables()
        await self.log.append(CATALOG, [(r["account"].encode(), encode(r)) for r in records])
        async with self.pool.acquire() as conn, conn.transaction():
            for r in records:
                await project_price_catalog_record(conn, r)
        for r in records:
            self._writes += 1
            key = (r["account"], r["object"]["id"])
            if r["type"] in PRICE_EVENTS:
                price = Price.from_stripe(r["object"])
                self._prices[key] = price
                self._touched_prices[key] = (self._writes, price)
            elif r["type"] == "product.deleted":
                self._products.pop(key, None)
                self._touched_products[key] = (self._writes, None)
            else:
                prod = Product.from_stripe(r["object"], r["account"])
                self._products[key] = prod
                self._touched_products[key] = (self._writes, prod)
