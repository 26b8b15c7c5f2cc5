"""Stripe's meter event rules (reference §1.4) as worked examples."""

import pytest

from tally_core.errors import InvalidRequest
from tally_core.meter_events import parse_timestamp, validate_cancel, validate_event
from tally_core.meters import create_meter, deactivate

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
SUM = create_meter({"display_name": "t", "event_name": "alpaca_ai_tokens", "default_aggregation": {"formula": "sum"},
                    "dimension_payload_keys": ["model"]}, id="mtr_sum", account="acct_1", now=0)
COUNT = create_meter({"display_name": "c", "event_name": "api_calls", "default_aggregation": {"formula": "count"}},
                     id="mtr_count", account="acct_1", now=0)
METERS = {m.event_name: m for m in (SUM, COUNT)}


def validate(raw, meters=METERS.get, prefix=""):
    return validate_event(raw, account="acct_1", meters=meters, now_s=NOW, received_ms=NOW * 1000,
                          default_identifier="gen_1", prefix=prefix)


def event(**overrides):
    raw = {"event_name": "alpaca_ai_tokens",
           "payload": {"stripe_customer_id": "cus_1", "value": "25", "model": "gpt-x"}}
    raw.update(overrides)
    return raw


def test_a_valid_event_becomes_a_log_record():
    record = validate(event(identifier="id-1", timestamp=str(NOW - 10)))
    assert record["meter"] == "mtr_sum" and record["customer"] == "cus_1" and record["value"] == "25"
    assert record["dimensions"] == {"model": "gpt-x"} and record["timestamp"] == NOW - 10
    assert record["identifier"] == "id-1" and record["received_at"] == NOW * 1000


def test_defaults_identifier_and_timestamp():
    record = validate(event())
    assert record["identifier"] == "gen_1" and record["timestamp"] == NOW


@pytest.mark.parametrize("value", ["0.5", "-3", "123456789012345.123456789012", "0"],
                         ids=["decimal", "negative", "max-digits", "zero"])
def test_decimal_and_negative_values_are_accepted(value):
    assert validate(event(payload={"stripe_customer_id": "c", "value": value, "model": "m"}))["value"] == value


@pytest.mark.parametrize("ts, accepted", [
    (NOW - 35 * 86400, True),       # exactly 35 days back: the edge is inside
    (NOW - 35 * 86400 - 1, False),  # one second older: rejected
    (NOW + 300, True),              # exactly 5 minutes ahead: clock drift allowance
    (NOW + 301, False),
], ids=["35-days", "35-days-plus-1s", "5-min-future", "5-min-plus-1s"])
def test_timestamp_window(ts, accepted):
    if accepted:
        assert validate(event(timestamp=ts))["timestamp"] == ts
    else:
        with pytest.raises(InvalidRequest) as err:
            validate(event(timestamp=ts))
        assert err.value.param == "timestamp"
        assert err.value.code in ("timestamp_too_far_in_past", "timestamp_in_future")


@pytest.mark.parametrize("raw, param, code", [
    (event(event_name="nope"), "event_name", "no_meter"),
    (event(event_name=None), "event_name", "parameter_missing"),
    (event(payload=None), "payload", "parameter_missing"),
    (event(payload={"value": "1", "model": "m"}), "payload[stripe_customer_id]", "meter_event_no_customer_defined"),
    (event(payload={"stripe_customer_id": "c", "model": "m"}), "payload[value]", "meter_event_value_not_found"),
    (event(payload={"stripe_customer_id": "c", "value": "ten", "model": "m"}), "payload[value]",
     "meter_event_invalid_value"),
    (event(payload={"stripe_customer_id": "c", "value": "1e5", "model": "m"}), "payload[value]",
     "meter_event_invalid_value"),
    (event(payload={"stripe_customer_id": "c", "value": "NaN", "model": "m"}), "payload[value]",
     "meter_event_invalid_value"),
    (event(payload={"stripe_customer_id": "c", "value": "0.1234567890123", "model": "m"}), "payload[value]",
     "meter_event_value_too_many_digits"),
    (event(payload={"stripe_customer_id": "c", "value": "1"}), "payload[model]", "missing_dimension_payload_keys"),
    (event(timestamp="yesterday"), "timestamp", "parameter_invalid_integer"),
    (event(identifier="has space"), "identifier", "parameter_invalid"),
    (event(identifier="x" * 101), "identifier", "parameter_invalid"),
    (event(extra="1"), "extra", "parameter_unknown"),
], ids=["unknown-meter", "no-event-name", "no-payload", "no-customer", "no-value", "word-value", "exponent-value",
        "nan-value", "13-decimals", "missing-dimension", "bad-timestamp", "identifier-space", "identifier-long",
        "unknown-param"])
def test_bad_events_name_the_field(raw, param, code):
    with pytest.raises(InvalidRequest) as err:
        validate(raw)
    assert (err.value.param, err.value.code) == (param, code)


def test_batch_errors_are_prefixed_with_the_index():
    with pytest.raises(InvalidRequest) as err:
        validate(event(payload={"stripe_customer_id": "c", "value": "x", "model": "m"}), prefix="events[7]")
    assert err.value.param == "events[7][payload][value]"


def test_inactive_meter_rejects_events():
    inactive = deactivate(SUM, now=1)
    with pytest.raises(InvalidRequest) as err:
        validate(event(), meters={"alpaca_ai_tokens": inactive}.get)
    assert err.value.code == "archived_meter"


def test_count_meter_needs_no_value():
    record = validate({"event_name": "api_calls", "payload": {"stripe_customer_id": "cus_1"}})
    assert record["value"] == "1" and record["formula"] == "count"


def test_iso_timestamps_for_v2():
    assert parse_timestamp("2026-01-01T00:00:00.000Z") == NOW
    assert parse_timestamp(str(NOW)) == NOW


def test_cancel_within_24_hours_only():
    raw = {"event_name": "alpaca_ai_tokens", "type": "cancel", "cancel": {"identifier": "id-1"}}
    received = NOW * 1000
    ok = validate_cancel(raw, account="acct_1", meters=METERS.get, locate=lambda _: ("cus_9", received - 1000),
                         received_ms=received)
    assert ok["customer"] == "cus_9"  # routed to the event's partition
    with pytest.raises(InvalidRequest) as err:
        validate_cancel(raw, account="acct_1", meters=METERS.get,
                        locate=lambda _: ("cus_9", received - 24 * 3600 * 1000 - 1), received_ms=received)
    assert err.value.param == "cancel[identifier]"
    with pytest.raises(InvalidRequest) as err:
        validate_cancel({**raw, "type": "period"}, account="acct_1", meters=METERS.get, locate=lambda _: None,
                        received_ms=received)
    assert err.value.param == "type"


@pytest.mark.parametrize("value", ["٣", "５", "²", "1٣", "٣.5", "0.٥"],
                         ids=["arabic-indic", "fullwidth", "superscript", "mixed", "arabic-int-part", "arabic-fraction"])
def test_values_are_ascii_decimal_digits_only(value):
    with pytest.raises(InvalidRequest) as err:
        validate(event(payload={"stripe_customer_id": "c", "value": value, "model": "m"}))
    assert (err.value.param, err.value.code) == ("payload[value]", "meter_event_invalid_value")


@pytest.mark.parametrize("raw, param", [
    (event(payload={"stripe_customer_id": "x\x00", "value": "1", "model": "m"}), "events[2][payload][stripe_customer_id]"),
    (event(payload={"stripe_customer_id": "c", "value": "1", "model": "m\x1f"}), "events[2][payload][model]"),
    (event(payload={"stripe_customer_id": "c", "value": "1", "model": "m", "k\x00": "v"}), "events[2][payload][k\x00]"),
    (event(payload={"stripe_customer_id": "c", "value": 2**64, "model": "m"}), "events[2][payload][value]"),
    (event(event_name="alpaca\x00"), "events[2][event_name]"),
], ids=["nul-customer", "control-in-dimension", "nul-in-a-key", "value-past-int64", "nul-event-name"])
def test_strings_the_log_cannot_keep_are_refused_by_their_path(raw, param):
    """NDJSON lines and batch elements reach only this check, so it is the same one the HTTP edge runs."""
    with pytest.raises(InvalidRequest) as err:
        validate(raw, prefix="events[2]")
    assert err.value.param == param


@pytest.mark.parametrize("raw", ["٣", "１٠", -1, 253402300800, 2**63, "9999-12-31T23:59:60Z", "１９７０-01-01"],
                         ids=lambda v: repr(v)[:20])
def test_timestamps_outside_1970_to_9999_or_in_other_digits_are_refused(raw):
    with pytest.raises(InvalidRequest) as err:
        parse_timestamp(raw)
    assert (err.value.param, err.value.code) == ("timestamp", "parameter_invalid_integer")


def test_timestamps_at_the_edges_of_the_range():
    assert parse_timestamp("0") == 0 and parse_timestamp(253402300799) == 253402300799
    assert parse_timestamp("9999-12-31T23:59:59Z") == 253402300799
