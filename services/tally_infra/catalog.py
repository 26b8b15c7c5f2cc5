"""The meter catalog: account-wide records on the `catalog` log, projected into `meters`, cached in memory.

Every change is first appended to the log as a Stripe-shaped event (`billing.meter.created`, ...) carrying
the whole object, then written to the projection; a rebuild replays those events.
"""

from __future__ import annotations

import asyncpg
import orjson

from tally_core.codec import encode
from tally_core.meters import Meter

from .logs.ports import CATALOG, EventLog

CATALOG_VERSION = 1


def catalog_record(event_type: str, meter: Meter, event_id: str) -> dict:
    return {"type": event_type, "version": CATALOG_VERSION, "id": event_id, "account": meter.account,
            "created": meter.updated, "object": meter.to_stripe()}


async def project_catalog_record(conn, record: dict) -> None:
    """Upsert the meter a catalog record carries (idempotent: the record holds the absolute state)."""
    obj = record["object"]
    await conn.execute(
        "insert into meters (account, id, event_name, status, created, data) values ($1, $2, $3, $4, $5, $6) "
        "on conflict (account, id) do update set status = excluded.status, data = excluded.data",
        record["account"], obj["id"], obj["event_name"], obj["status"], obj["created"], orjson.dumps(obj).decode(),
    )


class MeterCatalog:
    def __init__(self, pool: asyncpg.Pool, log: EventLog):
        self.pool = pool
        self.log = log
        self._by_name: dict[tuple[str, str], Meter] = {}
        self._by_id: dict[tuple[str, str], Meter] = {}

    async def load(self) -> None:
        """(Re)read every meter; other processes see a change within one refresh."""
        rows = await self.pool.fetch("select account, data from meters order by seq")
        by_name, by_id = {}, {}
        for account, data in rows:
            m = Meter.from_stripe(orjson.loads(data), account)
            current = self._by_id.get((account, m.id))
            if current is not None and current.updated > m.updated:
                m = current  # saved here after the read began: keep the newer one
            by_name[(account, m.event_name)] = m
            by_id[(account, m.id)] = m
        for key, m in self._by_id.items():
            by_id.setdefault(key, m)
            by_name.setdefault((m.account, m.event_name), m)
        self._by_name, self._by_id = by_name, by_id

    def by_event_name(self, account: str, event_name: str) -> Meter | None:
        return self._by_name.get((account, event_name))

    def get(self, account: str, meter_id: str) -> Meter | None:
        return self._by_id.get((account, meter_id))

    def list(self, account: str) -> list[Meter]:
        """Newest first (creation order, which the `seq` column keeps across restarts)."""
        return [m for (a, _), m in reversed(self._by_id.items()) if a == account]

    async def save(self, event_type: str, meter: Meter, event_id: str) -> dict:
        """Log the change, then project it; returns the catalog record (a Stripe event)."""
        record = catalog_record(event_type, meter, event_id)
        await self.log.append(CATALOG, [(meter.account.encode(), encode(record))])
        async with self.pool.acquire() as conn:
            await project_catalog_record(conn, record)
        self._by_name[(meter.account, meter.event_name)] = meter
        self._by_id[(meter.account, meter.id)] = meter
        return record
