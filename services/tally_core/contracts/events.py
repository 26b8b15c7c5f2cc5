"""Event records: one envelope (`id`, `type`, `version`, `account`, `created`) for catalog and billing events,
and the records that are not events (usage observations, meter events).

Every record carries `version` right after `type`; records written before it was added carry none, and read
as version 1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..meter_events import CANCELED, RECORDED
from ..meters import Formula

# The catalog's event types (tally_catalog/records.py writes them; a test keeps the two lists in step).
METER_EVENTS = ("billing.meter.created", "billing.meter.updated", "billing.meter.deactivated",
                "billing.meter.reactivated")
PRODUCT_EVENTS = ("product.created", "product.updated", "product.deleted")
PRICE_EVENTS = ("price.created", "price.updated")
USAGE_OBSERVED = "tally.usage_observed"
FORMULAS = tuple(f.value for f in Formula)


# Models are built on first use (defer_build): importing the core loads no more than the stdlib needs.
class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Open(BaseModel):
    """A Stripe object: the fields named here are required, any other may follow."""

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)


class Envelope(Record):
    """What every catalog and billing event carries."""

    id: Annotated[str, Field(pattern="^evt_")]
    type: str
    version: Literal[1] = 1
    account: str
    created: Annotated[int, Field(description="unix seconds")]


# --- catalog -------------------------------------------------------------------------------------------------

class MeterObject(Open):
    object: Literal["billing.meter"]
    id: str
    event_name: str
    display_name: str
    default_aggregation: dict[Literal["formula"], Literal[FORMULAS]]
    customer_mapping: dict[str, Any]
    value_settings: dict[str, Any]
    dimension_payload_keys: list[str]
    status: Literal["active", "inactive"]
    status_transitions: dict[str, Any]
    created: int
    updated: int


class ProductObject(Open):
    object: Literal["product"]
    id: str


class PriceObject(Open):
    object: Literal["price"]
    id: str
    product: str


class MeterChanged(Envelope):
    """A meter's whole state after the change (topic catalog, key "{account}"): projecting is an upsert."""

    type: Literal[METER_EVENTS]
    object: MeterObject


class ProductChanged(Envelope):
    """A product's whole state after the change (topic catalog, key "{account}")."""

    type: Literal[PRODUCT_EVENTS]
    object: ProductObject


class PriceChanged(Envelope):
    """A price's whole state after the change, tiers expanded (topic catalog, key "{account}")."""

    type: Literal[PRICE_EVENTS]
    object: PriceObject


CatalogEvent = Annotated[Union[MeterChanged, ProductChanged, PriceChanged], Field(discriminator="type")]


# --- billing -------------------------------------------------------------------------------------------------

class EventRequest(Record):
    id: str | None
    idempotency_key: str | None


class EventData(Record):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] = None


class BillingEvent(Envelope):
    """One decision as a Stripe Event (a v1 snapshot event: data.object is the whole object after the change)
    plus the log's envelope (key, command, command_offset). `tally.command_failed` is one too: a decision
    that raised (the command was refused with a 500 `command_failed`, the book left as it was)."""

    object: Literal["event"]
    api_version: None
    livemode: Literal[False]
    pending_webhooks: int
    data: EventData
    request: EventRequest
    key: str
    command: str
    command_offset: Annotated[tuple[int, int], Field(description="(partition, offset) of the command; the "
                                                                 "worker adds it when it writes")] = None
    state: Annotated[dict[str, Any], Field(description="a subscription event's tally bookkeeping beside the "
                                                       "Stripe object (metered usage windows, what each item was "
                                                       "billed, a pending update); never on /v1/events")] = None


class Observed(Record):
    meter: str
    customer: str
    start: int
    end: int
    value: Annotated[str, Field(description="a decimal string")]


class ObservedData(Record):
    object: Observed


class UsageObservation(Record):
    """A usage value a decision read (not an event: never on /v1/events); re-deciding reads it from here."""

    id: Annotated[str, Field(pattern="^obs_")]
    type: Literal[USAGE_OBSERVED]
    version: Literal[1] = 1
    account: str
    key: str
    command: str
    data: ObservedData
    command_offset: tuple[int, int] = None


BillingRecord = Union[UsageObservation, BillingEvent]


# --- meter events --------------------------------------------------------------------------------------------

Customer = Annotated[str, Field(min_length=1)]
Identifier = Annotated[str, Field(min_length=1, max_length=100)]
EventName = Annotated[str, Field(min_length=1, max_length=100)]


class MeterEventRecorded(Record):
    """An accepted meter event (topic meter-events, key "{account}:{customer}"). value is a decimal string
    (<=15 integer and <=12 fraction digits); timestamp is unix seconds; received_at is the ingest time in unix
    ms and is what the 24 h dedup window and cancellations are measured against."""

    type: Literal[RECORDED]
    version: Literal[1]
    account: Customer
    meter: Annotated[str, Field(pattern="^mtr_")]
    formula: Literal[FORMULAS]
    event_name: EventName
    customer: Customer
    value: Annotated[str, Field(pattern=r"^-?\d{1,15}(\.\d{1,12})?$")]
    timestamp: int
    identifier: Identifier
    dimensions: dict[str, str]
    payload: dict[str, str]
    received_at: int


class MeterEventCanceled(Record):
    """Removes the contribution of the event with this identifier if it was received within 24 h before
    received_at (topic meter-events, key "{account}:{customer}"). Carries the event's customer so it lands on
    the event's partition, after it."""

    type: Literal[CANCELED]
    version: Literal[1]
    account: Customer
    event_name: EventName
    customer: Customer
    identifier: Identifier
    received_at: int
