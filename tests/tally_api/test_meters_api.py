"""`/v1/billing/meters` as in Stripe's docs (reference Appendix B)."""

from tests.factories import create_meter, send_event


async def test_create_retrieve_update(client):
    r = await client.post("/v1/billing/meters", data={
        "display_name": "Search API Calls", "event_name": "ai_search_api", "default_aggregation[formula]": "sum",
        "value_settings[event_payload_key]": "value", "customer_mapping[type]": "by_id",
        "customer_mapping[event_payload_key]": "stripe_customer_id"})
    meter = r.json()
    assert r.status_code == 200 and meter["object"] == "billing.meter" and meter["id"].startswith("mtr_")
    assert (await client.get(f"/v1/billing/meters/{meter['id']}")).json() == meter
    updated = (await client.post(f"/v1/billing/meters/{meter['id']}", data={"display_name": "Searches"})).json()
    assert updated["display_name"] == "Searches" and updated["event_name"] == "ai_search_api"
    r = await client.post(f"/v1/billing/meters/{meter['id']}", data={"event_name": "other"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "event_name"


async def test_event_name_belongs_to_one_meter(client):
    await create_meter(client, event_name="tokens")
    r = await client.post("/v1/billing/meters", data={"display_name": "dup", "event_name": "tokens",
                                                      "default_aggregation[formula]": "count"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "event_name"


async def test_deactivate_blocks_events_and_reactivate_restores(client):
    meter = await create_meter(client)
    off = (await client.post(f"/v1/billing/meters/{meter['id']}/deactivate")).json()
    assert off["status"] == "inactive" and off["status_transitions"]["deactivated_at"] is not None
    r = await send_event(client)
    assert r.status_code == 400 and r.json()["error"]["code"] == "archived_meter"
    assert (await client.post(f"/v1/billing/meters/{meter['id']}/deactivate")).status_code == 400
    active = (await client.get("/v1/billing/meters", params={"status": "active"})).json()["data"]
    inactive = (await client.get("/v1/billing/meters", params={"status": "inactive"})).json()["data"]
    assert active == [] and [m["id"] for m in inactive] == [meter["id"]]
    on = (await client.post(f"/v1/billing/meters/{meter['id']}/reactivate")).json()
    assert on["status"] == "active"
    assert (await send_event(client)).status_code == 200


async def test_missing_meter_is_404(client):
    r = await client.get("/v1/billing/meters/mtr_nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"


async def test_pre_aggregated_windows_are_refused_clearly(client):
    r = await client.post("/v1/billing/meters", data={"display_name": "x", "event_name": "x",
                                                      "default_aggregation[formula]": "sum",
                                                      "event_time_window": "hour"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "event_time_window"
