"""The billing worker's decisions: `decide(book, command, usage) -> Decision`, pure and deterministic.

A decision first lets time act on the book up to the command's time (advance.py: what schedule.py says is
due), then hands the command to its handler (handlers/). Every change is an event applied to the book as it
is emitted, ids derive from the command id and usage reads are recorded (context.py), so re-deciding from
the same commands and observations gives the same events, byte for byte.

Commands are plain dicts: `{"id", "type", "account", "key", "at", "grace", ...}` (schemas/billing_command.v1.json).
"""

from __future__ import annotations

from typing import Callable

from ..errors import ApiError
from .advance import advance
from .book import USAGE_OBSERVED, Book
from .context import DEFAULT_GRACE, MAX_GRACE, Decision, Run, UsageReader, command_time  # noqa: F401
from .handlers.customers import customer_create, customer_delete, customer_update
from .handlers.invoices import invoice_finalize, invoice_mark_uncollectible, invoice_pay, invoice_void
from .handlers.invoices import preview  # noqa: F401  (the API's import)
from .handlers.subscriptions import subscription_cancel, subscription_create, subscription_update
from .handlers.test_clocks import clock_advance, clock_create, clock_delete
from .schedule import usage_needs  # noqa: F401  (the worker's import)

HANDLERS: dict[str, Callable[[Run, int], dict]] = {
    "customer.create": customer_create, "customer.update": customer_update, "customer.delete": customer_delete,
    "subscription.create": subscription_create, "subscription.update": subscription_update,
    "subscription.cancel": subscription_cancel,
    "invoice.finalize": invoice_finalize, "invoice.pay": invoice_pay, "invoice.void": invoice_void,
    "invoice.mark_uncollectible": invoice_mark_uncollectible,
    "test_clock.create": clock_create, "test_clock.advance": clock_advance, "test_clock.delete": clock_delete,
}


def decide(book: Book, command: dict, usage: UsageReader) -> Decision:
    """Apply time up to the command, then the command; a refused command keeps only what time did."""
    run = Run(book, command, usage)
    now = command_time(book, command)
    advance(run, now)
    if command["type"] == "tick":
        return Decision(run.book, run.events)
    handler = HANDLERS.get(command["type"])
    if handler is None:
        raise ValueError(f"unknown billing command {command['type']!r}")
    settled, kept = run.book, len(run.events)
    run.caused, run.error = True, None
    try:
        result = handler(run, now)
    except ApiError as err:
        # Nothing the refused command did stays, except the usage it read (re-deciding will read it again).
        run.events[kept:] = [e for e in run.events[kept:] if e["type"] == USAGE_OBSERVED]
        return Decision(settled, run.events, None, err)
    return Decision(run.book, run.events, result, run.error)
