"""The state-independent half of each billing command's validation, run at the API edge.

ARCHITECTURE decision 10: a command is valid before it enters the log, and the worker decides only the rules
that need the book. Every rule that needs no state is checked here and only here: names, types, lengths and
Stripe's numeric bounds (with the checks of customers.py, subscriptions.py and test_clocks.py, and the
coercions of params.py). What needs the book (does the subscription exist, is the anchor after the clock's
time, is the price metered or active) is the handlers' (handlers/), which read the typed params
(commands.py) and never check again what is checked here.

Every parameter is checked, not only the first bad one: `validate` raises the first refusal in the order the
worker meets them (so the answer's `message`, `param` and `code` stay the ones a client saw before), and when
there are several, an `InvalidCommand` that carries all of them (`errors`, also in the answer's body).
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

from ..errors import InvalidRequest, invalid, missing
from ..metadata import check as check_metadata
from . import params as p, subscriptions as subs
from .customers import check_customer
from .subscriptions import PAYMENT_BEHAVIORS, PRORATION_BEHAVIORS
from .test_clocks import create_test_clock

# Parameters every command route accepts that no decision reads: `expand` is the API's (it expands the
# answer), `id` is the URL's. They are never carried in the command.
NOT_CARRIED = ("expand", "id")


class InvalidCommand(InvalidRequest):
    """Several refusals of one request: `message`, `param` and `code` are the first's (what Stripe answers),
    `errors` all of them in order; the body lists them under `error.errors`."""

    def __init__(self, errors: list[InvalidRequest]):
        first = errors[0]
        super().__init__(first.message, param=first.param, code=first.code)
        self.http_status = first.http_status
        self.errors = tuple(errors)

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["errors"] = [{k: v for k, v in e.to_dict()["error"].items() if k != "type"}
                                   for e in self.errors]
        return body


class _Refusals:
    """Collects refusals, one per param (a param refused by two checks is reported once, the first time)."""

    def __init__(self):
        self.errors: list[InvalidRequest] = []

    def run(self, check: Callable, *args, **kwargs):
        try:
            return True, check(*args, **kwargs)
        except InvalidRequest as err:
            if all(e.param != err.param for e in self.errors):
                self.errors.append(err)
            return False, None

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise InvalidCommand(self.errors)


def validate(kind: str, params: dict, *, object_id: str | None, account: str, now: int) -> dict:
    """The command's params as typed values (field name → value; `None` for a param sent empty, Stripe's
    "unset"), or the refusals whatever the book holds. Kinds without params give `{}`."""
    check = _CHECKS.get(kind)
    if check is None:
        return {}
    refusals = _Refusals()
    values = check(refusals, params, object_id or "", account, now)
    refusals.raise_any()
    return values


def _blank(raw) -> bool:
    return raw is None or raw == ""


def _unknown_first(params: Mapping, known: tuple) -> Iterator[str]:
    """Keys in the order the core checks them: unknown ones first (its `check_keys` runs first)."""
    yield from (k for k in params if k not in known)
    yield from (k for k in known if k in params)


# --- customers -----------------------------------------------------------------------------------------------

# The order of customers._fields; payment_method and invoice_settings name one value and are checked together.
_CUSTOMER_ORDER = ("test_clock", "email", "name", "description", "phone", "address", "metadata", "balance",
                   "payment_method", "invoice_settings")
_PAYMENT = ("payment_method", "invoice_settings")


def _customer(refusals: _Refusals, params: dict, update: bool, order: tuple) -> dict:
    values: dict = {}
    payment_checked = False
    for key in _unknown_first(params, order):
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


def _customer_create(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    return _customer(refusals, params, False, _CUSTOMER_ORDER)


def _customer_update(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    # An update checks metadata last (its key limit counts what it merges into, customers.update_customer).
    order = tuple(k for k in _CUSTOMER_ORDER if k != "metadata") + ("metadata",)
    return _customer(refusals, {k: v for k, v in params.items() if k != "id"}, True, order)


# --- test clocks ---------------------------------------------------------------------------------------------

def _clock_create(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
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


def _clock_advance(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    _keys(refusals, params, {"frozen_time"})
    if _blank(params.get("frozen_time")):
        refusals.run(_raise, missing("frozen_time"))
    else:
        ok, target = refusals.run(p.timestamp, params["frozen_time"], "frozen_time")
        if ok:
            values["frozen_time"] = target
    return values


def _raise(err: InvalidRequest):
    raise err


def _keys(refusals: _Refusals, params: dict, carried: set[str]) -> None:
    for key in params:
        refusals.run(p.check_keys, {key: None}, carried | set(NOT_CARRIED))


# --- subscriptions -------------------------------------------------------------------------------------------

def _items(raw) -> list:
    raw = list(raw.values()) if isinstance(raw, dict) else raw
    return raw if isinstance(raw, list) else []


def _item_quantities(refusals: _Refusals, raw_items) -> None:
    """What the edge refused first before the worker looked at items: bad quantities, item metadata."""
    for i, item in enumerate(_items(raw_items)):
        if not isinstance(item, dict):
            continue
        if not _blank(item.get("quantity")):
            refusals.run(p.quantity, item["quantity"], f"items[{i}][quantity]")
        if "metadata" in item:
            # The worker accepts the key but a subscription item keeps no metadata yet: refused rather
            # than dropped (nothing silently ignored).
            refusals.run(_raise, invalid(
                f"items[{i}][metadata]", "subscription items do not store metadata yet; put it on the "
                "subscription's metadata instead.", code="parameter_unknown"))


def _metadata(refusals: _Refusals, params: dict, values: dict) -> None:
    if "metadata" in params:
        ok, _ = refusals.run(check_metadata, params["metadata"])
        if ok:
            values["metadata"] = None if _blank(params["metadata"]) else dict(params["metadata"])


def _boolean(refusals: _Refusals, params: dict, name: str, values: dict) -> None:
    if name in params:
        ok, flag = refusals.run(p.boolean, params[name], name)
        if ok:
            values[name] = flag


def _create_item(i: int, raw: dict, params: dict) -> dict:
    item = {"price": raw["price"]}
    if "quantity" in raw:
        item["quantity"] = p.quantity(raw["quantity"], f"items[{i}][quantity]")  # checked by check_items
    elif "quantity" in _items(params["items"])[i]:
        item["quantity"] = None  # sent empty
    return item


def _subscription_create(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    # First what the API refused before the worker saw the command, in that order.
    if _blank(params.get("customer")):
        refusals.run(_raise, missing("customer"))
    else:
        ok, customer = refusals.run(p.string, params["customer"], "customer", max_len=255)
        if ok:
            values["customer"] = customer
    _metadata(refusals, params, values)
    if "billing_cycle_anchor" in params:
        if _blank(params["billing_cycle_anchor"]):
            values["billing_cycle_anchor"] = None
        else:
            ok, anchor = refusals.run(p.timestamp, params["billing_cycle_anchor"], "billing_cycle_anchor")
            if ok:
                values["billing_cycle_anchor"] = anchor
    _item_quantities(refusals, params.get("items"))
    # Then the rules the worker once ran before its state-dependent ones, in its order (since typed commands
    # they are only here; handlers/subscriptions.subscription_create, subscriptions.create_subscription).
    if "payment_behavior" in params:
        ok, behaviour = refusals.run(p.enum, params["payment_behavior"], "payment_behavior", PAYMENT_BEHAVIORS)
        if ok:
            values["payment_behavior"] = behaviour
    if "collection_method" in params:
        if params["collection_method"] != "charge_automatically":
            refusals.run(_raise, invalid("collection_method", "only `charge_automatically` is supported so far."))
        else:
            values["collection_method"] = "charge_automatically"
    if not _blank(params.get("default_payment_method")):
        # Charging another method than the customer's default is not built: refuse rather than ignore it.
        refusals.run(_raise, invalid("default_payment_method", "set the customer's invoice_settings["
                                     "default_payment_method] instead; a subscription's own payment method "
                                     "is not supported yet."))
    for key in params:
        refusals.run(p.check_keys, {key: None}, subs._CREATE)
    # An empty quantity is left to the worker, which refuses it for its own reason (metered or not).
    raw_items = _items(params.get("items")) or params.get("items")
    if isinstance(raw_items, list):
        raw_items = [{k: v for k, v in it.items() if not (k == "quantity" and _blank(v))}
                     if isinstance(it, dict) else it for it in raw_items]
    ok, _ = refusals.run(subs.check_items, raw_items)
    if ok:
        values["items"] = [_create_item(i, raw, params) for i, raw in enumerate(raw_items)]
    anchor_set = not _blank(params.get("billing_cycle_anchor"))
    config = params.get("billing_cycle_anchor_config")
    if anchor_set and not _blank(config):
        refusals.run(_raise, p.exclusive("billing_cycle_anchor", "billing_cycle_anchor_config"))
    elif not _blank(config):
        ok, hash_ = refusals.run(p.hash_, config, "billing_cycle_anchor_config")
        if ok:
            ok, day = refusals.run(p.integer, hash_.get("day_of_month"), "billing_cycle_anchor_config[day_of_month]",
                                   minimum=1, maximum=31)
            if ok:
                values["billing_cycle_anchor_config"] = {"day_of_month": day}
    _boolean(refusals, params, "cancel_at_period_end", values)
    _proration_behavior(refusals, params, values)
    return values


def _proration_behavior(refusals: _Refusals, params: dict, values: dict) -> None:
    # Whether the behaviour asked for can be honoured (tally does not prorate yet) is the worker's rule
    # (handlers/subscriptions.py).
    if "proration_behavior" in params:
        ok, behaviour = refusals.run(p.enum, params["proration_behavior"], "proration_behavior", PRORATION_BEHAVIORS)
        if ok:
            values["proration_behavior"] = behaviour


def _subscription_update(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    _metadata(refusals, params, values)
    _item_quantities(refusals, params.get("items"))
    _keys(refusals, params, {"items", "cancel_at_period_end", "metadata", "proration_behavior"})
    _proration_behavior(refusals, params, values)
    _boolean(refusals, params, "cancel_at_period_end", values)
    raw_items = params.get("items")
    if not _blank(raw_items):
        raw_items = list(raw_items.values()) if isinstance(raw_items, dict) else raw_items
        ok, raw_items = refusals.run(p.array, raw_items, "items")
        items = []
        for i, raw in enumerate(raw_items if ok else []):
            good, raw = refusals.run(p.hash_, raw, f"items[{i}]")
            if not good:
                continue
            for key in raw:
                refusals.run(p.check_keys, {key: None}, {"id", "quantity", "price", "deleted", "metadata"},
                             f"items[{i}]")
            if not raw.get("id"):
                refusals.run(_raise, invalid(f"items[{i}][id]", "adding items comes with proration (a later "
                                                                "release); name an existing item by id."))
                continue
            item = {"id": raw["id"]}
            if "price" in raw:
                item["price"] = None if raw["price"] == "" else raw["price"]
            if "deleted" in raw:
                # The worker refuses any non-empty `deleted` (removing an item comes with proration), even
                # `false`: kept as that truth value so that deciding the typed command refuses the same.
                item["deleted"] = bool(raw["deleted"])
            if "quantity" in raw and _blank(raw["quantity"]):
                item["quantity"] = None
            elif "quantity" in raw:
                good, quantity = refusals.run(p.quantity, raw["quantity"], f"items[{i}][quantity]")
                if good:
                    item["quantity"] = quantity
            items.append(item)
        if ok:
            values["items"] = items
    elif "items" in params:
        values["items"] = None
    return values


def _subscription_cancel(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    _keys(refusals, params, {"invoice_now", "prorate", "cancellation_details"})
    _boolean(refusals, params, "prorate", values)  # whether it can be honoured is the worker's rule
    _boolean(refusals, params, "invoice_now", values)
    if "cancellation_details" in params:
        values["cancellation_details"] = params["cancellation_details"]  # accepted, not read yet
    return values


# --- invoices ------------------------------------------------------------------------------------------------

def _invoice_finalize(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    _keys(refusals, params, {"auto_advance"})
    _boolean(refusals, params, "auto_advance", values)
    return values


def _invoice_pay(refusals: _Refusals, params: dict, object_id: str, account: str, now: int) -> dict:
    values: dict = {}
    _keys(refusals, params, {"payment_method", "paid_out_of_band", "off_session"})
    if "payment_method" in params:
        if _blank(params["payment_method"]):
            values["payment_method"] = None
        else:
            ok, pm = refusals.run(p.string, params["payment_method"], "payment_method", max_len=255)
            if ok:
                values["payment_method"] = pm
    if "paid_out_of_band" in params:
        if _blank(params["paid_out_of_band"]):
            values["paid_out_of_band"] = None
        else:
            _boolean(refusals, params, "paid_out_of_band", values)
    if "off_session" in params:
        values["off_session"] = params["off_session"]  # accepted, not read yet (issue 8 item 5)
    return values


_CHECKS = {
    "customer.create": _customer_create, "customer.update": _customer_update,
    "test_clock.create": _clock_create, "test_clock.advance": _clock_advance,
    "subscription.create": _subscription_create, "subscription.update": _subscription_update,
    "subscription.cancel": _subscription_cancel,
    "invoice.finalize": _invoice_finalize, "invoice.pay": _invoice_pay,
}
