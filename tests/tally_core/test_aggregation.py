from decimal import Decimal

import pytest

from tally_core.aggregation import Usage, billed_quantity, deltas, dims_key, minute_of


def rec(value, ts, customer="cus_1", dims=None):
    return {"account": "a", "meter": "m", "customer": customer, "dimensions": dims or {}, "timestamp": ts,
            "value": value}


@pytest.mark.parametrize("ts, minute", [(0, 0), (59, 0), (60, 60), (1_767_225_659, 1_767_225_600)])
def test_an_event_belongs_to_the_minute_containing_it(ts, minute):
    assert minute_of(ts) == minute


def test_sum_count_last_in_one_window():
    # given three events in one minute, the last one by timestamp arriving first
    out = deltas([(rec("5", 130), 1), (rec("2.5", 125), 2), (rec("-1", 121), 3)])
    (usage,) = out.values()
    assert usage.value("sum") == Decimal("6.5")
    assert usage.value("count") == 3
    assert usage.value("last") == Decimal("5")  # greatest timestamp, not latest arrival


def test_last_ties_are_broken_by_log_order():
    (usage,) = deltas([(rec("1", 100), 7), (rec("2", 100), 8)]).values()
    assert usage.value("last") == Decimal("2")


def test_merge_is_order_independent():
    a = Usage().add(Decimal(1), 10, 1)
    b = Usage().add(Decimal(2), 20, 2)
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).value("last") == Decimal(2) and a.merge(b).value("sum") == Decimal(3)


def test_windows_split_by_minute_customer_and_dimensions():
    out = deltas([(rec("1", 0), 1), (rec("1", 60), 2), (rec("1", 0, customer="cus_2"), 3),
                  (rec("1", 0, dims={"model": "b", "region": "eu"}), 4),
                  (rec("1", 0, dims={"region": "eu", "model": "b"}), 5)])
    assert len(out) == 4  # dimension sets are keyed canonically, whatever the payload's key order
    assert dims_key({"b": "1", "a": "2"}) == '{"a":"2","b":"1"}'


def test_a_negative_period_total_bills_zero():
    usage = Usage().add(Decimal("-5"), 0, 1)
    assert billed_quantity("sum", usage) == 0
    assert billed_quantity("sum", usage.add(Decimal(8), 1, 2)) == 3
