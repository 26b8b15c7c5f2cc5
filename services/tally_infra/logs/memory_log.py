"""The in-memory log: plain Python lists, one per (topic, partition), for tests and single-process tools.

Same contract as the PostgreSQL and Kafka logs (tests/tally_infra/test_log_contract.py runs one suite on all
three): offsets from 0 per partition, keys placed with the Postgres log's `partition_for`, `scan` up to the
ends seen when it starts, `poll` waiting for an append. An append writes all its records before it first
yields to the event loop, so concurrent appends never interleave inside one partition, and nothing is lost
or doubled. "Durable" means for the life of the object: a worker started again over the same `MemoryLog`
(a crash test) reads everything appended before, and `close` keeps the records for that reason.

It also offers `read` and `wait_for_appends`, the two methods beyond the port that the aggregator's loop on
the embedded log calls (tally_aggregator/postgres_loop.py), so that loop runs on it unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .ports import LogRecord, partition_for


class MemoryLog:
    def __init__(self, partitions: int):
        self.partitions = partitions
        self._topics: dict[str, list[list[bytes]]] = {}  # topic → partition → values in offset order
        self._appends = 0  # how many appends so far: what `wait_for_appends` waits to see move
        self._changed: asyncio.Condition | None = None  # made on first use, inside the running loop

    def _partitions_of(self, topic: str) -> list[list[bytes]]:
        if topic not in self._topics:
            self._topics[topic] = [[] for _ in range(self.partitions)]
        return self._topics[topic]

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def append(self, topic: str, items: list[tuple[bytes, bytes]]) -> None:
        if not items:
            return
        parts = self._partitions_of(topic)
        # Written before the first await: the whole append lands at once, contiguous in each partition.
        for key, value in items:
            parts[partition_for(key, self.partitions)].append(bytes(value))
        self._appends += 1
        changed = self._condition()
        async with changed:
            changed.notify_all()

    async def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: len(records) for p, records in enumerate(self._partitions_of(topic))}

    async def read(self, topic: str, positions: dict[int, int], limit: int) -> list[LogRecord]:
        """Up to `limit` records per partition from each partition's next offset (as `PostgresLog.read`)."""
        parts = self._partitions_of(topic)
        out: list[LogRecord] = []
        for p, start in positions.items():
            if 0 <= p < self.partitions:
                start = max(start, 0)
                out.extend(LogRecord(p, start + i, v) for i, v in enumerate(parts[p][start:start + limit]))
        return out

    async def scan(self, topic: str, start: dict[int, int] | None = None, batch: int = 10_000):
        ends = await self.end_offsets(topic)
        positions = {p: max((start or {}).get(p, 0), 0) for p in ends}
        parts = self._partitions_of(topic)
        while True:
            todo = [p for p in ends if positions[p] < ends[p]]
            if not todo:
                return
            # Every partition with records left gets a share of the batch, so a batch mixes partitions as the
            # other backends' batches do, and never holds more than `batch` records.
            room, out = max(1, batch), []
            share = max(1, room // len(todo))
            for p in todo:
                take = min(share, room - len(out), ends[p] - positions[p])
                if take <= 0:
                    break
                at = positions[p]
                out.extend(LogRecord(p, at + i, v) for i, v in enumerate(parts[p][at:at + take]))
                positions[p] = at + take
            yield out

    def partition_of(self, key: bytes) -> int:
        return partition_for(key, self.partitions)

    async def poll(self, topic: str, positions: dict[int, int], limit: int, timeout: float) -> list[LogRecord]:
        records = await self.read(topic, positions, limit)
        if records or timeout <= 0:
            return records
        parts = self._partitions_of(topic)

        def arrived() -> bool:
            return any(0 <= p < self.partitions and len(parts[p]) > off for p, off in positions.items())

        await self._wait(arrived, timeout)
        return await self.read(topic, positions, limit)

    async def wait_for_appends(self, timeout: float) -> None:
        """Sleep until the next append to any topic, or until the timeout passes (as `PostgresLog`'s)."""
        seen = self._appends
        await self._wait(lambda: self._appends != seen, timeout)

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        changed = self._condition()
        try:
            async with changed:
                await asyncio.wait_for(changed.wait_for(predicate), timeout)
        except asyncio.TimeoutError:
            pass

    async def ping(self) -> None:
        """Always ready: there is nothing to reach (readiness)."""

    async def close(self) -> None:
        """Nothing to release. The records stay: a worker started again over this object must find them."""
