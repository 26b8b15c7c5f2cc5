"""`tally bench` billing phase: one tick closes the period of N subscriptions (a licensed and a metered item
each); how many cycle invoices per second come out drafted, finalized and paid, and how long replaying the
billing-events log takes.

Set-up (on the bench's PostgreSQL, in-process, time under a fake clock): an account, a meter, a 100 USD
monthly license and a graduated monthly usage price (first 1,000 free, then 0.04 USD); N customers with
`pm_card_visa`, each with one subscription on both prices, all created at T0 — written to `billing-commands`
in big appends exactly as `BillingGateway.submit` shapes them, and decided by a `BillingWorker` (timed:
"subscriptions created/s"); two meter events per customer in the first period through the `Ingestor`, drained
by the aggregator. The prepared database is then copied (CREATE DATABASE … TEMPLATE) so every measurement
starts from the same state:

  * one tick at period end + grace + 1 s: every book renews, drafts, finalizes and pays in one decision;
  * the same in two ticks: at period end (drafts only) and at the end of the grace hour (finalize + pay);
  * `replay_billing` over the first copy's billing-events.

Each run is checked: N paid `subscription_cycle` invoices, their totals equal to the hand-computed sum, and
sample invoices line by line. If the target is missed the one-tick run is repeated on a fresh copy under
cProfile, beside the SQL time of the measured run.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter

import asyncpg
import httpx
import orjson

from tally_aggregator.postgres_loop import drain
from tally_aggregator.store import UsageProjector
from tally_api.app import create_app
from tally_billing.worker import BillingWorker
from tally_catalog.catalog import Catalog
from tally_cli.replay import replay_billing
from tally_cli.runtime import build
from tally_core.codec import encode
from tally_core.ids import new_id
from tally_edge.accounts import create_account
from tally_infra.local import with_database
from tally_infra.logs.ports import BILLING_COMMANDS, BILLING_EVENTS
from tally_infra.logs.postgres_log import PostgresLog
from tally_infra.settings import Settings

from .profiles import GcPauses, TimedConnection, cprofile, sql_breakdown
from .raw_limits import raw_copy
from .report import Row, console
from .session import Bench

SUBSCRIPTIONS = {True: 2_000, False: 10_000}  # quick, full
TARGET = 2_000  # cycle invoices per second
T0 = int(datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp())
PERIOD_END = int(datetime(2026, 4, 1, tzinfo=timezone.utc).timestamp())
GRACE = 3600
EVENT = "bench_billing_tokens"
LICENSE = 10_000  # cents per month
APPEND = 10_000  # command records per log append


class FakeClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def usage_of(i: int) -> tuple[int, int]:
    """Customer i's two meter events in the first period (some stay inside the free tier)."""
    return 1 + 250 * (i % 8), 300


def expected_total(i: int) -> int:
    """The cycle invoice of customer i: next month's license plus last month's usage past the free 1,000."""
    return LICENSE + max(0, sum(usage_of(i)) - 1000) * 4


async def _wait_db(admin: str, sql: str) -> None:
    """CREATE DATABASE … TEMPLATE needs the template free of sessions; closed pools may take a moment."""
    conn = await asyncpg.connect(admin)
    try:
        for attempt in range(50):
            try:
                await conn.execute(sql)
                return
            except asyncpg.ObjectInUseError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


class BillingBench:
    def __init__(self, bench: Bench):
        self.b = bench
        self.n = SUBSCRIPTIONS[bench.quick]
        self.partitions = 8
        self.base = ""
        self.account = ""
        self.customers: list[str] = []

    # ------------------------------------------------------------ set-up

    async def copy(self, name: str) -> str:
        """A fresh copy of the prepared database."""
        admin = self.b.infra.pg_admin
        full, base = self.b.infra.database_name(name), self.b.infra.database_name("billing")
        conn = await asyncpg.connect(admin)
        try:
            version = conn.get_server_version().major
        finally:
            await conn.close()
        strategy = " strategy file_copy" if version >= 15 else ""
        await _wait_db(admin, f'create database "{full}" template "{base}"{strategy}')
        return with_database(admin, full)

    async def prepare(self) -> None:
        self.base = await self.b.new_database("billing")
        clock = FakeClock(T0)
        settings = Settings(database_url=self.base, data_dir=Path(tempfile.mkdtemp(dir=self.b.tmp)),
                            partitions=self.partitions, invoice_grace_seconds=GRACE)
        rt = await build(settings, clock=clock, database_url=self.base)
        s = rt.services
        try:
            self.account, key = await create_account(rt.pool, now=T0)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(s)),
                                         base_url="http://tally.bench", auth=(key, "")) as api:
                meter = await _ok(api.post("/v1/billing/meters", data={
                    "display_name": "Bench billing", "event_name": EVENT, "default_aggregation[formula]": "sum"}))
                usage = await _ok(api.post("/v1/prices", data={
                    "currency": "usd", "product_data[name]": "Bench usage", "billing_scheme": "tiered",
                    "tiers_mode": "graduated", "tiers[0][up_to]": "1000", "tiers[0][unit_amount]": "0",
                    "tiers[1][up_to]": "inf", "tiers[1][unit_amount_decimal]": "4",
                    "recurring[interval]": "month", "recurring[usage_type]": "metered",
                    "recurring[meter]": meter["id"]}))
                fee = await _ok(api.post("/v1/prices", data={
                    "currency": "usd", "unit_amount": str(LICENSE), "product_data[name]": "Bench license",
                    "recurring[interval]": "month"}))
            await rt.catalog.load()
            prices = {pid: rt.catalog.price(self.account, pid).to_stripe(expand=["tiers"])
                      for pid in (fee["id"], usage["id"])}

            # N customers and subscriptions, as the gateway writes them, decided by a worker.
            self.customers = [new_id("cus") for _ in range(self.n)]
            records = []
            for cus in self.customers:
                key_ = f"{self.account}:{cus}"
                common = {"account": self.account, "key": key_, "at": T0, "grace": GRACE, "request_id": None,
                          "idempotency_key": None}
                records.append((key_.encode(), encode({
                    "id": new_id("cmd"), "type": "customer.create", "object_id": cus,
                    "params": {"payment_method": "pm_card_visa", "email": f"{cus}@bench.example"}, **common})))
                records.append((key_.encode(), encode({
                    "id": new_id("cmd"), "type": "subscription.create", "object_id": new_id("sub"),
                    "params": {"customer": cus, "items": {"0": {"price": fee["id"]}, "1": {"price": usage["id"]}}},
                    "prices": prices, **common})))
            for i in range(0, len(records), APPEND):
                await rt.log.append(BILLING_COMMANDS, records[i:i + APPEND])
            worker = await BillingWorker(rt.pool, rt.log, rt.catalog, aggregator_group=settings.consumer_group,
                                         grace=GRACE, clock=clock, batch=settings.billing_batch).start()
            snap, t0 = self.b.cpu.snap(), perf_counter()
            await worker.drain()
            wall = perf_counter() - t0
            cpu = self.b.cpu.since(snap)
            active = await rt.pool.fetchval(
                "select count(*) from billing_subscriptions where status = 'active'")
            paid = await rt.pool.fetchval(
                "select count(*) from billing_invoices where status = 'paid' "
                "and data->>'billing_reason' = 'subscription_create'")
            if active != self.n or paid != self.n:
                raise RuntimeError(f"set-up: {active} active subscriptions and {paid} paid first invoices, "
                                   f"expected {self.n}")
            self.b.add(Row(f"billing: subscriptions created (customer.create + subscription.create, {self.n:,})",
                           self.n / wall, "subs/s", cpu=cpu,
                           note=f"{2 * self.n:,} commands in {wall:.1f} s, batch {settings.billing_batch}; "
                                f"every first invoice finalized and paid"))

            # Usage in the first period, through ingest and the aggregator.
            clock.now = T0 + 10 * 86_400
            events = []
            for i, cus in enumerate(self.customers):
                for j, value in enumerate(usage_of(i)):
                    events.append({"event_name": EVENT, "identifier": f"bb-{i}-{j}",
                                   "payload": {"stripe_customer_id": cus, "value": str(value)}})
            for i in range(0, len(events), 5000):
                res = await s.ingestor.record(self.account, events[i:i + 5000])
                if res.errors or res.duplicates:
                    raise RuntimeError(f"ingest refused bench events: {res.errors[:3]} {res.duplicates[:3]}")
            await drain(rt.log, UsageProjector(rt.pool, settings.consumer_group))
        finally:
            await rt.close()

    # ------------------------------------------------------------ measuring

    async def open_worker(self, url: str, clock: FakeClock):
        """The billing worker as `start_billing_worker` assembles it, on a pool that times its SQL."""
        pool = await asyncpg.create_pool(url, min_size=2, max_size=10, connection_class=TimedConnection)
        log = PostgresLog(pool, self.partitions)
        catalog = Catalog(pool, log)
        await catalog.load()
        t0 = perf_counter()
        worker = await BillingWorker(pool, log, catalog, aggregator_group="tally-aggregator", grace=GRACE,
                                     clock=clock, batch=1000).start()
        return pool, log, worker, perf_counter() - t0

    async def tick(self, worker, clock: FakeClock, at: int) -> None:
        clock.now = at
        await worker.tick(at=at)
        await worker.drain()

    async def check(self, pool: asyncpg.Pool, what: str) -> str:
        """N paid cycle invoices with the hand-computed totals; sample invoices line by line."""
        paid, total, amount_paid = await pool.fetchrow(
            "select count(*), coalesce(sum((data->>'total')::bigint), 0), "
            "coalesce(sum((data->>'amount_paid')::bigint), 0) from billing_invoices "
            "where status = 'paid' and data->>'billing_reason' = 'subscription_cycle'")
        want = sum(expected_total(i) for i in range(self.n))
        if paid != self.n or total != want or amount_paid != want:
            raise RuntimeError(f"{what}: {paid:,} paid cycle invoices totalling {total:,} (paid {amount_paid:,}); "
                               f"expected {self.n:,} totalling {want:,}")
        for i in (0, 5, self.n - 1):
            row = await pool.fetchrow(
                "select data from billing_invoices where account = $1 and customer = $2 "
                "and data->>'billing_reason' = 'subscription_cycle'", self.account, self.customers[i])
            inv = orjson.loads(row[0])
            lines = sorted(line["amount"] for line in inv["lines"]["data"])
            metered = max(0, sum(usage_of(i)) - 1000) * 4
            if (inv["total"], inv["amount_paid"], inv["status"], lines) != (
                    expected_total(i), expected_total(i), "paid", sorted([LICENSE, metered])):
                raise RuntimeError(f"{what}: invoice of customer {i} is {inv['status']} total {inv['total']} "
                                   f"lines {lines}; expected total {expected_total(i)} lines {[LICENSE, metered]}")
        return f"checked: {paid:,} paid cycle invoices, {total / 100:,.2f} USD as computed by hand"

    async def one_tick(self, url: str, raw: float | None, raw_what: str) -> tuple[Row, str]:
        clock = FakeClock(PERIOD_END + GRACE + 1)
        pool, log, worker, startup = await self.open_worker(url, clock)
        try:
            before = sum((await log.end_offsets(BILLING_EVENTS)).values())
            TimedConnection.clear_stats()
            pauses = GcPauses()
            snap, t0 = self.b.cpu.snap(), perf_counter()
            with pauses:
                await self.tick(worker, clock, PERIOD_END + GRACE + 1)
            wall = perf_counter() - t0
            cpu = self.b.cpu.since(snap)
            sql = sql_breakdown(wall) + [pauses.summary(wall)]
            written = sum((await log.end_offsets(BILLING_EVENTS)).values()) - before
            check = await self.check(pool, "one tick")
            rate = self.n / wall
            row = self.b.add(Row(f"billing: cycle invoices, one tick closes {self.n:,} periods (draft+finalize+pay)",
                                 rate, "inv/s", raw, raw_what, min_abs=TARGET, cpu=cpu,
                                 note=f"{wall:.2f} s ({pauses.seconds:.1f} s of it in GC pauses); {check}; "
                                      f"worker start-up (load {self.n:,} books) {startup:.1f} s, not counted"))
            self.b.add(Row("billing: events written during that tick (log + projections)", written / wall, "ev/s",
                           raw, raw_what, cpu=cpu,
                           note=f"{written:,} billing events, {written / self.n:.1f} per invoice"))
            return row, "\n".join(sql)
        finally:
            await log.close()
            await pool.close()

    async def two_ticks(self, url: str) -> None:
        clock = FakeClock(PERIOD_END)
        pool, log, worker, _ = await self.open_worker(url, clock)
        try:
            snap, t0 = self.b.cpu.snap(), perf_counter()
            await self.tick(worker, clock, PERIOD_END)
            draft = perf_counter() - t0
            cpu_draft = self.b.cpu.since(snap)
            drafts = await pool.fetchval(
                "select count(*) from billing_invoices where status = 'draft' "
                "and data->>'billing_reason' = 'subscription_cycle'")
            if drafts != self.n:
                raise RuntimeError(f"draft tick: {drafts:,} draft cycle invoices, expected {self.n:,}")
            snap, t0 = self.b.cpu.snap(), perf_counter()
            await self.tick(worker, clock, PERIOD_END + GRACE)
            final = perf_counter() - t0
            cpu_final = self.b.cpu.since(snap)
            check = await self.check(pool, "two ticks")
            self.b.add(Row("billing: tick at period end, drafts only (renew + usage read)", self.n / draft, "inv/s",
                           cpu=cpu_draft, note=f"{draft:.2f} s; {drafts:,} drafts"))
            self.b.add(Row("billing: tick after the grace hour, finalize + pay", self.n / final, "inv/s",
                           cpu=cpu_final, note=f"{final:.2f} s; {check}"))
        finally:
            await log.close()
            await pool.close()

    async def replay(self, url: str) -> None:
        pool = await asyncpg.create_pool(url, min_size=2, max_size=10)
        log = PostgresLog(pool, self.partitions)
        try:
            events = sum((await log.end_offsets(BILLING_EVENTS)).values())
            projected = await pool.fetchval("select count(*) from billing_events")
            snap, t0 = self.b.cpu.snap(), perf_counter()
            n = await replay_billing(pool, log)
            wall = perf_counter() - t0
            cpu = self.b.cpu.since(snap)
            again = await pool.fetchval("select count(*) from billing_events")
            if n != events or again != projected:
                raise RuntimeError(f"replay_billing read {n:,} of {events:,} events and projected {again:,} "
                                   f"event rows; before the replay there were {projected:,}")
            check = await self.check(pool, "after replay_billing")
            self.b.add(Row(f"replay_billing: {events:,} billing events ({2 * self.n:,} subscriptions' worth)",
                           round(wall, 3), "s", cpu=cpu, note=f"{events / wall:,.0f} ev/s; {check}"))
            self.b.add(Row("replay_billing rate", events / wall, "ev/s", cpu=cpu, note="truncate + project_events"))
        finally:
            await log.close()
            await pool.close()

    async def raw_limit(self, url: str) -> tuple[float, str]:
        """asyncpg COPY of log_records-shaped rows the size of an average billing event."""
        conn = await asyncpg.connect(url)
        try:
            size = int(await conn.fetchval(
                "select avg(length(value)) from log_records where topic = $1", BILLING_EVENTS))
        finally:
            await conn.close()
        rate, cpu = await raw_copy(url, self.b.sz.raw_records // 2, size, self.b.cpu)
        self.b.add(Row(f"raw limit: asyncpg COPY of billing-event-sized rows ({size:,} B)", rate, "rows/s", cpu=cpu,
                       note=f"{self.b.sz.raw_records // 2:,} rows, 20,000 per COPY+commit"))
        return rate, f"raw COPY {size:,} B"

    async def profile(self, figure: str, sql: str) -> None:
        url = await self.copy("billingprof")
        clock = FakeClock(PERIOD_END + GRACE + 1)
        pool, log, worker, _ = await self.open_worker(url, clock)
        try:
            prof = await cprofile(lambda: self.tick(worker, clock, PERIOD_END + GRACE + 1), top=30)
        finally:
            await log.close()
            await pool.close()
        self.b.profiles[figure] = sql.splitlines() + [""] + prof

    async def run(self) -> None:
        console.rule(f"billing: one tick closes the period of {self.n:,} subscriptions (in-process worker)")
        await self.prepare()
        one, two = await self.copy("billing1"), await self.copy("billing2")
        raw, raw_what = await self.raw_limit(self.base)
        row, sql = await self.one_tick(one, raw, raw_what)
        await self.two_ticks(two)
        await self.replay(one)
        if row.met is False:
            await self.profile(row.figure, sql)


async def _ok(request) -> dict:
    r = await request
    if r.status_code != 200:
        raise RuntimeError(f"bench set-up request failed: {r.status_code} {r.text}")
    return r.json()


async def billing_phase(bench: Bench) -> None:
    await BillingBench(bench).run()
