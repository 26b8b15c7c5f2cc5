"""Billing-period boundaries from a billing_cycle_anchor (reference §3.3, A.3); UTC unix seconds throughout.

Month/year boundaries come from the anchor, clamped to month end (Jan 31 → Feb 28/29 → Mar 31), never chained.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)
_FIXED = {"day": 86_400, "week": 7 * 86_400}  # UTC has no DST, so a day is always 86,400 unix seconds
_MONTHS = {"month": 1, "year": 12}


def _check(interval: str, count: int) -> None:
    if interval not in _FIXED and interval not in _MONTHS:
        raise ValueError(f"unknown interval {interval!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"interval_count must be a positive int, got {count!r}")


def _dt(ts: int) -> datetime:
    return _EPOCH + timedelta(seconds=ts)


def add_interval(anchor: int, interval: str, count: int, n: int, *, day_of_month: int | None = None) -> int:
    """The boundary `n × count` intervals after the anchor (n may be negative), keeping its time of day.

    `day_of_month`: `billing_cycle_anchor_config[day_of_month]` when the anchor itself was clamped (31: Feb 28 → Mar 31).
    """
    _check(interval, count)
    if day_of_month is not None and not 1 <= day_of_month <= 31:
        raise ValueError(f"day_of_month must be 1-31, got {day_of_month!r}")
    if interval in _FIXED:
        return anchor + n * count * _FIXED[interval]
    a = _dt(anchor)
    months = a.month - 1 + n * count * _MONTHS[interval]
    year, month = a.year + months // 12, months % 12 + 1
    # "bills the last day of the month closest to the anchor date" (billing-cycle docs, reference §3.3).
    day = min(day_of_month or a.day, calendar.monthrange(year, month)[1])
    return (a.replace(year=year, month=month, day=day) - _EPOCH) // _SECOND


def period_index(anchor: int, interval: str, count: int, ts: int, *, day_of_month: int | None = None) -> int:
    """The k with boundary(k) <= ts < boundary(k + 1); negative before the anchor."""
    _check(interval, count)
    if interval in _FIXED:
        return (ts - anchor) // (count * _FIXED[interval])
    a, t = _dt(anchor), _dt(ts)
    k = ((t.year - a.year) * 12 + t.month - a.month) // (count * _MONTHS[interval])  # off by at most one
    while add_interval(anchor, interval, count, k, day_of_month=day_of_month) > ts:
        k -= 1
    while add_interval(anchor, interval, count, k + 1, day_of_month=day_of_month) <= ts:
        k += 1
    return k


def period_containing(
    anchor: int, interval: str, count: int, ts: int, *, day_of_month: int | None = None,
) -> tuple[int, int]:
    """(start, end) of the period holding ts: start inclusive, end exclusive (the next period's start)."""
    k = period_index(anchor, interval, count, ts, day_of_month=day_of_month)
    return (
        add_interval(anchor, interval, count, k, day_of_month=day_of_month),
        add_interval(anchor, interval, count, k + 1, day_of_month=day_of_month),
    )


def next_period_end(anchor: int, interval: str, count: int, ts: int, *, day_of_month: int | None = None) -> int:
    """The first boundary strictly after ts: when the period holding ts renews."""
    return period_containing(anchor, interval, count, ts, day_of_month=day_of_month)[1]
