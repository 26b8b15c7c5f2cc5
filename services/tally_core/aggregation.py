"""Usage aggregation: sum, count and last over one-minute UTC windows.

Windows are tumbling and aligned to UTC minutes; hours, days and billing periods are unions of minutes, so an
event belongs to the period containing the start of its minute and nothing is lost or counted twice at a
boundary. `last` keeps the event with the greatest (timestamp, log position): only a strictly later event
replaces it, so out-of-order delivery and replays agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import orjson

from .meters import Formula

MINUTE = 60
ZERO = Decimal(0)


def minute_of(ts: int) -> int:
    return ts - ts % MINUTE


def dims_key(dimensions: dict) -> str:
    """Canonical text of a dimension set (sorted keys), used as part of a window's key."""
    if not dimensions:
        return "{}"
    return orjson.dumps(dimensions, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class WindowKey:
    account: str
    meter: str
    customer: str
    dims: str
    minute: int


@dataclass(frozen=True, slots=True)
class Usage:
    """The aggregate of one window (or of a union of windows)."""

    value_sum: Decimal = ZERO
    count: int = 0
    last_value: Decimal | None = None
    last_ts: int | None = None
    last_seq: int | None = None

    def add(self, value: Decimal, ts: int, seq: int) -> "Usage":
        replace_last = self.last_ts is None or (ts, seq) > (self.last_ts, self.last_seq)
        return Usage(
            self.value_sum + value,
            self.count + 1,
            value if replace_last else self.last_value,
            ts if replace_last else self.last_ts,
            seq if replace_last else self.last_seq,
        )

    def merge(self, other: "Usage") -> "Usage":
        take_other = other.last_ts is not None and (
            self.last_ts is None or (other.last_ts, other.last_seq) > (self.last_ts, self.last_seq)
        )
        src = other if take_other else self
        return Usage(self.value_sum + other.value_sum, self.count + other.count, src.last_value, src.last_ts, src.last_seq)

    def value(self, formula: Formula | str) -> Decimal:
        """The aggregated value Stripe reports for this window under a formula."""
        if formula == Formula.SUM:
            return self.value_sum
        if formula == Formula.COUNT:
            return Decimal(self.count)
        return self.last_value if self.last_value is not None else ZERO


def window_key(record: dict) -> WindowKey:
    return WindowKey(record["account"], record["meter"], record["customer"], dims_key(record["dimensions"]), minute_of(record["timestamp"]))


def deltas(events: list[tuple[dict, int]]) -> dict[WindowKey, Usage]:
    """Fold accepted (record, log position) pairs into one Usage per window: what a batch adds."""
    out: dict[WindowKey, Usage] = {}
    for record, seq in events:
        key = window_key(record)
        out[key] = out.get(key, Usage()).add(Decimal(record["value"]), record["timestamp"], seq)
    return out


def billed_quantity(formula: Formula | str, usage: Usage) -> Decimal:
    """Stripe never bills a negative period total: it reports the line quantity as 0."""
    return max(usage.value(formula), ZERO)
