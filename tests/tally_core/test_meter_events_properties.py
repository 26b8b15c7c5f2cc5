"""Properties of the meter-event validator (`tally_core.meter_events`): any payload either becomes a record or
is refused with an `ApiError` naming a parameter of the event, and an accepted value is kept exactly."""

from __future__ import annotations

import string
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally_core.errors import ApiError
from tally_core.meter_events import check_value, validate_event
from tally_core.meters import create_meter

PROPS = settings(max_examples=400, deadline=None)
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
SUM = create_meter({"display_name": "t", "event_name": "tokens", "default_aggregation": {"formula": "sum"},
                    "dimension_payload_keys": ["model"]}, id="mtr_sum", account="acct_1", now=0)
COUNT = create_meter({"display_name": "c", "event_name": "calls", "default_aggregation": {"formula": "count"}},
                     id="mtr_count", account="acct_1", now=0)
METERS = {m.event_name: m for m in (SUM, COUNT)}
PARAMS = ("event_name", "payload", "identifier", "timestamp")


def validate(raw: dict, prefix: str = "") -> dict:
    return validate_event(raw, account="acct_1", meters=METERS.get, now_s=NOW, received_ms=NOW * 1000,
                          default_identifier="gen_1", prefix=prefix)


def named_param(err: ApiError, raw: dict, prefix: str = "") -> bool:
    """The error names one of the event's own keys, under the batch prefix if any (`events[3][timestamp]`)."""
    param = err.param or ""
    if prefix:
        if not param.startswith(prefix):
            return False
        rest = param[len(prefix):]
        if rest == "":
            return True  # the event as a whole
        key = rest[1:].split("]")[0] if rest.startswith("[") else None
    else:
        key = param.split("[")[0]
    return key in raw or key in PARAMS


# Whatever a JSON or form producer could send: strings of any code points, numbers, booleans, nulls, nesting.
scalars = (st.text(st.characters(), max_size=30) | st.integers() | st.floats() | st.booleans() | st.none()
           | st.sampled_from(["25", "0.5", "-3", "٣", "５", "1e3", " 7 ", "9" * 16, "1." + "0" * 13]))
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
payloads = st.dictionaries(st.sampled_from(["stripe_customer_id", "value", "model"]) | st.text(max_size=12),
                           json_like, max_size=6)
events = st.fixed_dictionaries(
    {"event_name": st.sampled_from(["tokens", "calls", "nope", ""]) | scalars},
    optional={"payload": payloads | json_like, "identifier": scalars,
              "timestamp": st.integers(NOW - 40 * 86400, NOW + 600) | scalars,
              "colour": scalars})


@PROPS
@given(events, st.sampled_from(["", "events[3]"]))
@example({"event_name": "tokens", "payload": {"stripe_customer_id": "x\x00", "value": "1", "model": "m"}}, "")
@example({"event_name": "tokens", "payload": {"stripe_customer_id": "c", "value": "٣", "model": "m"}}, "")
@example({"event_name": "tokens", "payload": {"stripe_customer_id": "c", "value": 10**30, "model": "m"}}, "")
def test_any_event_becomes_a_record_or_an_error_naming_its_parameter(raw, prefix):
    try:
        record = validate(raw, prefix)
    except ApiError as err:
        assert 400 <= err.http_status < 500 and named_param(err, raw, prefix), (err.param, err.message)
        return
    meter = METERS[raw["event_name"]]
    assert record["meter"] == meter.id and record["customer"] == raw["payload"][meter.customer_key]
    assert NOW - 35 * 86400 <= record["timestamp"] <= NOW + 300
    assert Decimal(record["value"]).is_finite()


# Meter values as Stripe takes them: ASCII digits, at most 15 before and 12 after the point, optional minus.
digits = lambda lo, hi: st.text(st.sampled_from(string.digits), min_size=lo, max_size=hi)  # noqa: E731
values = st.builds(lambda sign, whole, frac: sign + whole + (f".{frac}" if frac else ""),
                   st.sampled_from(["", "-"]), digits(1, 15), st.none() | digits(1, 12))


@PROPS
@given(values)
@example("123456789012345.123456789012")
@example("-0.000000000001")
def test_a_valid_value_survives_exactly_as_decimal(value):
    assert check_value(value, "payload[value]") == value
    record = validate({"event_name": "tokens", "payload": {"stripe_customer_id": "c", "value": value, "model": "m"}})
    assert record["value"] == value and Decimal(record["value"]) == Decimal(value)


@PROPS
@given(st.text(st.characters(), max_size=40))
@example("٣")
@example("５")
@example("1e3")
@example("NaN")
@example("1" * 16)
def test_any_other_value_is_refused_naming_the_value_key(value):
    try:
        kept = check_value(value, "payload[value]")
    except ApiError as err:
        assert err.param == "payload[value]" and err.http_status == 400
        return
    assert kept.isascii() and Decimal(kept).is_finite()
    whole, _, frac = kept.lstrip("-").partition(".")
    assert whole.isdigit() and len(whole) <= 15 and len(frac) <= 12
