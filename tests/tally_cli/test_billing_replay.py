"""Replay and determinism of billing: 300 customers on 30 test clocks, 13 months of clock time, mixed prices
(graduated and volume tiers, decimal amounts, transform_quantity, count and last meters, quarterly), month-end
anchors, cancels, declined cards, credits and debts, and every change of seed 004 (quantities, price swaps,
item adds and removals, interval changes, `cancel_at`, all three proration behaviours, both billing modes,
pending updates, proration dates, balance adjustments, one-off invoice items); on both log backends.

Checks: (1) `replay_billing` rebuilds every billing projection row for row; (2) re-deciding every command
into a scratch log gives exactly the logged events; (3) every metered line's quantity equals an independent
sum of the events the workload sent for that customer and period (the minute rule).
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import orjson
import pytest

from tally_aggregator.store import UsageProjector
from tally_api.app import create_app
from tally_cli.replay import redecide_billing, replay_billing
from tally_cli.runtime import build, start_billing_worker, start_postgres_aggregator
from tally_edge.accounts import create_account
from tally_infra.logs.ports import METER_EVENTS
from tally_infra.settings import Settings
from tests.factories import billing_snapshot, create_meter

pytestmark = pytest.mark.slow  # the suite's longest runs (about 1 and 4 minutes)

CLOCKS, PER_CLOCK, MONTHS = 30, 10, 13


def ts(y, m, d, h=0):
    return int(datetime(y, m, d, h, tzinfo=timezone.utc).timestamp())


STARTS = (ts(2026, 1, 31, 9), ts(2026, 1, 15), ts(2027, 2, 28, 12))  # month ends, a leap-free February


async def ok(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


async def catalog(api) -> dict:
    tokens = (await create_meter(api, "tokens"))["id"]
    calls = (await create_meter(api, "calls", formula="count"))["id"]
    seats = (await create_meter(api, "seats", formula="last"))["id"]
    month = {"recurring[interval]": "month"}
    specs = {
        "license": {"unit_amount": "10000", **month},
        "seat": {"unit_amount": "1500", **month},
        "tokens_graduated": {"billing_scheme": "tiered", "tiers_mode": "graduated",
                             "tiers[0][up_to]": "1000", "tiers[0][unit_amount]": "0",
                             "tiers[1][up_to]": "10000", "tiers[1][unit_amount_decimal]": "0.35",
                             "tiers[2][up_to]": "inf", "tiers[2][unit_amount_decimal]": "0.2",
                             "recurring[usage_type]": "metered", "recurring[meter]": tokens, **month},
        "calls_volume": {"billing_scheme": "tiered", "tiers_mode": "volume",
                         "tiers[0][up_to]": "3", "tiers[0][unit_amount]": "5",
                         "tiers[1][up_to]": "inf", "tiers[1][unit_amount]": "3", "tiers[1][flat_amount]": "1000",
                         "recurring[usage_type]": "metered", "recurring[meter]": calls, **month},
        "tokens_packs": {"unit_amount": "25", "transform_quantity[divide_by]": "1000",
                         "transform_quantity[round]": "up", "recurring[usage_type]": "metered",
                         "recurring[meter]": tokens, **month},
        "seats_peak": {"unit_amount_decimal": "700.5", "recurring[usage_type]": "metered",
                       "recurring[meter]": seats, **month},
        "quarterly": {"unit_amount": "25000", "recurring[interval]": "month", "recurring[interval_count]": "3"},
    }
    prices = {}
    for name, params in specs.items():
        prices[name] = (await ok(await api.post("/v1/prices", data={
            "currency": "usd", "product_data[name]": name, **params})))["id"]
    return prices


def subscription_params(rng: random.Random, prices: dict, customer: str) -> dict:
    if rng.random() < 0.1:
        return {"customer": customer, "items[0][price]": prices["quarterly"]}
    names = rng.sample(["license", "seat", "tokens_graduated", "calls_volume", "tokens_packs", "seats_peak"],
                       rng.randint(1, 4))
    params: dict = {"customer": customer}
    for i, name in enumerate(names):
        params[f"items[{i}][price]"] = prices[name]
        if name == "seat":
            params[f"items[{i}][quantity]"] = str(rng.randint(0, 20))
    if rng.random() < 0.2:
        params["billing_cycle_anchor_config[day_of_month]"] = "31"
    if rng.random() < 0.3:
        params["billing_mode[type]"] = "classic"  # flexible is the default (§3.1); both modes run
    return params


class Workload:
    def __init__(self, api, rt, prices):
        self.api, self.rt, self.prices = api, rt, prices
        self.rng = random.Random(20261121)
        self.sent: list[tuple[str, str, int, Decimal, int]] = []  # (customer, event, timestamp, value, sent at)
        self.clocks: list[dict] = []
        self.customers: dict[str, list[str]] = {}  # clock → customers
        self.subs: list[dict] = []

    async def setup(self) -> None:
        for i in range(CLOCKS):
            clock = await ok(await self.api.post("/v1/test_helpers/test_clocks",
                                                 data={"frozen_time": STARTS[i % 3], "name": f"c{i}"}))
            self.clocks.append(clock)
            self.customers[clock["id"]] = []
        for clock in self.clocks:
            for j in range(PER_CLOCK):
                pm = self.rng.choices(["pm_card_visa", "pm_card_chargeDeclined",
                                       "pm_card_chargeDeclinedInsufficientFunds"], [85, 10, 5])[0]
                data = {"test_clock": clock["id"], "payment_method": pm, "email": f"u{j}@{clock['id']}.test"}
                if self.rng.random() < 0.15:
                    data["balance"] = str(self.rng.choice([-2000, -150, 300]))
                cus = await ok(await self.api.post("/v1/customers", data=data))
                self.customers[clock["id"]].append(cus["id"])
                for _ in range(self.rng.choice([1, 1, 2])):
                    params = subscription_params(self.rng, self.prices, cus["id"])
                    self.subs.append(await ok(await self.api.post("/v1/subscriptions", data=params)))

    async def report_usage(self, clock: dict, now: int) -> None:
        events = []
        for cus in self.customers[clock["id"]]:
            for name in ("tokens", "calls", "seats"):
                for _ in range(self.rng.randint(0, 3)):
                    at = now - self.rng.randint(0, 12 * 86_400)
                    value = {"tokens": Decimal(self.rng.randint(0, 4000)) + Decimal(self.rng.choice([0, 5])) / 10,
                             "calls": Decimal(1), "seats": Decimal(self.rng.randint(1, 30))}[name]
                    events.append({"event_name": name, "timestamp": at,
                                   "payload": {"stripe_customer_id": cus, "value": str(value)}})
                    self.sent.append((cus, name, at, value, now))
        result = await self.rt.services.ingestor.record(self.rt.account, events)
        assert not result.errors and not result.duplicates

    async def step(self, clock: dict, n: int) -> None:
        now = clock["frozen_time"]
        await self.report_usage(clock, now)
        target = now + self.rng.randint(12, 17) * 86_400 + self.rng.randint(0, 86_399)
        await ok(await self.api.post(f"/v1/test_helpers/test_clocks/{clock['id']}/advance",
                                     data={"frozen_time": target}))
        clock["frozen_time"] = target

    async def changes(self, n: int) -> None:
        """API changes between advances: quantities, cancels, payments, card updates."""
        for sub in self.rng.sample(self.subs, 6):
            sub = await ok(await self.api.get(f"/v1/subscriptions/{sub['id']}"))
            if sub["status"] in ("canceled", "incomplete_expired"):
                continue
            action = self.rng.choice(["quantity", "cancel_at_period_end", "cancel_now", "pay", "void", "metadata",
                                      "swap", "add", "remove", "interval", "cancel_at"])
            seat = [it for it in sub["items"]["data"] if it["price"]["id"] == self.prices["seat"]]
            change = self.change_params(action, sub, seat)
            if change is not None:
                r = await self.api.post(f"/v1/subscriptions/{sub['id']}", data=change)
                # Refusals are in the log too, and re-deciding must give them again: a declined card with
                # error_if_incomplete (402), an incomplete subscription (§3.6), a pending update in the way.
                error = r.json().get("error", {})
                assert r.status_code == 200 or (r.status_code == 402 and change.get("payment_behavior")
                                                == "error_if_incomplete") or error.get("code") == \
                    "subscription_incomplete" or "pending update" in error.get("message", ""), (change, r.text)
            elif action == "metadata":
                # Stripe's metadata rule on both objects: keys merge, an empty value unsets one.
                tier = self.rng.choice(["gold", "silver", ""])
                got = await ok(await self.api.post(f"/v1/subscriptions/{sub['id']}",
                                                   data={"metadata[tier]": tier, "metadata[n]": str(n)}))
                assert got["metadata"].get("tier") == (tier or None) and got["metadata"]["n"] == str(n)
                cus = await ok(await self.api.post(f"/v1/customers/{sub['customer']}",
                                                   data={"metadata[seen]": str(n), "metadata[tier]": tier}))
                assert cus["metadata"]["seen"] == str(n) and cus["metadata"].get("tier") == (tier or None)
            elif action == "cancel_at_period_end" and not sub["cancel_at"]:
                await ok(await self.api.post(f"/v1/subscriptions/{sub['id']}", data={"cancel_at_period_end": "true"}))
            elif action == "cancel_now":
                # §3.5, every combination of prorate and invoice_now
                await ok(await self.api.delete(f"/v1/subscriptions/{sub['id']}", params={
                    "invoice_now": self.rng.choice(["true", "false"]), "prorate": self.rng.choice(["true", "false"])}))
            elif action in ("pay", "void"):
                inv = await ok(await self.api.get(f"/v1/invoices/{sub['latest_invoice']}"))
                if inv["status"] == "open":
                    if action == "pay":
                        await ok(await self.api.post(f"/v1/customers/{inv['customer']}",
                                                     data={"payment_method": "pm_card_visa"}))
                        await ok(await self.api.post(f"/v1/invoices/{inv['id']}/pay"))
                    else:
                        await ok(await self.api.post(f"/v1/invoices/{inv['id']}/void"))
        # The balance ledger (§4.7): a credit each round, its description edited every other round; the next
        # invoices apply it. A generator of its own, so the changes above draw what they drew before.
        ledger = random.Random(n)
        cus = ledger.choice(self.subs)["customer"]
        txn = await ok(await self.api.post(f"/v1/customers/{cus}/balance_transactions", data={
            "amount": str(-ledger.randint(1, 5000)), "currency": "usd"}))
        if n % 8 == 2:
            await ok(await self.api.post(f"/v1/customers/{cus}/balance_transactions/{txn['id']}", data={
                "description": f"round {n}", "metadata[round]": str(n)}))
        # One-off invoice items (§4.4): a charge or a credit waiting for the customer's next invoice; some are
        # changed, some deleted while still pending.
        item = await ok(await self.api.post("/v1/invoiceitems", data={
            "customer": ledger.choice(self.subs)["customer"], "currency": "usd",
            "amount": str(ledger.choice([-1, 1]) * ledger.randint(100, 9000)), "description": f"one-off {n}"}))
        if n % 8 == 6:
            await ok(await self.api.post(f"/v1/invoiceitems/{item['id']}", data={"description": f"changed {n}"}))
        elif n % 8 == 2:
            await ok(await self.api.delete(f"/v1/invoiceitems/{item['id']}"))

    def change_params(self, action: str, sub: dict, seat: list[dict]) -> dict | None:
        """A subscription change of seed 004 (issue 9), with a random proration choice, billing period rule,
        payment behaviour and proration date; None for the actions that are not subscription updates."""
        rng, items = self.rng, sub["items"]["data"]
        names = {v: k for k, v in self.prices.items()}
        have = {names[it["price"]["id"]] for it in items}
        monthly = ["license", "seat", "tokens_graduated", "calls_volume", "tokens_packs", "seats_peak"]
        params: dict = {}
        if action == "quantity" and seat:
            params = {"items[0][id]": seat[0]["id"], "items[0][quantity]": str(rng.randint(0, 30))}
        elif action == "swap":
            # licensed ↔ licensed (prorated), metered ↔ metered (its usage so far settled in flexible mode)
            item = rng.choice(items)
            pool = [n for n in (["license", "seat"] if item["price"]["recurring"]["usage_type"] == "licensed"
                                else ["tokens_graduated", "tokens_packs", "calls_volume", "seats_peak"])
                    if n not in have and n != "quarterly"]
            if not pool or "quarterly" in have:
                return None
            params = {"items[0][id]": item["id"], "items[0][price]": self.prices[rng.choice(pool)]}
        elif action == "add":
            pool = [n for n in monthly if n not in have]
            if not pool or "quarterly" in have:
                return None
            name = rng.choice(pool)
            params = {"items[0][price]": self.prices[name]}
            if name == "seat":
                params["items[0][quantity]"] = str(rng.randint(1, 9))
        elif action == "remove":
            if len(items) < 2:
                return None
            params = {"items[0][id]": rng.choice(items)["id"], "items[0][deleted]": "true"}
        elif action == "interval":
            # monthly ↔ quarterly: a different interval resets the period and invoices at once (§4.2)
            params = {f"items[{i}][id]": it["id"] for i, it in enumerate(items)}
            for i in range(len(items)):
                params[f"items[{i}][deleted]"] = "true"
            target = "license" if "quarterly" in have else "quarterly"
            params[f"items[{len(items)}][price]"] = self.prices[target]
        elif action == "cancel_at" and not sub["cancel_at_period_end"]:
            end = sub["current_period_end"]
            params = {"cancel_at": "" if sub["cancel_at"] else str(end - rng.randint(1, 10) * 86_400)}
            if int(params["cancel_at"] or end) <= self.clock_of(sub):
                return None
        else:
            return None
        params["proration_behavior"] = rng.choice(["create_prorations", "create_prorations", "always_invoice",
                                                   "none"])
        if params["proration_behavior"] == "always_invoice" or action == "interval":
            params["payment_behavior"] = rng.choice(["allow_incomplete", "allow_incomplete",
                                                     "pending_if_incomplete", "error_if_incomplete"])
        if rng.random() < 0.2 and params["proration_behavior"] != "none" and action != "cancel_at":
            start, now = sub["current_period_start"], self.clock_of(sub)
            params["proration_date"] = str(rng.randint(start, max(start, now)))
        return params

    def clock_of(self, sub: dict) -> int:
        for clock in self.clocks:
            if sub["customer"] in self.customers[clock["id"]]:
                return clock["frozen_time"]
        raise AssertionError(sub["customer"])

    async def run(self) -> None:
        await self.setup()
        end = max(STARTS) + MONTHS * 31 * 86_400
        n = 0
        while any(c["frozen_time"] < end for c in self.clocks):
            await asyncio.gather(*(self.step(c, n) for c in self.clocks if c["frozen_time"] < end))
            if n % 4 == 2:
                await self.changes(n)
            n += 1


def minute(t: int) -> int:
    return t - t % 60


async def check_metered_lines(pool, workload: Workload) -> int:
    """Every metered line of the tokens meter bills the events of its period (minute rule) that were sent
    before the invoice was finalized (or, for the usage of a metered price that left mid-period, before the
    change): usage reported late for an already finalized period is not billed.
    (Changes happen at a clock time before the next step's usage is sent at that same time, hence `<`.)"""
    prices = {workload.prices["tokens_graduated"], workload.prices["tokens_packs"]}
    tokens: dict[str, list[tuple[int, Decimal, int]]] = {}  # customer → (timestamp, value, sent at)
    for c, name, t, v, sent in workload.sent:
        if name == "tokens":
            tokens.setdefault(c, []).append((t, v, sent))
    checked = 0
    for (data,) in await pool.fetch("select data from billing_invoices where status <> 'draft'"):
        inv = orjson.loads(data)
        for line in inv["lines"]["data"]:
            if line["pricing"]["price_details"]["price"] not in prices:
                continue
            start, end = line["period"]["start"], line["period"]["end"]
            final = inv["status_transitions"]["finalized_at"]
            if (line["parent"]["subscription_item_details"] or {}).get("invoice_item"):
                final = end  # usage billed when its metered price left (flexible, §1.11): read at the change
            mine = [(t, v, sent) for t, v, sent in tokens.get(inv["customer"], ()) if start <= minute(t) < end]
            want = sum((v for _, v, sent in mine if sent < final), Decimal(0))
            if line["pricing"]["price_details"]["price"] == workload.prices["tokens_graduated"]:
                assert Decimal(line["quantity_decimal"]) == want, (
                    inv["id"], inv["billing_reason"], inv["status"], inv["created"], final, start, end, mine)
            checked += 1
    return checked


async def kafka_aggregator(rt) -> None:
    """The usage projector over the Kafka log (the faust app does this in deployment; its own tests cover it)."""
    projector = UsageProjector(rt.services.pool, rt.services.settings.consumer_group)
    while True:
        positions = await projector.positions()
        async for records in rt.services.log.scan(METER_EVENTS, positions):
            await projector.apply(records)
        await asyncio.sleep(0.05)


async def run_workload(settings: Settings, db_url: str, clock) -> None:
    rt = await build(settings, clock=clock, database_url=db_url)
    try:
        rt.account, rt.key = await create_account(rt.services.pool, now=int(clock()))
        if settings.kafka_bootstrap:
            rt.tasks.append(asyncio.create_task(kafka_aggregator(rt)))
        else:
            start_postgres_aggregator(rt)
        await start_billing_worker(rt)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt.services)),
                                     base_url="http://tally.test", auth=(rt.key, ""), timeout=120) as api:
            workload = Workload(api, rt, await catalog(api))
            await workload.run()
        pool = rt.services.pool
        statuses = {r[0] for r in await pool.fetch("select distinct status from billing_subscriptions")}
        assert {"active", "canceled"} <= statuses and statuses & {"past_due", "unpaid", "incomplete_expired"}
        invoices = await pool.fetchval("select count(*) from billing_invoices")
        assert invoices > 300 * MONTHS
        assert await check_metered_lines(pool, workload) > 1000

        # Stop the worker, then rebuild every projection from billing-events alone.
        for t in rt.tasks:
            t.cancel()
        await asyncio.gather(*rt.tasks, return_exceptions=True)
        rt.tasks.clear()
        live = await billing_snapshot(pool)
        replayed = await replay_billing(pool, rt.services.log)
        assert replayed > 4 * invoices  # created, finalized, paid… per invoice
        assert await billing_snapshot(pool) == live

        if settings.kafka_bootstrap:
            from tally_infra.logs.kafka_log import create_topics
            await create_topics(settings.kafka_bootstrap, {"billing-events-redecide": settings.partitions})
        result = await redecide_billing(rt.services.log, scratch_topic="billing-events-redecide")
        assert result.first_difference is None
        assert result.events == replayed
    finally:
        await rt.close()


async def test_replay_and_redecide_on_the_postgres_log(db_url, clock, tmp_path):
    await run_workload(Settings(database_url=db_url, data_dir=tmp_path, partitions=4), db_url, clock)


async def test_replay_and_redecide_on_the_kafka_log(db_url, clock, tmp_path, fresh_kafka):
    await run_workload(Settings(database_url=db_url, data_dir=tmp_path, partitions=4, kafka_bootstrap=fresh_kafka,
                                kafka_session_timeout=6), db_url, clock)
