"""Test clocks: for a customer on a clock, the clock's time is "now" for the default timestamp and the window."""

import pytest

from tally_core.errors import InvalidRequest
from tally_core.meter_events import validate_event
from tally_core.meters import create_meter

WALL = 1_767_225_600  # 2026-01-01T00:00:00Z, the wall clock
CLOCK = WALL + 200 * 86400  # the customer's test clock, advanced 200 days
SUM = create_meter({"display_name": "t", "event_name": "alpaca_ai_tokens", "default_aggregation": {"formula": "sum"}},
                   id="mtr_sum", account="acct_1", now=0)
CLOCKS = {"cus_clock": CLOCK}


def validate(raw, customer_now=CLOCKS.get):
    return validate_event(raw, account="acct_1", meters={"alpaca_ai_tokens": SUM}.get, now_s=WALL,
                          received_ms=WALL * 1000, default_identifier="gen_1", customer_now=customer_now)


def event(customer="cus_clock", **overrides):
    return {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": customer, "value": "1"}, **overrides}


def test_an_event_without_timestamp_gets_the_clock_time():
    # given a customer on a clock 200 days ahead of the wall clock
    # when an event without a timestamp is validated
    record = validate(event())
    # then it is stamped with the clock's time, while its receipt stays wall-clock time
    assert record["timestamp"] == CLOCK
    assert record["received_at"] == WALL * 1000


def test_the_window_is_checked_against_the_clock_time():
    # a timestamp 200 days from the wall clock but current for the clock is accepted
    assert validate(event(timestamp=CLOCK - 60))["timestamp"] == CLOCK - 60
    assert validate(event(timestamp=CLOCK - 35 * 86400))["timestamp"] == CLOCK - 35 * 86400
    assert validate(event(timestamp=CLOCK + 300))["timestamp"] == CLOCK + 300
    # 36 days before the clock's time is too old, and the message names the clock-based bound
    with pytest.raises(InvalidRequest) as err:
        validate(event(timestamp=CLOCK - 36 * 86400))
    assert (err.value.param, err.value.code) == ("timestamp", "timestamp_too_far_in_past")
    assert str(CLOCK - 35 * 86400) in str(err.value)
    # and "now" by the wall clock is in the clock's past beyond the window too
    with pytest.raises(InvalidRequest) as err:
        validate(event(timestamp=WALL))
    assert err.value.param == "timestamp"
    with pytest.raises(InvalidRequest) as err:
        validate(event(timestamp=CLOCK + 301))
    assert (err.value.param, err.value.code) == ("timestamp", "timestamp_in_future")


def test_a_clock_in_the_past_of_the_wall_clock_moves_the_window_back():
    earlier = {"cus_clock": WALL - 100 * 86400}.get
    assert validate(event(timestamp=WALL - 120 * 86400), customer_now=earlier)["timestamp"] == WALL - 120 * 86400
    with pytest.raises(InvalidRequest) as err:
        validate(event(timestamp=WALL), customer_now=earlier)
    assert (err.value.param, err.value.code) == ("timestamp", "timestamp_in_future")


def test_a_customer_not_on_a_clock_uses_the_wall_clock():
    assert validate(event(customer="cus_plain"))["timestamp"] == WALL
    assert validate(event(customer="cus_plain", timestamp=WALL - 60))["timestamp"] == WALL - 60
    with pytest.raises(InvalidRequest) as err:
        validate(event(customer="cus_plain", timestamp=CLOCK))
    assert err.value.param == "timestamp"


def test_without_customer_now_nothing_changes():
    assert validate(event(), customer_now=None)["timestamp"] == WALL


def test_customer_now_is_asked_with_the_resolved_customer_only_after_it_is_known():
    asked = []
    record = validate(event(customer="cus_x"), customer_now=lambda c: asked.append(c) or None)
    assert asked == ["cus_x"] and record["timestamp"] == WALL
    # an event whose customer cannot be resolved fails on the customer, not the clock
    asked.clear()
    with pytest.raises(InvalidRequest) as err:
        validate({"event_name": "alpaca_ai_tokens", "payload": {"value": "1"}},
                 customer_now=lambda c: asked.append(c) or None)
    assert err.value.code == "meter_event_no_customer_defined" and asked == []
