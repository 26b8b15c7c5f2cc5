"""The billing worker: reads `billing-commands`, decides (pure `Ledger`), appends `billing-events`, projects.

Exactly once: events are appended first, then projections, command results and both topics' positions commit
in one transaction. If a crash falls between the two, start-up finds events past the stored position of
`billing-events`, projects them and skips the commands they came from (ids are deterministic, so nothing
is doubled). The worker is the only writer of `billing-events`, so it knows each event's offset.

Usage: a decision reads usage through a cache; a first pass collects what is missing, the worker waits for
the aggregator to reach the end of `meter-events`, fetches everything missing in one query, and decides again.
Time: the worker also appends the ticks (`tick` commands, one per partition) when a book off a test clock
has something due; it decides on them only when it reads them back from the log.

Poison: a command that cannot be decided is refused on its own (`Ledger`, `tally.command_failed`); a record
that is not a command at all, and an event that cannot be projected, are quarantined (`dead_letters`) in
the transaction that moves the positions past them. Anything else that fails a batch (PostgreSQL or the log
going away) is waited out with capped backoff, and the worker starts over from what was committed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

import asyncpg
import orjson

from tally_aggregator import usage as usage_port
from tally_catalog.catalog import Catalog
from tally_core.billing.book import USAGE_OBSERVED, Book, apply
from tally_core.billing.decide import DEFAULT_GRACE, usage_needs
from tally_core.billing.ledger import COMMAND_FAILED, BadCommand, Ledger, decode_command
from tally_core.codec import _default, encode
from tally_infra.dead_letters import quarantine
from tally_infra.faults import Backoff
from tally_infra.logs.ports import BILLING_COMMANDS, BILLING_EVENTS, EventLog, LogRecord

from .store import load_books, load_stuck, project_isolating, save_results

log = logging.getLogger("tally.billing")
GROUP = "tally-billing"
ResultCallback = Callable[[str, int, bytes], None]


def tick_keys(log_: EventLog) -> dict[int, bytes]:
    """One key per partition for tick records (a tick reaches the books of its partition)."""
    keys: dict[int, bytes] = {}
    i = 0
    while len(keys) < log_.partitions:
        key = f"tick:{i}".encode()
        keys.setdefault(log_.partition_of(key), key)
        i += 1
    return keys


class BillingWorker:
    def __init__(self, pool: asyncpg.Pool, log_: EventLog, catalog: Catalog, *, aggregator_group: str,
                 grace: int = DEFAULT_GRACE, clock: Callable[[], float] = time.time, batch: int = 1000,
                 usage_wait: float = 10.0, on_result: ResultCallback | None = None):
        self.pool, self.log, self.catalog = pool, log_, catalog
        self.aggregator_group = aggregator_group
        self.grace, self.clock, self.batch, self.usage_wait = grace, clock, batch, usage_wait
        self.on_result = on_result
        self.ledger = Ledger()
        self.positions: dict[int, int] = {}
        self.event_ends: dict[int, int] = {}
        self._ticks = tick_keys(log_)
        self._tick_pending: dict[int, int] = {}  # partition → `at` of a tick appended but not read back yet

    # --- start-up --------------------------------------------------------------------------------------------

    async def start(self) -> "BillingWorker":
        stored = await self._stored_positions()
        self.positions = {p: stored.get((BILLING_COMMANDS, p), 0) for p in range(self.log.partitions)}
        self.event_ends = {p: stored.get((BILLING_EVENTS, p), 0) for p in range(self.log.partitions)}
        for key, book in (await load_books(self.pool)).items():
            self.ledger.put(book, self.log.partition_of(key.encode()))
        for key, retry_at in (await load_stuck(self.pool)).items():
            self.ledger.set_stuck(key, retry_at)
        await self._recover()
        return self

    async def _stored_positions(self) -> dict[tuple[str, int], int]:
        rows = await self.pool.fetch(
            "select topic, partition, next_offset from consumer_offsets where group_id = $1", GROUP)
        return {(r[0], r[1]): r[2] for r in rows}

    async def _recover(self) -> None:
        """Project events appended before a crash that the projections never saw, and record the answers of the
        commands they came from (a client retrying with its Idempotency-Key waits for them)."""
        ends = await self.log.end_offsets(BILLING_EVENTS)
        if all(ends.get(p, 0) <= self.event_ends[p] for p in self.event_ends):
            return
        records = []
        async for batch in self.log.scan(BILLING_EVENTS, start=dict(self.event_ends)):
            records.extend(batch)
        records.sort(key=lambda r: (r.partition, r.offset))
        results, bad_commands = await self._redecide_lost_batch(records)
        rows, bad = [], []
        for r in records:
            self.event_ends[r.partition] = max(self.event_ends[r.partition], r.offset + 1)
            try:
                event = orjson.loads(r.value)
                self._replay_event(r.partition, event)
            except Exception as exc:  # noqa: BLE001 - only this worker writes billing-events; keep it visible
                bad.append((r, exc))
                continue
            rows.append((r.partition, r.offset, event))
        async with self.pool.acquire() as conn, conn.transaction():
            now_ms = int(self.clock() * 1000)
            await project_isolating(conn, rows, consumer=GROUP, now_ms=now_ms)
            await quarantine(conn, GROUP, BILLING_EVENTS, bad, now_ms)
            await quarantine(conn, GROUP, BILLING_COMMANDS, bad_commands, now_ms)
            await save_results(conn, [(cid, status, orjson.dumps(body, default=_default), now_ms)
                                      for cid, status, body in results])
            await self._save_positions(conn, self.positions, self.event_ends)
        log.warning("recovered %d billing events appended before a crash (%d command results)", len(rows),
                    len(results))

    async def _redecide_lost_batch(self, records: list[LogRecord]) -> tuple[list, list]:
        """The results of the commands whose events outlived their commit: decided again from the committed
        ledger with the usage the events recorded. Deciding is deterministic, so the events come out the same;
        if they do not (a record we cannot read, a different build), the events are still projected, and only
        the answers are lost (logged)."""
        last: dict[int, int] = {}
        usage: dict[tuple, Decimal] = {}
        try:
            for r in records:
                event = orjson.loads(r.value)
                cp, co = event["command_offset"]
                last[cp] = max(last.get(cp, -1), co)
                if event["type"] == USAGE_OBSERVED:
                    o = event["data"]["object"]
                    usage[(event["account"], o["meter"], o["customer"], o["start"], o["end"])] = Decimal(o["value"])
        except Exception:  # noqa: BLE001 - the replay below quarantines what it cannot read
            log.warning("billing events after the committed position are unreadable; their answers are lost")
            return [], []
        start = {p: self.positions[p] for p in last}
        commands, bad = [], []
        async for batch in self.log.scan(BILLING_COMMANDS, start=start):
            for r in batch:
                if r.offset > last.get(r.partition, -1):
                    continue
                try:
                    commands.append((r.partition, r.offset, decode_command(r.value, r.partition,
                                                                           self.log.partition_of)))
                except BadCommand as exc:
                    bad.append((r, exc))
        commands.sort(key=lambda c: (c[0], c[1]))
        (_, events, results), missing = self._decide(commands, usage)
        again = []
        for partition, offset, event in events:
            event["command_offset"] = [partition, offset]
            again.append(encode(event))
        if missing or again != [r.value for r in records]:
            log.error("re-deciding the %d commands of a lost commit gave other events; their answers are lost",
                      len(commands))
            return [], bad
        return results, bad

    def _replay_event(self, partition: int, event: dict) -> None:
        """The ledger after a logged event, as deciding it left the ledger (see `Ledger`)."""
        cp, co = event["command_offset"]
        key = event["key"]
        if event["type"] == COMMAND_FAILED:
            retry_at = event["data"]["object"].get("retry_at")
            if retry_at is not None and key in self.ledger.books:
                self.ledger.set_stuck(key, retry_at)
        elif event["type"] != USAGE_OBSERVED:
            book = self.ledger.books.get(key) or Book(event["account"], key)
            book = apply(book, event)
            self.ledger.stuck.pop(key, None)
            self.ledger.put(book, partition)
        self.positions[cp] = max(self.positions[cp], co + 1)

    # --- the loop --------------------------------------------------------------------------------------------

    async def run(self, tick_every: float = 1.0) -> None:
        ticker = asyncio.create_task(self._tick_loop(tick_every))
        backoff = Backoff("billing batch", log)
        reload = False
        try:
            while True:
                try:
                    if reload:  # start over from what was committed (see _recover)
                        self.ledger = Ledger()
                        await self.start()
                        reload = False
                    await self.step(timeout=0.5)
                    backoff.reset()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the worker must outlive any outage
                    reload = True
                    await backoff.wait(exc)
        finally:
            ticker.cancel()

    async def step(self, timeout: float = 0.0) -> int:
        records = await self.log.poll(BILLING_COMMANDS, dict(self.positions), self.batch, timeout)
        if records:
            await self.process(sorted(records, key=lambda r: (r.partition, r.offset)))
        return len(records)

    async def drain(self) -> None:
        """Process everything appended so far (tests and benchmarks)."""
        ends = await self.log.end_offsets(BILLING_COMMANDS)
        while any(self.positions[p] < ends.get(p, 0) for p in self.positions):
            await self.step(timeout=0.05)

    async def process(self, records) -> None:
        commands, bad = [], []
        for r in records:
            try:
                commands.append((r.partition, r.offset, decode_command(r.value, r.partition, self.log.partition_of)))
            except BadCommand as exc:
                bad.append((r, exc))
        # Read afresh for every batch: late usage must reach the next read of the same period.
        usage: dict[tuple, Decimal] = {}
        gc.disable()  # the books are long-lived and many: full collections mid-batch would walk them all
        try:
            expected = self._expected_usage(commands)
            if expected:
                await self._fetch_usage(expected, usage)
            for _ in range(10):
                trial, missing = self._decide(commands, usage)
                if not missing:
                    break
                await self._fetch_usage(missing, usage)
            else:
                raise RuntimeError("usage needed by the decisions kept changing")
            await self._commit(records, commands, bad, *trial)
        finally:
            gc.enable()

    def _expected_usage(self, commands) -> set[tuple]:
        """Usage the ticks in this batch will read, so one decision pass usually suffices."""
        keys = set()
        for partition, _, command in commands:
            if command["type"] == "tick":
                for key in self.ledger.due_in(partition, command["at"]):
                    book = self.ledger.books[key]
                    try:
                        keys.update((book.account, *need) for need in usage_needs(book, command["at"]))
                    except Exception:  # noqa: BLE001 - only a prefetch: deciding the book will report it
                        log.debug("usage needs of %s failed", key, exc_info=True)
        return keys

    async def _commit(self, records: list[LogRecord], commands, bad: list[tuple[LogRecord, Exception]],
                      ledger: Ledger, events, results) -> None:
        """Append the events, then commit projections, results and positions; only then take the new state."""
        ends, positions, rows = dict(self.event_ends), dict(self.positions), []
        for partition, offset, event in events:
            event["command_offset"] = [partition, offset]
            rows.append((partition, ends[partition], event))
            ends[partition] += 1
        if rows:
            await self.log.append(BILLING_EVENTS, [(e["key"].encode(), encode(e)) for _, _, e in rows])
        for r in records:
            positions[r.partition] = max(positions[r.partition], r.offset + 1)
        now_ms = int(self.clock() * 1000)
        bodies = [(cid, status, orjson.dumps(body, default=_default), now_ms) for cid, status, body in results]
        async with self.pool.acquire() as conn, conn.transaction():
            await project_isolating(conn, rows, consumer=GROUP, now_ms=now_ms)
            await quarantine(conn, GROUP, BILLING_COMMANDS, bad, now_ms)
            await save_results(conn, bodies)
            await self._save_positions(conn, positions, ends)
        for event in (e for _, _, e in rows if e["type"] == COMMAND_FAILED):
            o = event["data"]["object"]
            log.error("billing command %s could not be decided for %s: %s", o["command"], o["book"], o["error"])
        self.ledger, self.positions, self.event_ends = ledger, positions, ends
        for partition, _, command in commands:
            if command["type"] == "tick" and self._tick_pending.get(partition) == command["at"]:
                del self._tick_pending[partition]
        if self.on_result:
            for cid, status, body, _ in bodies:
                self.on_result(cid, status, body)

    def _decide(self, commands, known: dict[tuple, Decimal]):
        """One pass over the batch on a copy of the ledger; returns (outcome, usage keys it lacked)."""
        ledger = self.ledger.copy()
        missing: set[tuple] = set()
        events, results = [], []

        def usage(account, meter, customer, start, end):
            key = (account, meter, customer, start, end)
            if key not in known:
                missing.add(key)
                return Decimal(0)
            return known[key]

        for partition, offset, command in commands:
            evs, result = ledger.handle(partition, command, usage)
            events += [(partition, offset, e) for e in evs]
            if result is not None:
                results.append((command["id"], result[0], result[1]))
        return (ledger, events, results), missing

    async def _fetch_usage(self, missing: set[tuple], into: dict[tuple, Decimal]) -> None:
        await self._wait_for_aggregator()
        into.update(await usage_port.period_usage(self.pool, self.catalog.meter, missing))

    async def _wait_for_aggregator(self) -> None:
        """Usage is read only once the aggregator has applied every meter event appended so far."""
        if not await usage_port.caught_up(self.pool, self.log, self.aggregator_group, timeout=self.usage_wait):
            log.warning("aggregator behind meter-events after %.0f s; deciding on the usage projected so far",
                        self.usage_wait)

    @staticmethod
    async def _save_positions(conn, positions: dict[int, int], event_ends: dict[int, int]) -> None:
        rows = [(GROUP, BILLING_COMMANDS, p, o) for p, o in positions.items()]
        rows += [(GROUP, BILLING_EVENTS, p, o) for p, o in event_ends.items()]
        await conn.executemany(
            "insert into consumer_offsets values ($1, $2, $3, $4) on conflict (group_id, topic, partition) "
            "do update set next_offset = excluded.next_offset", rows)

    # --- time ------------------------------------------------------------------------------------------------

    async def _tick_loop(self, every: float) -> None:
        backoff = Backoff("appending ticks", log)
        while True:
            await asyncio.sleep(every)
            try:
                await self.tick()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next round retries
                await backoff.wait(exc)

    async def tick(self, at: int | None = None) -> int:
        """Append a tick for every partition with a book due by `at` (default: now). Returns how many."""
        at = int(self.clock()) if at is None else at
        parts = sorted({self.ledger.partition[k] for k, when in self.ledger.due.items() if when <= at}
                       - set(self._tick_pending))
        if not parts:
            return 0
        records = []
        for p in parts:
            cmd = {"id": f"cmd_tick_{uuid.uuid4().hex}", "type": "tick", "version": 1, "account": None,
                   "key": self._ticks[p].decode(), "at": at, "grace": self.grace}
            records.append((self._ticks[p], encode(cmd)))
        await self.log.append(BILLING_COMMANDS, records)
        # Only once appended: a failed append would otherwise leave the partition waiting for a tick forever.
        for p in parts:
            self._tick_pending[p] = at
        return len(records)
