"""The book folds pending invoice items (reference §4.4, A.5 step 1) from hand-written `invoiceitem.*` events:
nothing emits them yet (proration, issue 9), so the fold is shown with the events Stripe would send."""

from __future__ import annotations

from tally_core.billing.book import Book, apply, from_objects, to_json
from tally_core.billing.invoice_items import InvoiceItem

JAN15, FEB1 = 1768435200, 1769904000


def event(kind: str, obj: dict) -> dict:
    return {"id": f"evt_{kind}", "object": "event", "type": kind, "created": JAN15, "data": {"object": obj}}


# "Remaining time on 3 × Plan after 15 Jan": a proration debit waiting for the Feb 1 invoice.
DEBIT = InvoiceItem(id="ii_debit", customer="cus_1", currency="usd", amount=5484, period_start=JAN15,
                    period_end=FEB1, date=JAN15, description="Remaining time on 3 × Plan after 15 Jan 2026",
                    price_id="price_plan", product="prod_plan", quantity=3, proration=True, subscription="sub_1",
                    subscription_item="si_1")


def test_a_created_item_is_pending_until_an_invoice_takes_it():
    book = apply(Book("acct_1", "acct_1:cus_1"), event("invoiceitem.created", DEBIT.to_stripe()))
    assert book.pending_items == {"ii_debit": DEBIT}
    assert not book.pending_items["ii_debit"].discountable  # prorations are never discounted again (§4.4)
    # updated: the event carries the whole item, which replaces the old one
    cheaper = {**DEBIT.to_stripe(), "amount": 4000}
    book = apply(book, event("invoiceitem.updated", cheaper))
    assert book.pending_items["ii_debit"].amount == 4000
    # once on an invoice it is no longer pending
    book = apply(book, event("invoiceitem.updated", {**cheaper, "invoice": "in_feb"}))
    assert book.pending_items == {}


def test_a_deleted_item_leaves_the_book():
    book = apply(Book("acct_1", "acct_1:cus_1"), event("invoiceitem.created", DEBIT.to_stripe()))
    # Stripe's deleted object: only the id and `deleted: true`
    book = apply(book, event("invoiceitem.deleted", {"id": "ii_debit", "object": "invoiceitem", "deleted": True}))
    assert book.pending_items == {}


def test_a_snapshot_keeps_the_pending_items():
    book = apply(Book("acct_1", "acct_1:cus_1"), event("invoiceitem.created", DEBIT.to_stripe()))
    snap = to_json(book)
    assert snap["pending_items"] == [DEBIT.to_stripe()]
    rebuilt = from_objects("acct_1", "acct_1:cus_1", clock=None, customers=[], subscriptions=[], invoices=[],
                           pending_items=snap["pending_items"])
    assert rebuilt == book
    assert InvoiceItem.from_stripe(DEBIT.to_stripe()) == DEBIT
