"""Rebuilding projections from the log, with a progress bar."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tally_aggregator.postgres_loop import with_dead_letter_topic
from tally_aggregator.store import UsageProjector, truncate_usage
from tally_billing.store import project_isolating, truncate_billing
from tally_catalog import records as catalog_records
from tally_core.billing.book import USAGE_OBSERVED
from tally_core.billing.ledger import BadCommand, Ledger, decode_command
from tally_core.codec import decode, encode
from tally_infra.logs.ports import BILLING_COMMANDS, BILLING_EVENTS, CATALOG, METER_EVENTS, EventLog


async def replay_usage(pool: asyncpg.Pool, log: EventLog, group_id: str, *, batch: int = 10_000,
                       progress: bool = False) -> int:
    """Truncate the usage projections and fold the whole meter-events log again; return records read."""
    async with pool.acquire() as conn:
        await truncate_usage(conn, group_id)
        async for records in log.scan(CATALOG):
            for r in records:
                await catalog_records.project(conn, decode(r.value))
    # Records quarantined again by the rebuild reach the dead-letter topic too, as in the live loop.
    projector = with_dead_letter_topic(log, UsageProjector(pool, group_id))
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


def _bar(label: str, progress: bool) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress)


async def replay_billing(pool: asyncpg.Pool, log: EventLog, *, batch: int = 10_000, progress: bool = False) -> int:
    """Truncate the billing projections and project the whole billing-events log again (nothing is decided)."""
    async with pool.acquire() as conn:
        await truncate_billing(conn)
    total, done = sum((await log.end_offsets(BILLING_EVENTS)).values()), 0
    with _bar("replay billing-events", progress) as bar:
        task = bar.add_task("replay", total=total)
        async for records in log.scan(BILLING_EVENTS, batch=batch):
            rows = [(r.partition, r.offset, decode(r.value)) for r in records]
            async with pool.acquire() as conn, conn.transaction():
                # The live worker's consumer name: an event it quarantined is quarantined again, not fatal.
                await project_isolating(conn, rows, consumer="tally-billing", now_ms=int(time.time() * 1000))
            done += len(rows)
            bar.update(task, completed=done)
    return done


@dataclass
class Redecision:
    commands: int
    events: int
    scratch_topic: str
    first_difference: str | None  # None: the re-decided events equal billing-events, record for record


async def redecide_billing(log: EventLog, *, scratch_topic: str, progress: bool = False) -> Redecision:
    """Decide every billing command again into `scratch_topic` and compare it with billing-events.

    Usage comes from the values the live decisions recorded (`tally.usage_observed`): the check is that the
    decisions are a pure function of the commands and what they read."""
    original: dict[int, list[bytes]] = {}
    observed: dict[tuple, Decimal] = {}
    async for records in log.scan(BILLING_EVENTS):
        for r in records:
            original.setdefault(r.partition, []).append(r.value)
            event = decode(r.value)
            if event["type"] == USAGE_OBSERVED:
                o = event["data"]["object"]
                key = (event["command"], event["account"], o["meter"], o["customer"], o["start"], o["end"])
                observed[key] = Decimal(o["value"])

    current = [""]  # the command being re-decided: a period read again later may have grown since

    def usage(account, meter, customer, start, end):
        key = (current[0], account, meter, customer, start, end)
        if key not in observed:
            raise LookupError(f"re-deciding read usage the live run never read: {key}")
        return observed[key]

    ledger, produced, commands = Ledger(), {}, 0
    total = sum((await log.end_offsets(BILLING_COMMANDS)).values())
    with _bar("re-decide billing-commands", progress) as bar:
        task = bar.add_task("redecide", total=total)
        async for records in log.scan(BILLING_COMMANDS):
            out = []
            for r in sorted(records, key=lambda r: (r.partition, r.offset)):
                try:
                    command = decode_command(r.value, r.partition, log.partition_of)
                except BadCommand:  # the live worker quarantined it and decided nothing
                    continue
                current[0] = command["id"]
                events, _ = ledger.handle(r.partition, command, usage)
                for e in events:
                    e["command_offset"] = [r.partition, r.offset]
                    value = encode(e)
                    produced.setdefault(r.partition, []).append(value)
                    out.append((e["key"].encode(), value))
            if out:
                await log.append(scratch_topic, out)
            commands += len(records)
            bar.update(task, completed=commands)
    return Redecision(commands, sum(map(len, produced.values())), scratch_topic, _first_difference(original, produced))


def _first_difference(original: dict[int, list[bytes]], produced: dict[int, list[bytes]]) -> str | None:
    for p in sorted(set(original) | set(produced)):
        a, b = original.get(p, []), produced.get(p, [])
        for i, (x, y) in enumerate(zip(a, b)):
            if decode(x) != decode(y):
                return f"partition {p} record {i}: logged {x[:300]!r} but re-decided {y[:300]!r}"
        if len(a) != len(b):
            return f"partition {p}: {len(a)} events logged, {len(b)} re-decided"
    return None
