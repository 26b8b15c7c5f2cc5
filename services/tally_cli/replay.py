"""Rebuilding projections from the log, with a progress bar."""

from __future__ import annotations

import asyncpg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tally_infra.catalog import project_catalog_record
from tally_infra.price_catalog import create_price_catalog_tables, project_price_catalog_record
from tally_infra.logs.ports import CATALOG, METER_EVENTS, EventLog
from tally_infra.usage_store import UsageProjector, truncate_usage
from tally_core.codec import decode


async def replay_usage(pool: asyncpg.Pool, log: EventLog, group_id: str, *, batch: int = 10_000,
                       progress: bool = False) -> int:
    """Truncate the usage projections and fold the whole meter-events log again; return records read."""
    async with pool.acquire() as conn:
        await truncate_usage(conn, group_id)
        await create_price_catalog_tables(conn)
        async for records in log.scan(CATALOG):
            for r in records:
                record = decode(r.value)
                if not await project_price_catalog_record(conn, record):
                    await project_catalog_record(conn, record)
    projector = UsageProjector(pool, group_id)
    total = sum((await log.end_offsets(METER_EVENTS)).values())
    done = 0
    with Progress(TextColumn("replay meter-events"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("replay", total=total)
        async for records in log.scan(METER_EVENTS, batch=batch):
            await projector.apply(records)
            done += len(records)
            bar.update(task, completed=done)
    return done
