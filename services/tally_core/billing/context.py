"""The decision context: one decision in progress (`Run`) and what it answers (`Decision`).

A run holds the book so far and the events emitted. Every change is an event applied to the book as it is
emitted (`book.apply`), so the book is always the fold of the events. Ids derive from the command id, the
book's key and a counter, and every usage value read is recorded as a `tally.usage_observed` record:
re-deciding from the same commands and observations gives the same events, byte for byte. The order in
which a decision asks for ids is therefore part of the contract: moving code must not reorder `new_id` calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Callable

from ..errors import ApiError, ResourceMissing, missing_reference
from . import invoice_wire
from .balance_transactions import BALANCE_TRANSACTION, BalanceTransaction, entries
from .book import USAGE_OBSERVED, Book, apply
from .customers import DEFAULT_CURRENCY, Customer
from .invoices import Invoice
from .payments import PaymentOutcome
from .subscriptions import Subscription

if TYPE_CHECKING:  # commands.py imports the edge, which imports the handlers, which import this module
    from .commands import Command, Params

UsageReader = Callable[[str, str, int, int], Decimal]  # (meter, customer, start, end) → aggregated value
VERSION = 1  # the envelope version of every record a decision emits (catalog events carry it too)
DEFAULT_GRACE = 3600        # "default finalization grace period of 1 hour" (§1.10)
MAX_GRACE = 72 * 3600       # "up to 72 hours (3 days)"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class Decision:
    book: Book
    events: list[dict] = field(default_factory=list)
    result: dict | None = None       # the object the API answers with
    error: ApiError | None = None    # the command was refused (events may still hold what time did first)


class Run:
    """One decision in progress: the book so far, the events emitted, deterministic ids.

    `command` is the typed command (commands.load): handlers read `command.object_id` and `params`, typed
    and already checked at the API edge."""

    def __init__(self, book: Book, command: "Command", usage: UsageReader):
        self.book = book
        self.command = command
        self.usage_reader = usage
        self.events: list[dict] = []
        self._n = 0
        grace = command.grace if "grace" in command.model_fields_set else DEFAULT_GRACE
        self.grace = min(max(int(grace), 0), MAX_GRACE)
        self.request = {"id": command.request_id, "idempotency_key": command.idempotency_key}
        self.caused = False  # True while the command itself acts (its events name the request)
        self._observed: dict[tuple, Decimal] = {}
        self.error: ApiError | None = None
        self.last_outcome: PaymentOutcome | None = None

    @property
    def params(self) -> "Params":
        return self.command.params

    @property
    def before_models(self) -> bool:
        """The command was written before commands were typed: its proration choices were never read then."""
        return self.command.before_models

    def new_id(self, prefix: str) -> str:
        self._n += 1
        # One tick decides for many books: the book's key keeps their ids apart.
        digest = hashlib.blake2b(f"{self.command.id}/{self.book.key}/{self._n}".encode(), digest_size=18).digest()
        n = int.from_bytes(digest, "big")
        chars = []
        for _ in range(24):
            n, r = divmod(n, 62)
            chars.append(_ALPHABET[r])
        return f"{prefix}_{''.join(chars)}"

    def emit(self, kind: str, obj: dict, created: int, previous: dict | None = None, *,
             state: dict | None = None) -> None:
        """`state`: tally's bookkeeping beside the Stripe object (Subscription.state), never on /v1/events."""
        data = {"object": obj}
        if previous:
            data["previous_attributes"] = previous
        event = {
            "id": self.new_id("evt"), "object": "event", "type": kind, "version": VERSION, "created": created,
            "api_version": None,
            "livemode": False, "pending_webhooks": 0, "data": data,
            "request": self.request if self.caused else {"id": None, "idempotency_key": None},
            "account": self.book.account, "key": self.book.key, "command": self.command.id,
        }
        if state is not None:
            event["state"] = state
        self.events.append(event)
        self.book = apply(self.book, event)

    def usage(self, meter: str, customer: str, start: int, end: int) -> Decimal:
        key = (meter, customer, start, end)
        if key not in self._observed:
            value = Decimal(self.usage_reader(meter, customer, start, end))
            self._observed[key] = value
            self.events.append({
                "id": self.new_id("obs"), "type": USAGE_OBSERVED, "version": VERSION, "account": self.book.account,
                "key": self.book.key, "command": self.command.id, "data": {"object": {
                    "meter": meter, "customer": customer, "start": start, "end": end, "value": str(value)}}})
        return self._observed[key]

    # --- objects ---------------------------------------------------------------------------------------------

    def sub(self, sub_id: str, param: str = "id") -> Subscription:
        sub = self.book.subscriptions.get(sub_id)
        if sub is None:
            raise _missing("subscription", sub_id, param)
        return sub

    def customer(self, customer_id: str, param: str = "id") -> Customer:
        cus = self.book.customers.get(customer_id)
        if cus is None or cus.deleted:
            raise _missing("customer", customer_id, param)
        return cus

    def invoice(self, invoice_id: str) -> Invoice:
        inv = self.book.invoices.get(invoice_id)
        if inv is None:
            raise ResourceMissing("invoice", invoice_id, param="id")
        return inv

    def subscription_of(self, inv: Invoice) -> Subscription | None:
        return self.book.subscriptions.get(inv.subscription) if inv.subscription else None

    def save_sub(self, kind: str, new: Subscription, old: Subscription | None, at: int) -> None:
        obj = new.to_stripe()
        self.emit(kind, obj, at, changed(old.to_stripe(), obj) if old else None, state=new.state())

    def save_invoice(self, kind: str, inv: Invoice, at: int) -> None:
        self.emit(kind, invoice_wire.to_stripe(inv), at)

    def set_balance(self, customer_id: str, balance: int, at: int, *, type: str, invoice: str | None = None,
                    currency: str | None = None) -> None:
        """The customer's balance becomes `balance` by one ledger entry of `type` (balance_transactions.py)."""
        self.change_balance(customer_id, [(type, balance - self.book.customers[customer_id].balance)], at,
                            invoice=invoice, currency=currency)

    def change_balance(self, customer_id: str, changes: list[tuple[str, int]], at: int, *,
                       invoice: str | None = None, currency: str | None = None, description: str | None = None,
                       metadata: dict | None = None) -> list[BalanceTransaction]:
        """Every balance change (§4.7): one `tally.balance_transaction` record per non-zero (type, amount),
        each with its running ending_balance, then one `customer.updated` (previous_attributes: balance, and
        currency when this gives the customer its first). `currency`: the entries' (default: the invoice's,
        else the customer's); a customer without one takes it."""
        cus = self.book.customers[customer_id]
        if currency is None:
            currency = self.book.invoices[invoice].currency if invoice else cus.currency or DEFAULT_CURRENCY
        txns = self.record_entries(customer_id, cus.balance, changes, at, currency=currency, invoice=invoice,
                                   description=description, metadata=metadata)
        new = replace(cus, balance=txns[-1].ending_balance if txns else cus.balance,
                      currency=cus.currency or currency)
        if new != cus:
            self.emit("customer.updated", new.to_stripe(), at, changed(cus.to_stripe(), new.to_stripe()))
        return txns

    def record_entries(self, customer_id: str, balance: int, changes: list[tuple[str, int]], at: int, *,
                       currency: str, invoice: str | None = None, description: str | None = None,
                       metadata: dict | None = None) -> list[BalanceTransaction]:
        """Only the ledger's records of `changes` from `balance` on (the caller saves the customer)."""
        txns = entries(customer_id, balance, changes, new_id=lambda: self.new_id("cbtxn"), currency=currency,
                       created=at, invoice=invoice, description=description, metadata=metadata)
        for txn in txns:
            self.emit(BALANCE_TRANSACTION, txn.to_stripe(), at)
        return txns


def _missing(kind: str, id_: str, param: str) -> ResourceMissing:
    return ResourceMissing(kind, id_) if param == "id" else missing_reference(kind, id_, param)


def changed(old: dict, new: dict) -> dict:
    """Stripe's `previous_attributes`: the old values of top-level fields that changed."""
    return {k: v for k, v in old.items() if new.get(k) != v}


def command_time(book: Book, at: int) -> int:
    """A clock's customers live at the clock's time; everyone else at the time the command was written (`at`)."""
    if book.on_clock and book.clock is not None and not book.clock.deleted:
        return book.clock.frozen_time
    return int(at)
