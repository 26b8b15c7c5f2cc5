"""Meters: what an event_name measures and how it aggregates (Stripe `billing.meter`).

Stripe rule: after creation only `display_name` may change; status moves between active and inactive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

from .billing.params import empty
from .billing.products import check_expand, expand_of
from .errors import InvalidRequest, invalid, missing, unknown


class Formula(StrEnum):
    SUM = "sum"
    COUNT = "count"
    LAST = "last"


class MeterStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


MAX_DIMENSIONS = 10
_PAYLOAD_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


@dataclass(frozen=True, slots=True)
class Meter:
    id: str
    account: str
    display_name: str
    event_name: str
    formula: Formula
    customer_key: str = "stripe_customer_id"
    value_key: str = "value"
    dimension_keys: tuple[str, ...] = ()
    event_time_window: str | None = None
    status: MeterStatus = MeterStatus.ACTIVE
    created: int = 0
    updated: int = 0
    deactivated_at: int | None = None

    def to_stripe(self) -> dict:
        return {
            "id": self.id,
            "object": "billing.meter",
            "created": self.created,
            "customer_mapping": {"event_payload_key": self.customer_key, "type": "by_id"},
            "default_aggregation": {"formula": str(self.formula)},
            "dimension_payload_keys": list(self.dimension_keys),
            "display_name": self.display_name,
            "event_name": self.event_name,
            "event_time_window": self.event_time_window,
            "livemode": False,
            "status": str(self.status),
            "status_transitions": {"deactivated_at": self.deactivated_at},
            "updated": self.updated,
            "value_settings": {"event_payload_key": self.value_key},
        }

    @classmethod
    def from_stripe(cls, obj: dict, account: str) -> "Meter":
        return cls(
            id=obj["id"],
            account=account,
            display_name=obj["display_name"],
            event_name=obj["event_name"],
            formula=Formula(obj["default_aggregation"]["formula"]),
            customer_key=obj["customer_mapping"]["event_payload_key"],
            value_key=obj["value_settings"]["event_payload_key"],
            dimension_keys=tuple(obj.get("dimension_payload_keys") or ()),
            event_time_window=obj.get("event_time_window"),
            status=MeterStatus(obj["status"]),
            created=obj["created"],
            updated=obj["updated"],
            deactivated_at=obj["status_transitions"]["deactivated_at"],
        )


_CREATE_PARAMS = {
    "display_name", "event_name", "default_aggregation", "customer_mapping", "value_settings",
    "event_time_window", "dimension_payload_keys", "expand",
}


def _string(params: dict, name: str, *, required: bool, max_len: int, default: str | None = None) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return default
    if not isinstance(value, str):
        raise invalid(name, "must be a string.")
    if len(value) > max_len:
        raise invalid(name, f"must be at most {max_len} characters.")
    return value


def _sub(params: dict, name: str) -> dict:
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise invalid(name, "must be a hash.")
    return value


def create_meter(params: dict, *, id: str, account: str, now: int) -> Meter:
    """Validate `POST /v1/billing/meters` params into a new Meter."""
    for key in params:
        if key not in _CREATE_PARAMS:
            raise unknown(key)
    check_expand(expand_of(params), ())  # a meter has nothing to expand
    display_name = _string(params, "display_name", required=True, max_len=250)
    event_name = _string(params, "event_name", required=True, max_len=100)
    agg = _sub(params, "default_aggregation")
    formula_raw = agg.get("formula")
    if not formula_raw:
        raise missing("default_aggregation[formula]")
    try:
        formula = Formula(formula_raw)
    except ValueError:
        raise invalid("default_aggregation[formula]", "must be one of sum, count, last.", code="parameter_invalid_enum") from None
    mapping = _sub(params, "customer_mapping")
    if mapping.get("type", "by_id") != "by_id":
        raise invalid("customer_mapping[type]", "must be by_id.")
    if mapping and "event_payload_key" not in mapping:
        raise missing("customer_mapping[event_payload_key]")
    customer_key = _payload_key(mapping.get("event_payload_key", "stripe_customer_id"), "customer_mapping[event_payload_key]")
    value_key = _payload_key(_sub(params, "value_settings").get("event_payload_key", "value"), "value_settings[event_payload_key]")
    window = params.get("event_time_window") or None
    if window not in (None, "hour", "day"):
        raise invalid("event_time_window", "must be one of hour, day.", code="parameter_invalid_enum")
    dims_raw = params.get("dimension_payload_keys") or []
    if isinstance(dims_raw, str):
        dims_raw = [dims_raw]
    if not isinstance(dims_raw, list):
        raise invalid("dimension_payload_keys", "must be an array of strings.")
    if len(dims_raw) > MAX_DIMENSIONS:
        raise invalid("dimension_payload_keys", f"at most {MAX_DIMENSIONS} keys are allowed.")
    dims = tuple(_payload_key(d, f"dimension_payload_keys[{i}]") for i, d in enumerate(dims_raw))
    if len(set(dims)) != len(dims):
        raise invalid("dimension_payload_keys", "keys must be unique.")
    if customer_key == value_key and formula != Formula.COUNT:
        raise invalid("value_settings[event_payload_key]", "must differ from customer_mapping[event_payload_key].")
    if set(dims) & {customer_key, value_key}:
        raise invalid("dimension_payload_keys", "must not contain the customer or value payload key.")
    return Meter(
        id=id, account=account, display_name=display_name, event_name=event_name, formula=formula,
        customer_key=customer_key, value_key=value_key, dimension_keys=dims, event_time_window=window,
        created=now, updated=now,
    )


def _payload_key(value, param: str) -> str:
    if not isinstance(value, str) or not _PAYLOAD_KEY.match(value):
        raise invalid(param, "must be 1-100 characters of letters, digits, '_', '-' or '.'.")
    return value


def update_meter(meter: Meter, params: dict, *, now: int) -> Meter:
    """Only `display_name` is mutable (Stripe)."""
    for key in params:
        if key not in ("display_name", "expand"):
            raise InvalidRequest(
                f"Received unknown parameter: {key}. Only display_name can be updated on a meter.",
                param=key, code="parameter_unknown",
            )
    check_expand(expand_of(params), ())
    if "display_name" not in params:
        return meter
    if params["display_name"] in (None, ""):
        raise empty("display_name")  # Stripe: a meter's display_name cannot be unset
    return replace(meter, display_name=_string(params, "display_name", required=True, max_len=250), updated=now)


def deactivate(meter: Meter, *, now: int) -> Meter:
    if meter.status is MeterStatus.INACTIVE:
        raise InvalidRequest("This meter is already inactive.", code="status_transition_invalid")
    return replace(meter, status=MeterStatus.INACTIVE, deactivated_at=now, updated=now)


def reactivate(meter: Meter, *, now: int) -> Meter:
    if meter.status is MeterStatus.ACTIVE:
        raise InvalidRequest("This meter is already active.", code="status_transition_invalid")
    return replace(meter, status=MeterStatus.ACTIVE, deactivated_at=None, updated=now)
