"""Invoice items by hand (`/v1/invoiceitems`, reference §4.4, §6.1), decided on a book: a one-off charge or
credit waits for the next invoice, or goes onto a draft at once; it changes or goes away only while pending or
on a draft. Worked on seed 000 (100 USD license + metered tokens on a clock, Jan 1 2026)."""

from __future__ import annotations

import pytest

from tally_core.billing.book import Book, apply, from_objects, to_json
from tally_core.billing.invoice_items import UPDATED
from tally_core.billing.prices import create_price
from tally_core.errors import InvalidRequest

from ..test_decide import PRICES, seed_000, ts

SETUP = create_price({"currency": "usd", "unit_amount_decimal": "2500.5", "product": "prod_setup"},
                     id="price_setup", now=0)
EURO = create_price({"currency": "eur", "unit_amount": "900", "product": "prod_eu"}, id="price_eur", now=0)
PINNED = {p.id: p.to_stripe(expand=["tiers"]) for p in (SETUP, EURO)}


def refused(c, kind, object_id, params, **extra) -> InvalidRequest:
    before = c.book
    with pytest.raises(InvalidRequest) as err:
        c.send(kind, object_id, params, **extra)
    assert c.book == before  # nothing of a refused command stays
    return err.value


def test_a_one_off_charge_waits_for_the_next_invoice():
    c, _ = seed_000()
    # given a 50 USD setup fee, when it is created, then it is pending on the customer
    item = c.send("invoiceitem.create", "ii_setup", {"customer": "cus_1", "amount": "5000", "currency": "usd",
                                                     "description": "Setup fee"})
    assert (item["amount"], item["invoice"], item["discountable"], item["test_clock"]) == (5000, None, True,
                                                                                          "clock_1")
    assert item["period"] == {"start": ts(2026, 1, 1), "end": ts(2026, 1, 1)}  # default: the moment it is made
    assert list(c.book.pending_items) == ["ii_setup"]
    assert c.types()[-1] == "invoiceitem.created"


def test_a_negative_amount_is_a_credit_and_not_discountable_by_default():
    c, _ = seed_000()
    item = c.send("invoiceitem.create", "ii_credit", {"customer": "cus_1", "amount": "-1500"})
    # the currency comes from the customer's first (finalized) invoice
    assert (item["amount"], item["currency"], item["discountable"]) == (-1500, "usd", False)


@pytest.mark.parametrize("params, amount", [
    ({"price": "price_setup"}, 2501),                                   # 2500.5 rounds half-up once
    ({"price": "price_setup", "quantity": "3"}, 7502),                  # 7501.5 → 7502, not 3 × 2501
    ({"unit_amount_decimal": "0.05", "quantity": "30", "currency": "usd"}, 2),  # A.1: 1.5 → 2
], ids=["price", "price-times-3", "decimal-unit"])
def test_a_price_or_a_unit_amount_times_the_quantity_rounds_once(params, amount):
    c, _ = seed_000()
    item = c.send("invoiceitem.create", "ii_x", {"customer": "cus_1", **params}, prices=PINNED)
    assert item["amount"] == amount


def test_a_recurring_price_or_another_currency_is_refused():
    c, _ = seed_000()
    err = refused(c, "invoiceitem.create", "ii_x", {"customer": "cus_1", "price": "price_license"},
                  prices=PRICES)
    assert err.param == "price" and "one-time" in err.message
    err = refused(c, "invoiceitem.create", "ii_x", {"customer": "cus_1", "price": "price_eur"}, prices=PINNED)
    assert err.param == "price" and "eur" in err.message
    err = refused(c, "invoiceitem.create", "ii_x", {"customer": "cus_1", "amount": "100", "currency": "eur",
                                                    "subscription": "sub_1"})
    assert err.param == "currency"


def test_unknown_customer_subscription_or_invoice_are_named():
    c, _ = seed_000()
    assert refused(c, "invoiceitem.create", "ii_x", {"customer": "cus_nope", "amount": "1"}).param == "customer"
    assert refused(c, "invoiceitem.create", "ii_x", {"customer": "cus_1", "amount": "1",
                                                     "subscription": "sub_nope"}).param == "subscription"
    assert refused(c, "invoiceitem.create", "ii_x", {"customer": "cus_1", "amount": "1",
                                                     "invoice": "in_nope"}).param == "invoice"


def test_an_item_on_a_paid_invoice_is_refused():
    c, sub = seed_000()
    err = refused(c, "invoiceitem.create", "ii_x", {"customer": "cus_1", "amount": "1",
                                                    "invoice": sub["latest_invoice"]})
    assert (err.param, err.code) == ("invoice", "invoice_not_editable")


def test_update_prices_again_and_keeps_what_was_not_sent():
    c, _ = seed_000()
    c.send("invoiceitem.create", "ii_setup", {"customer": "cus_1", "price": "price_setup",
                                              "metadata": {"team": "a"}}, prices=PINNED)
    # a new quantity of the same price: the API pins the item's price again
    item = c.send("invoiceitem.update", "ii_setup", {"quantity": "2", "metadata": {"plan": "x", "team": ""}},
                  prices=PINNED)
    assert (item["amount"], item["quantity"], item["metadata"]) == (5001, 2, {"plan": "x"})
    item = c.send("invoiceitem.update", "ii_setup", {"amount": "700"})
    assert (item["amount"], item["quantity"], item["pricing"]["price_details"]["price"]) == (700, 1, None)
    item = c.send("invoiceitem.update", "ii_setup", {"quantity": "3"})  # unit 700 × 3
    assert item["amount"] == 2100
    # Stripe has no invoiceitem.updated event type: the update is an internal record
    assert c.types()[-1] == UPDATED


def test_delete_while_pending():
    c, _ = seed_000()
    c.send("invoiceitem.create", "ii_setup", {"customer": "cus_1", "amount": "5000"})
    gone = c.send("invoiceitem.delete", "ii_setup", {})
    assert gone == {"id": "ii_setup", "object": "invoiceitem", "deleted": True}
    assert c.book.pending_items == {} and c.types()[-1] == "invoiceitem.deleted"
    assert refused(c, "invoiceitem.update", "ii_setup", {"amount": "1"}).code == "resource_missing"


def _draft(c) -> str:
    c.advance(ts(2026, 2, 1))  # the renewal draft waits an hour (§1.10)
    inv = c.book.invoices[c.book.subscriptions["sub_1"].latest_invoice]
    assert inv.status == "draft"
    return inv.id


def test_an_item_onto_a_draft_is_added_after_its_lines_and_reprices_it():
    c, _ = seed_000()
    draft = _draft(c)
    before = c.book.invoices[draft].total
    item = c.send("invoiceitem.create", "ii_late", {"customer": "cus_1", "amount": "1234", "invoice": draft})
    inv = c.book.invoices[draft]
    assert item["invoice"] == draft and c.book.pending_items == {}
    assert (inv.lines[-1].invoice_item, inv.total) == ("ii_late", before + 1234)
    # still editable on the draft: the line follows the item
    c.send("invoiceitem.update", "ii_late", {"amount": "1000"})
    assert c.book.invoices[draft].total == before + 1000
    c.send("invoiceitem.delete", "ii_late", {})
    assert c.book.invoices[draft].total == before
    assert [line.invoice_item for line in c.book.invoices[draft].lines] == [None, None]


def test_once_its_invoice_is_finalized_an_item_cannot_change():
    c, _ = seed_000()
    draft = _draft(c)
    c.send("invoiceitem.create", "ii_late", {"customer": "cus_1", "amount": "1234", "invoice": draft})
    c.advance(ts(2026, 2, 1, 1))  # finalized at the end of the grace hour
    assert c.book.invoices[draft].status == "paid" and c.book.draft_items == {}
    assert refused(c, "invoiceitem.update", "ii_late", {"amount": "1"}).code == "invoice_not_editable"
    assert refused(c, "invoiceitem.delete", "ii_late", {}).code == "invoice_not_editable"


def test_the_fold_of_the_events_is_the_book_and_a_rebuilt_book_equals_it():
    c, _ = seed_000()
    draft = _draft(c)
    for n, amount in enumerate(("300", "-200", "100")):
        c.send("invoiceitem.create", f"ii_{n}", {"customer": "cus_1", "amount": amount})
    c.send("invoiceitem.update", "ii_0", {"description": "kept in its place"})
    c.send("invoiceitem.create", "ii_on", {"customer": "cus_1", "amount": "50", "invoice": draft})
    folded = Book("acct_1", "acct_1:clock_1")
    for e in c.events:
        folded = apply(folded, e)
    assert folded == c.book and list(folded.pending_items) == ["ii_0", "ii_1", "ii_2"]
    snap = to_json(c.book)
    rebuilt = from_objects("acct_1", "acct_1:clock_1", clock=snap["clock"], customers=snap["customers"],
                           subscriptions=snap["subscriptions"], invoices=snap["invoices"],
                           subscription_states=snap.get("subscription_states"),
                           balance_transactions=snap.get("balance_transactions", []),
                           pending_items=snap["pending_items"] + snap["draft_items"])
    assert (rebuilt.pending_items, rebuilt.draft_items) == (c.book.pending_items, c.book.draft_items)
    assert list(rebuilt.pending_items) == ["ii_0", "ii_1", "ii_2"]


def test_the_renewal_takes_the_pending_items_first_newest_first():
    c, _ = seed_000()
    c.send("invoiceitem.create", "ii_setup", {"customer": "cus_1", "amount": "5000"})
    c.advance(ts(2026, 1, 10))
    c.send("invoiceitem.create", "ii_credit", {"customer": "cus_1", "amount": "-1500", "subscription": "sub_1"})
    draft = _draft(c)
    inv = c.book.invoices[draft]
    # §4.4: pending items first, in reverse chronological order, then the subscription's lines
    assert [line.invoice_item for line in inv.lines][:2] == ["ii_credit", "ii_setup"]
    assert inv.total == 10000 + 5000 - 1500
    assert c.book.pending_items == {} and set(c.book.draft_items) == {"ii_setup", "ii_credit"}
    assert c.book.draft_items["ii_setup"].invoice == draft
