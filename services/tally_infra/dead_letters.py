"""Quarantined records: what a consumer could not process, kept so that nothing is silently dropped.

A consumer that meets a record it cannot process (invalid JSON, a value PostgreSQL refuses, a shape the fold
does not expect) writes it here, with the error, in the same transaction that moves its stored offset past
the record, and goes on with the rest of the partition. The row is the truth: visible (`tally dead-letters
list`), countable (`tally dead-letters count`) and replayable once the cause is fixed (`tally dead-letters
replay`). A replay applies a record and deletes its row in one transaction, so a record is applied once.

The aggregator also appends each quarantined meter event to the `meter-events.dead-letters` topic (key
`topic/partition/offset`, the original value), before that commit: a feed for tools that watch the log,
at least once (a crash between the two may repeat a record there, never in the table).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from .faults import is_retriable
from .logs.ports import LogRecord

log = logging.getLogger("tally.dead_letters")
MAX_ERROR = 2000  # characters of the error kept per row


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    error: str
    at_ms: int

    @property
    def record(self) -> LogRecord:
        return LogRecord(self.partition, self.offset, self.value)


def error_text(exc: BaseException) -> str:
    """`Type: message`, printable (control characters escaped, PostgreSQL takes no NUL) and bounded."""
    text = f"{type(exc).__name__}: {exc}"
    text = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return text[:MAX_ERROR]


def dead_letter_key(topic: str, record: LogRecord) -> bytes:
    """The key of a record on the dead-letter topic: where it came from."""
    return f"{topic}/{record.partition}/{record.offset}".encode()


async def quarantine(conn: asyncpg.Connection, consumer: str, topic: str,
                     failed: list[tuple[LogRecord, BaseException]], now_ms: int, *,
                     keys: dict[tuple[int, int], bytes] | None = None) -> None:
    """Insert a row per failed record (call inside the transaction that stores the consumer's offsets)."""
    if not failed:
        return
    rows = [(consumer, topic, r.partition, r.offset, (keys or {}).get((r.partition, r.offset)), bytes(r.value),
             error_text(exc), now_ms) for r, exc in failed]
    await conn.executemany(
        'insert into dead_letters (consumer, topic, partition, "offset", key, value, error, at_ms) '
        "values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (consumer, topic, partition, \"offset\") "
        "do update set error = excluded.error, at_ms = excluded.at_ms", rows)
    for r, exc in failed:
        log.error("%s quarantined %s partition %d offset %d: %s", consumer, topic, r.partition, r.offset,
                  error_text(exc))


def _row(r) -> DeadLetter:
    return DeadLetter(r[0], r[1], r[2], r[3], bytes(r[4]) if r[4] is not None else None, bytes(r[5]), r[6], r[7])


async def list_dead_letters(pool: asyncpg.Pool, *, consumer: str | None = None, topic: str | None = None,
                            limit: int = 100) -> list[DeadLetter]:
    """Quarantined records in log order (topic, partition, offset)."""
    rows = await pool.fetch(
        'select consumer, topic, partition, "offset", key, value, error, at_ms from dead_letters '
        "where ($1::text is null or consumer = $1) and ($2::text is null or topic = $2) "
        'order by consumer, topic, partition, "offset" limit $3', consumer, topic, limit)
    return [_row(r) for r in rows]


async def count_dead_letters(pool: asyncpg.Pool, *, consumer: str | None = None,
                             topic: str | None = None) -> dict[tuple[str, str], int]:
    """(consumer, topic) → how many records are quarantined."""
    rows = await pool.fetch(
        "select consumer, topic, count(*) from dead_letters "
        "where ($1::text is null or consumer = $1) and ($2::text is null or topic = $2) "
        "group by consumer, topic order by consumer, topic", consumer, topic)
    return {(r[0], r[1]): r[2] for r in rows}


ApplyOne = Callable[[asyncpg.Connection, DeadLetter], Awaitable[None]]


@dataclass
class ReplayOutcome:
    replayed: int = 0
    still_failing: int = 0


async def replay(pool: asyncpg.Pool, consumer: str, topic: str, apply_one: ApplyOne, *,
                 now_ms: int) -> ReplayOutcome:
    """Apply each quarantined record of (consumer, topic) again, in log order, one transaction each: the row
    is deleted in the transaction that applies it; a record that fails again keeps its row, with the new error.
    A retriable failure (the database went away) stops the replay and propagates."""
    outcome = ReplayOutcome()
    for letter in await list_dead_letters(pool, consumer=consumer, topic=topic, limit=2**31 - 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                deleted = await conn.fetchval(
                    'delete from dead_letters where consumer = $1 and topic = $2 and partition = $3 and "offset" = $4 '
                    "returning 1", consumer, topic, letter.partition, letter.offset)
                if deleted is None:  # replayed meanwhile by someone else
                    continue
                await apply_one(conn, letter)
            outcome.replayed += 1
        except Exception as exc:  # noqa: BLE001 - the record stays quarantined, with why
            if is_retriable(exc):
                raise
            await pool.execute(
                'update dead_letters set error = $5, at_ms = $6 where consumer = $1 and topic = $2 '
                'and partition = $3 and "offset" = $4',
                consumer, topic, letter.partition, letter.offset, error_text(exc), now_ms)
            outcome.still_failing += 1
    return outcome
