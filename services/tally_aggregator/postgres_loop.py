"""The aggregator on the embedded log: read every partition from the stored offsets, apply, repeat."""

from __future__ import annotations

import asyncio
import logging

from tally_infra.logs.ports import METER_EVENTS
from tally_infra.logs.postgres_log import PostgresLog
from tally_infra.usage_store import UsageProjector

log = logging.getLogger(__name__)


async def _start(log_: PostgresLog, projector: UsageProjector) -> dict[int, int]:
    """Every partition's next offset: the projection's stored one, or 0."""
    return {p: 0 for p in range(log_.partitions)} | await projector.positions()


async def run_postgres_aggregator(log_: PostgresLog, projector: UsageProjector, *, batch: int = 5000,
                                  stop: asyncio.Event | None = None, idle_wait: float = 0.2) -> None:
    """Consume until `stop` is set. Positions come from the projection's own stored offsets."""
    stop = stop or asyncio.Event()
    positions = await _start(log_, projector)
    per_partition = max(1, batch // log_.partitions)
    while not stop.is_set():
        records = await log_.read(METER_EVENTS, positions, per_partition)
        if not records:
            await log_.wait_for_appends(idle_wait)
            continue
        await projector.apply(records)
        for r in records:
            positions[r.partition] = max(positions[r.partition], r.offset + 1)


async def drain(log_: PostgresLog, projector: UsageProjector, *, batch: int = 5000) -> int:
    """Apply everything in the log now; return how many records were new (used by replay and tests)."""
    positions = await _start(log_, projector)
    total = 0
    async for records in log_.scan(METER_EVENTS, positions, batch):
        total += await projector.apply(records)
    return total
