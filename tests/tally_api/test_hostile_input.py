"""Issue 7's hostile requests, one row each: every one is a 4xx in Stripe's shape naming the parameter, within
milliseconds, and billing and aggregation carry on for the same and for another account right after.

The billing worker and the aggregator run in-process on the Postgres log, as in `tally run`. Bodies are sent
as raw bytes so that what reaches the server is exactly the repro (NUL, invalid UTF-8, odd brackets).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from tally_api.app import create_app
from tally_cli.runtime import build, start_billing_worker, start_postgres_aggregator
from tally_edge.accounts import create_account
from tally_infra.settings import Settings
from tests.factories import create_meter

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
NOW = 1_767_225_600  # the FakeClock's 2026-01-01T00:00:00Z

# (id, method, path, body, content type, status, param). `{cus}`, `{price}` and `{inv}` name live objects.
ROWS = [
    # issue 7 item 1: NUL in a string, a time just past int64
    ("1-name-nul", "POST", "/v1/customers", b"name=a%00b", FORM, 400, "name"),
    ("1-frozen-time-past-int64", "POST", "/v1/test_helpers/test_clocks", b"frozen_time=9300000000000000000", FORM,
     400, "frozen_time"),
    # item 2: NUL in a meter event's payload (used to stop aggregation for everyone)
    ("2-payload-nul", "POST", "/v1/billing/meter_events",
     b"event_name=tokens&payload[stripe_customer_id]=x%00&payload[value]=1", FORM, 400,
     "payload[stripe_customer_id]"),
    # item 3: values the worker used to retry forever
    ("3-balance", "POST", "/v1/customers", b"balance=100000000000000000000", FORM, 400, "balance"),
    ("3-frozen-time-1e20", "POST", "/v1/test_helpers/test_clocks", b"frozen_time=100000000000000000000", FORM,
     400, "frozen_time"),
    ("3-quantity", "POST", "/v1/subscriptions",
     b"customer={cus}&items[0][price]={price}&items[0][quantity]=100000000000000000000", FORM, 400,
     "items[0][quantity]"),
    ("3-billing-cycle-anchor", "POST", "/v1/subscriptions",
     b"customer={cus}&items[0][price]={price}&billing_cycle_anchor=10000000000000", FORM, 400,
     "billing_cycle_anchor"),
    ("3-pay-with-a-hash", "POST", "/v1/invoices/{inv}/pay", b"payment_method[type]=card", FORM, 400,
     "payment_method"),
    # item 8: form keys, hashes where strings are expected, times outside int64, deep JSON
    ("8-leading-zero-index", "POST", "/v1/customers", b"x[00]=1", FORM, 400, "x"),
    ("8-index-then-append", "POST", "/v1/customers", b"x[5]=a&x[][b]=1", FORM, 400, "x[][b]"),
    ("8-superscript-index", "POST", "/v1/customers", "x[²]=1".encode(), FORM, 400, "x"),
    ("8-arabic-index-in-query", "GET", "/v1/customers?metadata[%D9%A0]=1", b"", "", 400, "metadata"),
    ("8-leading-zero-array-index", "POST", "/v1/prices",
     b"currency=usd&product_data[name]=x&billing_scheme=tiered&tiers_mode=graduated&recurring[interval]=month"
     b"&tiers[00][up_to]=inf&tiers[00][unit_amount]=1", FORM, 400, "tiers"),
    ("8-customer-hash-on-preview", "POST", "/v1/invoices/create_preview", b"customer[a]=b", FORM, 400, "customer"),
    ("8-time-past-int64-json", "POST", "/v1/test_helpers/test_clocks", b'{"frozen_time": 9300000000000000000}',
     JSON, 400, "frozen_time"),
    ("8-json-1000-deep", "POST", "/v1/customers", b'{"metadata": ' + b'{"a": ' * 1000 + b'"x"' + b"}" * 1001,
     JSON, 400, "metadata" + "[a]" * 20),
    # item 9: a content type the route does not take is refused, not read as an empty body
    ("9-ndjson-on-customers", "POST", "/v1/customers", b'{"name": "x"}\n', "application/x-ndjson", 415,
     "Content-Type"),
    ("9-text-plain", "POST", "/v1/customers", b"name=x", "text/plain", 415, "Content-Type"),
    # item 10: invalid UTF-8 in an id, non-ASCII digits as a meter value
    ("10-invalid-utf8-id", "GET", "/v1/customers/%ff%fe", b"", "", 400, "id"),
    ("10-arabic-digit-value", "POST", "/v1/billing/meter_events",
     "event_name=tokens&payload[stripe_customer_id]=cus_1&payload[value]=٣".encode(), FORM, 400,
     "payload[value]"),
    ("10-fullwidth-digit-value", "POST", "/v1/billing/meter_events",
     "event_name=tokens&payload[stripe_customer_id]=cus_1&payload[value]=５".encode(), FORM, 400,
     "payload[value]"),
    # our own additions
    ("item-metadata-value-too-long", "POST", "/v1/subscriptions",
     b"customer={cus}&items[0][price]={price}&items[0][metadata][k]=" + b"v" * 501, FORM, 400,
     "items[0][metadata][k]"),
    ("control-char-in-id", "GET", "/v1/customers/cus_%01", b"", "", 400, "id"),
    ("300-char-id", "GET", "/v1/customers/cus_" + "x" * 300, b"", "", 400, "id"),
    ("2**63-json-number", "POST", "/v1/customers", b'{"balance": 9223372036854775808}', JSON, 400, "balance"),
    ("huge-balance-in-range-of-int64", "POST", "/v1/customers", b"balance=9000000000000000000", FORM, 400,
     "balance"),
    ("limit-arabic-digit", "GET", "/v1/customers?limit=%D9%A3", b"", "", 400, "limit"),
    ("invalid-utf8-value", "POST", "/v1/customers", b"name=%ff", FORM, 400, "name"),
    ("invalid-utf8-raw-bytes", "POST", "/v1/customers", b"description=\xc3\x28", FORM, 400, "description"),
    ("nul-in-query", "GET", "/v1/customers?email=a%00", b"", "", 400, "email"),
    ("nul-in-metadata-key", "POST", "/v1/customers", b"metadata[a%00]=1", FORM, 400, "metadata[a\x00]"),
    ("5001-char-string", "POST", "/v1/products", b"name=x&description=" + b"d" * 5001, FORM, 400, "description"),
    ("51-metadata-keys", "POST", "/v1/products",
     b"name=x&" + b"&".join(b"metadata[k%d]=v" % i for i in range(51)), FORM, 400, "metadata"),
    ("unit-amount-past-stripe-bound", "POST", "/v1/prices",
     b"currency=usd&unit_amount=100000000&product_data[name]=x", FORM, 400, "unit_amount"),
    ("json-float-for-integer", "POST", "/v1/test_helpers/test_clocks", b'{"frozen_time": 1e300}', JSON, 400,
     "frozen_time"),
    ("nul-in-meter-name", "POST", "/v1/billing/meters",
     b"display_name=a%00&event_name=e&default_aggregation[formula]=sum", FORM, 400, "display_name"),
    ("nul-in-product-name", "POST", "/v1/products", b"name=a%00", FORM, 400, "name"),
    ("nul-in-advance", "POST", "/v1/test_helpers/test_clocks/clock_%00/advance", b"frozen_time=1", FORM, 400,
     "id"),
]


@pytest.fixture
def api(billing_client):
    return billing_client


@pytest.fixture
async def other(runtime, api):
    """A second account on the same process: its work must carry on whatever the first one sends."""
    _, key = await create_account(runtime.services.pool, now=NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime.services)),
                                 base_url="http://tally.test", auth=(key, "")) as c:
        await create_meter(c, "tokens")
        yield c


async def ok(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


async def objects(api) -> dict:
    """A customer with a card, a licensed price and its paid first invoice, for the rows that name them."""
    await create_meter(api, "tokens")
    price = await ok(await api.post("/v1/prices", data={
        "currency": "usd", "unit_amount": "1000", "product_data[name]": "Seat", "recurring[interval]": "month"}))
    cus = await ok(await api.post("/v1/customers", data={"payment_method": "pm_card_visa"}))
    sub = await ok(await api.post("/v1/subscriptions", data={"customer": cus["id"], "items[0][price]": price["id"]}))
    return {"cus": cus["id"], "price": price["id"], "inv": sub["latest_invoice"]}


async def send(client, names: dict, method: str, path: str, body: bytes, content_type: str) -> httpx.Response:
    for name, value in names.items():
        path, body = path.replace("{%s}" % name, value), body.replace(b"{%s}" % name.encode(), value.encode())
    headers = {"content-type": content_type} if content_type else {}
    return await client.request(method, path, content=body or None, headers=headers)


async def tokens_of(client, customer: str, want: float, timeout: float = 20) -> float:
    """Poll the meter's summary until the aggregator has counted `want` (aggregation is asynchronous)."""
    meter = (await ok(await client.get("/v1/billing/meters")))["data"][0]
    deadline, got = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        data = (await ok(await client.get(f"/v1/billing/meters/{meter['id']}/event_summaries", params={
            "customer": customer, "start_time": NOW, "end_time": NOW + 3600})))["data"]
        got = data[0]["aggregated_value"] if data else None
        if got == want:
            return got
        await asyncio.sleep(0.05)
    return got


def assert_stripe_error(r: httpx.Response, status: int, param: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param, error
    assert r.headers["Stripe-Should-Retry"] == "false"


async def test_every_hostile_request_is_refused_and_everyone_carries_on(api, other):
    names = await objects(api)
    for row_id, method, path, body, content_type, status, param in ROWS:
        started = time.monotonic()
        r = await send(api, names, method, path, body, content_type)
        elapsed = time.monotonic() - started
        assert_stripe_error(r, status, param)
        assert elapsed < 1.0, (row_id, elapsed)  # refused at the edge: no wait for a worker that never answers
    # Billing still decides for the same account and for another one, at once.
    for client in (api, other):
        started = time.monotonic()
        cus = await ok(await client.post("/v1/customers", data={"name": "after", "balance": "-500"}))
        assert cus["balance"] == -500 and time.monotonic() - started < 5
        clock = await ok(await client.post("/v1/test_helpers/test_clocks", data={"frozen_time": NOW}))
        assert clock["frozen_time"] == NOW
    # The invoice the hash was sent to is paid already: a well-formed /pay is decided (Stripe's 400), not hung.
    r = await api.post(f"/v1/invoices/{names['inv']}/pay", data={"payment_method": "pm_card_visa"})
    assert r.status_code == 400 and "already paid" in r.json()["error"]["message"]
    # Aggregation still counts for both accounts.
    for client in (api, other):
        await ok(await client.post("/v1/billing/meter_events", data={
            "event_name": "tokens", "payload[stripe_customer_id]": "cus_ok", "payload[value]": "7"}))
        assert await tokens_of(client, "cus_ok", 7) == 7


async def test_the_same_rules_hold_in_a_json_body():
    """A JSON body goes through the same walk as a form: a value's path is its bracketed name."""
    from tally_edge.http import parse_params

    for body, param in [(b'{"payload": {"stripe_customer_id": "x\\u0000"}}', "payload[stripe_customer_id]"),
                        (b'{"metadata": {"k\\u0001": "v"}}', "metadata[k\x01]"),
                        (b'{"items": [{"quantity": 18446744073709551615}]}', "items[0][quantity]"),
                        (b'{"expand": ["\\t", "a\\u001fb"]}', "expand[1]")]:
        with pytest.raises(Exception) as err:
            parse_params(body, JSON)
        assert err.value.param == param and err.value.http_status == 400
    assert parse_params(b'{"name": "tab\\there\\nnewline\\r"}', JSON) == {"name": "tab\there\nnewline\r"}


async def test_odd_keys_that_are_legal_are_parsed_consistently(api):
    names = await objects(api)
    # `metadata[٠]` and `metadata[007]` are keys like any other (metadata keys are the caller's words).
    cus = await ok(await send(api, names, "POST", "/v1/customers", "metadata[٠]=1&metadata[007]=bond".encode(),
                              FORM))
    assert cus["metadata"] == {"٠": "1", "007": "bond"}
    # U+FFFD sent as valid UTF-8 is text, not a decoding accident; `%ff%fe` and `%fe%ff` are refused, never
    # folded into the same id.
    for raw in ("%ff%fe", "%fe%ff"):
        assert_stripe_error(await api.get(f"/v1/customers/{raw}"), 400, "id")
    r = await api.get("/v1/customers/%EF%BF%BD")
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"
    # No content type at all: the body is read as a form, as Stripe reads it.
    named = await ok(await api.post("/v1/customers", content=b"name=plain", headers={"content-type": ""}))
    assert named["name"] == "plain"
    # A JSON body with a charset parameter is still JSON.
    assert (await ok(await api.post("/v1/customers", content=orjson.dumps({"name": "j"}),
                                    headers={"content-type": "application/json; charset=utf-8"})))["name"] == "j"


async def test_405_names_the_methods_the_path_takes(client):
    r = await client.put("/v1/customers")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
    r = await client.patch("/v1/customers/cus_1")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST", "DELETE"}


async def test_a_restart_after_the_hostile_requests_starts_and_decides(db_url, clock, tmp_path):
    """The refused requests leave nothing in the logs that a fresh process could choke on."""
    settings = Settings(database_url=db_url, data_dir=tmp_path, partitions=4)
    first = await build(settings, clock=clock, database_url=db_url)
    try:
        _, key = await create_account(first.services.pool, now=NOW)
        start_postgres_aggregator(first)
        await start_billing_worker(first)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(first.services)),
                                     base_url="http://tally.test", auth=(key, "")) as c:
            names = await objects(c)
            for _, method, path, body, content_type, status, param in ROWS:
                assert_stripe_error(await send(c, names, method, path, body, content_type), status, param)
    finally:
        await first.close()
    second = await build(settings, clock=clock, database_url=db_url)
    try:
        start_postgres_aggregator(second)
        await start_billing_worker(second)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(second.services)),
                                     base_url="http://tally.test", auth=(key, "")) as c:
            assert (await ok(await c.post("/v1/customers", data={"name": "again"})))["name"] == "again"
            await ok(await c.post("/v1/billing/meter_events", data={
                "event_name": "tokens", "payload[stripe_customer_id]": "cus_r", "payload[value]": "3"}))
            assert await tokens_of(c, "cus_r", 3) == 3
    finally:
        await second.close()
