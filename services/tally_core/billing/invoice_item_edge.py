"""The state-free checks of `invoiceitem.create` and `invoiceitem.update` (edge.py registers them; ARCHITECTURE
decision 10): names, types and Stripe's bounds, giving typed values (command_params.InvoiceItem*Params). Whether the
customer, subscription, invoice or price exist, and whether the item can still change, is the handler's
(handlers/invoice_items.py).

How an item is priced (reference §4.4, Stripe's `POST /v1/invoiceitems`): one of `amount` (a charge, or a credit
when negative), `price` (a one-time price) or `unit_amount_decimal`; the last two times `quantity`.
`pricing[price]` is the newer spelling of `price` (the basil SDKs send it) and means the same.
"""

from __future__ import annotations

import re

from ..errors import InvalidRequest, invalid, missing
from ..metadata import check as check_metadata
from . import params as p

MAX_AMOUNT = p.MAX_UNIT_AMOUNT  # Stripe: at most 8 digits, 99999999 (§6.5); a credit as far below zero
_CURRENCY = re.compile(r"^[a-z]{3}$")
_PRICED = ("amount", "price", "unit_amount_decimal")
_CHANGES = ("amount", "description", "discountable", "metadata", "period", "price", "pricing", "quantity",
            "unit_amount_decimal")
UPDATE_KEYS = frozenset(_CHANGES) | {"expand"}
CREATE_KEYS = UPDATE_KEYS | {"customer", "currency", "subscription", "invoice"}


def check_create(params: dict, now: int) -> dict:
    """The typed params of a create, or its first refusal."""
    p.check_keys(params, set(CREATE_KEYS))
    values: dict = {}
    if params.get("customer") in (None, ""):
        raise missing("customer")
    values["customer"] = p.string(params["customer"], "customer", max_len=255)
    values.update(_changes(params, create=True))
    if not any(k in values for k in _PRICED):
        raise InvalidRequest("Missing required param: amount (or price, or unit_amount_decimal).", param="amount",
                             code="parameter_missing")
    if params.get("currency") not in (None, ""):
        currency = p.string(params["currency"], "currency", max_len=3).lower()
        if not _CURRENCY.match(currency):
            raise invalid("currency", f"{params['currency']!r} is not a three-letter ISO currency code.")
        values["currency"] = currency
    for name in ("subscription", "invoice"):
        if params.get(name) not in (None, ""):
            values[name] = p.string(params[name], name, max_len=255)
    return values


def check_update(params: dict, now: int) -> dict:
    """The typed params of an update, or its first refusal."""
    p.check_keys(params, set(UPDATE_KEYS))
    return _changes(params, create=False)


def _changes(params: dict, *, create: bool) -> dict:
    values: dict = {}
    params = dict(params)
    params.pop("expand", None)  # the API's (it expands the answer); never carried
    if "pricing" in params:
        pricing = p.hash_(params.pop("pricing"), "pricing")
        p.check_keys(pricing, {"price"}, "pricing")
        if "price" in params:
            raise p.exclusive("price", "pricing")
        if "price" not in pricing:
            raise missing("pricing[price]")
        params["price"] = pricing["price"]
    given = [k for k in _PRICED if params.get(k) not in (None, "")]
    if len(given) > 1:
        raise p.exclusive(*given)
    if "amount" in given and params.get("quantity") not in (None, ""):
        # An amount is the item's whole charge: a quantity beside it could only be ignored or contradict it.
        raise p.exclusive("amount", "quantity")
    for name in _PRICED + ("quantity", "period"):
        if name in params and params[name] == "":
            raise p.empty(name)  # an item's price and period can change, never be unset
    if "amount" in params:
        values["amount"] = p.integer(params["amount"], "amount", minimum=-MAX_AMOUNT, maximum=MAX_AMOUNT)
    if "price" in params:
        values["price"] = p.string(params["price"], "price", max_len=255)
    if "unit_amount_decimal" in params:
        values["unit_amount_decimal"] = str(p.decimal_amount(params["unit_amount_decimal"], "unit_amount_decimal"))
    if "quantity" in params:
        values["quantity"] = p.quantity(params["quantity"], "quantity")
    if "description" in params:
        values["description"] = None if params["description"] in (None, "") else p.string(
            params["description"], "description", max_len=5000)
    if "metadata" in params:
        check_metadata(params["metadata"])
        # Empty values stay: on an update `metadata[k]=` unsets k (tally_core/metadata.py); a create drops them.
        values["metadata"] = None if params["metadata"] in (None, "") else dict(params["metadata"])
    if "discountable" in params:
        values["discountable"] = p.boolean(params["discountable"], "discountable")
    if "period" in params:
        values["period"] = _period(params["period"])
    return values


def _period(raw) -> dict:
    period = p.hash_(raw, "period")
    p.check_keys(period, {"start", "end"}, "period")
    for name in ("start", "end"):
        if period.get(name) in (None, ""):
            raise missing(f"period[{name}]")
    start = p.timestamp(period["start"], "period[start]")
    end = p.timestamp(period["end"], "period[end]")
    if end < start:
        # Stripe: "The end of the period, which must be greater than or equal to the start."
        raise invalid("period[end]", "must be greater than or equal to period[start].")
    return {"start": start, "end": end}
