"""What every log backend offers: durable keyed appends, and reading a topic from an offset."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

METER_EVENTS = "meter-events"
CATALOG = "catalog"
BILLING_COMMANDS = "billing-commands"
BILLING_EVENTS = "billing-events"
# Meter events the aggregator could not fold (tally_infra/dead_letters.py): a feed for operators' tools.
METER_EVENTS_DEAD = "meter-events.dead-letters"
TOPICS = (METER_EVENTS, CATALOG, BILLING_COMMANDS, BILLING_EVENTS, METER_EVENTS_DEAD)


class LogRecord(NamedTuple):
    partition: int
    offset: int
    value: bytes


class EventLog(Protocol):
    partitions: int

    async def append(self, topic: str, items: list[tuple[bytes, bytes]]) -> None:
        """Append (key, value) pairs; when this returns every record is durable and will be read."""

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset each partition will be given (records before it exist)."""

    def scan(self, topic: str, start: dict[int, int] | None = None, batch: int = 10_000) -> AsyncIterator[list[LogRecord]]:
        """Read the topic from `start` (default: the beginning) up to the end offsets seen at call time."""

    def partition_of(self, key: bytes) -> int:
        """The partition `append` puts a key on (billing-commands and billing-events agree per key)."""

    async def poll(self, topic: str, positions: dict[int, int], limit: int, timeout: float) -> list[LogRecord]:
        """Records from `positions` on (up to `limit` per partition), waiting up to `timeout` s for any."""

    async def ping(self) -> None:
        """Raise if the backend cannot be reached now (readiness)."""

    async def close(self) -> None: ...


class LocalLog(EventLog, Protocol):
    """A log this process can read directly (the Postgres log, the in-memory log): what the aggregator's
    polling loop uses instead of a Kafka consumer group."""

    async def read(self, topic: str, positions: dict[int, int], limit: int) -> list[LogRecord]:
        """Records from `positions` on, up to `limit` per partition, without waiting."""

    async def wait_for_appends(self, timeout: float) -> None:
        """Return when something may have been appended, or after `timeout` s."""


def partition_for(key: bytes, partitions: int) -> int:
    """Stable key → partition map for the Postgres log (Kafka uses its own murmur2 partitioner)."""
    return zlib.crc32(key) % partitions
