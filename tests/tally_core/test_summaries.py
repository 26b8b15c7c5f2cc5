import pytest

from tally_core.errors import InvalidRequest
from tally_core.meters import create_meter
from tally_core.summaries import parse_query

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
