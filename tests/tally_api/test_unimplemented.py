"""What tally does not serve is said plainly: a Stripe endpoint tally has not built answers 404 saying so and
where the built ones are listed; a path that is no Stripe endpoint keeps Stripe's "Unrecognized request URL";
a method a served path does not take is a 405 with `Allow`. And every answer, whatever it is, carries the
`Request-Id` that billing events record (issue 8 item 5)."""

from __future__ import annotations

import httpx
import pytest

from tally_api.app import create_app


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/coupons"),
    ("POST", "/v1/checkout/sessions"),
    ("GET", "/v1/customers/cus_1/tax_ids"),
    ("GET", "/v1/payment_methods"),
    ("GET", "/v1/subscription_schedules"),
    ("POST", "/v1/billing/alerts"),
    ("GET", "/v2/core/events"),
])
async def test_a_stripe_endpoint_tally_has_not_built_says_so(client, method, path):
    r = await client.request(method, path)
    assert r.status_code == 404
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", "resource_missing")
    assert err["message"] == (f"tally does not implement {method} {path} yet; the endpoints it serves are listed "
                              "in the README (What works) and in GET /openapi.json.")


@pytest.mark.parametrize("path", ["/v1/customerz", "/v1/nothing", "/v1/billing/meterz", "/v3/customers",
                                  "/customers"])
async def test_a_path_that_is_no_stripe_endpoint_reads_as_stripes_typo_answer(client, path):
    r = await client.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Unrecognized request URL (GET: {path})."


@pytest.mark.parametrize("method, path, allowed", [
    ("DELETE", "/v1/invoices/in_1", "GET, HEAD"),
    ("POST", "/v1/invoices", "GET, HEAD"),  # create: tally's invoices come from subscriptions only
    ("DELETE", "/v1/prices/price_1", "GET, HEAD, POST"),
])
async def test_a_method_a_served_path_does_not_take_is_a_405_naming_the_ones_it_does(client, method, path, allowed):
    r = await client.request(method, path)
    assert r.status_code == 405 and r.headers["Allow"] == allowed
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", "method_not_allowed")
    assert err["message"] == (f"tally does not implement {method} {path} (this path takes {allowed}); the "
                              "endpoints it serves are listed in the README (What works) and in GET /openapi.json.")


async def test_every_answer_carries_a_request_id(runtime, client):
    """2xx, 4xx, an unbuilt and an unknown 404, 405, 415, an auth failure, health: each its own `req_…` id."""
    answers = {
        200: await client.get("/v1/billing/meters"),
        400: await client.post("/v1/customers", data={"nmae": "typo"}),
        404: await client.get("/v1/customers/cus_missing"),
        "404 unbuilt": await client.post("/v1/coupons"),
        "404 unknown": await client.get("/v1/customerz"),
        405: await client.put("/v1/customers"),
        415: await client.post("/v1/customers", content=b"name=x", headers={"content-type": "text/plain"}),
        "healthz": await client.get("/healthz"),
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime.services)),
                                 base_url="http://t") as anon:
        answers[401] = await anon.get("/v1/billing/meters")
    statuses = {k: r.status_code for k, r in answers.items()}
    assert statuses == {200: 200, 400: 400, 404: 404, "404 unbuilt": 404, "404 unknown": 404, 405: 405,
                        415: 415, "healthz": 200, 401: 401}
    ids = [r.headers["request-id"] for r in answers.values()]
    assert all(i.startswith("req_") and len(i) == 18 for i in ids) and len(set(ids)) == len(ids)


async def test_a_billing_commands_events_record_its_request_id(billing_client):
    created = await billing_client.post("/v1/customers", data={"name": "Jenny"})
    updated = await billing_client.post(f"/v1/customers/{created.json()['id']}", data={"name": "Jen"})
    events = (await billing_client.get("/v1/events")).json()["data"]
    by_type = {e["type"]: e for e in events}
    assert by_type["customer.created"]["request"]["id"] == created.headers["request-id"]
    assert by_type["customer.updated"]["request"]["id"] == updated.headers["request-id"]
    assert created.headers["request-id"] != updated.headers["request-id"]
