"""The books of a set of partitions and how a command record reaches them: the part of the billing worker
that the live worker and `tally replay billing --redecide` share, so both decide the same way.

A command names one book by its key; a tick names a partition and reaches every book there (off test clocks)
with something due by its time, in key order.

One command never stops the others. If deciding it for a book raises (a bug, or a value the core cannot
hold), that book is left exactly as it was and the decision becomes a `tally.command_failed` record naming
the command and the book (with the usage it had read, so re-deciding reads the same), and an API command is
answered with a 500 `api_error` (code `command_failed`). Events must also be encodable as JSON with integers
within ±2^53 (what every JSON reader, JavaScript's included, holds exactly). A book a tick failed on is
skipped by ticks for `STUCK_RETRY` seconds of tick time, then tried again; a decision that changes the
book clears that. Both rules depend only on the commands, so re-deciding gives the same records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import orjson

from ..codec import _default
from ..errors import ApiError
from .balance_transactions import BALANCE_TRANSACTION
from .book import USAGE_OBSERVED, Book
from .invoice_items import UPDATED as INVOICEITEM_UPDATED
from .context import VERSION
from .decide import decide
from .schedule import due_at

# (account, meter, customer, start, end) → the meter's aggregated value over [start, end)
AccountUsage = Callable[[str, str, str, int, int], Decimal]
COMMAND_FAILED = "tally.command_failed"  # internal record: a decision that raised (never on /v1/events)
INTERNAL = (USAGE_OBSERVED, COMMAND_FAILED, BALANCE_TRANSACTION, INVOICEITEM_UPDATED)
STUCK_RETRY = 3600
MAX_ERROR = 500


class BadCommand(ValueError):
    """A billing-commands record without the envelope every command has: it cannot be decided at all."""


def decode_command(value: bytes, partition: int, partition_of: Callable[[bytes], int]) -> dict:
    """The command in a billing-commands record, or BadCommand (the worker quarantines such records and the
    re-decision skips them, so both agree)."""
    try:
        command = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        raise BadCommand(f"not JSON: {err}") from None
    if not isinstance(command, dict):
        raise BadCommand("not a JSON object")
    for name in ("id", "type", "key"):
        if not isinstance(command.get(name), str):
            raise BadCommand(f"{name} is not a string")
    if type(command.get("at")) is not int or abs(command["at"]) >= 2**53:
        raise BadCommand("at is not an integer within ±2^53")
    if command["type"] != "tick":
        if not isinstance(command.get("account"), str):
            raise BadCommand("account is not a string")
        if partition_of(command["key"].encode()) != partition:
            raise BadCommand(f"key {command['key']!r} does not belong on partition {partition}")
    return command


@dataclass
class Ledger:
    books: dict[str, Book] = field(default_factory=dict)
    partition: dict[str, int] = field(default_factory=dict)   # book key → partition
    due: dict[str, int] = field(default_factory=dict)         # book key → next due time (books off clocks)
    stuck: dict[str, int] = field(default_factory=dict)       # book key → tick time before which ticks skip it

    def copy(self) -> "Ledger":
        return Ledger(dict(self.books), dict(self.partition), dict(self.due), dict(self.stuck))

    def put(self, book: Book, partition: int) -> None:
        self.books[book.key] = book
        self.partition[book.key] = partition
        self._schedule(book.key)

    def set_stuck(self, key: str, retry_at: int) -> None:
        """Restore a stuck mark (the worker's start-up, from the projection of `tally.command_failed`)."""
        self.stuck[key] = retry_at
        if key in self.books:
            self._schedule(key)

    def _schedule(self, key: str) -> None:
        book = self.books[key]
        when = None if book.on_clock else due_at(book)
        if when is not None and key in self.stuck:
            when = max(when, self.stuck[key])
        if when is None:
            self.due.pop(key, None)
        else:
            self.due[key] = when

    def due_in(self, partition: int, at: int) -> list[str]:
        return sorted(k for k, when in self.due.items() if when <= at and self.partition[k] == partition)

    def handle(self, partition: int, command: dict, usage: AccountUsage) -> tuple[list[dict], tuple[int, dict] | None]:
        """Decide one command record; returns its events and, for API commands, (http status, body).
        `command` is what `decode_command` returns."""
        if command["type"] == "tick":
            events: list[dict] = []
            for key in self.due_in(partition, command["at"]):
                events += self._guarded(self.books[key], partition, command, usage)[0]
            return events, None
        book = self.books.get(command["key"]) or Book(command["account"], command["key"])
        events, d = self._guarded(book, partition, command, usage)
        if d is None:
            return events, (500, failure_body(events[-1]))
        if d.error is not None:
            return events, (d.error.http_status, d.error.to_dict())
        return events, (200, d.result)

    def _guarded(self, book: Book, partition: int, command: dict, usage: AccountUsage):
        """(events, decision), or (observations + a failure record, None) with the ledger untouched."""
        reads: dict[tuple, Decimal] = {}

        def reading(meter, customer, start, end):
            value = usage(book.account, meter, customer, start, end)
            reads.setdefault((meter, customer, start, end), value)
            return value

        try:
            d = decide(book, command, reading)
            for e in d.events:
                orjson.dumps(e, default=_default, option=orjson.OPT_STRICT_INTEGER)
            orjson.dumps(d.result if d.error is None else d.error.to_dict(), default=_default,
                         option=orjson.OPT_STRICT_INTEGER)
        except Exception as exc:  # noqa: BLE001 - one command's failure is that command's, see the docstring
            return self._failed(book, partition, command, reads, exc), None
        # Any record but these two changes the book (internal ones too), as store.py's billing_stuck reads them.
        if book.key in self.stuck and any(e["type"] not in (USAGE_OBSERVED, COMMAND_FAILED) for e in d.events):
            del self.stuck[book.key]
        self.put(d.book, partition)
        return d.events, d

    def _failed(self, book: Book, partition: int, command: dict, reads: dict, exc: Exception) -> list[dict]:
        tick = command["type"] == "tick"
        retry_at = command["at"] + STUCK_RETRY if tick else None
        events = [{"id": _id("obs", command["id"], book.key, i), "type": USAGE_OBSERVED, "version": VERSION,
                   "account": book.account,
                   "key": book.key, "command": command["id"], "data": {"object": {
                       "meter": m, "customer": c, "start": s, "end": e, "value": str(v)}}}
                  for i, ((m, c, s, e), v) in enumerate(reads.items())]
        events.append({
            "id": _id("evt", command["id"], book.key, "failed"), "object": "event", "type": COMMAND_FAILED,
            "version": VERSION, "created": command["at"], "api_version": None, "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": command.get("request_id"), "idempotency_key": command.get("idempotency_key")},
            "account": book.account, "key": book.key, "command": command["id"],
            "data": {"object": {"object": "tally.command_failure", "command": command["id"],
                                "command_type": command["type"], "book": book.key, "error": failure_text(exc),
                                "retry_at": retry_at}}})
        if tick and book.key in self.books:
            self.set_stuck(book.key, retry_at)
        return events


def failure_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:MAX_ERROR]


def failure_body(event: dict) -> dict:
    """The API's answer to a command that could not be decided (from its `tally.command_failed` record)."""
    o = event["data"]["object"]
    return ApiError(f"tally could not decide command {o['command']}: {o['error']}", code="command_failed").to_dict()


def _id(prefix: str, command_id: str, key: str, n) -> str:
    return f"{prefix}_f{hashlib.blake2b(f'{command_id}/{key}/{n}'.encode(), digest_size=12).hexdigest()}"
