import hashlib

import pytest

from tally_core.errors import InvalidRequest
from tally_core.meters import create_meter
from tally_core.summaries import GRAIN, NO_GROUP, parse_query, summary_id

METER = create_meter({"display_name": "t", "event_name": "e", "default_aggregation": {"formula": "sum"},
                      "dimension_payload_keys": ["model"]}, id="mtr_1", account="a", now=0)
DAY = 1_767_225_600


def q(**params):
    return parse_query({"customer": "cus_1", "start_time": DAY, "end_time": DAY + 86400, **params}, METER)


def test_one_summary_for_the_range_by_default():
    assert q().windows() == [(DAY, DAY + 86400)]


def test_hourly_windows():
    windows = q(value_grouping_window="hour").windows()
    assert len(windows) == 24 and windows[1] == (DAY + 3600, DAY + 7200)


@pytest.mark.parametrize("params, param", [
    ({"start_time": DAY + 30}, "start_time"),
    ({"end_time": DAY + 90}, "end_time"),
    ({"value_grouping_window": "hour", "start_time": DAY + 60}, "start_time"),
    ({"value_grouping_window": "day", "end_time": DAY + 3600}, "end_time"),
    ({"value_grouping_window": "week"}, "value_grouping_window"),
    ({"end_time": DAY}, "end_time"),
    ({"customer": ""}, "customer"),
    ({"dimension_group_by_keys": ["region"]}, "dimension_group_by_keys[0]"),
    ({"dimension_filters": {"region": "eu"}}, "dimension_filters[region]"),
], ids=["start-not-minute", "end-not-minute", "hour-misaligned", "day-misaligned", "bad-window", "empty-range",
        "no-customer", "group-by-unknown", "filter-unknown"])
def test_alignment_and_dimension_rules(params, param):
    with pytest.raises(InvalidRequest) as err:
        q(**params)
    assert err.value.param == param


# --- bounds: Stripe states no maximum range, so tally sets one (see tally_core.summaries) ---------------------

@pytest.mark.parametrize("window, days", [(None, 367), ("hour", 32), ("day", 1098)])
def test_the_longest_range_per_window(window, days):
    extra = {"value_grouping_window": window} if window else {}
    assert q(end_time=DAY + days * 86400, **extra).count == (1 if window is None else days * 86400 // GRAIN[window])
    with pytest.raises(InvalidRequest) as err:
        q(end_time=DAY + (days + 1) * 86400, **extra)
    assert (err.value.param, err.value.code) == ("end_time", "parameter_invalid")
    assert f"at most {days} days" in err.value.message


def test_the_reported_range_is_refused_before_any_window_exists():
    # issue 7: 3,000,000 hour windows once took 17 s and 2.1 GB
    with pytest.raises(InvalidRequest) as err:
        q(start_time=0, end_time=10_800_000_000, value_grouping_window="hour")
    assert err.value.param == "end_time"


@pytest.mark.parametrize("params, param", [
    ({"start_time": -60}, "start_time"),
    ({"end_time": 253_402_300_800 + 60}, "end_time"),
    ({"start_time": "9300000000000000000"}, "start_time"),
    ({"start_time": "1e9"}, "start_time"),
    ({"start_time": "1_767_225_600"}, "start_time"),
    ({"start_time": "١٧٦٧٢٢٥٦٠٠"}, "start_time"),
    ({"start_time": {"a": "1"}}, "start_time"),
    ({"customer": {"a": "b"}}, "customer"),
    ({"customer": ["cus_1"]}, "customer"),
    ({"customer": "c" * 5001}, "customer"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"dimension_filters": {"model": {"x": "y"}}}, "dimension_filters[model]"),
    ({"starting_after": "evt_1"}, "starting_after"),
    ({"ending_before": "mtrusg_x_y"}, "ending_before"),
    ({"starting_after": "mtrusg_1_a", "ending_before": "mtrusg_1_a"}, "ending_before"),
], ids=["negative-time", "past-year-9999", "past-int64", "float", "underscores", "arabic-digits", "hash-time",
        "hash-customer", "list-customer", "long-customer", "limit-0", "limit-101", "hash-filter", "foreign-cursor", "bad-cursor",
        "both-cursors"])
def test_every_parameter_is_checked_and_named(params, param):
    with pytest.raises(InvalidRequest) as err:
        q(**params)
    assert err.value.param == param and err.value.http_status == 400


def test_customer_must_be_a_string():
    with pytest.raises(InvalidRequest) as err:
        q(customer={"a": "b"})
    assert err.value.message == "Invalid customer: must be a string."


# --- pages: without grouping, the page is arithmetic over windows, never a list of all of them ---------------

def hourly(**params):
    return q(value_grouping_window="hour", end_time=DAY + 10 * 3600, **params)


def test_first_page_is_the_first_limit_windows():
    assert hourly(limit="3").page("mtr_1") == (DAY, DAY + 3 * 3600, True)
    assert hourly(limit="10").page("mtr_1") == (DAY, DAY + 10 * 3600, False)


def test_starting_after_and_ending_before_move_by_whole_windows():
    third = summary_id("mtr_1", DAY + 2 * 3600, NO_GROUP)
    assert hourly(limit="3", starting_after=third).page("mtr_1") == (DAY + 3 * 3600, DAY + 6 * 3600, True)
    last = summary_id("mtr_1", DAY + 9 * 3600, NO_GROUP)
    assert hourly(limit="3", starting_after=last).page("mtr_1") == (DAY + 10 * 3600, DAY + 10 * 3600, False)
    assert hourly(limit="3", ending_before=third).page("mtr_1") == (DAY, DAY + 2 * 3600, False)
    eighth = summary_id("mtr_1", DAY + 7 * 3600, NO_GROUP)
    assert hourly(limit="3", ending_before=eighth).page("mtr_1") == (DAY + 4 * 3600, DAY + 7 * 3600, True)


@pytest.mark.parametrize("cursor", [
    summary_id("mtr_other", DAY + 3600, NO_GROUP),  # another meter's summary
    summary_id("mtr_1", DAY + 1800, NO_GROUP),  # not a window start
    summary_id("mtr_1", DAY + 10 * 3600, NO_GROUP),  # past the range
    summary_id("mtr_1", DAY - 3600, NO_GROUP),  # before it
])
def test_a_cursor_from_another_list_is_refused(cursor):
    with pytest.raises(InvalidRequest) as err:
        hourly(starting_after=cursor).page("mtr_1")
    assert (err.value.param, err.value.code) == ("starting_after", "resource_missing")


def test_summary_ids_use_the_digest_postgresql_computes():
    # md5 so that SQL can find a grouped cursor's group: left(md5('mtr_1|{}'), 10)
    assert summary_id("mtr_1", DAY, "{}") == f"mtrusg_{DAY}_" + hashlib.md5(b"mtr_1|{}").hexdigest()[:10]
