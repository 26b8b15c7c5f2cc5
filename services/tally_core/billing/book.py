"""A Book: all billing state behind one billing key, and `apply(book, event) -> book`.

A billing key is one customer (`account:cus_…`) or one test clock with every customer attached to it
(`account:clock_…`), so all the records that can touch the same money are ordered on one partition. A book is
exactly the fold of its `billing-events`: every event carries the whole object it is about (`data.object`),
so `apply` only replaces that object, and replaying events can never drift from what was decided.
When time next acts on a book is schedule.py's (`due_at`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from .customers import Customer
from .invoice_items import InvoiceItem
from .invoices import Invoice, from_stripe as invoice_from_stripe, to_stripe as invoice_to_stripe
from .subscriptions import RENEWING, Subscription  # noqa: F401  (RENEWING: kept for importers of book)
from .test_clocks import TestClock

USAGE_OBSERVED = "tally.usage_observed"  # internal record: a usage value a decision read (never on /v1/events)


@dataclass(frozen=True, slots=True)
class Book:
    account: str
    key: str
    clock: TestClock | None = None
    customers: Mapping[str, Customer] = field(default_factory=dict)
    subscriptions: Mapping[str, Subscription] = field(default_factory=dict)
    invoices: Mapping[str, Invoice] = field(default_factory=dict)
    sequences: Mapping[str, int] = field(default_factory=dict)  # customer → invoices numbered so far
    pending_items: Mapping[str, InvoiceItem] = field(default_factory=dict)  # ii_… not on an invoice yet (A.5)

    @property
    def on_clock(self) -> bool:
        return self.key.split(":", 1)[1].startswith("clock_")


def _put(mapping: Mapping, key: str, value) -> dict:
    out = dict(mapping)
    out[key] = value
    return out


def apply(book: Book, event: dict) -> Book:
    """The book after one billing event (absolute state: applying the same event twice changes nothing more)."""
    kind, obj = event["type"], event["data"]["object"]
    if kind.startswith("customer.subscription."):
        return replace(book, subscriptions=_put(book.subscriptions, obj["id"], Subscription.from_stripe(obj)))
    if kind.startswith("customer."):
        # A deleted customer keeps only its id, as Stripe answers for it (and as its projection reloads).
        cus = Customer.from_stripe({"id": obj["id"], "deleted": True} if kind == "customer.deleted" else obj,
                                   book.account)
        return replace(book, customers=_put(book.customers, cus.id, cus))
    if kind.startswith("invoice."):
        inv = invoice_from_stripe(obj)
        book = replace(book, invoices=_put(book.invoices, inv.id, inv))
        if kind == "invoice.finalized":
            book = replace(book, sequences=_put(book.sequences, inv.customer, book.sequences.get(inv.customer, 0) + 1))
        return book
    if kind.startswith("invoiceitem."):
        # An item stays pending until an invoice takes it (`invoice` set) or it is deleted (§4.4).
        # A deleted item's event may carry only `{id, deleted: true}`, as Stripe answers for it.
        pending = dict(book.pending_items)
        item = None if kind == "invoiceitem.deleted" else InvoiceItem.from_stripe(obj)
        if item is None or not item.pending:
            pending.pop(obj["id"], None)
        else:
            pending[item.id] = item
        return replace(book, pending_items=pending)
    if kind.startswith("test_helpers.test_clock."):
        gone = kind.endswith(".deleted")
        return replace(book, clock=TestClock.from_stripe({"id": obj["id"], "deleted": True} if gone else obj))
    return book  # internal records (usage observations) carry no state


def to_json(book: Book) -> dict:
    """A snapshot in the objects' Stripe shapes (what the projections hold)."""
    return {
        "account": book.account, "key": book.key,
        "clock": book.clock.to_stripe() if book.clock else None,
        "customers": [c.to_stripe() for c in book.customers.values()],
        "subscriptions": [s.to_stripe() for s in book.subscriptions.values()],
        "invoices": [invoice_to_stripe(i) for i in book.invoices.values()],
        "sequences": dict(book.sequences),
        "pending_items": [i.to_stripe() for i in book.pending_items.values()],
    }


def from_objects(account: str, key: str, *, clock: dict | None, customers: list[dict], subscriptions: list[dict],
                 invoices: list[dict], pending_items: list[dict] = ()) -> Book:
    """Rebuild a book from its projected objects (a worker's start-up; same result as folding its events)."""
    invs = {o["id"]: invoice_from_stripe(o) for o in invoices}
    seq: dict[str, int] = {}
    for inv in invs.values():
        if inv.finalized_at is not None:
            seq[inv.customer] = seq.get(inv.customer, 0) + 1
    return Book(
        account=account, key=key, clock=TestClock.from_stripe(clock) if clock else None,
        customers={o["id"]: Customer.from_stripe(o, account) for o in customers},
        subscriptions={o["id"]: Subscription.from_stripe(o) for o in subscriptions},
        invoices=invs, sequences=seq,
        pending_items={o["id"]: InvoiceItem.from_stripe(o) for o in pending_items if o.get("invoice") is None},
    )
