"""`customer.balance_transaction.create` and `.update`: the customer balance ledger (reference §4.7)."""

from __future__ import annotations

from ... import metadata as _metadata
from ...errors import ResourceMissing, invalid
from .. import params as p
from ..balance_transactions import BALANCE_TRANSACTION, edit
from ..context import Run

KIND = "customer balance transaction"  # Stripe's wording in "No such customer balance transaction: '…'"


def balance_transaction_create(run: Run, now: int) -> dict:
    """An `adjustment` (the one type the API creates): its own entry, then `customer.updated` with the new
    balance. Stripe: the transaction's currency must be the customer's; a customer without one takes it."""
    cus = run.customer(run.command.object_id)
    values = run.params.sent()
    amount, currency = values["amount"], values["currency"]
    if cus.currency is not None and currency != cus.currency:
        raise invalid("currency", f"must be the customer's currency ({cus.currency}); its balance is kept in it.")
    if abs(cus.balance + amount) > p.MAX_BALANCE:
        raise invalid("amount", f"would take the balance beyond ±{p.MAX_BALANCE}.")
    txns = run.change_balance(cus.id, [("adjustment", amount)], now, currency=currency,
                              description=values.get("description"),
                              metadata=_metadata.check(values.get("metadata")))
    return txns[0].to_stripe()


def balance_transaction_update(run: Run, now: int) -> dict:
    """Only `description` and `metadata` change; metadata merges key by key (tally_core/metadata.py)."""
    txn = run.book.balance_transactions.get(run.command.object_id)
    if txn is None:
        raise ResourceMissing(KIND, str(run.command.object_id))
    run.customer(txn.customer)  # a deleted customer's ledger is gone with it (404, as Stripe answers)
    values = run.params.sent()
    description = values["description"] if "description" in values else txn.description
    metadata = _metadata.merge(txn.metadata, values["metadata"]) if "metadata" in values else txn.metadata
    new = edit(txn, description, metadata)
    if new != txn:
        run.emit(BALANCE_TRANSACTION, new.to_stripe(), now)
    return new.to_stripe()
