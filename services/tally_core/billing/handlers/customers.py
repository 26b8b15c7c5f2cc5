"""`customer.create`, `customer.update`, `customer.delete` (reference §4.7 balances, §7 clocks)."""

from __future__ import annotations

from ...errors import missing_reference
from ..context import Run, changed
from ..customers import Customer, create_customer, update_customer
from ..subscriptions import ENDED
from .subscriptions import end_subscription


def customer_create(run: Run, now: int) -> dict:
    values = run.params.sent()
    clock = values.get("test_clock")
    if clock is not None and (run.book.clock is None or run.book.clock.id != clock or run.book.clock.deleted):
        raise missing_reference("test_clock", str(clock), "test_clock")
    cus = create_customer(values, id=run.command.object_id, account=run.book.account, now=now,
                          test_clock_time=run.book.clock.frozen_time if clock else None)
    run.emit("customer.created", cus.to_stripe(), now)
    if cus.balance:  # §4.7: a balance set at creation is the ledger's first entry (Stripe's type `initial`)
        run.record_entries(cus.id, 0, [("initial", cus.balance)], now, currency=cus.currency)
    return cus.to_stripe()


def customer_update(run: Run, now: int) -> dict:
    cus = run.customer(run.command.object_id)
    new = update_customer(cus, run.params.sent())
    # §4.7: setting `balance` directly is an `adjustment` of the ledger by the difference, logged first.
    run.record_entries(cus.id, cus.balance, [("adjustment", new.balance - cus.balance)], now, currency=new.currency)
    run.emit("customer.updated", new.to_stripe(), now, changed(cus.to_stripe(), new.to_stripe()))
    return new.to_stripe()


def delete_customer(run: Run, cus: Customer, now: int) -> dict:
    """Deleting a customer cancels its subscriptions at once (Stripe: "immediately cancels any active
    subscriptions on the customer")."""
    for sub_id in sorted(run.book.subscriptions):
        sub = run.book.subscriptions[sub_id]
        if sub.customer == cus.id and sub.status not in ENDED:
            end_subscription(run, sub, now)
    run.emit("customer.deleted", cus.to_stripe(), now)
    return run.book.customers[cus.id].to_stripe()


def customer_delete(run: Run, now: int) -> dict:
    return delete_customer(run, run.customer(run.command.object_id), now)
