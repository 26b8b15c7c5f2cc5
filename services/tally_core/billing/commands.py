"""Billing commands as frozen, versioned models (ARCHITECTURE decision 10; issue 8 item 3).

A command is an envelope (`id`, `type`, `version`, `account`, `key`, `at`, `grace`, `object_id`, the request's
ids) around typed params (one model per command, command_params.py): booleans are bools, timestamps and
quantities ints, metadata a str → str map that keeps its empty values (on an update `metadata[k]=` unsets `k`,
tally_core/metadata.py). A param not set was not sent; a param set to `None` was sent empty (`x=`, Stripe's "unset"), and goes back on the wire as `""`.

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

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import MinLen
from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from ..errors import invalid
from .command_params import PARAMS, NoParams, Params, construct
from .edge import validate

VERSION = 1


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


def _command(kind: str, name: str, doc: str, **fields) -> type[Command]:
    """The command model of `kind`, carrying its params model (command_params.PARAMS)."""
    params = PARAMS[kind]
    annotations = {"type": Literal[kind], "params": params, **{k: v[0] for k, v in fields.items()}}
    defaults = {"params": Field(default_factory=NoParams)} if params is NoParams else {}
    defaults.update({k: v[1] for k, v in fields.items() if len(v) > 1})
    return type(name, (Command,), {"__annotations__": annotations, "__doc__": doc, "__module__": __name__,
                                   **defaults})


_PRICES = (Annotated[dict[str, dict[str, Any]], Field(
    description="price id → the price object (tiers expanded) pinned at request time")], {})
CustomerCreate = _command("customer.create", "CustomerCreate", "POST /v1/customers")
CustomerUpdate = _command("customer.update", "CustomerUpdate", "POST /v1/customers/{id}")
CustomerDelete = _command("customer.delete", "CustomerDelete", "DELETE /v1/customers/{id}")
SubscriptionCreate = _command("subscription.create", "SubscriptionCreate",
                              "POST /v1/subscriptions", prices=_PRICES)
SubscriptionUpdate = _command("subscription.update", "SubscriptionUpdate",
                              "POST /v1/subscriptions/{id} (and /v1/subscription_items)", prices=_PRICES)
SubscriptionCancel = _command("subscription.cancel", "SubscriptionCancel",
                              "DELETE /v1/subscriptions/{id}")
InvoiceFinalize = _command("invoice.finalize", "InvoiceFinalize",
                           "POST /v1/invoices/{id}/finalize")
InvoicePay = _command("invoice.pay", "InvoicePay", "POST /v1/invoices/{id}/pay")
InvoiceVoid = _command("invoice.void", "InvoiceVoid", "POST /v1/invoices/{id}/void")
InvoiceMarkUncollectible = _command("invoice.mark_uncollectible", "InvoiceMarkUncollectible",
                                    "POST /v1/invoices/{id}/mark_uncollectible")
TestClockCreate = _command("test_clock.create", "TestClockCreate",
                           "POST /v1/test_helpers/test_clocks")
TestClockAdvance = _command("test_clock.advance", "TestClockAdvance",
                            "POST /v1/test_helpers/test_clocks/{id}/advance")
BalanceTransactionCreate = _command("customer.balance_transaction.create", "BalanceTransactionCreate",
                                    "POST /v1/customers/{id}/balance_transactions")
BalanceTransactionUpdate = _command("customer.balance_transaction.update", "BalanceTransactionUpdate",
                                    "POST /v1/customers/{id}/balance_transactions/{transaction}")
TestClockDelete = _command("test_clock.delete", "TestClockDelete",
                           "DELETE /v1/test_helpers/test_clocks/{id}")
Tick = _command("tick", "Tick", "Time for every book of partition N (off test clocks) up to `at`; "
                "written by the ticker, for no account.", account=(None, None))
# The invoice item's key is its customer's (or the customer's clock's); `prices` pins the named price.
InvoiceItemCreate = _command("invoiceitem.create", "InvoiceItemCreate",
                             "POST /v1/invoiceitems", prices=_PRICES)
InvoiceItemUpdate = _command("invoiceitem.update", "InvoiceItemUpdate",
                             "POST /v1/invoiceitems/{id}", prices=_PRICES)
InvoiceItemDelete = _command("invoiceitem.delete", "InvoiceItemDelete", "DELETE /v1/invoiceitems/{id}")

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
    fields["params"] = construct(params_model, record.get("params") or {})
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


__all__ = ["COMMAND", "COMMANDS", "Command", "PARAMS", "Params", "load", "misfits", "parse", "to_params",
           "to_record"]
