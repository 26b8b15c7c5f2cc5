"""Stripe's API conventions, every endpoint: auth, errors, lists, idempotency, account isolation, OpenAPI."""

import base64

import httpx

from tally_api.app import create_app
from tally_edge.accounts import create_account
from tests.factories import create_meter, send_event


async def test_no_key_is_401_in_stripe_shape(runtime):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime.services)),
                                 base_url="http://t") as anon:
        r = await anon.get("/v1/billing/meters")
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "invalid_request_error"
        r = await anon.get("/v1/billing/meters", headers={"Authorization": "Bearer sk_test_wrong_key_123456"})
        assert r.status_code == 401 and "Invalid API Key" in r.json()["error"]["message"]


async def test_basic_and_bearer_both_work(runtime):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime.services)),
                                 base_url="http://t") as c:
        basic = base64.b64encode(f"{runtime.key}:".encode()).decode()
        assert (await c.get("/v1/billing/meters", headers={"Authorization": f"Basic {basic}"})).status_code == 200
        assert (await c.get("/v1/billing/meters", headers={"Authorization": f"Bearer {runtime.key}"})).status_code == 200


async def test_an_account_never_sees_another_accounts_data(runtime, client, clock):
    # given account A with a meter and usage
    meter = await create_meter(client)
    assert (await send_event(client, identifier="a-1")).status_code == 200
    # and account B with its own key
    _, key_b = await create_account(runtime.services.pool, now=int(clock()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime.services)),
                                 base_url="http://t", auth=(key_b, "")) as b:
        # then B cannot list, read, update or summarise A's meter, nor send events to it
        assert (await b.get("/v1/billing/meters")).json()["data"] == []
        assert (await b.get(f"/v1/billing/meters/{meter['id']}")).status_code == 404
        assert (await b.post(f"/v1/billing/meters/{meter['id']}", data={"display_name": "x"})).status_code == 404
        r = await b.get(f"/v1/billing/meters/{meter['id']}/event_summaries",
                        params={"customer": "cus_1", "start_time": 0, "end_time": 60})
        assert r.status_code == 404
        r = await send_event(b, identifier="a-1")
        assert r.status_code == 400 and r.json()["error"]["code"] == "no_meter"
        # and B may reuse A's event_name and identifier for itself
        await create_meter(b)
        assert (await send_event(b, identifier="a-1")).status_code == 200


async def test_unknown_route_and_method(client):
    r = await client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = await client.delete("/v1/billing/meters")
    assert r.status_code == 405 and "error" in r.json()


async def test_idempotent_replay_and_mismatch(client):
    data = {"display_name": "Tokens", "event_name": "tok", "default_aggregation[formula]": "sum"}
    first = await client.post("/v1/billing/meters", data=data, headers={"Idempotency-Key": "k1"})
    again = await client.post("/v1/billing/meters", data=data, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = await client.post("/v1/billing/meters", data={**data, "display_name": "Other"},
                              headers={"Idempotency-Key": "k1"})
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert len((await client.get("/v1/billing/meters")).json()["data"]) == 1


async def test_idempotency_survives_a_restart(runtime, client, db_url, clock, tmp_path):
    from tally_cli.runtime import build
    from tally_edge.idempotency import flush

    data = {"display_name": "Tokens", "event_name": "tok", "default_aggregation[formula]": "sum"}
    first = await client.post("/v1/billing/meters", data=data, headers={"Idempotency-Key": "k2"})
    await flush(runtime.services.edge.idempotency, runtime.pool)
    rt2 = await build(runtime.services.settings, clock=clock, database_url=db_url, log=runtime.log)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt2.services)),
                                     base_url="http://t", auth=(runtime.key, "")) as c2:
            again = await c2.post("/v1/billing/meters", data=data, headers={"Idempotency-Key": "k2"})
            assert again.json() == first.json()
    finally:
        await rt2.close()


async def test_a_rejected_request_does_not_burn_its_idempotency_key(client):
    bad = await client.post("/v1/billing/meters", data={"display_name": "x"}, headers={"Idempotency-Key": "k3"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "event_name"
    good = await client.post("/v1/billing/meters", data={"display_name": "x", "event_name": "e",
                                                         "default_aggregation[formula]": "sum"},
                             headers={"Idempotency-Key": "k3"})
    assert good.status_code == 200


async def test_list_pagination(client):
    ids = [(await create_meter(client, event_name=f"e{i}"))["id"] for i in range(5)]
    newest_first = list(reversed(ids))
    page1 = (await client.get("/v1/billing/meters", params={"limit": 2})).json()
    assert [m["id"] for m in page1["data"]] == newest_first[:2] and page1["has_more"]
    page2 = (await client.get("/v1/billing/meters", params={"limit": 2, "starting_after": page1["data"][-1]["id"]})).json()
    assert [m["id"] for m in page2["data"]] == newest_first[2:4] and page2["has_more"]
    page3 = (await client.get("/v1/billing/meters", params={"limit": 2, "starting_after": page2["data"][-1]["id"]})).json()
    assert [m["id"] for m in page3["data"]] == newest_first[4:] and not page3["has_more"]
    back = (await client.get("/v1/billing/meters", params={"limit": 2, "ending_before": page3["data"][0]["id"]})).json()
    assert [m["id"] for m in back["data"]] == newest_first[2:4]
    assert page1["url"] == "/v1/billing/meters" and page1["object"] == "list"
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"starting_after": "a", "ending_before": "b"}):
        r = await client.get("/v1/billing/meters", params=bad)
        assert r.status_code == 400 and r.json()["error"]["param"] in ("limit", "ending_before")


async def test_openapi_lists_what_is_served(client):
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {"post", "get"} <= set(doc["paths"]["/v1/billing/meters"])
    assert "post" in doc["paths"]["/v2/billing/meter_event_stream"]
    assert "get" in doc["paths"]["/v1/billing/meters/{id}/event_summaries"]


async def test_every_response_carries_a_request_id_and_billing_events_name_it(runtime, client):
    from tally_cli.runtime import start_billing_worker

    await start_billing_worker(runtime)
    answers = [await client.get("/v1/billing/meters"), await client.get("/v1/customers/cus_missing"),
               await client.delete("/v1/customers"), await client.post("/v1/customers", data={"name": "a\x00b"})]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime.services)),
                                 base_url="http://t") as anon:
        answers.append(await anon.get("/v1/billing/meters"))
    assert [r.status_code for r in answers] == [200, 404, 405, 400, 401]
    ids = [r.headers["request-id"] for r in answers]
    assert all(i.startswith("req_") and len(i) == 18 for i in ids) and len(set(ids)) == len(ids)
    # Stripe's events carry the request that caused them.
    created = await client.post("/v1/customers", data={"name": "Jenny"})
    event = (await client.get("/v1/events", params={"type": "customer.created"})).json()["data"][0]
    assert event["request"]["id"] == created.headers["request-id"]
