"""The ingest pipeline without HTTP: validate, report duplicates early, append durably, remember identifiers."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from tally_aggregator import usage
from tally_billing.clock_times import ClockTimes
from tally_catalog.catalog import Catalog
from tally_core.codec import encode
from tally_core.errors import ApiError, InvalidRequest
from tally_core.meter_events import DEDUP_WINDOW_MS, partition_key, validate_cancel, validate_event
from tally_infra.logs.ports import METER_EVENTS, EventLog


@dataclass
class BatchResult:
    accepted: list[dict] = field(default_factory=list)
    errors: list[tuple[int, ApiError]] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)


def duplicate_error(identifier: str) -> InvalidRequest:
    return InvalidRequest(f"An event already exists with identifier {identifier}.", param="identifier",
                          code="duplicate_meter_event")


class Ingestor:
    """Identifiers seen in the last 24 h are kept (bounded) so duplicates are reported synchronously; the
    aggregator's dedup from the log is what guarantees nothing is counted twice."""

    def __init__(self, log: EventLog, catalog: Catalog, pool: asyncpg.Pool, *,
                 cache_size: int = 2_000_000, clock: Callable[[], float] = time.time,
                 clock_times: ClockTimes | None = None):
        self.log = log
        self.catalog = catalog
        self.pool = pool
        self.clock = clock
        self.clock_times = clock_times  # test clocks: a customer's "now" for timestamps and the window
        self._seen: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
        self._cache_size = cache_size

    async def warm(self) -> None:
        """Load the last 24 h of aggregated identifiers so a restart still reports duplicates."""
        since = int(self.clock() * 1000) - DEDUP_WINDOW_MS
        for account, identifier, customer, received in await usage.recent_identifiers(self.pool, since,
                                                                                      self._cache_size):
            self._seen[(account, identifier)] = (customer, received)

    def _is_duplicate(self, account: str, identifier: str, now_ms: int) -> bool:
        hit = self._seen.get((account, identifier))
        return hit is not None and hit[1] >= now_ms - DEDUP_WINDOW_MS

    async def record(self, account: str, events: list[dict], *, prefix: str | None = None,
                     default_identifiers: list[str] | None = None) -> BatchResult:
        """Validate every event, append the good ones in one durable write, report the rest by index."""
        now = self.clock()
        now_s, now_ms = int(now), int(now * 1000)
        result = BatchResult()
        lookup = lambda name: self.catalog.meter_by_event_name(account, name)  # noqa: E731
        clock_times = self.clock_times
        customer_now = (lambda c: clock_times.now_for(account, c)) if clock_times is not None else None
        batch_ids: set[str] = set()
        for i, raw in enumerate(events):
            try:
                record = validate_event(
                    raw, account=account, meters=lookup, now_s=now_s, received_ms=now_ms,
                    default_identifier=(default_identifiers[i] if default_identifiers else None)
                    or ("" if isinstance(raw, dict) and raw.get("identifier") else uuid.uuid4().hex),
                    prefix=f"{prefix}[{i}]" if prefix is not None else "",
                    customer_now=customer_now,
                )
            except ApiError as err:
                result.errors.append((i, err))
                continue
            ident = record["identifier"]
            if ident in batch_ids or self._is_duplicate(account, ident, now_ms):
                result.duplicates.append((i, ident))
                continue
            batch_ids.add(ident)
            result.accepted.append(record)
        if result.accepted:
            # Mark before the write so a concurrent request with the same identifier is reported too.
            for r in result.accepted:
                self._remember(account, r["identifier"], r["customer"], now_ms)
            try:
                await self.log.append(METER_EVENTS, [(partition_key(r), encode(r)) for r in result.accepted])
            except BaseException:
                for r in result.accepted:
                    self._seen.pop((account, r["identifier"]), None)
                raise
        return result

    def _remember(self, account: str, identifier: str, customer: str, received_ms: int) -> None:
        self._seen[(account, identifier)] = (customer, received_ms)
        self._seen.move_to_end((account, identifier))
        if len(self._seen) > self._cache_size:
            self._seen.popitem(last=False)

    async def cancel(self, account: str, raw: dict) -> dict:
        """Append a cancellation for an event received within 24 h; it lands on that event's partition."""
        now_ms = int(self.clock() * 1000)
        cancel = raw.get("cancel")
        identifier = cancel.get("identifier") if isinstance(cancel, dict) else None
        if not isinstance(identifier, str):
            identifier = None  # not looked up: validate_cancel refuses it, naming cancel[identifier]
        found = self._seen.get((account, identifier)) if identifier else None
        if found is None and identifier:
            found = await usage.locate_event(self.pool, account, identifier)
        record = validate_cancel(
            raw, account=account, meters=lambda name: self.catalog.meter_by_event_name(account, name),
            locate=lambda _ident: found, received_ms=now_ms,
        )
        await self.log.append(METER_EVENTS, [(partition_key(record), encode(record))])
        return record
