"""The books of a set of partitions and how a command record reaches them: the part of the billing worker
that the live worker and `tally replay billing --redecide` share, so both decide the same way.

A command names one book by its key; a tick names a partition and reaches every book there (off test clocks)
with something due by its time, in key order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from .book import Book, due_at
from .decide import decide

# (account, meter, customer, start, end) → the meter's aggregated value over [start, end)
AccountUsage = Callable[[str, str, str, int, int], Decimal]


@dataclass
class Ledger:
    books: dict[str, Book] = field(default_factory=dict)
    partition: dict[str, int] = field(default_factory=dict)   # book key → partition
    due: dict[str, int] = field(default_factory=dict)         # book key → next due time (books off clocks)

    def copy(self) -> "Ledger":
        return Ledger(dict(self.books), dict(self.partition), dict(self.due))

    def put(self, book: Book, partition: int) -> None:
        self.books[book.key] = book
        self.partition[book.key] = partition
        when = None if book.on_clock else due_at(book)
        if when is None:
            self.due.pop(book.key, None)
        else:
            self.due[book.key] = when

    def due_in(self, partition: int, at: int) -> list[str]:
        return sorted(k for k, when in self.due.items() if when <= at and self.partition[k] == partition)

    def handle(self, partition: int, command: dict, usage: AccountUsage) -> tuple[list[dict], tuple[int, dict] | None]:
        """Decide one command record; returns its events and, for API commands, (http status, body)."""
        if command["type"] == "tick":
            events: list[dict] = []
            for key in self.due_in(partition, int(command["at"])):
                events += self._decide(self.books[key], partition, command, usage)[0]
            return events, None
        book = self.books.get(command["key"]) or Book(command["account"], command["key"])
        events, d = self._decide(book, partition, command, usage)
        if d.error is not None:
            return events, (d.error.http_status, d.error.to_dict())
        return events, (200, d.result)

    def _decide(self, book: Book, partition: int, command: dict, usage: AccountUsage):
        d = decide(book, command, lambda meter, customer, start, end: usage(book.account, meter, customer, start, end))
        self.put(d.book, partition)
        return d.events, d
