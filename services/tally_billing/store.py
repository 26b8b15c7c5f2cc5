"""Billing projections in PostgreSQL, written only by the billing worker (and `replay billing`): customers,
subscriptions, invoices, test clocks and events, plus the command results the API waits for. The API reads
them through `queries.py`. All of it is rebuilt from `billing-events` alone (`project_events`).

Each object row holds the object's latest Stripe shape (`data`) with the columns the API filters on; a row is
an upsert of absolute state, so projecting the same events twice gives the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import orjson

from tally_core.billing.balance_transactions import BALANCE_TRANSACTION
from tally_core.billing.book import USAGE_OBSERVED, Book, from_objects
from tally_core.billing.invoice_items import UPDATED as INVOICEITEM_UPDATED
from tally_core.billing.ledger import COMMAND_FAILED
from tally_core.codec import encode
from tally_infra.dead_letters import quarantine
from tally_infra.faults import is_retriable
from tally_infra.logs.ports import BILLING_EVENTS, LogRecord

from . import item_rows

# Created at start-up by the processes that read or write them (`create_pool(schemas=...)`).
SCHEMA = """
create table if not exists billing_customers (
  account text not null, id text not null, key text not null, test_clock text, email text,
  created bigint not null, deleted boolean not null default false, data jsonb not null,
  primary key (account, id));
create table if not exists billing_subscriptions (
  account text not null, id text not null, key text not null, customer text not null, status text not null,
  test_clock text, created bigint not null, data jsonb not null, state jsonb,
  primary key (account, id));
-- tally's bookkeeping beside each subscription (Subscription.state: metered usage windows, what was billed,
-- a pending update), carried by its events; added after the table first shipped.
alter table billing_subscriptions add column if not exists state jsonb;
create table if not exists billing_invoices (
  account text not null, id text not null, key text not null, customer text not null, subscription text,
  status text not null, test_clock text, created bigint not null, data jsonb not null,
  primary key (account, id));
create table if not exists test_clocks (
  account text not null, id text not null, key text not null, frozen_time bigint not null, status text not null,
  created bigint not null, deleted boolean not null default false, data jsonb not null,
  primary key (account, id));
create table if not exists billing_events (
  account text not null, id text not null, type text not null, created bigint not null,
  partition int not null, log_offset bigint not null, data text not null,
  primary key (account, id));
-- The customer balance ledger (§4.7): internal `tally.balance_transaction` records, never on /v1/events.
-- `log_offset` is the entry's first place in the log (an update keeps it): newest first in that order.
create table if not exists billing_balance_transactions (
  account text not null, id text not null, key text not null, customer text not null, created bigint not null,
  log_offset bigint not null, data jsonb not null,
  primary key (account, id));
create index if not exists billing_balance_transactions_customer on billing_balance_transactions (account, customer);
create index if not exists billing_events_page on billing_events (account, created desc, partition desc, log_offset desc);
create index if not exists billing_subscriptions_customer on billing_subscriptions (account, customer);
-- `/v1/subscription_items/{id}` finds the subscription holding an item (queries.locate_item: `@>`).
create index if not exists billing_subscriptions_items on billing_subscriptions
  using gin ((data->'items'->'data') jsonb_path_ops);
create index if not exists billing_invoices_customer on billing_invoices (account, customer);
create index if not exists billing_customers_key on billing_customers (key);
create table if not exists billing_results (
  command_id text primary key, status int not null, body bytea not null, created_ms bigint not null);
-- Books a tick could not decide (`tally.command_failed` with a retry time), until a decision changes them:
-- the worker's start-up restores them so its ticks skip them exactly as a re-decision does.
create table if not exists billing_stuck (
  key text primary key, retry_at bigint not null, command_id text not null, error text not null);
""" + item_rows.DDL

_ENVELOPE = ("version", "account", "key", "command", "command_offset", "state")  # log-only fields, not part of Stripe's event
PROJECTION_TABLES = ("billing_customers", "billing_subscriptions", "billing_invoices", "test_clocks",
                     "billing_events", "billing_balance_transactions", item_rows.TABLE)


def _clock_of(key: str) -> str | None:
    part = key.split(":", 1)[1]
    return part if part.startswith("clock_") else None


def _rows(records: Iterable[tuple[int, int, dict]]) -> dict[str, dict]:
    """The last state of every object the events touch, per table (later events win)."""
    tables: dict[str, dict] = {t: {} for t in (*PROJECTION_TABLES, "billing_stuck", item_rows.TAKES)}
    for partition, offset, e in records:
        kind = e["type"]
        if kind == USAGE_OBSERVED:
            continue
        if kind == COMMAND_FAILED:  # not a Stripe event: only the mark a failed tick leaves (see Ledger)
            o = e["data"]["object"]
            if o.get("retry_at") is not None:
                tables["billing_stuck"][e["key"]] = (e["key"], o["retry_at"], o["command"], o["error"])
            continue
        tables["billing_stuck"][e["key"]] = None  # a decision changed the book: ticks reach it again
        obj, account, key = e["data"]["object"], e["account"], e["key"]
        if kind == BALANCE_TRANSACTION:  # not a Stripe event (Stripe sends none for these): its own table only
            held = tables["billing_balance_transactions"].get((account, obj["id"]))
            tables["billing_balance_transactions"][(account, obj["id"])] = (
                account, obj["id"], key, obj["customer"], obj["created"], held[5] if held else offset,
                orjson.dumps(obj).decode())
            continue
        if kind.startswith("invoiceitem.") or kind == INVOICEITEM_UPDATED:
            item_rows.item_row(tables, account, key, offset, kind, obj)
            if kind == INVOICEITEM_UPDATED:
                continue  # not a Stripe event (Stripe has no invoiceitem.updated): the item's row only
        clock = _clock_of(key)
        data = orjson.dumps(obj).decode()
        if kind.startswith("customer.subscription."):
            tables["billing_subscriptions"][(account, obj["id"])] = (
                account, obj["id"], key, obj["customer"], obj["status"], clock, obj["created"], data,
                orjson.dumps(e.get("state")).decode())
        elif kind.startswith("customer."):
            tables["billing_customers"][(account, obj["id"])] = (
                account, obj["id"], key, clock, obj.get("email"), obj["created"], kind == "customer.deleted", data)
        elif kind.startswith("invoice."):
            sub = ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
            tables["billing_invoices"][(account, obj["id"])] = (
                account, obj["id"], key, obj["customer"], sub, obj["status"], clock, obj["created"], data)
            item_rows.take(tables, account, obj)
        elif kind.startswith("test_helpers.test_clock."):
            tables["test_clocks"][(account, obj["id"])] = (
                account, obj["id"], key, obj["frozen_time"], obj["status"], obj["created"],
                kind.endswith(".deleted"), data)
        public = {k: v for k, v in e.items() if k not in _ENVELOPE}
        tables["billing_events"][(account, e["id"])] = (
            account, e["id"], kind, e["created"], partition, offset, orjson.dumps(public).decode())
    return tables


_UPSERT = {
    "billing_customers": ("account, id, key, test_clock, email, created, deleted, data",
                          "text, text, text, text, text, bigint, boolean, jsonb"),
    "billing_subscriptions": ("account, id, key, customer, status, test_clock, created, data, state",
                              "text, text, text, text, text, text, bigint, jsonb, jsonb"),
    "billing_invoices": ("account, id, key, customer, subscription, status, test_clock, created, data",
                         "text, text, text, text, text, text, text, bigint, jsonb"),
    "test_clocks": ("account, id, key, frozen_time, status, created, deleted, data",
                    "text, text, text, bigint, text, bigint, boolean, jsonb"),
    "billing_balance_transactions": ("account, id, key, customer, created, log_offset, data",
                                     "text, text, text, text, bigint, bigint, jsonb"),
    item_rows.TABLE: item_rows.UPSERT,
    # Events never change once written, and are only served whole: text, and no update on conflict.
    "billing_events": ("account, id, type, created, partition, log_offset, data",
                       "text, text, text, bigint, int, bigint, text"),
}


async def project_events(conn: asyncpg.Connection, records: Iterable[tuple[int, int, dict]]) -> None:
    """Upsert what (partition, offset, event) records leave behind; one statement per table."""
    tables = _rows(records)
    stuck = tables.pop("billing_stuck")
    takes = tables.pop(item_rows.TAKES)
    if stuck:
        await conn.execute("delete from billing_stuck where key = any($1::text[])",
                           [k for k, row in stuck.items() if row is None])
        await conn.executemany(
            "insert into billing_stuck values ($1, $2, $3, $4) on conflict (key) do update set "
            "retry_at = excluded.retry_at, command_id = excluded.command_id, error = excluded.error",
            [row for row in stuck.values() if row is not None])
    for table, rows in tables.items():
        if not rows:
            continue
        columns, types = _UPSERT[table]
        names = [c.strip() for c in columns.split(",")]
        arrays = ", ".join(f"${i + 1}::{t.strip()}[]" for i, t in enumerate(types.split(",")))
        # A row's log_offset is where its object first appeared (balance transactions list in that order).
        updates = ", ".join(f"{c} = excluded.{c}" for c in names if c not in ("account", "id", "log_offset"))
        conflict = "do nothing" if table == "billing_events" else f"do update set {updates}"
        await conn.execute(
            f"insert into {table} ({columns}) select * from unnest({arrays}) on conflict (account, id) {conflict}",
            *[list(col) for col in zip(*rows.values())])
    if takes:  # after the items' own rows: an invoice took items whose rows are not in this batch
        await conn.execute(item_rows.TAKE_SQL, *item_rows.take_rows(takes))


async def project_isolating(conn: asyncpg.Connection, records: list[tuple[int, int, dict]], *, consumer: str,
                            now_ms: int) -> int:
    """`project_events`, with the events that cannot be projected (a NUL PostgreSQL refuses, a number past
    bigint) quarantined as `billing-events` dead letters instead; returns how many were. Call inside the
    transaction that stores the consumer's positions."""
    try:
        async with conn.transaction():
            await project_events(conn, records)
        return 0
    except Exception as exc:
        if is_retriable(exc) or conn.is_closed():
            raise
    failed: list[tuple[LogRecord, BaseException]] = []
    for row in records:  # in log order: each event's upserts land as they would have in the batch
        try:
            async with conn.transaction():
                await project_events(conn, [row])
        except Exception as exc:
            if is_retriable(exc) or conn.is_closed():
                raise
            failed.append((LogRecord(row[0], row[1], encode(row[2])), exc))
    await quarantine(conn, consumer, BILLING_EVENTS, failed, now_ms)
    return len(failed)


async def load_stuck(pool: asyncpg.Pool) -> dict[str, int]:
    """Book key → tick time before which ticks skip it (see `billing_stuck`)."""
    return {r[0]: r[1] for r in await pool.fetch("select key, retry_at from billing_stuck")}


async def save_results(conn: asyncpg.Connection, results: list[tuple[str, int, bytes, int]]) -> None:
    if results:
        await conn.executemany(
            "insert into billing_results values ($1, $2, $3, $4) on conflict (command_id) do nothing", results)


async def load_books(pool: asyncpg.Pool, key: str | None = None) -> dict[str, Book]:
    """Books rebuilt from their projected objects: every book (the worker's start-up), or the one with `key`."""
    where, args = ("where key = $1", [key]) if key is not None else ("", [])
    groups: dict[str, dict] = {}

    def group(account: str, key: str) -> dict:
        return groups.setdefault(key, {"account": account, "clock": None, "customers": [], "subscriptions": [],
                                       "invoices": [], "subscription_states": {}, "balance_transactions": []})

    async with pool.acquire() as conn:
        for account, key_, deleted, data in await conn.fetch(
                f"select account, key, deleted, data from test_clocks {where}", *args):
            group(account, key_)["clock"] = _stub(data) if deleted else orjson.loads(data)
        for account, key_, deleted, data in await conn.fetch(
                f"select account, key, deleted, data from billing_customers {where} order by id", *args):
            group(account, key_)["customers"].append(_stub(data) if deleted else orjson.loads(data))
        for account, key_, data, state in await conn.fetch(
                f"select account, key, data, state from billing_subscriptions {where} order by id", *args):
            obj = orjson.loads(data)
            group(account, key_)["subscriptions"].append(obj)
            if state is not None:
                group(account, key_)["subscription_states"][obj["id"]] = orjson.loads(state)
        for table, name in (("billing_invoices", "invoices"), ("billing_balance_transactions", "balance_transactions")):
            for account, key_, data in await conn.fetch(
                    f"select account, key, data from {table} {where} order by id", *args):
                group(account, key_)[name].append(orjson.loads(data))
        for account, key_, data in await conn.fetch(
                item_rows.LOAD_SQL.format(where="and i.key = $1" if key is not None else ""), *args):
            # pending items, and those on a draft: in the log order of their creation (book.from_objects)
            group(account, key_).setdefault("pending_items", []).append(orjson.loads(data))
    return {k: from_objects(g.pop("account"), k, **g) for k, g in groups.items()}


def _stub(data: str) -> dict:
    obj = orjson.loads(data)
    return {"id": obj["id"], "object": obj["object"], "deleted": True}


async def truncate_billing(conn: asyncpg.Connection) -> None:
    await conn.execute("truncate " + ", ".join(PROJECTION_TABLES) + ", billing_stuck, billing_results")
    # The rebuild meets the quarantined events again and judges them afresh.
    await conn.execute("delete from dead_letters where topic = $1", BILLING_EVENTS)
