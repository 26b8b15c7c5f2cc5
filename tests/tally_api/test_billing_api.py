"""Customers, subscriptions, invoices, test clocks and events over HTTP, with the billing worker and the
aggregator running in-process on the Postgres log (seed 000's usage-based pricing on a test clock)."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from tally_edge.accounts import create_account
from tests.factories import create_meter


def ts(y, m, d, h=0):
    return int(datetime(y, m, d, h, tzinfo=timezone.utc).timestamp())


@pytest.fixture
def api(billing_client):
    return billing_client


async def ok(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


async def alpaca_prices(api) -> tuple[str, str, str]:
    """Seed 000: a sum meter, a graduated price (first 1,000 free, then 0.04 USD) and a 100 USD license."""
    meter = await create_meter(api, "alpaca_ai_tokens")
    usage = await ok(await api.post("/v1/prices", data={
        "currency": "usd", "product_data[name]": "Alpaca AI usage", "billing_scheme": "tiered",
        "tiers_mode": "graduated", "tiers[0][up_to]": "1000", "tiers[0][unit_amount]": "0",
        "tiers[1][up_to]": "inf", "tiers[1][unit_amount_decimal]": "4", "recurring[interval]": "month",
        "recurring[usage_type]": "metered", "recurring[meter]": meter["id"]}))
    fee = await ok(await api.post("/v1/prices", data={
        "currency": "usd", "unit_amount": "10000", "product_data[name]": "Alpaca AI license fee",
        "recurring[interval]": "month"}))
    return meter["id"], usage["id"], fee["id"]


async def test_seed_000_usage_based_pricing_on_a_test_clock(api):
    _, usage_price, fee_price = await alpaca_prices(api)
    clock = await ok(await api.post("/v1/test_helpers/test_clocks", data={"frozen_time": ts(2026, 3, 1),
                                                                           "name": "alpaca"}))
    cus = await ok(await api.post("/v1/customers", data={
        "email": "jenny@example.com", "name": "Jenny", "test_clock": clock["id"], "payment_method": "pm_card_visa"}))
    assert cus["test_clock"] == clock["id"] and cus["created"] == ts(2026, 3, 1)
    sub = await ok(await api.post("/v1/subscriptions", data={
        "customer": cus["id"], "items[0][price]": fee_price, "items[1][price]": usage_price,
        "expand[]": "latest_invoice"}))
    assert sub["status"] == "active"
    first = sub["latest_invoice"]
    assert (first["status"], first["amount_paid"], first["billing_reason"]) == ("paid", 10000, "subscription_create")
    # Usage without a timestamp lands at the clock's time (March 2026), not the wall clock's.
    for value in ("1500", "1700"):
        await ok(await api.post("/v1/billing/meter_events", data={
            "event_name": "alpaca_ai_tokens", "payload[stripe_customer_id]": cus["id"], "payload[value]": value}))
    moving = await ok(await api.post(f"/v1/test_helpers/test_clocks/{clock['id']}/advance",
                                     data={"frozen_time": ts(2026, 4, 1, 2)}))
    assert moving["status"] == "advancing"
    ready = await ok(await api.get(f"/v1/test_helpers/test_clocks/{clock['id']}"))
    assert (ready["status"], ready["frozen_time"]) == ("ready", ts(2026, 4, 1, 2))
    invoices = await ok(await api.get("/v1/invoices", params={"subscription": sub["id"]}))
    cycle = invoices["data"][0]
    # 3,200 tokens: 1,000 free + 2,200 × 0.04 = 88 USD, plus April's license 100 USD = 188 USD.
    assert (cycle["status"], cycle["total"], cycle["amount_paid"]) == ("paid", 18800, 18800)
    assert [(l["amount"], l["period"]["start"]) for l in cycle["lines"]["data"]] == [
        (10000, ts(2026, 4, 1)), (8800, ts(2026, 3, 1))]
    # The lines list pages like every list: one line per page, then the next after it.
    first_line = await ok(await api.get(f"/v1/invoices/{cycle['id']}/lines", params={"limit": 1}))
    assert ([l["amount"] for l in first_line["data"]], first_line["has_more"]) == ([10000], True)
    rest = await ok(await api.get(f"/v1/invoices/{cycle['id']}/lines",
                                  params={"starting_after": first_line["data"][0]["id"]}))
    assert ([l["amount"] for l in rest["data"]], rest["has_more"]) == ([8800], False)
    r = await api.get(f"/v1/invoices/{cycle['id']}/lines", params={"limit": "0.5"})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "limit")
    # All invoices of the clock's customer are hidden from the list-all view (Stripe omits test-clock objects).
    assert (await ok(await api.get("/v1/invoices")))["data"] == []
    events = await ok(await api.get("/v1/events", params={"limit": 100}))
    types = [e["type"] for e in events["data"]]
    for kind in ("customer.created", "customer.subscription.created", "invoice.created", "invoice.finalized",
                 "invoice.paid", "test_helpers.test_clock.ready"):
        assert kind in types
    assert types[0] == "test_helpers.test_clock.ready"  # newest first
    page = await ok(await api.get("/v1/events", params={"limit": 3, "type": "invoice.paid"}))
    assert [e["type"] for e in page["data"]] == ["invoice.paid"] * 2 and not page["has_more"]
    r = await api.get("/v1/events", params={"delivery_success": "true"})  # no webhooks yet: refused, not ignored
    assert (r.status_code, r.json()["error"]["param"]) == (400, "delivery_success")


async def test_preview_shows_usage_so_far(api):
    _, usage_price, fee_price = await alpaca_prices(api)
    clock = await ok(await api.post("/v1/test_helpers/test_clocks", data={"frozen_time": ts(2026, 3, 1)}))
    cus = await ok(await api.post("/v1/customers", data={"test_clock": clock["id"], "payment_method": "pm_card_visa"}))
    sub = await ok(await api.post("/v1/subscriptions", data={
        "customer": cus["id"], "items[0][price]": fee_price, "items[1][price]": usage_price}))
    await ok(await api.post("/v1/billing/meter_events", data={
        "event_name": "alpaca_ai_tokens", "payload[stripe_customer_id]": cus["id"], "payload[value]": "1250"}))
    await ok(await api.post(f"/v1/test_helpers/test_clocks/{clock['id']}/advance",
                            data={"frozen_time": ts(2026, 3, 10)}))
    preview = await ok(await api.post("/v1/invoices/create_preview", data={"subscription": sub["id"]}))
    assert preview["total"] == 10000 + 250 * 4
    # With only the customer, its one active subscription is previewed; with neither, the error names the field.
    by_customer = await ok(await api.post("/v1/invoices/create_preview", data={"customer": cus["id"]}))
    assert by_customer["total"] == preview["total"]
    r = await api.post("/v1/invoices/create_preview")
    assert r.status_code == 400 and r.json()["error"]["param"] == "subscription"


async def test_declined_card_and_errors(api):
    _, _, fee_price = await alpaca_prices(api)
    cus = await ok(await api.post("/v1/customers", data={"payment_method": "pm_card_chargeDeclined"}))
    sub = await ok(await api.post("/v1/subscriptions", data={"customer": cus["id"], "items[0][price]": fee_price}))
    assert sub["status"] == "incomplete"
    inv = await ok(await api.get(f"/v1/invoices/{sub['latest_invoice']}"))
    assert (inv["status"], inv["attempt_count"]) == ("open", 1)
    r = await api.post(f"/v1/invoices/{inv['id']}/pay", data={"payment_method": "pm_card_chargeDeclined"})
    assert r.status_code == 402 and r.json()["error"]["decline_code"] == "generic_decline"
    await ok(await api.post(f"/v1/invoices/{inv['id']}/pay", data={"payment_method": "pm_card_visa"}))
    assert (await ok(await api.get(f"/v1/subscriptions/{sub['id']}")))["status"] == "active"
    r = await api.post(f"/v1/invoices/{inv['id']}/void")
    assert r.status_code == 400 and "void" in r.json()["error"]["message"]
    r = await api.post("/v1/subscriptions", data={"customer": "cus_nope", "items[0][price]": fee_price})
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer"
    r = await api.post("/v1/subscriptions", data={"customer": cus["id"], "items[0][price]": fee_price,
                                                  "items[0][quantity]": "-1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "items[0][quantity]"


async def test_customers_crud_and_isolation(api, runtime, clock):
    cus = await ok(await api.post("/v1/customers", data={"email": "a@example.com", "metadata[plan]": "pro",
                                                         "address[city]": "Brothers", "balance": "-500"}))
    assert (cus["balance"], cus["address"]["city"], cus["metadata"]) == (-500, "Brothers", {"plan": "pro"})
    upd = await ok(await api.post(f"/v1/customers/{cus['id']}", data={"name": "Ann"}))
    assert upd["name"] == "Ann" and upd["email"] == "a@example.com"
    listed = await ok(await api.get("/v1/customers", params={"email": "a@example.com"}))
    assert [c["id"] for c in listed["data"]] == [cus["id"]]
    _, key = await create_account(runtime.services.pool, now=int(clock()))
    r = await api.get(f"/v1/customers/{cus['id']}", auth=(key, ""))
    assert r.status_code == 404
    gone = await ok(await api.delete(f"/v1/customers/{cus['id']}"))
    assert gone == {"id": cus["id"], "object": "customer", "deleted": True}
    assert (await ok(await api.get(f"/v1/customers/{cus['id']}")))["deleted"] is True


async def test_real_time_renewal_through_the_ticker(api, runtime, clock):
    _, _, fee_price = await alpaca_prices(api)
    cus = await ok(await api.post("/v1/customers", data={"payment_method": "pm_card_visa"}))
    sub = await ok(await api.post("/v1/subscriptions", data={"customer": cus["id"], "items[0][price]": fee_price}))
    clock.advance(31 * 86_400 + 3600)  # past February 1st and the grace hour
    await runtime.worker.tick()
    await runtime.worker.drain()
    await runtime.worker.tick()  # the draft's grace hour ended before this tick's time
    await runtime.worker.drain()
    invoices = await ok(await api.get("/v1/invoices", params={"customer": cus["id"]}))
    assert [(i["billing_reason"], i["status"]) for i in invoices["data"]] == [
        ("subscription_cycle", "paid"), ("subscription_create", "paid")]
    renewed = await ok(await api.get(f"/v1/subscriptions/{sub['id']}"))
    assert renewed["current_period_start"] == ts(2026, 2, 1)
