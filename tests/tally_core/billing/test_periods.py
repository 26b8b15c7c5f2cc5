"""Billing-period boundaries (reference §3.3, A.3): anchored month arithmetic, clamped to month ends, UTC."""

from __future__ import annotations

import calendar
from datetime import datetime

import pytest

from tally_core.billing.periods import add_interval, next_period_end, period_containing, period_index


def ts(iso: str) -> int:
    """'2025-01-31' or '2025-01-31T12:34:56' (UTC) → unix seconds."""
    return calendar.timegm(datetime.fromisoformat(iso).timetuple())


@pytest.mark.parametrize(("anchor", "interval", "count", "expected"), [
    # Docs: anchor Jan 31 bills "February 28 (or February 29 in a leap year), then March 31, April 30".
    pytest.param("2025-01-31", "month", 1, ["2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31"], id="jan31-2025"),
    pytest.param("2024-01-31", "month", 1, ["2024-02-29", "2024-03-31", "2024-04-30"], id="jan31-leap-2024"),
    pytest.param("2028-01-31", "month", 1, ["2028-02-29", "2028-03-31"], id="jan31-leap-2028"),
    pytest.param("2100-01-31", "month", 1, ["2100-02-28"], id="2100-not-leap"),  # divisible by 100, not 400
    pytest.param("2025-01-30", "month", 1, ["2025-02-28", "2025-03-30"], id="jan30-back-to-30"),
    pytest.param("2024-12-31", "month", 1, ["2025-01-31", "2025-02-28"], id="across-year-end"),
    pytest.param("2025-09-02", "month", 1, ["2025-10-02", "2025-11-02"], id="sep2-always-2nd"),  # docs example
    # interval_count 3 from Nov 30: Feb 28 (clamped), then May 30, Aug 30 — back to the anchor's day 30.
    pytest.param("2024-11-30", "month", 3, ["2025-02-28", "2025-05-30", "2025-08-30", "2025-11-30"], id="quarterly-nov30"),
    pytest.param("2025-01-31", "month", 3, ["2025-04-30", "2025-07-31", "2025-10-31", "2026-01-31"], id="quarterly-jan31"),
    # Year from Feb 29: Feb 28 in common years, Feb 29 again in 2028.
    pytest.param("2024-02-29", "year", 1, ["2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"], id="year-feb29"),
    pytest.param("2024-02-29", "year", 2, ["2026-02-28", "2028-02-29"], id="biennial-feb29"),
    pytest.param("2024-02-29", "month", 12, ["2025-02-28", "2026-02-28"], id="12-months-equals-year"),
    # Docs: weekly from Friday June 3 bills every Friday (2022-06-03 is a Friday).
    pytest.param("2022-06-03", "week", 1, ["2022-06-10", "2022-06-17", "2022-06-24"], id="week-fridays"),
    pytest.param("2022-06-03", "week", 2, ["2022-06-17", "2022-07-01"], id="fortnight"),
    pytest.param("2024-02-28", "day", 1, ["2024-02-29", "2024-03-01"], id="day-through-leap-day"),
    pytest.param("2025-12-30", "day", 3, ["2026-01-02", "2026-01-05"], id="3-days"),
])
def test_boundaries_from_anchor(anchor, interval, count, expected):
    got = [add_interval(ts(anchor), interval, count, k) for k in range(1, len(expected) + 1)]
    assert got == [ts(e) for e in expected]
    assert add_interval(ts(anchor), interval, count, 0) == ts(anchor)


def test_proration_preview_vector():
    # Reference §4.1: anchor 2020-08-06T21:28:08Z = 1596749288 → +1 month 1599427688 → +2 months 1602019688.
    assert [add_interval(1596749288, "month", 1, k) for k in (1, 2)] == [1599427688, 1602019688]
    assert period_containing(1596749288, "month", 1, 1598982148) == (1596749288, 1599427688)


def test_never_chained_from_previous_end():
    # Chaining Jan 31 → Feb 28 → +1 month gives Mar 28; anchoring gives Mar 31.
    chained = add_interval(add_interval(ts("2025-01-31"), "month", 1, 1), "month", 1, 1)
    assert chained == ts("2025-03-28")
    assert add_interval(ts("2025-01-31"), "month", 1, 2) == ts("2025-03-31")


def test_time_of_day_is_kept():
    # Anchor 23:59:59 on Jan 31 → Feb 29 23:59:59 (2024 leap year), not midnight.
    assert add_interval(ts("2024-01-31T23:59:59"), "month", 1, 1) == ts("2024-02-29T23:59:59")


@pytest.mark.parametrize(("at", "start", "end"), [
    pytest.param("2025-01-31", "2025-01-31", "2025-02-28", id="at-anchor"),                # start is inclusive
    pytest.param("2025-02-27T23:59:59", "2025-01-31", "2025-02-28", id="last-second"),
    pytest.param("2025-02-28", "2025-02-28", "2025-03-31", id="at-boundary-next-period"),   # end is exclusive
    pytest.param("2025-03-30", "2025-02-28", "2025-03-31", id="mid-march"),
    pytest.param("2026-07-15", "2026-06-30", "2026-07-31", id="far-later"),                 # k = 18
    pytest.param("2025-01-15", "2024-12-31", "2025-01-31", id="before-anchor"),             # k = -1
    pytest.param("2024-11-30T12:00:00", "2024-11-30", "2024-12-31", id="two-before-anchor"),  # k = -2
])
def test_period_containing_monthly_jan31(at, start, end):
    assert period_containing(ts("2025-01-31"), "month", 1, ts(at)) == (ts(start), ts(end))
    assert next_period_end(ts("2025-01-31"), "month", 1, ts(at)) == ts(end)


@pytest.mark.parametrize(("interval", "count", "at", "start", "end"), [
    pytest.param("week", 1, "2022-06-10", "2022-06-10", "2022-06-17", id="week-at-boundary"),
    pytest.param("week", 1, "2022-06-09T23:59:59", "2022-06-03", "2022-06-10", id="week-last-second"),
    pytest.param("day", 1, "2022-06-05T12:00:00", "2022-06-05", "2022-06-06", id="day"),
    pytest.param("day", 7, "2022-06-01", "2022-05-27", "2022-06-03", id="7-days-before-anchor"),
    pytest.param("year", 1, "2023-03-01", "2022-06-03", "2023-06-03", id="year-first"),          # k = 0
    pytest.param("year", 1, "2022-03-01", "2021-06-03", "2022-06-03", id="year-before-anchor"),  # k = -1
    pytest.param("month", 2, "2022-08-03", "2022-08-03", "2022-10-03", id="bimonthly-at-boundary"),  # k = 1
])
def test_period_containing_other_intervals(interval, count, at, start, end):
    assert period_containing(ts("2022-06-03"), interval, count, ts(at)) == (ts(start), ts(end))


def test_every_boundary_starts_its_own_period():
    for anchor in ("2024-01-31", "2024-02-29T06:00:00", "2023-08-31T23:59:59"):
        a = ts(anchor)
        for interval, count in (("month", 1), ("month", 5), ("year", 1), ("week", 3), ("day", 2)):
            for k in range(-30, 31):
                b, nxt = add_interval(a, interval, count, k), add_interval(a, interval, count, k + 1)
                assert b < nxt
                assert period_index(a, interval, count, b) == k
                assert period_containing(a, interval, count, nxt - 1) == (b, nxt)


def test_day_of_month_config_restores_the_31st():
    # billing_cycle_anchor_config[day_of_month]=31 from a Feb 28 anchor renews Mar 31, Apr 30, May 31.
    a = ts("2025-02-28")
    got = [add_interval(a, "month", 1, k, day_of_month=31) for k in (0, 1, 2, 3)]
    assert got == [ts("2025-02-28"), ts("2025-03-31"), ts("2025-04-30"), ts("2025-05-31")]
    assert next_period_end(a, "month", 1, ts("2025-03-15"), day_of_month=31) == ts("2025-03-31")


@pytest.mark.parametrize(("interval", "count", "dom"), [
    pytest.param("fortnight", 1, None, id="bad-interval"),
    pytest.param("month", 0, None, id="zero-count"),
    pytest.param("month", True, None, id="bool-count"),
    pytest.param("month", 1, 32, id="bad-day-of-month"),
])
def test_bad_arguments(interval, count, dom):
    with pytest.raises(ValueError):
        add_interval(0, interval, count, 1, day_of_month=dom)
