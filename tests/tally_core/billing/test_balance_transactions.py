"""The customer balance ledger (reference §4.7, §6.5) as worked examples: every balance change is one
`cbtxn_` entry with its amount (negative credits the customer) and the balance it leaves."""

from decimal import Decimal

import pytest

from tally_core.billing.balance_transactions import BALANCE_TRANSACTION
from tally_core.billing.book import Book, from_objects, to_json
from tally_core.billing.commands import parse, to_params
from tally_core.billing.decide import decide
from tally_core.billing.ledger import INTERNAL
from tally_core.billing.prices import create_price
from tally_core.errors import InvalidRequest

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def _price(amount: int) -> dict:
    return create_price({"currency": "usd", "unit_amount": str(amount), "product": "prod_plan",
                         "recurring": {"interval": "month"}}, id=f"price_{amount}", now=0).to_stripe(expand=["tiers"])


class Customer:
    """One customer's book, driven by commands as the API writes them (checked at the edge first)."""

    def __init__(self, pm="pm_card_visa", balance: int | None = None):
        self.book = Book("acct_1", "acct_1:cus_1")
        self.events: list[dict] = []
        self.n = 0
        params = {"payment_method": pm, **({"balance": str(balance)} if balance is not None else {})}
        self.send("customer.create", "cus_1", params)

    def send(self, kind, object_id, params, at=NOW, **extra):
        self.n += 1
        typed = parse(kind, params, object_id=object_id, account="acct_1", now=at)
        cmd = {"id": f"cmd_{self.n}", "type": kind, "version": 1, "account": "acct_1", "key": self.book.key,
               "at": at, "object_id": object_id, "params": to_params(typed), **extra}
        d = decide(self.book, cmd, lambda *a: Decimal(0))
        self.book = d.book
        self.events += d.events
        if d.error:
            raise d.error
        return d.result

    def adjust(self, amount: int, **params) -> dict:
        return self.send("customer.balance_transaction.create", "cus_1",
                         {"amount": str(amount), "currency": "usd", **params})

    def subscribe(self, amount: int) -> dict:
        sub = self.send("subscription.create", f"sub_{self.n}", {"customer": "cus_1", "items": [
            {"price": f"price_{amount}"}]}, prices={f"price_{amount}": _price(amount)})
        return self.book.invoices[sub["latest_invoice"]]

    def ledger(self) -> list[tuple[str, int, int]]:
        """(type, amount, ending_balance) of every entry, oldest first."""
        return [(o["type"], o["amount"], o["ending_balance"]) for o in
                (e["data"]["object"] for e in self.events if e["type"] == BALANCE_TRANSACTION)]

    @property
    def balance(self) -> int:
        return self.book.customers["cus_1"].balance


def test_an_adjustment_of_minus_500_credits_the_customer():
    # given a customer without a balance
    c = Customer()
    # when 5.00 is credited
    txn = c.adjust(-500, description="goodwill", metadata={"ticket": "T-1"})
    # then one entry ending at −500, as Stripe's fixture shows, and the customer takes its currency
    assert (txn["type"], txn["amount"], txn["ending_balance"], txn["currency"]) == ("adjustment", -500, -500, "usd")
    assert txn["id"].startswith("cbtxn_") and txn["object"] == "customer_balance_transaction"
    assert (txn["invoice"], txn["customer"], txn["created"], txn["description"], txn["metadata"]) == (
        None, "cus_1", NOW, "goodwill", {"ticket": "T-1"})
    assert (c.balance, c.book.customers["cus_1"].currency) == (-500, "usd")
    # the entry is logged before the customer's change, which names what was before
    record, updated = c.events[-2:]
    assert (record["type"], updated["type"]) == (BALANCE_TRANSACTION, "customer.updated")
    assert updated["data"]["previous_attributes"] == {"balance": 0, "currency": None}
    assert BALANCE_TRANSACTION in INTERNAL


def test_the_credit_applies_to_the_next_invoice():
    # given a credit of 5.00
    c = Customer()
    c.adjust(-500)
    # when an invoice of 20.00 is finalized
    inv = c.subscribe(2000)
    # then 5.00 is applied: +500, ending 0, and 15.00 is due
    assert c.ledger()[-1] == ("applied_to_invoice", 500, 0)
    assert (inv.amount_due, inv.starting_balance, inv.ending_balance, c.balance) == (1500, -500, 0, 0)
    txn = c.book.balance_transactions[[t for t in c.book.balance_transactions][-1]]
    assert txn.invoice == inv.id


def test_a_credit_larger_than_the_invoice_pays_it_and_keeps_the_rest():
    # given a credit of 30.00 and an invoice of 20.00
    c = Customer()
    c.adjust(-3000)
    inv = c.subscribe(2000)
    # then 20.00 is applied, 10.00 stays credited, nothing is due and the invoice is paid
    assert c.ledger()[-1] == ("applied_to_invoice", 2000, -1000)
    assert (inv.amount_due, inv.status, c.balance) == (0, "paid", -1000)


def test_an_amount_due_below_the_minimum_is_carried_to_the_balance():
    # given a credit of 20.00 and an invoice of 20.30: 0.30 due, under USD's 0.50 minimum (§6.5)
    c = Customer()
    c.adjust(-2000)
    inv = c.subscribe(2030)
    # then two entries, the balance applied first, then the 0.30 carried (`invoice_too_small`)
    assert c.ledger()[-2:] == [("applied_to_invoice", 2000, 0), ("invoice_too_small", 30, 30)]
    assert (inv.amount_due, inv.status, c.balance) == (0, "paid", 30)
    assert {t.invoice for t in list(c.book.balance_transactions.values())[-2:]} == {inv.id}
    # and one customer.updated for both
    updated = [e for e in c.events if e["type"] == "customer.updated"][-1]
    assert (updated["data"]["object"]["balance"], updated["data"]["previous_attributes"]) == (30, {"balance": -2000})


def test_a_30_cent_invoice_without_credit_is_too_small():
    # given no balance and an invoice of 0.30
    c = Customer()
    inv = c.subscribe(30)
    # then the 0.30 goes to the balance, the invoice is paid; the customer took the invoice's currency
    assert c.ledger() == [("invoice_too_small", 30, 30)]
    assert (inv.amount_due, inv.status, c.balance, c.book.customers["cus_1"].currency) == (0, "paid", 30, "usd")


def test_voiding_gives_back_what_the_invoice_applied():
    # given a credit of 5.00 applied to an invoice of 20.00 that the card declined
    c = Customer(pm="pm_card_chargeDeclined")
    c.adjust(-500)
    inv = c.subscribe(2000)
    assert (inv.status, c.balance) == ("open", 0)
    # when the invoice is voided
    c.send("invoice.void", inv.id, {})
    # then the 5.00 comes back
    assert c.ledger()[-1] == ("unapplied_from_invoice", -500, -500)
    assert c.balance == -500


def test_a_first_invoice_gives_the_customer_its_currency_even_without_a_balance_change():
    c = Customer()
    c.subscribe(2000)
    assert c.ledger() == []
    assert c.book.customers["cus_1"].currency == "usd"


def test_only_description_and_metadata_change_and_metadata_merges():
    c = Customer()
    txn = c.adjust(-500, description="first", metadata={"a": "1", "b": "2"})
    # when description is changed, `a` unset and `c` added
    new = c.send("customer.balance_transaction.update", txn["id"],
                 {"description": "second", "metadata": {"a": "", "c": "3"}})
    # then the amounts stay, the book holds the new object
    assert (new["amount"], new["ending_balance"], new["description"], new["metadata"]) == (
        -500, -500, "second", {"b": "2", "c": "3"})
    assert c.book.balance_transactions[txn["id"]].description == "second"
    assert c.events[-1]["type"] == BALANCE_TRANSACTION and c.balance == -500
    # and description= unsets it
    assert c.send("customer.balance_transaction.update", txn["id"], {"description": ""})["description"] is None


@pytest.mark.parametrize(("params", "param"), [
    ({"currency": "usd"}, "amount"),
    ({"amount": "0", "currency": "usd"}, "amount"),
    ({"amount": "100000000000", "currency": "usd"}, "amount"),
    ({"amount": "-5"}, "currency"),
    ({"amount": "-5", "currency": "dollars"}, "currency"),
    ({"amount": "-5", "currency": "usd", "description": "x" * 351}, "description"),
    ({"amount": "-5", "currency": "usd", "type": "initial"}, "type"),
], ids=["no amount", "zero", "too large", "no currency", "not a code", "long description", "type not creatable"])
def test_the_edge_refuses_naming_the_parameter(params, param):
    with pytest.raises(InvalidRequest) as err:
        parse("customer.balance_transaction.create", params, object_id="cus_1", account="acct_1", now=NOW)
    assert err.value.param == param


def test_another_currency_than_the_customers_is_refused():
    c = Customer()
    c.adjust(-500)
    with pytest.raises(InvalidRequest) as err:
        c.send("customer.balance_transaction.create", "cus_1", {"amount": "-5", "currency": "eur"})
    assert err.value.param == "currency" and c.balance == -500


def test_a_missing_customer_or_transaction_is_404():
    c = Customer()
    with pytest.raises(InvalidRequest) as err:
        c.send("customer.balance_transaction.create", "cus_nope", {"amount": "-5", "currency": "usd"})
    assert err.value.http_status == 404
    with pytest.raises(InvalidRequest) as err:
        c.send("customer.balance_transaction.update", "cbtxn_nope", {"description": "x"})
    assert err.value.http_status == 404


def test_the_projected_book_equals_the_folded_one():
    c = Customer()
    c.adjust(-2000)
    c.subscribe(2030)
    snapshot = to_json(c.book)
    rebuilt = from_objects(c.book.account, c.book.key, clock=None, customers=snapshot["customers"],
                           subscriptions=snapshot["subscriptions"], invoices=snapshot["invoices"],
                           balance_transactions=snapshot["balance_transactions"])
    assert rebuilt.balance_transactions == c.book.balance_transactions
    assert len(rebuilt.balance_transactions) == 3


def test_deciding_again_gives_the_same_ids():
    a, b = Customer(), Customer()
    assert a.adjust(-500)["id"] == b.adjust(-500)["id"]


def test_a_balance_given_to_the_customer_directly_is_in_the_ledger_too():
    # given a customer created with 7.00 of credit: its first entry, `initial`
    c = Customer(balance=-700)
    assert c.ledger() == [("initial", -700, -700)]
    assert c.book.customers["cus_1"].currency == "usd"
    # when its balance is set to −2.00 on an update: an adjustment by the difference, before customer.updated
    c.send("customer.update", "cus_1", {"balance": "-200"})
    assert c.ledger()[-1] == ("adjustment", 500, -200)
    assert [e["type"] for e in c.events[-2:]] == [BALANCE_TRANSACTION, "customer.updated"]
    assert c.events[-1]["data"]["previous_attributes"] == {"balance": -700}
    # and an update that leaves the balance alone writes no entry
    c.send("customer.update", "cus_1", {"name": "Ada"})
    assert len(c.ledger()) == 2


def test_a_downgrade_invoiced_at_once_credits_the_balance_and_the_next_invoice_uses_it():
    """§4.7: "the customer might be owed a credit, which is added to their credit balance to be applied to
    future invoices". An immediate invoice of −6.67 (unused time, §4.5's classic example) with 1.00 already
    credited, then a 10.00 invoice."""
    from tally_core.billing import invoices as inv_
    from tally_core.billing.balance_transactions import entries, invoice_changes
    from tally_core.billing.invoices import InvoiceLine

    def invoice(id_, amount, balance):
        line = InvoiceLine(id=f"il_{id_}", subscription_item=None, price_id=None, description="x", quantity=1,
                           quantity_decimal=Decimal(1), amount=amount, period_start=0, period_end=1,
                           proration=amount < 0)
        draft = inv_.draft(id=id_, customer="cus_1", currency="usd", billing_reason="subscription_update",
                           created=0, period_start=0, period_end=1, lines=[line], customer_balance=balance)
        return inv_.finalize(draft, customer_balance=balance, now=1)

    ids = iter(f"cbtxn_{i}" for i in range(4))
    # the downgrade: nothing due, paid, and the 6.67 credited on top of the 1.00
    down, ending = invoice("in_down", -667, -100)
    assert (down.amount_due, down.status, ending) == (0, "paid", -767)
    txns = entries("cus_1", -100, invoice_changes(down.applied_balance, down.too_small_amount),
                   new_id=lambda: next(ids), currency="usd", created=1, invoice=down.id)
    assert [(t.type, t.amount, t.ending_balance) for t in txns] == [("applied_to_invoice", -667, -767)]
    # the next invoice of 10.00 uses the 7.67: 2.33 due
    nxt, ending = invoice("in_next", 1000, -767)
    assert (nxt.amount_due, ending, nxt.applied_balance) == (233, 0, 767)
