"""Meter event summaries (`GET /v1/billing/meters/{id}/event_summaries`): parameters and windows.

Stripe: `start_time` inclusive, `end_time` exclusive, both minute-aligned; with `value_grouping_window=hour`
hour-aligned, with `day` aligned to 00:00 UTC. Our extension: `dimension_group_by_keys[]` splits summaries by
dimension values and `dimension_filters[key]=value` keeps only matching usage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .errors import invalid, missing
from .meters import Meter

GRAIN = {None: None, "hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    customer: str
    start_time: int
    end_time: int
    window: int | None  # seconds per summary, None for one summary over the whole range
    group_by: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()

    def windows(self) -> list[tuple[int, int]]:
        if self.window is None:
            return [(self.start_time, self.end_time)]
        return [(t, t + self.window) for t in range(self.start_time, self.end_time, self.window)]


def _int(params: dict, name: str) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        raise missing(name)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid(name, "must be an integer unix timestamp.", code="parameter_invalid_integer") from None


def parse_query(params: dict, meter: Meter) -> SummaryQuery:
    """Validate summary params against Stripe's alignment rules and the meter's dimensions."""
    customer = params.get("customer")
    if not customer:
        raise missing("customer")
    start, end = _int(params, "start_time"), _int(params, "end_time")
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
            raise invalid("start_time", f"must be aligned with {label} boundaries for value_grouping_window={grouping}.")
        if end % grain:
            raise invalid("end_time", f"must be aligned with {label} boundaries for value_grouping_window={grouping}.")
    group_by = params.get("dimension_group_by_keys") or []
    if isinstance(group_by, str):
        group_by = [group_by]
    if isinstance(group_by, dict):
        group_by = list(group_by.values())
    for i, key in enumerate(group_by):
        if key not in meter.dimension_keys:
            raise invalid(f"dimension_group_by_keys[{i}]", f"{key!r} is not a dimension payload key of meter {meter.id}.")
    filters = params.get("dimension_filters") or {}
    if not isinstance(filters, dict):
        raise invalid("dimension_filters", "must be a hash of dimension key to value.")
    for key in filters:
        if key not in meter.dimension_keys:
            raise invalid(f"dimension_filters[{key}]", f"{key!r} is not a dimension payload key of meter {meter.id}.")
    return SummaryQuery(customer, start, end, grain, tuple(group_by), tuple(sorted(filters.items())))


def summary_id(meter_id: str, start: int, group: str) -> str:
    """Stable ids so `starting_after` can page through summaries ordered by start_time."""
    digest = hashlib.blake2s(f"{meter_id}|{group}".encode(), digest_size=5).hexdigest()
    return f"mtrusg_{start}_{digest}"
