"""An independent reference fold of meter-event records, written from the rules, not from the projector.

It keeps every event, then aggregates at the end: no upserts, no deltas, nothing shared with production code.
"""

from __future__ import annotations

import json
from decimal import Decimal

DAY_MS = 24 * 3600 * 1000


def reference_usage(records: list[tuple[int, int, dict]]) -> dict:
    """records: (partition, offset, record) in log order per partition → {window key: (sum, count, last)}."""
    live: dict[tuple, dict] = {}  # (account, customer, identifier) -> the accepted event
    kept: list[dict] = []
    for _partition, offset, rec in records:
        ident = (rec["account"], rec["customer"], rec["identifier"])
        if rec["type"] == "meter_event.recorded":
            prior = live.get(ident)
            if prior is not None and prior["received_at"] > rec["received_at"] - DAY_MS:
                continue  # a duplicate within 24 h of the first receipt
            event = dict(rec, seq=offset, canceled=False)
            live[ident] = event
            kept.append(event)
        elif rec["type"] == "meter_event.canceled":
            prior = live.get(ident)
            if prior is not None and not prior["canceled"] and prior["received_at"] >= rec["received_at"] - DAY_MS:
                prior["canceled"] = True
    out: dict[tuple, list] = {}
    for e in kept:
        if e["canceled"]:
            continue
        minute = e["timestamp"] // 60 * 60
        dims = json.dumps(e["dimensions"], sort_keys=True, separators=(",", ":"))
        key = (e["account"], e["meter"], e["customer"], dims, minute)
        agg = out.setdefault(key, [Decimal(0), 0, None, (-1, -1)])
        agg[0] += Decimal(e["value"])
        agg[1] += 1
        if (e["timestamp"], e["seq"]) > agg[3]:
            agg[2], agg[3] = Decimal(e["value"]), (e["timestamp"], e["seq"])
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


async def projected_usage(pool, *, with_last: bool = True) -> dict:
    """The usage_minutes projection in the reference's shape (windows emptied by cancellations dropped)."""
    rows = await pool.fetch("select account, meter, customer, dims, minute, value_sum, event_count, last_value "
                            "from usage_minutes where event_count > 0")
    return {(r[0], r[1], r[2], _canon(r[3]), r[4]): (r[5], r[6], r[7] if with_last else None) for r in rows}


def _canon(dims: str) -> str:
    return json.dumps(json.loads(dims), sort_keys=True, separators=(",", ":"))


def only_last_meaningful(usage: dict, last_meters: set[str]) -> dict:
    """`last_value` only means something for `last` meters (for others a cancel does not recompute it)."""
    return {k: (s, c, l if k[1] in last_meters else None) for k, (s, c, l) in usage.items()}
