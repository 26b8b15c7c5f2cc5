"""Meter events: validating what producers send into the records the log keeps.

Stripe's rules (reference §1.4): `event_name` names one meter; `payload` holds the customer and value under
the meter's payload keys; `timestamp` within 35 days past and 5 minutes future of "now"; `identifier`
unique for 24 h (enforced by the aggregator from the log, reported early by ingest).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone

from .errors import InvalidRequest, invalid, missing, unknown
from .meters import Formula, Meter, MeterStatus
from .strings import MAX_TIMESTAMP, MIN_TIMESTAMP, check_params

RECORDED = "meter_event.recorded"
CANCELED = "meter_event.canceled"
VERSION = 1

PAST_WINDOW_S = 35 * 24 * 3600
FUTURE_WINDOW_S = 5 * 60
DEDUP_WINDOW_MS = 24 * 3600 * 1000
MAX_PAYLOAD_KEYS = 50
MAX_PAYLOAD_VALUE = 500
MAX_IDENTIFIER = 100
# ASCII digits only: `\d` alone would take "٣" and "５" as values.
_VALUE = re.compile(r"^-?([0-9]{1,15})(\.([0-9]{1,12}))?$", re.ASCII)
_DIGITS = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
_IDENTIFIER = re.compile(r"^[\x21-\x7e]{1,100}$")
_EVENT_PARAMS = {"event_name", "payload", "identifier", "timestamp"}

MeterLookup = Callable[[str], "Meter | None"]
CustomerNow = Callable[[str], "int | None"]  # customer -> its test clock's time (unix s), None if on no clock


def parse_timestamp(raw, param: str = "timestamp") -> int:
    """Unix seconds from an int, an ASCII digit string (v1 form) or an ISO-8601 string (v2), 1970…9999."""
    ts = _timestamp(raw)
    if ts is None or not MIN_TIMESTAMP <= ts <= MAX_TIMESTAMP:
        raise invalid(param, "must be a unix timestamp in seconds or an ISO-8601 time between 1970 and 9999.",
                      code="parameter_invalid_integer")
    return ts


def _timestamp(raw) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isascii():
        s = raw.strip()
        if re.fullmatch(r"-?[0-9]{1,12}", s):
            return int(s)
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp())
    return None


def check_value(raw, param: str) -> str:
    """A decimal string with at most 15 integer and 12 fractional digits; returned normalised as sent."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise InvalidRequest(f"{param} must be a number given as a string, like \"25\" or \"0.5\".", param=param, code="meter_event_invalid_value")
    s = raw if isinstance(raw, str) else repr(raw)
    m = _VALUE.match(s.strip())
    if not m:
        digits = _DIGITS.fullmatch(s.strip())
        code = "meter_event_value_too_many_digits" if digits else "meter_event_invalid_value"
        raise InvalidRequest(
            f"{param} must be a decimal number with at most 15 integer and 12 fractional digits; got {s[:40]!r}.",
            param=param, code=code,
        )
    return s.strip()


def validate_event(
    raw: dict,
    *,
    account: str,
    meters: MeterLookup,
    now_s: int,
    received_ms: int,
    default_identifier: str,
    prefix: str = "",
    customer_now: CustomerNow | None = None,
) -> dict:
    """Check one meter event against its meter and the time window; return the log record.

    `prefix` names the event inside a batch (`events[3]`) so every error names its field exactly.
    `customer_now` gives a customer's own "now" (its test clock's frozen time) or None: when it gives one,
    that time replaces `now_s` for the default timestamp and the 35-day / 5-minute window. `received_ms`
    (the 24 h duplicate window) stays the wall clock either way.
    """
    if not isinstance(raw, dict):
        raise invalid(prefix or "event", "must be an object.")
    check_params(raw, prefix=prefix)  # NDJSON lines and batch elements reach no other edge check
    for key in raw:
        if key not in _EVENT_PARAMS:
            raise unknown(f"{prefix}{key}" if not prefix else f"{prefix}[{key}]")

    def p(name: str) -> str:
        return f"{prefix}[{name}]" if prefix else name

    event_name = raw.get("event_name")
    if not event_name:
        raise missing(p("event_name"))
    if not isinstance(event_name, str) or len(event_name) > 100:
        raise invalid(p("event_name"), "must be a string of at most 100 characters.")
    meter = meters(event_name)
    if meter is None:
        raise InvalidRequest(f"No meter was found matching event_name {event_name}.", param=p("event_name"), code="no_meter")
    if meter.status is not MeterStatus.ACTIVE:
        raise InvalidRequest(
            f"The meter {meter.id} for event_name {event_name} is inactive and accepts no events.",
            param=p("event_name"), code="archived_meter",
        )

    payload = raw.get("payload")
    if payload is None or payload == "":
        raise missing(p("payload"))
    if not isinstance(payload, dict):
        raise invalid(p("payload"), "must be a hash of strings.")
    if len(payload) > MAX_PAYLOAD_KEYS:
        raise invalid(p("payload"), f"at most {MAX_PAYLOAD_KEYS} keys are allowed.")
    for k, v in payload.items():
        if not isinstance(v, str) or len(v) > MAX_PAYLOAD_VALUE or len(k) > 100:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                continue  # JSON producers send numbers; the value check below still applies
            raise invalid(f"{p('payload')}[{k}]", f"must be a string of at most {MAX_PAYLOAD_VALUE} characters.")

    customer = payload.get(meter.customer_key)
    if not customer or not isinstance(customer, str):
        raise InvalidRequest(
            f"Customer mapping key {meter.customer_key} not found in payload.",
            param=f"{p('payload')}[{meter.customer_key}]", code="meter_event_no_customer_defined",
        )
    if meter.formula is Formula.COUNT and meter.value_key not in payload:
        value = "1"
    else:
        if meter.value_key not in payload or payload[meter.value_key] in ("", None):
            raise InvalidRequest(
                f"Value settings key {meter.value_key} not found in payload.",
                param=f"{p('payload')}[{meter.value_key}]", code="meter_event_value_not_found",
            )
        value = check_value(payload[meter.value_key], f"{p('payload')}[{meter.value_key}]")

    dimensions = {}
    for key in meter.dimension_keys:
        dim = payload.get(key)
        if dim is None or dim == "":
            raise InvalidRequest(
                f"Dimension payload key {key} not found in payload.",
                param=f"{p('payload')}[{key}]", code="missing_dimension_payload_keys",
            )
        dimensions[key] = str(dim)

    if customer_now is not None:
        clock_s = customer_now(customer)
        if clock_s is not None:
            now_s = clock_s

    ts_raw = raw.get("timestamp")
    ts = now_s if ts_raw in (None, "") else parse_timestamp(ts_raw, p("timestamp"))
    if ts < now_s - PAST_WINDOW_S:
        raise InvalidRequest(
            "The event timestamp cannot be more than 35 days in past. "
            f"Expected a timestamp greater than or equal to {now_s - PAST_WINDOW_S}.",
            param=p("timestamp"), code="timestamp_too_far_in_past",
        )
    if ts > now_s + FUTURE_WINDOW_S:
        raise InvalidRequest(
            "The event timestamp cannot be more than 5 minutes in the future. "
            f"Expected a timestamp less than or equal to {now_s + FUTURE_WINDOW_S}.",
            param=p("timestamp"), code="timestamp_in_future",
        )

    identifier = raw.get("identifier")
    if identifier in (None, ""):
        identifier = default_identifier
    elif not isinstance(identifier, str) or not _IDENTIFIER.match(identifier):
        raise invalid(p("identifier"), f"must be 1-{MAX_IDENTIFIER} printable ASCII characters without spaces.")

    return {
        "type": RECORDED,
        "version": VERSION,
        "account": account,
        "meter": meter.id,
        "formula": str(meter.formula),
        "event_name": event_name,
        "customer": customer,
        "value": value,
        "timestamp": ts,
        "identifier": identifier,
        "dimensions": dimensions,
        "payload": {k: str(v) for k, v in payload.items()},
        "received_at": received_ms,
    }


EventLocator = Callable[[str], "tuple[str, int] | None"]  # identifier -> (customer, received_ms)


def validate_cancel(raw: dict, *, account: str, meters: MeterLookup, locate: EventLocator, received_ms: int) -> dict:
    """`POST /v1/billing/meter_event_adjustments` with `type=cancel` into a log record.

    The record carries the event's customer so it lands on the event's partition, after the event.
    """
    for key in raw:
        if key not in ("event_name", "type", "cancel"):
            raise unknown(key)
    event_name = raw.get("event_name")
    if not event_name:
        raise missing("event_name")
    if meters(event_name) is None:
        raise InvalidRequest(f"No meter was found matching event_name {event_name}.", param="event_name", code="no_meter")
    kind = raw.get("type")
    if not kind:
        raise missing("type")
    if kind != "cancel":
        raise invalid("type", "must be cancel (time period cancellation is not supported).", code="parameter_invalid_enum")
    cancel = raw.get("cancel")
    if not isinstance(cancel, dict) or not cancel.get("identifier"):
        raise missing("cancel[identifier]")
    identifier = cancel["identifier"]
    if not isinstance(identifier, str) or not _IDENTIFIER.match(identifier):
        raise invalid("cancel[identifier]", f"must be 1-{MAX_IDENTIFIER} printable ASCII characters without spaces.")
    found = locate(identifier)
    if found is None or found[1] < received_ms - DEDUP_WINDOW_MS:
        raise InvalidRequest(
            f"No meter event with identifier {identifier} was received in the last 24 hours; "
            "only events received within 24 hours can be canceled.",
            param="cancel[identifier]", code="resource_missing",
        )
    return {
        "type": CANCELED,
        "version": VERSION,
        "account": account,
        "event_name": event_name,
        "customer": found[0],
        "identifier": identifier,
        "received_at": received_ms,
    }


def adjustment_response(record: dict) -> dict:
    return {
        "object": "billing.meter_event_adjustment",
        "cancel": {"identifier": record["identifier"]},
        "event_name": record["event_name"],
        "livemode": False,
        "status": "pending",
        "type": "cancel",
    }


def event_response(record: dict) -> dict:
    """The v1 `billing.meter_event` object for an accepted record (Stripe gives it no id)."""
    return {
        "object": "billing.meter_event",
        "created": record["received_at"] // 1000,
        "event_name": record["event_name"],
        "identifier": record["identifier"],
        "livemode": False,
        "payload": record["payload"],
        "timestamp": record["timestamp"],
    }


def partition_key(record: dict) -> bytes:
    """All of a customer's records share a key, so they are ordered on one partition (ARCHITECTURE §5)."""
    return f"{record['account']}:{record.get('customer', '')}".encode()
