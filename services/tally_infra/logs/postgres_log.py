"""The embedded log: append-only rows in PostgreSQL, one ordered sequence per (topic, partition).

Appends from concurrent requests are group-committed: one transaction and one COPY per flush, so a
single-event POST costs a share of a commit rather than a whole one. A caller's `append` returns only after
its records are committed (durable).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque

import asyncpg

from .ports import LogRecord, partition_for

NOTIFY_CHANNEL = "tally_log"


class PostgresLog:
    def __init__(self, pool: asyncpg.Pool, partitions: int, *, max_flush: int = 20_000):
        self.pool = pool
        self.partitions = partitions
        self._max_flush = max_flush
        self._pending: deque[tuple[str, list[tuple[bytes, bytes]], asyncio.Future]] = deque()
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self._ensured: set[str] = set()
        self._listen_conn = None
        self._listen_lost = False
        self._listen_lock = asyncio.Lock()  # one listener for every waiter (wait_for_appends)
        self._appended = asyncio.Event()

    async def _ensure_heads(self, topic: str) -> None:
        if topic in self._ensured:
            return
        async with self.pool.acquire() as conn:
            await conn.executemany(
                "insert into log_heads (topic, partition) values ($1, $2) on conflict do nothing",
                [(topic, p) for p in range(self.partitions)],
            )
        self._ensured.add(topic)

    async def append(self, topic: str, items: list[tuple[bytes, bytes]]) -> None:
        if not items:
            return
        await self._ensure_heads(topic)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((topic, items, fut))
        self._wakeup.set()
        await fut

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, size = [], 0
                while self._pending and size < self._max_flush:
                    entry = self._pending.popleft()
                    batch.append(entry)
                    size += len(entry[1])
                try:
                    await self._write(batch)
                except BaseException as exc:
                    # Every caller of the batch sees the failure (a lost connection: retriable) and the loop goes
                    # on with the next batch. A failure at commit is ambiguous, the records may be in the log:
                    # consumers dedup by identifier, so the caller's retry cannot count twice.
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_result(None)

    async def _write(self, batch) -> None:
        grouped: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
        for topic, items, _ in batch:
            for key, value in items:
                grouped[(topic, partition_for(key, self.partitions))].append((key, value))
        async with self.pool.acquire() as conn, conn.transaction():
            # 1. Lock the partition heads in a fixed order (no deadlock between writers) and reserve offsets,
            #    all in one round trip.
            keys = sorted(grouped)
            ends = await conn.fetch(
                """with wanted as (select * from unnest($1::text[], $2::int[], $3::bigint[]) as w(topic, part, n)),
                        locked as (select h.topic, h.partition from log_heads h join wanted w
                                   on h.topic = w.topic and h.partition = w.part
                                   order by h.topic, h.partition for update)
                   update log_heads h set next_offset = h.next_offset + w.n
                   from wanted w, locked l
                   where h.topic = w.topic and h.partition = w.part and l.topic = h.topic and l.partition = h.partition
                   returning h.topic, h.partition, h.next_offset""",
                [t for t, _ in keys], [p for _, p in keys], [len(grouped[k]) for k in keys],
            )
            rows = []
            for topic, part, end in ends:
                items = grouped[(topic, part)]
                start = end - len(items)
                rows.extend((topic, part, start + i, k, v) for i, (k, v) in enumerate(items))
            # 2. Copy the rows; 3. commit releases the head locks, so offsets become visible in order.
            await conn.copy_records_to_table("log_records", records=rows, columns=("topic", "partition", "offset", "key", "value"))
            await conn.execute("select pg_notify($1, '')", NOTIFY_CHANNEL)

    async def end_offsets(self, topic: str) -> dict[int, int]:
        await self._ensure_heads(topic)
        rows = await self.pool.fetch("select partition, next_offset from log_heads where topic = $1", topic)
        return {r["partition"]: r["next_offset"] for r in rows}

    async def read(self, topic: str, positions: dict[int, int], limit: int) -> list[LogRecord]:
        """Up to `limit` records per partition from each partition's next offset."""
        parts, offs = list(positions), [positions[p] for p in positions]
        rows = await self.pool.fetch(
            """select r.partition, r."offset", r.value
               from unnest($2::int[], $3::bigint[]) as p(part, off)
               cross join lateral (
                 select partition, "offset", value from log_records
                 where topic = $1 and partition = p.part and "offset" >= p.off
                 order by "offset" limit $4) r""",
            topic, parts, offs, limit,
        )
        return [LogRecord(r[0], r[1], r[2]) for r in rows]

    async def scan(self, topic: str, start: dict[int, int] | None = None, batch: int = 10_000):
        ends = await self.end_offsets(topic)
        positions = {p: (start or {}).get(p, 0) for p in ends}
        per_part = max(1, batch // max(1, len(ends)))
        while any(positions[p] < ends[p] for p in ends):
            todo = {p: positions[p] for p in ends if positions[p] < ends[p]}
            todo = dict(list(todo.items())[:max(1, batch)])  # batch < partitions: fewer partitions per read
            records = [r for r in await self.read(topic, todo, per_part) if r.offset < ends[r.partition]]
            for r in records:
                positions[r.partition] = max(positions[r.partition], r.offset + 1)
            yield records

    def partition_of(self, key: bytes) -> int:
        return partition_for(key, self.partitions)

    async def poll(self, topic: str, positions: dict[int, int], limit: int, timeout: float) -> list[LogRecord]:
        records = await self.read(topic, positions, limit)
        if not records and timeout > 0:
            await self.wait_for_appends(timeout)
            records = await self.read(topic, positions, limit)
        return records

    async def wait_for_appends(self, timeout: float) -> None:
        """Sleep until something is appended (LISTEN/NOTIFY on one held connection) or the timeout passes.

        The held connection dies with the server; it is then given back and LISTEN starts again on a fresh one
        (raising while the server is still down, like any other read). Nothing is missed meanwhile: callers
        read before they wait."""
        # The aggregator loop and the billing worker's poll wait on one log at once: without the lock both would
        # open a listener, and the one overwritten would hold its pool connection forever (and `pool.close()`
        # wait for it: a process that never stops).
        async with self._listen_lock:
            if self._listen_conn is not None and self._listener_dead():
                await self._drop_listener()
            if self._listen_conn is None:
                conn = await self.pool.acquire()
                try:
                    await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                    conn.add_termination_listener(self._on_listener_lost)
                except BaseException:
                    await self.pool.release(conn)
                    raise
                self._listen_conn = conn
        try:
            await asyncio.wait_for(self._appended.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._appended.clear()

    def _on_notify(self, *_args) -> None:
        self._appended.set()

    def _on_listener_lost(self, *_args) -> None:
        self._listen_lost = True
        self._appended.set()  # wake the waiter: its next read meets the loss (or the server is back)

    def _listener_dead(self) -> bool:
        if self._listen_lost:
            return True
        try:
            return self._listen_conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took the dead connection back already (its proxy is detached)
            return True

    async def _drop_listener(self) -> None:
        dead = self._listen_conn is not None and self._listener_dead()
        conn, self._listen_conn, self._listen_lost = self._listen_conn, None, False
        if conn is None:
            return
        try:
            if not dead:
                await conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
        finally:
            await self.pool.release(conn)  # a no-op for a dead one: the pool reclaimed it and will reconnect

    async def ping(self) -> None:
        """Raises if the log's tables cannot be read now (readiness)."""
        await self.pool.fetchval("select 1 from log_heads limit 1")

    async def close(self) -> None:
        if self._flusher:
            self._flusher.cancel()
        # Appends still queued would otherwise wait forever on a flusher that is gone.
        while self._pending:
            _, _, fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(ConnectionAbortedError("the log was closed before this append was written"))
        async with self._listen_lock:
            await self._drop_listener()
