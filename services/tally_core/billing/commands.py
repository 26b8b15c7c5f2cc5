"""Billing commands as frozen, versioned models (ARCHITECTURE decision 10; issue 8 item 3).

A command is an envelope (`id`, `type`, `version`, `account`, `key`, `at`, `grace`, `object_id`, the request's
ids) around typed params: booleans are bools, timestamps and quantities ints, metadata a str → str map that
keeps its empty values (on an update `metadata[k]=` unsets `k`, tally_core/metadata.py). A param not set was
not sent; a param set to `None` was sent empty (`x=`, Stripe's "unset"), and goes back on the wire as `""`.

- `parse(kind, params, ...)`: the API edge's check of everything that needs no state (edge.py, the core's own
  rules), giving the typed params, or every refusal (the first one is the answer, as before).
- `to_params(model)`: the normalized params the log carries; deciding them gives what the raw params gave.
- `load(record)`: the worker's read of a log record: trusted, never re-checked against today's rules (so
  re-deciding an old command cannot change because a rule was tightened). Commands written before the models
  carry the raw form strings (`"true"`, `"5"`); load turns those into bools and ints and keeps anything else,
  unknown keys included, as it was, so the decision stays the one those records got. Such a record has no
  `version` key (`Command.before_models`): its proration choices were never read, and are not now.
- `misfits(params)`: the params no field can hold (a value `load` kept as it was); decide.py refuses such a
  record as the edge refuses it.
"""

from __future__ import annotations

import functools
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import MinLen
from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from ..errors import invalid
from ..strings import ASCII_INTEGER, MAX_TIMESTAMP, MIN_TIMESTAMP
from . import params as p
from .edge import validate
from .subscriptions import BILLING_MODES, PAYMENT_BEHAVIORS, PRORATION_BEHAVIORS, UPDATE_PAYMENT_BEHAVIORS

VERSION = 1

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


class _CustomerParams(Params):
    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    address: dict[str, str] | None = None
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


# --- the envelope --------------------------------------------------------------------------------------------

class Command(BaseModel):
    """A billing-commands record: what the API (or the ticker) asks the billing worker to do. Keyed
    account:customer, or account:clock_… for a test clock and its customers; a tick is keyed tick:N to reach
    partition N. Every value the decision uses is in the record (the time `at`, the grace period, pinned
    price snapshots), so re-deciding from the log decides the same. `version` absent means 1."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: Annotated[str, Field(pattern="^cmd_")]
    type: str
    version: Literal[1] = VERSION
    account: str
    key: str
    at: Annotated[int, Field(description="unix seconds when the command was written (books on a test clock "
                                         "use the clock's time)")]
    grace: Annotated[int, Field(ge=0, description="seconds a renewal draft stays open; absent: 1 hour; the "
                                                  "core holds it within 0..72 hours")] = None
    object_id: Annotated[str | None, Field(description="the object acted on; for creates, the id the API "
                                                       "chose")] = None
    request_id: str | None = None
    idempotency_key: str | None = None
    params: Params = Field(default_factory=NoParams)

    @property
    def before_models(self) -> bool:
        """Written before commands were typed (no `version` key): decided as tally decided it then."""
        return "version" not in self.model_fields_set


def _command(kind: str, params: type[Params], name: str, doc: str, **fields) -> type[Command]:
    annotations = {"type": Literal[kind], "params": params, **{k: v[0] for k, v in fields.items()}}
    defaults = {"params": Field(default_factory=NoParams)} if params is NoParams else {}
    defaults.update({k: v[1] for k, v in fields.items() if len(v) > 1})
    return type(name, (Command,), {"__annotations__": annotations, "__doc__": doc, "__module__": __name__,
                                   **defaults})


_PRICES = (Annotated[dict[str, dict[str, Any]], Field(
    description="price id → the price object (tiers expanded) pinned at request time")], {})
CustomerCreate = _command("customer.create", CustomerCreateParams, "CustomerCreate", "POST /v1/customers")
CustomerUpdate = _command("customer.update", CustomerUpdateParams, "CustomerUpdate", "POST /v1/customers/{id}")
CustomerDelete = _command("customer.delete", NoParams, "CustomerDelete", "DELETE /v1/customers/{id}")
SubscriptionCreate = _command("subscription.create", SubscriptionCreateParams, "SubscriptionCreate",
                              "POST /v1/subscriptions", prices=_PRICES)
SubscriptionUpdate = _command("subscription.update", SubscriptionUpdateParams, "SubscriptionUpdate",
                              "POST /v1/subscriptions/{id} (and /v1/subscription_items)", prices=_PRICES)
SubscriptionCancel = _command("subscription.cancel", SubscriptionCancelParams, "SubscriptionCancel",
                              "DELETE /v1/subscriptions/{id}")
InvoiceFinalize = _command("invoice.finalize", InvoiceFinalizeParams, "InvoiceFinalize",
                           "POST /v1/invoices/{id}/finalize")
InvoicePay = _command("invoice.pay", InvoicePayParams, "InvoicePay", "POST /v1/invoices/{id}/pay")
InvoiceVoid = _command("invoice.void", NoParams, "InvoiceVoid", "POST /v1/invoices/{id}/void")
InvoiceMarkUncollectible = _command("invoice.mark_uncollectible", NoParams, "InvoiceMarkUncollectible",
                                    "POST /v1/invoices/{id}/mark_uncollectible")
TestClockCreate = _command("test_clock.create", TestClockCreateParams, "TestClockCreate",
                           "POST /v1/test_helpers/test_clocks")
TestClockAdvance = _command("test_clock.advance", TestClockAdvanceParams, "TestClockAdvance",
                            "POST /v1/test_helpers/test_clocks/{id}/advance")
BalanceTransactionCreate = _command("customer.balance_transaction.create", BalanceTransactionCreateParams,
                                    "BalanceTransactionCreate", "POST /v1/customers/{id}/balance_transactions")
BalanceTransactionUpdate = _command("customer.balance_transaction.update", BalanceTransactionUpdateParams,
                                    "BalanceTransactionUpdate",
                                    "POST /v1/customers/{id}/balance_transactions/{transaction}")
TestClockDelete = _command("test_clock.delete", NoParams, "TestClockDelete",
                           "DELETE /v1/test_helpers/test_clocks/{id}")
Tick = _command("tick", NoParams, "Tick", "Time for every book of partition N (off test clocks) up to `at`; "
                "written by the ticker, for no account.", account=(None, None))
# The invoice item's key is its customer's (or the customer's clock's); `prices` pins the named price.
InvoiceItemCreate = _command("invoiceitem.create", InvoiceItemCreateParams, "InvoiceItemCreate",
                             "POST /v1/invoiceitems", prices=_PRICES)
InvoiceItemUpdate = _command("invoiceitem.update", InvoiceItemUpdateParams, "InvoiceItemUpdate",
                             "POST /v1/invoiceitems/{id}", prices=_PRICES)
InvoiceItemDelete = _command("invoiceitem.delete", NoParams, "InvoiceItemDelete", "DELETE /v1/invoiceitems/{id}")

COMMANDS: dict[str, type[Command]] = {c.model_fields["type"].annotation.__args__[0]: c for c in (
    CustomerCreate, CustomerUpdate, CustomerDelete, SubscriptionCreate, SubscriptionUpdate, SubscriptionCancel,
    InvoiceFinalize, InvoicePay, InvoiceVoid, InvoiceMarkUncollectible, TestClockCreate, TestClockAdvance,
    TestClockDelete, Tick, BalanceTransactionCreate, BalanceTransactionUpdate,
    InvoiceItemCreate, InvoiceItemUpdate, InvoiceItemDelete)}
AnyCommand = Annotated[Union[tuple(COMMANDS.values())], Field(discriminator="type")]
COMMAND = TypeAdapter(AnyCommand, config=ConfigDict(defer_build=True))


# --- edge, log, worker ---------------------------------------------------------------------------------------

def parse(kind: str, params: dict, *, object_id: str | None, account: str, now: int) -> Params:
    """The typed params of a request, or the first refusal (carrying every one, edge.InvalidCommand)."""
    model = PARAMS.get(kind)
    if model is None:
        raise ValueError(f"unknown billing command {kind!r}")
    values = validate(kind, params, object_id=object_id, account=account, now=now)
    try:
        return model.model_validate(values)
    except ValidationError as err:
        # Only a shape the core's rules let through yet no field can hold (e.g. a JSON number for an id).
        first = err.errors()[0]
        loc = [str(x) for x in first["loc"]]
        raise invalid(loc[0] + "".join(f"[{x}]" for x in loc[1:]), first["msg"] + ".") from None


def to_params(model: Params | Command) -> dict:
    """The params a log record carries for `model` (a command's, or parsed params)."""
    return (model.params if isinstance(model, Command) else model).wire()


def to_record(command: Command) -> dict:
    """The billing-commands record of a command (what `load` reads back)."""
    out = command.model_dump(mode="json", exclude_unset=True, exclude={"params"})
    out.update(type=command.type, version=command.version)
    if not isinstance(command.params, NoParams) or "params" in command.model_fields_set:
        out["params"] = to_params(command)
    return out


def load(record: dict) -> Command:
    """A log record as its command model, trusted (no rule is checked again). ValueError for an unknown type,
    as deciding one raises today (the ledger records a `tally.command_failed`)."""
    model = COMMANDS.get(record.get("type"))
    if model is None:
        raise ValueError(f"unknown billing command {record.get('type')!r}")
    fields = {k: v for k, v in record.items() if k in model.model_fields}  # `version` only when written
    params_model = model.model_fields["params"].annotation
    fields["params"] = _construct(params_model, record.get("params") or {})
    return model.model_construct(**fields)


def misfits(params: Params, prefix: str = "") -> list[str]:
    """The params of a loaded record that no field's type can hold (a value `load` kept as it was, such as
    `paid_out_of_band=maybe`): deciding such a record refuses it as the edge does (decide.py). Bounds are not
    checked (they are today's rules); unknown keys are not read by any decision and stay as they are."""
    out = []
    for name, field in type(params).model_fields.items():
        path = f"{prefix}[{name}]" if prefix else name
        value = getattr(params, name, None)
        short = any(isinstance(m, MinLen) and len(value or ()) < m.min_length for m in field.metadata)
        if name not in params.model_fields_set:
            out += [path] if field.is_required() or short else []
        elif short or not _fits(field.annotation, value):
            out.append(path)
        elif isinstance(value, Params):
            out += misfits(value, path)
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                out += misfits(item, f"{path}[{i}]")
    return out


def _fits(annotation, value) -> bool:
    if value is None:  # sent empty: only a field that can be unset holds it (`balance=` cannot)
        return _nullable(annotation)
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_fits(a, value) for a in get_args(annotation))
    if origin is Annotated:
        return _fits(get_args(annotation)[0], value)
    if origin is Literal:
        return value in get_args(annotation)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if origin is tuple:
        return isinstance(value, tuple) and all(isinstance(it, get_args(annotation)[0]) for it in value)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return type(value) is int
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, Params):
        return isinstance(value, annotation)
    return annotation is not type(None)  # JsonValue: carried, not read


def _nullable(annotation) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_nullable(a) for a in get_args(annotation))
    if origin is Annotated:
        return _nullable(get_args(annotation)[0])
    return annotation is type(None) or annotation == JsonValue


def _construct(model: type[Params], params: dict) -> Params:
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
        return _construct(kind, raw)
    if isinstance(kind, tuple) and isinstance(raw, (list, dict)):  # items; forms leave gaps as a dict
        return tuple(_construct(kind[0], it) if isinstance(it, dict) else it
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


__all__ = ["COMMAND", "COMMANDS", "Command", "PARAMS", "Params", "load", "misfits", "parse", "to_params",
           "to_record"]
