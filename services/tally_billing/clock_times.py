"""Test clock times per customer, in memory, for ingest: a customer on a test clock lives at the clock's time.

The tables (`billing_customers`, `test_clocks`) belong to the billing side; this only reads them in `load`
and is kept current between loads by the `set_*` / `forget_*` calls. `now_for` is on the ingest hot path:
one dict lookup, so the per-customer time is kept precomputed.
"""

from __future__ import annotations

import asyncio

import asyncpg

_CUSTOMERS = "select account, id, test_clock from billing_customers where test_clock is not null"
_CLOCKS = "select account, id, frozen_time from test_clocks"


class ClockTimes:
    def __init__(self) -> None:
        self._clock_of: dict[tuple[str, str], str] = {}            # (account, customer) -> clock id
        self._members: dict[tuple[str, str], set[str]] = {}        # (account, clock id) -> customers
        self._time: dict[tuple[str, str], int] = {}                # (account, clock id) -> frozen time
        self._now: dict[tuple[str, str], int] = {}                 # (account, customer) -> frozen time
        self._journal: list[tuple[str, tuple]] | None = None       # changes made while a load is reading
        self._loading = asyncio.Lock()

    def now_for(self, account: str, customer: str) -> int | None:
        """The frozen time of the customer's clock; None if the customer is on no clock (or its time is unknown)."""
        return self._now.get((account, customer))

    def set_customer_clock(self, account: str, customer: str, clock_id: str) -> None:
        self._log("set_customer_clock", account, customer, clock_id)
        self._detach(account, customer)
        self._clock_of[(account, customer)] = clock_id
        self._members.setdefault((account, clock_id), set()).add(customer)
        t = self._time.get((account, clock_id))
        if t is not None:
            self._now[(account, customer)] = t

    def forget_customer(self, account: str, customer: str) -> None:
        self._log("forget_customer", account, customer)
        self._detach(account, customer)

    def set_clock_time(self, account: str, clock_id: str, frozen_time: int) -> None:
        self._log("set_clock_time", account, clock_id, frozen_time)
        frozen_time = int(frozen_time)
        self._time[(account, clock_id)] = frozen_time
        for customer in self._members.get((account, clock_id), ()):
            self._now[(account, customer)] = frozen_time

    def forget_clock(self, account: str, clock_id: str) -> None:
        """The clock is gone (deleting a test clock deletes its customers): its customers are on no clock."""
        self._log("forget_clock", account, clock_id)
        self._time.pop((account, clock_id), None)
        for customer in self._members.pop((account, clock_id), set()):
            self._clock_of.pop((account, customer), None)
            self._now.pop((account, customer), None)

    async def load(self, pool: asyncpg.Pool) -> None:
        """Replace the contents from the database; if the tables do not exist yet, there are no clocks.

        Changes applied (via `set_*` / `forget_*`) while the rows are read are replayed on top, so a load that
        started before a clock advanced cannot bring back the older time.
        """
        async with self._loading:
            self._journal = journal = []
            try:
                try:
                    async with pool.acquire() as conn:
                        async with conn.transaction(isolation="repeatable_read", readonly=True):
                            customers = await conn.fetch(_CUSTOMERS)
                            clocks = await conn.fetch(_CLOCKS)
                except asyncpg.UndefinedTableError:
                    customers, clocks = [], []
            finally:
                self._journal = None
            # No await from here on: the rebuild is atomic for every reader.
            self._clock_of, self._members, self._time, self._now = {}, {}, {}, {}
            for account, clock_id, frozen_time in clocks:
                if frozen_time is not None:
                    self.set_clock_time(account, clock_id, frozen_time)
            for account, customer, clock_id in customers:
                self.set_customer_clock(account, customer, clock_id)
            for name, args in journal:
                getattr(self, name)(*args)

    def _log(self, name: str, *args) -> None:
        if self._journal is not None:
            self._journal.append((name, args))

    def _detach(self, account: str, customer: str) -> None:
        clock_id = self._clock_of.pop((account, customer), None)
        if clock_id is not None:
            members = self._members.get((account, clock_id))
            if members is not None:
                members.discard(customer)
                if not members:
                    del self._members[(account, clock_id)]
        self._now.pop((account, customer), None)
