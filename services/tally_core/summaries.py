"""Meter event summaries (`GET /v1/billing/meters/{id}/event_summaries`): parameters, bounds and paging.

Stripe: `start_time` inclusive, `end_time` exclusive, both minute-aligned; with `value_grouping_window=hour`
hour-aligned, with `day` aligned to 00:00 UTC; `limit` 1–100 with `starting_after`/`ending_before`. Our
extension: `dimension_group_by_keys[]` splits summaries by dimension values and `dimension_filters[key]=value`
keeps only matching usage.

Stripe states no maximum range. Ours (MAX_RANGE), so that one request scans a bounded number of usage minutes:
one summary over at most 367 days (a leap year's billing period widened to minute boundaries), hour windows
over at most 32 days (768 windows: a 31-day month widened to hour boundaries), day windows over at most
1,098 days (three leap years). Beyond it the answer is a 400 naming `end_time`. A page never holds more than
`limit` windows, and only those windows are read from the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .billing import params as p
from .errors import InvalidRequest, invalid, missing
from .meters import Meter

GRAIN = {None: None, "hour": 3600, "day": 86400}
DAY = 86400
MAX_RANGE = {None: 367 * DAY, "hour": 32 * DAY, "day": 1098 * DAY}
NO_GROUP = "{}"


@dataclass(frozen=True, slots=True)
class Cursor:
    start: int  # start_time of the summary named by starting_after / ending_before
    digest: str  # its group's digest (see summary_id)
    after: bool  # starting_after (True) or ending_before (False)


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    customer: str
    start_time: int
    end_time: int
    window: int | None  # seconds per summary, None for one summary over the whole range
    group_by: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()
    limit: int = 10
    cursor: Cursor | None = None

    @property
    def width(self) -> int:
        return self.window or (self.end_time - self.start_time)

    @property
    def count(self) -> int:
        return -(-(self.end_time - self.start_time) // self.width)

    def windows(self) -> list[tuple[int, int]]:
        return [(t, min(t + self.width, self.end_time)) for t in range(self.start_time, self.end_time, self.width)]

    def page(self, meter_id: str) -> tuple[int, int, bool]:
        """Without grouping, every window is a summary (zero where nothing was reported), so the page is
        arithmetic: (first window start, end of the last window, has_more). Raises on a foreign cursor."""
        first, n = 0, self.count
        if self.cursor is not None:
            index = self._index_of(self.cursor, meter_id)
            first = index + 1 if self.cursor.after else max(0, index - self.limit)
            stop = min(n, first + self.limit) if self.cursor.after else index
            has_more = stop < n if self.cursor.after else first > 0
        else:
            stop = min(n, self.limit)
            has_more = stop < n
        return self.start_time + first * self.width, min(self.end_time, self.start_time + stop * self.width), has_more

    def scan_range(self) -> tuple[int, int]:
        """With grouping, the part of [start, end) a page can come from: from the cursor's window on (or up to it)."""
        if self.cursor is None:
            return self.start_time, self.end_time
        if self.cursor.after:
            return self.cursor.start, self.end_time
        return self.start_time, min(self.end_time, self.cursor.start + self.width)

    def _index_of(self, cursor: Cursor, meter_id: str) -> int:
        offset = cursor.start - self.start_time
        if offset < 0 or offset % self.width or offset >= self.end_time - self.start_time \
                or cursor.digest != group_digest(meter_id, NO_GROUP):
            raise not_in_list(cursor)
        return offset // self.width


def not_in_list(cursor: Cursor) -> InvalidRequest:
    param = "starting_after" if cursor.after else "ending_before"
    return invalid(param, f"no object with id mtrusg_{cursor.start}_{cursor.digest} in this list.",
                   code="resource_missing")


def _time(params: dict, name: str) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        raise missing(name)
    return p.timestamp(raw, name)


def _cursor(params: dict) -> Cursor | None:
    after, before = params.get("starting_after") or None, params.get("ending_before") or None
    if after and before:
        raise InvalidRequest("You may only specify one of these parameters: starting_after, ending_before.",
                             param="ending_before", code="parameters_exclusive")
    if not (after or before):
        return None
    name, raw = ("starting_after", after) if after else ("ending_before", before)
    raw = p.string(raw, name, max_len=200)
    prefix, _, rest = raw.partition("_")
    start, _, digest = rest.partition("_")
    if prefix != "mtrusg" or not start.isascii() or not start.isdigit() or len(start) > 12 or not digest:
        raise invalid(name, f"no object with id {raw} in this list.", code="resource_missing")
    return Cursor(int(start), digest, bool(after))


def _limit(params: dict) -> int:
    raw = params.get("limit", 10)
    return p.integer(raw if raw != "" else 10, "limit", minimum=1, maximum=100)


def parse_query(params: dict, meter: Meter) -> SummaryQuery:
    """Validate summary params against Stripe's alignment rules, our range bounds and the meter's dimensions."""
    customer = params.get("customer")
    if customer in (None, ""):
        raise missing("customer")
    customer = p.string(customer, "customer")
    start, end = _time(params, "start_time"), _time(params, "end_time")
    grouping = params.get("value_grouping_window") or None
    if grouping not in GRAIN:
        raise invalid("value_grouping_window", "must be one of hour, day.", code="parameter_invalid_enum")
    if start % 60:
        raise invalid("start_time", "must be aligned with minute boundaries.")
    if end % 60:
        raise invalid("end_time", "must be aligned with minute boundaries.")
    if end <= start:
        raise invalid("end_time", "must be after start_time.")
    grain = GRAIN[grouping]
    if grain:
        label = "hour" if grouping == "hour" else "UTC day"
        if start % grain:
            raise invalid("start_time",
                          f"must be aligned with {label} boundaries for value_grouping_window={grouping}.")
        if end % grain:
            raise invalid("end_time", f"must be aligned with {label} boundaries for value_grouping_window={grouping}.")
    if end - start > MAX_RANGE[grouping]:
        days = MAX_RANGE[grouping] // DAY
        what = f"value_grouping_window={grouping}" if grouping else "a single summary (no value_grouping_window)"
        raise invalid("end_time", f"the range from start_time to end_time may span at most {days} days for {what}; "
                      "split the request into several ranges.")
    group_by = params.get("dimension_group_by_keys") or []
    if isinstance(group_by, str):
        group_by = [group_by]
    if isinstance(group_by, dict):
        group_by = list(group_by.values())
    if not isinstance(group_by, list):
        raise invalid("dimension_group_by_keys", "must be a list of dimension payload keys.")
    for i, key in enumerate(group_by):
        if key not in meter.dimension_keys:
            raise invalid(f"dimension_group_by_keys[{i}]", f"{key!r} is not a dimension payload key of meter {meter.id}.")
    filters = params.get("dimension_filters") or {}
    if not isinstance(filters, dict):
        raise invalid("dimension_filters", "must be a hash of dimension key to value.")
    for key, value in filters.items():
        if key not in meter.dimension_keys:
            raise invalid(f"dimension_filters[{key}]", f"{key!r} is not a dimension payload key of meter {meter.id}.")
        p.string(value, f"dimension_filters[{key}]")
    return SummaryQuery(customer, start, end, grain, tuple(dict.fromkeys(group_by)), tuple(sorted(filters.items())),
                        _limit(params), _cursor(params))


def group_digest(meter_id: str, group: str) -> str:
    """md5 so that PostgreSQL computes the same digest (`left(md5(meter || '|' || group), 10)`) to find a
    cursor's group in SQL; it names a summary, it protects nothing."""
    return hashlib.md5(f"{meter_id}|{group}".encode(), usedforsecurity=False).hexdigest()[:10]


def summary_id(meter_id: str, start: int, group: str) -> str:
    """Stable ids so `starting_after` can page through summaries ordered by (start_time, group)."""
    return f"mtrusg_{start}_{group_digest(meter_id, group)}"
