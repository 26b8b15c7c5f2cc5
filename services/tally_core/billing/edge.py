"""The state-independent half of each billing command's validation, run at the API edge.

ARCHITECTURE decision 10: a command is valid before it enters the log. These are the very functions the
worker runs when it decides (no rule is written twice); here they run without the book, so only what needs
no state is checked: names, types, lengths and Stripe's numeric bounds. What needs the book (does the
subscription exist, is the anchor after the clock's time) is still the worker's to decide.
"""

from __future__ import annotations

from ..errors import invalid
from . import params as p
from .customers import Customer, create_customer, update_customer
from .test_clocks import create_test_clock


def check_command(kind: str, params: dict, *, object_id: str | None, account: str, now: int) -> None:
    """Raise the `InvalidRequest` the worker would raise for `params` whatever the book holds."""
    check = _CHECKS.get(kind)
    if check is not None:
        check(params, object_id or "", account, now)


def _customer_create(params: dict, object_id: str, account: str, now: int) -> None:
    create_customer(params, id=object_id, account=account, now=now)


def _customer_update(params: dict, object_id: str, account: str, now: int) -> None:
    update_customer(Customer(id=object_id, account=account, created=now), params)


def _clock_create(params: dict, object_id: str, account: str, now: int) -> None:
    create_test_clock(params, id=object_id, now=now)


def _clock_advance(params: dict, object_id: str, account: str, now: int) -> None:
    if params.get("frozen_time") not in (None, ""):
        p.timestamp(params["frozen_time"], "frozen_time")


def _items(raw) -> list:
    raw = list(raw.values()) if isinstance(raw, dict) else raw
    return raw if isinstance(raw, list) else []


def _quantities(params: dict) -> None:
    for i, item in enumerate(_items(params.get("items"))):
        if not isinstance(item, dict):
            continue
        if item.get("quantity") not in (None, ""):
            p.quantity(item["quantity"], f"items[{i}][quantity]")
        if "metadata" in item:
            # The worker accepts the key but a subscription item keeps no metadata yet: refused rather
            # than dropped (nothing silently ignored).
            raise invalid(f"items[{i}][metadata]", "subscription items do not store metadata yet; put it on the "
                          "subscription's metadata instead.", code="parameter_unknown")


def _subscription_create(params: dict, object_id: str, account: str, now: int) -> None:
    p.string(params.get("customer"), "customer", max_len=255)
    if "metadata" in params:
        p.metadata(params["metadata"])
    if params.get("billing_cycle_anchor") not in (None, ""):
        p.timestamp(params["billing_cycle_anchor"], "billing_cycle_anchor")
    _quantities(params)


def _subscription_update(params: dict, object_id: str, account: str, now: int) -> None:
    if "metadata" in params:
        p.metadata(params["metadata"])
    _quantities(params)


def _invoice_pay(params: dict, object_id: str, account: str, now: int) -> None:
    if params.get("payment_method") not in (None, ""):
        p.string(params["payment_method"], "payment_method", max_len=255)
    if params.get("paid_out_of_band") not in (None, ""):
        p.boolean(params["paid_out_of_band"], "paid_out_of_band")


_CHECKS = {
    "customer.create": _customer_create, "customer.update": _customer_update,
    "test_clock.create": _clock_create, "test_clock.advance": _clock_advance,
    "subscription.create": _subscription_create, "subscription.update": _subscription_update,
    "invoice.pay": _invoice_pay,
}
