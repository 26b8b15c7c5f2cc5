"""The catalog: meters, products and prices of every account, in memory (ARCHITECTURE decision 5: small,
account-wide, read in full by every process that needs it), written through the `catalog` log.

A write appends its records to the log, projects them in one transaction, then updates the cache. `load`
re-reads the tables (other processes see a change within one refresh). One versioning rule for every kind
of object: each cached write gets a number, and a load keeps what was written here after its read began,
so a concurrent refresh never undoes a newer save.

`lock` serialises check-then-write sequences (custom ids, event names, lookup keys, "no prices before
delete") within this process; the API process is the catalog's writer.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

import asyncpg
import orjson

from tally_core.billing.prices import Price
from tally_core.billing.products import Product
from tally_core.codec import encode
from tally_core.meters import Meter
from tally_infra.logs.ports import CATALOG, EventLog

from .records import METER_EVENTS, PRICE_EVENTS, meter_record, price_record, product_record, project

T = TypeVar("T")
Key = tuple[str, str]  # (account, object id)


class _Objects(Generic[T]):
    """One kind of catalog object, in creation order, with the writes a concurrent load must keep."""

    def __init__(self) -> None:
        self.items: dict[Key, T] = {}
        self._touched: dict[Key, tuple[int, T | None]] = {}  # key → (write number, value; None: deleted)

    def put(self, key: Key, value: T | None, write: int) -> None:
        if value is None:
            self.items.pop(key, None)
        else:
            self.items[key] = value
        self._touched[key] = (write, value)

    def replace(self, loaded: dict[Key, T], since: int) -> None:
        """Take what a load read, except objects written here after the load began (write number > since)."""
        for key, (n, value) in self._touched.items():
            if n > since:
                if value is None:
                    loaded.pop(key, None)
                else:
                    loaded[key] = value
        self._touched = {k: v for k, v in self._touched.items() if v[0] > since}
        self.items = loaded

    def newest_first(self, account: str) -> list[T]:
        return [x for (a, _), x in reversed(self.items.items()) if a == account]


class Catalog:
    def __init__(self, pool: asyncpg.Pool, log: EventLog):
        self.pool = pool
        self.log = log
        self.lock = asyncio.Lock()
        self._meters: _Objects[Meter] = _Objects()
        self._meter_names: dict[Key, Meter] = {}  # (account, event_name) → meter
        self._products: _Objects[Product] = _Objects()
        self._prices: _Objects[Price] = _Objects()
        self._writes = 0

    async def load(self) -> None:
        """(Re)read every meter, product and price (creation order: the tables' `seq`)."""
        start = self._writes
        async with self.pool.acquire() as conn:
            meter_rows = await conn.fetch("select account, data from meters order by seq")
            product_rows = await conn.fetch("select account, data from products order by seq")
            price_rows = await conn.fetch("select account, data from prices order by seq")
        meters = {}
        for account, data in meter_rows:
            m = Meter.from_stripe(orjson.loads(data), account)
            meters[(account, m.id)] = m
        self._meters.replace(meters, start)
        self._meter_names = {(m.account, m.event_name): m for m in self._meters.items.values()}
        products = {}
        for account, data in product_rows:
            prod = Product.from_stripe(orjson.loads(data), account)
            products[(account, prod.id)] = prod
        self._products.replace(products, start)
        self._prices.replace({(account, (p := Price.from_stripe(orjson.loads(data))).id): p
                              for account, data in price_rows}, start)

    # --- meters ----------------------------------------------------------------------------------------------

    def meter(self, account: str, meter_id: str) -> Meter | None:
        return self._meters.items.get((account, meter_id))

    def meter_by_event_name(self, account: str, event_name: str) -> Meter | None:
        return self._meter_names.get((account, event_name))

    def meters(self, account: str) -> list[Meter]:
        """Newest first."""
        return self._meters.newest_first(account)

    # --- products and prices ---------------------------------------------------------------------------------

    def product(self, account: str, id: str) -> Product | None:
        return self._products.items.get((account, id))

    def price(self, account: str, id: str) -> Price | None:
        return self._prices.items.get((account, id))

    def products(self, account: str) -> list[Product]:
        """Newest first."""
        return self._products.newest_first(account)

    def prices(self, account: str) -> list[Price]:
        """Newest first."""
        return self._prices.newest_first(account)

    def prices_of(self, account: str, product_id: str) -> list[Price]:
        return [x for x in self.prices(account) if x.product == product_id]

    def by_lookup_key(self, account: str, lookup_key: str) -> Price | None:
        for (a, _), x in self._prices.items.items():
            if a == account and x.lookup_key == lookup_key:
                return x
        return None

    # --- writes ----------------------------------------------------------------------------------------------

    async def save_meter(self, event_type: str, meter: Meter, event_id: str) -> dict:
        """Log the change, then project it; returns the catalog record (a Stripe event)."""
        record = meter_record(event_type, meter, event_id)
        await self.commit([record])
        return record

    async def save_product(self, event_type: str, product: Product, event_id: str) -> dict:
        record = product_record(event_type, product, event_id)
        await self.commit([record])
        return record

    async def save_price(self, event_type: str, price: Price, account: str, event_id: str, *,
                         now: int | None = None) -> dict:
        record = price_record(event_type, price, account, event_id, now=now)
        await self.commit([record])
        return record

    async def commit(self, records: list[dict]) -> None:
        """Append records (built with `records.py`) in one log append, project them in one transaction, then
        update the cache."""
        if not records:
            return
        await self.log.append(CATALOG, [(r["account"].encode(), encode(r)) for r in records])
        async with self.pool.acquire() as conn, conn.transaction():
            for r in records:
                await project(conn, r)
        for r in records:
            self._writes += 1
            key = (r["account"], r["object"]["id"])
            if r["type"] in METER_EVENTS:
                meter = Meter.from_stripe(r["object"], r["account"])
                self._meters.put(key, meter, self._writes)
                self._meter_names[(meter.account, meter.event_name)] = meter
            elif r["type"] in PRICE_EVENTS:
                self._prices.put(key, Price.from_stripe(r["object"]), self._writes)
            elif r["type"] == "product.deleted":
                self._products.put(key, None, self._writes)
            else:
                self._products.put(key, Product.from_stripe(r["object"], r["account"]), self._writes)
