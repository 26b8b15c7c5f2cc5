"""The typed params of every billing command (commands.py's envelope carries them): one frozen model per
command, and how a record's params are read back without rules (`from_wire`, `construct`).

A param not set was not sent; a param set to `None` was sent empty (`x=`, Stripe's "unset"), and goes back on
the wire as `""`. Records written before the models carry raw form strings (`"true"`, `"5"`): `loose` turns
those into bools and ints and keeps anything else as it was, so deciding them gives what it gave then.
"""

from __future__ import annotations

import functools
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ..strings import ASCII_INTEGER, MAX_TIMESTAMP, MIN_TIMESTAMP
from . import params as p
from .subscriptions import BILLING_MODES, PAYMENT_BEHAVIORS, PRORATION_BEHAVIORS, UPDATE_PAYMENT_BEHAVIORS

Timestamp = Annotated[int, Field(ge=MIN_TIMESTAMP, le=MAX_TIMESTAMP, description="unix seconds")]
Quantity = Annotated[int, Field(ge=0, le=p.MAX_QUANTITY)]
Balance = Annotated[int, Field(ge=-p.MAX_BALANCE, le=p.MAX_BALANCE,
                               description="minor units; negative is credit owed to the customer")]
Metadata = Annotated[dict[str, str], Field(description="keys merge; an empty value unsets its key")]
ProrationBehavior = Literal[PRORATION_BEHAVIORS]
# Accepted by the API and carried, but no decision reads it yet (issue 8 item 5 decides each).
Unread = Annotated[JsonValue, Field(description="accepted, not read by any decision yet")]


class Params(BaseModel):
    """A command's params. Unknown keys are kept only when loading a record written before the models."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra={"additionalProperties": False},
                              defer_build=True)

    def wire(self) -> dict:
        """The params in the form the core reads (Stripe's request form, normalized)."""
        return _blank_to_empty(self.model_dump(mode="json", exclude_unset=True, warnings=False))

    @classmethod
    def from_wire(cls, params: dict) -> dict:
        """Field values from a record's params, coerced without rules (see `load`)."""
        return {k: _loose(cls, k, v) for k, v in params.items()}

    def sent(self) -> dict:
        """The fields the request set, by name (`None` for a field sent empty); the handlers' input."""
        return {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}


class NoParams(Params):
    """customer.delete, invoice.void, invoice.mark_uncollectible, test_clock.delete and tick read no params."""


class CustomerShipping(Params):
    """`shipping[...]` on a customer (Stripe requires its name and address; customers.check_customer)."""

    name: str
    address: dict[str, str]
    phone: str | None = None


class _CustomerParams(Params):
    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    address: dict[str, str] | None = None
    shipping: CustomerShipping | None = None  # `None`: `shipping=` clears it
    metadata: Metadata | None = None
    balance: Balance = None
    # `invoice_settings[default_payment_method]`, or `payment_method` (Stripe takes either on a customer).
    default_payment_method: str | None = None

    def wire(self) -> dict:
        out = super().wire()
        if out.get("default_payment_method"):
            out["invoice_settings"] = {"default_payment_method": out.pop("default_payment_method")}
        out.pop("default_payment_method", None)
        return out

    @classmethod
    def from_wire(cls, params: dict) -> dict:
        # The request form names the method twice (`payment_method`, `invoice_settings[default_payment_method]`,
        # the latter winning); a record keeps what was sent, the model one field.
        params = dict(params)
        pm = params.pop("payment_method", None)
        settings = params.pop("invoice_settings", None)
        if isinstance(settings, dict):
            pm = settings.get("default_payment_method") or pm
        values = super().from_wire(params)
        if pm:
            values["default_payment_method"] = pm
        return values


class CustomerCreateParams(_CustomerParams):
    test_clock: str | None = None


class CustomerUpdateParams(_CustomerParams):
    pass


class SubscriptionItemCreate(Params):
    price: str
    quantity: Quantity | None = None  # absent: 1 for a licensed price, usage for a metered one
    metadata: Metadata | None = None


class BillingMode(Params):
    type: Literal[BILLING_MODES]


class AnchorConfig(Params):
    day_of_month: Annotated[int, Field(ge=1, le=31)]


class SubscriptionCreateParams(Params):
    customer: str
    items: Annotated[tuple[SubscriptionItemCreate, ...], Field(min_length=1)] = ()
    metadata: Metadata | None = None
    billing_cycle_anchor: Timestamp | None = None
    billing_cycle_anchor_config: AnchorConfig | None = None
    cancel_at_period_end: bool = None
    payment_behavior: Literal[PAYMENT_BEHAVIORS] = None
    collection_method: Literal["charge_automatically"] = None
    proration_behavior: ProrationBehavior = None
    billing_mode: BillingMode = None
    cancel_at: Timestamp = None


class SubscriptionItemUpdate(Params):
    id: str | None = None  # absent: a new item (seed 004: "omitting the id adds a new item")
    quantity: Quantity | None = None
    price: str | None = None
    # Records written before the models carry the raw form value, and `deleted` was read as its truth then
    # (any non-empty value, `false` too, was refused): `from_wire` keeps that reading for them.
    deleted: bool = None
    clear_usage: bool = None
    metadata: Metadata | None = None

    @classmethod
    def from_wire(cls, params: dict) -> dict:
        values = super().from_wire(params)
        if isinstance(params.get("deleted"), (str, bool)):
            values["deleted"] = bool(params["deleted"])
        return values


class SubscriptionUpdateParams(Params):
    items: tuple[SubscriptionItemUpdate, ...] | None = None
    cancel_at_period_end: bool = None
    cancel_at: Timestamp | None = None  # sent empty: cleared
    metadata: Metadata | None = None
    proration_behavior: ProrationBehavior = None
    proration_date: Timestamp = None
    payment_behavior: Literal[UPDATE_PAYMENT_BEHAVIORS] = None
    billing_cycle_anchor: Literal["now", "unchanged"] = None


class SubscriptionCancelParams(Params):
    invoice_now: bool = None
    prorate: bool = None
    cancellation_details: Unread = None


class InvoiceFinalizeParams(Params):
    auto_advance: bool = None


class InvoicePayParams(Params):
    payment_method: str | None = None
    paid_out_of_band: bool | None = None
    off_session: Unread = None


class BalanceTransactionCreateParams(Params):
    """`POST /v1/customers/{id}/balance_transactions`: an `adjustment` (§4.7); object_id is the customer."""

    amount: Balance
    currency: str
    description: str | None = None
    metadata: Metadata | None = None


class BalanceTransactionUpdateParams(Params):
    """`POST /v1/customers/{id}/balance_transactions/{txn}`: only these two change (§4.7); object_id: the txn."""

    description: str | None = None
    metadata: Metadata | None = None


class ItemPeriod(Params):
    start: Timestamp
    end: Timestamp


ItemAmount = Annotated[int, Field(ge=-p.MAX_UNIT_AMOUNT, le=p.MAX_UNIT_AMOUNT,
                                  description="minor units; negative is a credit")]


class InvoiceItemUpdateParams(Params):
    """`POST /v1/invoiceitems/{id}` (invoice_item_edge.py): one of amount, price, unit_amount_decimal."""

    amount: ItemAmount = None
    price: str = None
    unit_amount_decimal: Annotated[str, Field(description="minor units, at most 12 decimal places")] = None
    quantity: Quantity = None
    description: str | None = None
    metadata: Metadata | None = None
    period: ItemPeriod = None
    discountable: bool = None


class InvoiceItemCreateParams(InvoiceItemUpdateParams):
    """`POST /v1/invoiceitems`; `invoice`: onto that draft at once, else pending (`subscription`: its next)."""

    customer: str
    currency: str = None
    subscription: str = None
    invoice: str = None


class TestClockCreateParams(Params):
    __test__ = False  # not a pytest class

    frozen_time: Timestamp
    name: str | None = None


class TestClockAdvanceParams(Params):
    __test__ = False

    frozen_time: Timestamp


PARAMS: dict[str, type[Params]] = {
    "customer.create": CustomerCreateParams, "customer.update": CustomerUpdateParams,
    "customer.delete": NoParams,
    "subscription.create": SubscriptionCreateParams, "subscription.update": SubscriptionUpdateParams,
    "subscription.cancel": SubscriptionCancelParams,
    "invoice.finalize": InvoiceFinalizeParams, "invoice.pay": InvoicePayParams, "invoice.void": NoParams,
    "invoice.mark_uncollectible": NoParams,
    "test_clock.create": TestClockCreateParams, "test_clock.advance": TestClockAdvanceParams,
    "test_clock.delete": NoParams, "tick": NoParams,
    "customer.balance_transaction.create": BalanceTransactionCreateParams,
    "customer.balance_transaction.update": BalanceTransactionUpdateParams,
    "invoiceitem.create": InvoiceItemCreateParams, "invoiceitem.update": InvoiceItemUpdateParams,
    "invoiceitem.delete": NoParams,
}



# --- reading a record's params back ---------------------------------------------------------------------

def construct(model: type[Params], params: dict) -> Params:
    values = model.from_wire(params) if isinstance(params, dict) else {}
    return model.model_construct(**values)


def _loose(model: type[Params], name: str, raw):
    """`raw` as the field's type if it has the form the old edge accepted, else `raw` unchanged: deciding
    either gives the same (p.boolean("true") is p.boolean(True), p.integer("5") is p.integer(5))."""
    if raw == "":
        return None
    if name not in model.model_fields:
        return raw
    kind = _field_kind(model, name)
    if kind is bool and raw in ("true", "false"):
        return raw == "true"
    if kind is int and isinstance(raw, str) and ASCII_INTEGER.fullmatch(raw) and len(raw.lstrip("-")) <= 19:
        return int(raw)
    if isinstance(kind, type) and issubclass(kind, Params) and isinstance(raw, dict):
        return construct(kind, raw)
    if isinstance(kind, tuple) and isinstance(raw, (list, dict)):  # items; forms leave gaps as a dict
        return tuple(construct(kind[0], it) if isinstance(it, dict) else it
                     for it in (raw.values() if isinstance(raw, dict) else raw))
    return raw


@functools.cache
def _field_kind(model: type[Params], name: str):
    """`_kind` of a field, once per field: loading runs for every command the worker decides."""
    return _kind(model.model_fields[name].annotation)


def _kind(annotation):
    """bool, int, a Params model, (item model,) for a tuple of them, or None."""
    for arg in get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,):
        arg = get_args(arg)[0] if get_origin(arg) is Annotated else arg
        if arg in (bool, int) or (isinstance(arg, type) and issubclass(arg, Params)):
            return arg
        if get_origin(arg) is tuple and issubclass(get_args(arg)[0], Params):
            return (get_args(arg)[0],)
    return None


def _blank_to_empty(value):
    if value is None:
        return ""
    if isinstance(value, dict):
        return {k: _blank_to_empty(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank_to_empty(v) for v in value]
    return value
