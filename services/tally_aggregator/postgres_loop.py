"""The aggregator on the embedded log: read every partition from the stored offsets, apply, repeat.

The loop never dies of a failure: a poison record is quarantined by the projector (`UsageProjector.apply`),
and anything else (PostgreSQL restarting, the log reconnecting) is waited out with capped backoff, after which
the loop reloads its positions from the stored offsets (a failed commit may or may not have landed).
"""

from __future__ import annotations

import asyncio
import logging

from tally_infra.faults import Backoff
from tally_infra.logs.ports import METER_EVENTS, METER_EVENTS_DEAD, LocalLog

from .store import UsageProjector

log = logging.getLogger(__name__)


async def _start(log_: LocalLog, projector: UsageProjector) -> dict[int, int]:
    """Every partition's next offset: the projection's stored one, or 0."""
    return {p: 0 for p in range(log_.partitions)} | await projector.positions()


def with_dead_letter_topic(log_: LocalLog, projector: UsageProjector) -> UsageProjector:
    """Quarantined meter events also go to `meter-events.dead-letters` on this log."""
    if projector.sink is None:
        async def sink(items: list[tuple[bytes, bytes]]) -> None:
            await log_.append(METER_EVENTS_DEAD, items)

        projector.sink = sink
    return projector


async def run_postgres_aggregator(log_: LocalLog, projector: UsageProjector, *, batch: int = 5000,
                                  stop: asyncio.Event | None = None, idle_wait: float = 0.2) -> None:
    """Consume until `stop` is set. Positions come from the projection's own stored offsets."""
    stop = stop or asyncio.Event()
    with_dead_letter_topic(log_, projector)
    backoff = Backoff("usage aggregation", log)
    per_partition = max(1, batch // log_.partitions)
    positions: dict[int, int] | None = None
    while not stop.is_set():
        try:
            if positions is None:
                positions = await _start(log_, projector)
            records = await log_.read(METER_EVENTS, positions, per_partition)
            if not records:
                await log_.wait_for_appends(idle_wait)
                backoff.reset()
                continue
            await projector.apply(records)
            for r in records:
                positions[r.partition] = max(positions[r.partition], r.offset + 1)
            backoff.reset()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any outage; see the module docstring
            positions = None
            await backoff.wait(exc)


async def drain(log_: LocalLog, projector: UsageProjector, *, batch: int = 5000) -> int:
    """Apply everything in the log now; return how many records were new (used by replay and tests)."""
    with_dead_letter_topic(log_, projector)
    positions = await _start(log_, projector)
    total = 0
    async for records in log_.scan(METER_EVENTS, positions, batch):
        total += await projector.apply(records)
    return total
