"""The billing projections' read side for the API: pages of objects, one object by id, one book (previews)."""

from __future__ import annotations

import asyncpg
import orjson

from tally_core.billing.book import Book

from .store import load_books


async def list_page(pool: asyncpg.Pool, table: str, account: str, filters: dict[str, object], *, limit: int,
                    after: str | None, before: str | None, order: str = "created") -> tuple[list[dict], bool, bool]:
    """A page newest first: (objects, has_more, cursor found). Filters are column = value (None: is null)."""
    where, args = ["account = $1"], [account]
    for column, value in filters.items():
        if value is None:
            where.append(f"{column} is null")
        elif isinstance(value, (list, tuple)):
            args.append(list(value))
            where.append(f"{column} = any(${len(args)})")
        else:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    # Ties on `order` are broken by a unique key: an event's place in the log is (partition, offset), since
    # offsets are per partition; other objects have their id.
    tiebreak = ["partition", "log_offset"] if table == "billing_events" else ["id"]
    cursor = after or before
    if cursor:
        row = await pool.fetchrow(f"select {order}, {', '.join(tiebreak)} from {table} where account = $1 and id = $2",
                                  account, cursor)
        if row is None:
            return [], False, False
        args += list(row)
        cmp = "<" if after else ">"
        first = len(args) - len(row) + 1
        where.append(f"({order}, {', '.join(tiebreak)}) {cmp} ({', '.join(f'${i}' for i in range(first, len(args) + 1))})")
    direction = "desc" if not before else "asc"
    args.append(limit + 1)
    rows = await pool.fetch(
        f"select data from {table} where {' and '.join(where)} "
        f"order by {', '.join(f'{c} {direction}' for c in [order, *tiebreak])} limit ${len(args)}", *args)
    objs = [orjson.loads(r[0]) for r in rows[:limit]]
    if before:
        objs.reverse()
    return objs, len(rows) > limit, True


async def locate(pool: asyncpg.Pool, table: str, account: str, id_: str) -> tuple[dict, str, bool] | None:
    """(object, billing key, deleted) of one projected object, or None."""
    deleted = "deleted" if table in ("billing_customers", "test_clocks", "billing_invoice_items") else "false"
    key = "null" if table == "billing_events" else "key"  # events span books: they carry no billing key
    row = await pool.fetchrow(f"select data, {key}, {deleted} from {table} where account = $1 and id = $2",
                              account, id_)
    return (orjson.loads(row[0]), row[1], row[2]) if row else None


async def locate_item(pool: asyncpg.Pool, account: str, item_id: str) -> tuple[dict, str] | None:
    """(subscription, billing key) of the subscription holding item `item_id` now, or None. Items live inside
    their subscription's object; the containment query is served by `billing_subscriptions_items` (store.py)."""
    held = orjson.dumps([{"id": item_id}]).decode()
    row = await pool.fetchrow("select data, key from billing_subscriptions where account = $1 "
                              "and data->'items'->'data' @> $2::jsonb", account, held)
    return (orjson.loads(row[0]), row[1]) if row else None


async def load_book(pool: asyncpg.Pool, account: str, key: str) -> Book:
    """One book from its projected objects (previews read it without going through the worker)."""
    return (await load_books(pool, key)).get(key) or Book(account, key)
