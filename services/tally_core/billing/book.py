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

from .balance_transactions import BALANCE_TRANSACTION, BalanceTransaction
from .customers import Customer
from .invoice_items import UPDATED as INVOICEITEM_UPDATED, InvoiceItem, fold_item, take_items
from .invoice_wire import from_stripe as invoice_from_stripe, to_stripe as invoice_to_stripe
from .invoices import Invoice
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
    draft_items: Mapping[str, InvoiceItem] = field(default_factory=dict)  # ii_… on a draft: still editable (§6.1)
    balance_transactions: Mapping[str, BalanceTransaction] = field(default_factory=dict)  # cbtxn_… (§4.7)

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
    if kind == BALANCE_TRANSACTION:
        txn = BalanceTransaction.from_stripe(obj)
        return replace(book, balance_transactions=_put(book.balance_transactions, txn.id, txn))
    if kind.startswith("customer.subscription."):
        sub = Subscription.from_stripe(obj, event.get("state"))
        return replace(book, subscriptions=_put(book.subscriptions, obj["id"], sub))
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
        # Lines naming a pending item (`invoice_item`) take it onto this invoice (§4.4, invoice_items.take_items).
        taken = take_items(book.pending_items, book.draft_items, inv.id, inv.lines, inv.status == "draft") \
            if book.pending_items or book.draft_items else None
        return book if taken is None else replace(book, pending_items=taken[0], draft_items=taken[1])
    if kind.startswith("invoiceitem.") or kind == INVOICEITEM_UPDATED:
        pending, drafted = fold_item(book.pending_items, book.draft_items, lambda i: _is_draft(book, i), kind, obj)
        return replace(book, pending_items=pending, draft_items=drafted)
    if kind.startswith("test_helpers.test_clock."):
        gone = kind.endswith(".deleted")
        return replace(book, clock=TestClock.from_stripe({"id": obj["id"], "deleted": True} if gone else obj))
    return book  # internal records (usage observations) carry no state


def _is_draft(book: Book, invoice_id: str | None) -> bool:
    inv = book.invoices.get(invoice_id) if invoice_id else None
    return inv is not None and inv.status == "draft"


def to_json(book: Book) -> dict:
    """A snapshot in the objects' Stripe shapes (what the projections hold)."""
    return {
        "account": book.account, "key": book.key,
        "clock": book.clock.to_stripe() if book.clock else None,
        "customers": [c.to_stripe() for c in book.customers.values()],
        "subscriptions": [s.to_stripe() for s in book.subscriptions.values()],
        "subscription_states": {s.id: s.state() for s in book.subscriptions.values()},
        "invoices": [invoice_to_stripe(i) for i in book.invoices.values()],
        "sequences": dict(book.sequences),
        "pending_items": [i.to_stripe() for i in book.pending_items.values()],
        "draft_items": [i.to_stripe() for i in book.draft_items.values()],
        "balance_transactions": [t.to_stripe() for t in book.balance_transactions.values()],
    }


def from_objects(account: str, key: str, *, clock: dict | None, customers: list[dict], subscriptions: list[dict],
                 invoices: list[dict], pending_items: list[dict] = (), balance_transactions: list[dict] = (),
                 subscription_states: Mapping[str, dict] | None = None) -> Book:
    """Rebuild a book from its projected objects (a worker's start-up; same result as folding its events)."""
    invs = {o["id"]: invoice_from_stripe(o) for o in invoices}
    seq: dict[str, int] = {}
    for inv in invs.values():
        if inv.finalized_at is not None:
            seq[inv.customer] = seq.get(inv.customer, 0) + 1
    return Book(
        account=account, key=key, clock=TestClock.from_stripe(clock) if clock else None,
        customers={o["id"]: Customer.from_stripe(o, account) for o in customers},
        subscriptions={o["id"]: Subscription.from_stripe(o, (subscription_states or {}).get(o["id"]))
                       for o in subscriptions},
        invoices=invs, sequences=seq,
        # `pending_items`: the items not on a finalized invoice, in the log order of their creation.
        pending_items={o["id"]: InvoiceItem.from_stripe(o) for o in pending_items if o.get("invoice") is None},
        draft_items={o["id"]: InvoiceItem.from_stripe(o) for o in pending_items
                     if o.get("invoice") is not None and o["invoice"] in invs and invs[o["invoice"]].status == "draft"},
        balance_transactions={o["id"]: BalanceTransaction.from_stripe(o) for o in balance_transactions},
    )
