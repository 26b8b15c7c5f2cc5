"""The billing worker's decisions: `decide(book, command, usage) -> Decision`, pure and deterministic.

A decision first lets time act on the book up to the command's time (advance.py: what schedule.py says is
due), then hands the command to its handler (handlers/). Every change is an event applied to the book as it
is emitted, ids derive from the command id and usage reads are recorded (context.py), so re-deciding from
the same commands and observations gives the same events, byte for byte.

Commands arrive as log records, `{"id", "type", "version", "account", "key", "at", "grace", "params", ...}`
(schemas/billing_command.v1.json), and are read once into their typed model (`commands.load`, trusted: no rule
is checked again). Handlers decide on the typed params; every rule that needs no state ran at the API edge
(edge.py, ARCHITECTURE decision 10), so tightening one never changes what re-deciding an old command gives.
"""

from __future__ import annotations

from typing import Callable

from ..errors import ApiError, invalid
from . import commands as c
from .advance import advance
from .book import USAGE_OBSERVED, Book
from .context import DEFAULT_GRACE, MAX_GRACE, Decision, Run, UsageReader, command_time  # noqa: F401
from .edge import InvalidCommand, validate
from .handlers.balance import balance_transaction_create, balance_transaction_update
from .handlers.changes import subscription_update
from .handlers.customers import customer_create, customer_delete, customer_update
from .handlers.invoice_items import invoiceitem_create, invoiceitem_delete, invoiceitem_update
from .handlers.invoices import invoice_finalize, invoice_mark_uncollectible, invoice_pay, invoice_void
from .handlers.subscriptions import subscription_cancel, subscription_create
from .handlers.test_clocks import clock_advance, clock_create, clock_delete
from .schedule import usage_needs  # noqa: F401  (the worker's import)

HANDLERS: dict[str, Callable[[Run, int], dict]] = {
    "customer.create": customer_create, "customer.update": customer_update, "customer.delete": customer_delete,
    "subscription.create": subscription_create, "subscription.update": subscription_update,
    "subscription.cancel": subscription_cancel,
    "invoice.finalize": invoice_finalize, "invoice.pay": invoice_pay, "invoice.void": invoice_void,
    "invoice.mark_uncollectible": invoice_mark_uncollectible,
    "test_clock.create": clock_create, "test_clock.advance": clock_advance, "test_clock.delete": clock_delete,
    "customer.balance_transaction.create": balance_transaction_create,
    "customer.balance_transaction.update": balance_transaction_update,
    "invoiceitem.create": invoiceitem_create, "invoiceitem.update": invoiceitem_update,
    "invoiceitem.delete": invoiceitem_delete,
}


def decide(book: Book, record: dict, usage: UsageReader) -> Decision:
    """Apply time up to the command, then the command; a refused command keeps only what time did."""
    known = record["type"] in c.COMMANDS
    # An unknown type still lets time act first (what it read stays in the ledger's failure record).
    command = c.load(record if known else {**record, "type": "tick", "params": {}})
    run = Run(book, command, usage)
    now = command_time(book, command.at)
    advance(run, now)
    if not known:
        raise ValueError(f"unknown billing command {record['type']!r}")
    if command.type == "tick":
        return Decision(run.book, run.events)
    if not isinstance(record.get("params", {}), dict) and not isinstance(command.params, c.NoParams):
        # Not a command any API wrote; deciding it raised before typed commands too (a failure, ledger.py).
        raise TypeError(f"the params of {command.type} {command.id} are not an object")
    handler = HANDLERS[command.type]
    settled, kept = run.book, len(run.events)
    run.caused, run.error = True, None
    try:
        _refuse_misfits(command, now)
        result = handler(run, now)
    except ApiError as err:
        # Nothing the refused command did stays, except the usage it read (re-deciding will read it again).
        run.events[kept:] = [e for e in run.events[kept:] if e["type"] == USAGE_OBSERVED]
        return Decision(settled, run.events, None, err)
    return Decision(run.book, run.events, result, run.error)


def _refuse_misfits(command: c.Command, now: int) -> None:
    """A record holding a value no field can hold (never one the API wrote: only a record written by hand, or
    before the edge checked every param) is refused as the edge refuses it, as the worker then did. A
    proration choice of a record written before the models is never read (tally did not read it then)."""
    bad = c.misfits(command.params)
    if command.before_models:
        bad = [name for name in bad if name not in ("proration_behavior", "prorate")]
    if bad:
        try:
            validate(command.type, c.to_params(command), object_id=command.object_id, account=command.account or "",
                     now=now)
        except InvalidCommand as err:
            raise err.errors[0] from None
        # The edge's rules let it through, yet no field can hold it (a number for an id): refused all the same,
        # never handed to a handler that expects the field's type.
        raise invalid(bad[0], "cannot be read as this parameter's type.")
