"""The customer balance ledger (`cbtxn_…`, reference §4.7): every change of `customer.balance` is one entry.

An entry's `amount` is Stripe's sign (negative is a credit to the customer, positive a debit) and its
`ending_balance` is the balance once it is applied, so a customer's entries, oldest first, add up to its
balance. Types tally writes: `adjustment` (the API's one creatable type, and a `balance` set on a customer
update), `initial` (a `balance` given when the customer is created), `applied_to_invoice` (finalizing
applies the balance to an invoice), `invoice_too_small` (an amount due below the minimum charge, carried to
the balance, §6.5) and `unapplied_from_invoice` (voiding gives back what finalizing applied).

Stripe sends no event for these, so each entry is logged as an internal record `tally.balance_transaction`
with the whole object in `data.object` (never on /v1/events); the book folds it (book.py) and the
projection `billing_balance_transactions` serves it. Entries are immutable except `description` and
`metadata` (§4.7).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping

BALANCE_TRANSACTION = "tally.balance_transaction"  # internal record type (outside the "customer." prefix)
TYPES = ("adjustment", "initial", "applied_to_invoice", "invoice_too_small", "unapplied_from_invoice")
MAX_DESCRIPTION = 350


@dataclass(frozen=True, slots=True)
class BalanceTransaction:
    id: str
    customer: str
    amount: int
    currency: str
    ending_balance: int
    type: str
    created: int
    invoice: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_stripe(self) -> dict:
        # Every field of Stripe's fixture `customer_balance_transaction`; null where tally has nothing.
        return {
            "id": self.id, "object": "customer_balance_transaction", "amount": self.amount,
            "checkout_session": None, "created": self.created, "credit_note": None, "currency": self.currency,
            "customer": self.customer, "customer_account": None, "description": self.description,
            "ending_balance": self.ending_balance, "invoice": self.invoice, "livemode": False,
            "metadata": dict(self.metadata), "type": self.type,
        }

    @classmethod
    def from_stripe(cls, obj: dict) -> "BalanceTransaction":
        return cls(id=obj["id"], customer=obj["customer"], amount=obj["amount"], currency=obj["currency"],
                   ending_balance=obj["ending_balance"], type=obj["type"], created=obj["created"],
                   invoice=obj.get("invoice"), description=obj.get("description"),
                   metadata=dict(obj.get("metadata") or {}))


def entries(customer: str, balance: int, changes: Iterable[tuple[str, int]], *, new_id: Callable[[], str],
            currency: str, created: int, invoice: str | None = None, description: str | None = None,
            metadata: Mapping[str, str] | None = None) -> list[BalanceTransaction]:
    """The entries of `changes` ((type, amount), in order, zero amounts skipped) from `balance` on, each with
    its own running `ending_balance`; `new_id` is asked once per non-zero change, in that order."""
    out = []
    for kind, amount in changes:
        if amount == 0:
            continue
        balance += amount
        out.append(BalanceTransaction(id=new_id(), customer=customer, amount=amount, currency=currency,
                                      ending_balance=balance, type=kind, created=created, invoice=invoice,
                                      description=description, metadata=dict(metadata or {})))
    return out


def invoice_changes(applied: int, too_small: int) -> list[tuple[str, int]]:
    """What finalizing an invoice does to the balance: the balance applied first, then an amount due below
    the minimum charge carried to the balance (invoices.balance_amounts: applied_balance, too_small_amount)."""
    return [("applied_to_invoice", applied), ("invoice_too_small", too_small)]


def edit(txn: BalanceTransaction, description: str | None, metadata: Mapping[str, str]) -> BalanceTransaction:
    return replace(txn, description=description, metadata=dict(metadata))


def of_customer(transactions: Mapping[str, BalanceTransaction], customer: str) -> list[BalanceTransaction]:
    return [t for t in transactions.values() if t.customer == customer]
