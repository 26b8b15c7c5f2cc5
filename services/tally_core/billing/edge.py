"""The state-independent half of each billing command's validation, run at the API edge.

ARCHITECTURE decision 10: a command is valid before it enters the log, and the worker decides only the rules
that need the book. Every rule that needs no state is checked here and only here: names, types, lengths and
Stripe's numeric bounds (with the checks of customers.py, subscriptions.py and test_clocks.py, and the
coercions of params.py). What needs the book (does the subscription exist, is the anchor after the clock's
time, is the price metered or active) is the handlers' (handlers/), which read the typed params
(commands.py) and never check again what is checked here. The subscription commands' checks are in
subscription_edge.py, the invoice items' and the balance ledger's in their own modules, and how refusals are
collected in edge_refusals.py.

Every parameter is checked, not only the first bad one: `validate` raises the first refusal in the order the
worker meets them (so the answer's `message`, `param` and `code` stay the ones a client saw before), and when
there are several, an `InvalidCommand` that carries all of them (`errors`, also in the answer's body).
"""

from __future__ import annotations

from typing import Callable

from ..errors import missing
from . import balance_edge, invoice_item_edge, params as p
from .customers import check_customer
from .edge_refusals import (  # noqa: F401  (InvalidCommand: decide.py's import)
    InvalidCommand, Refusals, blank, boolean_value, check_carried, refuse, string_value, unknown_first)
from .subscription_edge import subscription_cancel, subscription_create, subscription_update
from .test_clocks import create_test_clock


def validate(kind: str, params: dict, *, object_id: str | None, account: str, now: int) -> dict:
    """The command's params as typed values (field name → value; `None` for a param sent empty, Stripe's
    "unset"), or the refusals whatever the book holds. Kinds without params give `{}`."""
    check = _CHECKS.get(kind)
    if check is None:
        return {}
    refusals = Refusals()
    values = check(refusals, params, object_id or "", account, now)
    refusals.raise_any()
    return values


# --- customers -----------------------------------------------------------------------------------------------

# The order of customers._fields; payment_method and invoice_settings name one value and are checked together.
_CUSTOMER_ORDER = ("test_clock", "email", "name", "description", "phone", "address", "shipping", "metadata",
                   "balance", "payment_method", "invoice_settings")
_PAYMENT = ("payment_method", "invoice_settings")


def _customer(refusals: Refusals, params: dict, update: bool, order: tuple) -> dict:
    values: dict = {}
    payment_checked = False
    for key in unknown_first(params, order):
        if key in _PAYMENT:
            if payment_checked:
                continue
            payment_checked = True
            group = {k: params[k] for k in _PAYMENT if k in params}
        else:
            group = {key: params[key]}
        ok, checked = refusals.run(check_customer, group, update=update)
        if ok:
            values.update(checked)
    return values


def _customer_create(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    return _customer(refusals, params, False, _CUSTOMER_ORDER)


def _customer_update(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    # An update checks metadata last (its key limit counts what it merges into, customers.update_customer).
    order = tuple(k for k in _CUSTOMER_ORDER if k != "metadata") + ("metadata",)
    return _customer(refusals, {k: v for k, v in params.items() if k != "id"}, True, order)


# --- test clocks ---------------------------------------------------------------------------------------------

def _clock_create(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    order = [k for k in params if k not in ("frozen_time", "name")] + ["frozen_time"] + (
        ["name"] if "name" in params else [])
    for key in order:
        # Each param alone beside a valid frozen_time, the one param a clock cannot be created without.
        group = {"frozen_time": 0, key: params[key]} if key != "frozen_time" else (
            {"frozen_time": params["frozen_time"]} if "frozen_time" in params else {})
        ok, clock = refusals.run(create_test_clock, group, id=object_id, now=now)
        if ok and key in ("frozen_time", "name"):
            values[key] = getattr(clock, key)
    return values


def _clock_advance(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    check_carried(refusals, params, {"frozen_time"})
    if blank(params.get("frozen_time")):
        refusals.run(refuse, missing("frozen_time"))
    else:
        ok, target = refusals.run(p.timestamp, params["frozen_time"], "frozen_time")
        if ok:
            values["frozen_time"] = target
    return values


# --- invoices ------------------------------------------------------------------------------------------------

def _invoice_finalize(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    check_carried(refusals, params, {"auto_advance"})
    boolean_value(refusals, params, "auto_advance", values)
    return values


def _invoice_pay(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    check_carried(refusals, params, {"payment_method", "paid_out_of_band", "off_session"})
    if "payment_method" in params:
        string_value(refusals, params["payment_method"], "payment_method", values, "payment_method")
    if "paid_out_of_band" in params:
        if blank(params["paid_out_of_band"]):
            values["paid_out_of_band"] = None
        else:
            boolean_value(refusals, params, "paid_out_of_band", values)
    if "off_session" in params:
        values["off_session"] = params["off_session"]  # accepted, not read yet (issue 8 item 5)
    return values


def _single(check: Callable[[dict, int], dict]):
    """A command whose check (a module of its own) raises its first refusal: every param but `id` goes in."""
    def run(refusals: Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
        ok, values = refusals.run(check, {k: v for k, v in params.items() if k != "id"}, now)
        return values if ok else {}
    return run


_CHECKS = {
    "customer.create": _customer_create, "customer.update": _customer_update,
    "test_clock.create": _clock_create, "test_clock.advance": _clock_advance,
    "subscription.create": subscription_create, "subscription.update": subscription_update,
    "subscription.cancel": subscription_cancel,
    "invoice.finalize": _invoice_finalize, "invoice.pay": _invoice_pay,
    "customer.balance_transaction.create": _single(balance_edge.check_create),
    "customer.balance_transaction.update": _single(balance_edge.check_update),
    "invoiceitem.create": _single(invoice_item_edge.check_create),
    "invoiceitem.update": _single(invoice_item_edge.check_update),
}
