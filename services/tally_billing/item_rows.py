"""The invoice items' projection (`billing_invoice_items`), part of store.py's fold of `billing-events`.

An item's row is its latest whole object, from `invoiceitem.created|deleted` and the internal
`tally.invoiceitem_updated` record (invoice_items.UPDATED). An invoice takes pending items by naming them on
its lines (`invoice_item`, §4.4), without an item event: the row then gets `invoice` (column and object) from
the invoice's event, as the book's fold does (invoice_items.take_items).

`log_offset` is the item's first place in the log, kept by its updates (store.py never updates it): the
pending items load in that order (`load_books`), so a rebuilt book lists them as the folded one does.
"""

from __future__ import annotations

import orjson

DDL = """
create table if not exists billing_invoice_items (
  account text not null, id text not null, key text not null, customer text not null, invoice text,
  pending boolean not null, deleted boolean not null, date bigint not null, log_offset bigint not null,
  test_clock text, data jsonb not null,
  primary key (account, id));
create index if not exists billing_invoice_items_customer on billing_invoice_items (account, customer);
"""
TABLE = "billing_invoice_items"
TAKES = "billing_invoice_item_takes"  # (account, item) → invoice, for items whose row is not in the batch
UPSERT = ("account, id, key, customer, invoice, pending, deleted, date, log_offset, test_clock, data",
          "text, text, text, text, text, boolean, boolean, bigint, bigint, text, jsonb")
# Only a change: replaying the same events writes nothing more.
TAKE_SQL = f"""
update {TABLE} i set invoice = t.invoice, pending = false, data = jsonb_set(i.data, '{{invoice}}', to_jsonb(t.invoice))
from unnest($1::text[], $2::text[], $3::text[]) as t(account, id, invoice)
where i.account = t.account and i.id = t.id and i.invoice is distinct from t.invoice"""
# The items a book holds (invoice_items: pending, or on a draft invoice), in the log order of their creation.
LOAD_SQL = f"""
select i.account, i.key, i.data from {TABLE} i
left join billing_invoices v on v.account = i.account and v.id = i.invoice
where not i.deleted and (i.invoice is null or v.status = 'draft') {{where}}
order by i.log_offset"""


def item_row(tables: dict, account: str, key: str, offset: int, kind: str, obj: dict) -> None:
    held = tables[TABLE].get((account, obj["id"]))
    tables[TABLE][(account, obj["id"])] = (
        account, obj["id"], key, obj["customer"], obj.get("invoice"), obj.get("invoice") is None,
        kind == "invoiceitem.deleted", obj["date"], held[8] if held else offset, obj.get("test_clock"),
        orjson.dumps(obj).decode())
    tables[TAKES].pop((account, obj["id"]), None)  # the whole object says where it is


def take(tables: dict, account: str, invoice: dict) -> None:
    """The items an invoice's lines name are on that invoice."""
    for line in invoice["lines"]["data"]:
        parent = line.get("parent") or {}
        details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
        item_id = details.get("invoice_item")
        if item_id is None:
            continue
        held = tables[TABLE].get((account, item_id))
        if held is None:
            tables[TAKES][(account, item_id)] = invoice["id"]
        elif held[4] != invoice["id"]:
            obj = {**orjson.loads(held[10]), "invoice": invoice["id"]}
            tables[TABLE][(account, item_id)] = (*held[:4], invoice["id"], False, *held[6:10],
                                                 orjson.dumps(obj).decode())


def take_rows(takes: dict) -> list[list]:
    """TAKE_SQL's arguments."""
    return [list(col) for col in zip(*((a, i, inv) for (a, i), inv in takes.items()))] if takes else []
