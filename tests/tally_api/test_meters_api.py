"""`/v1/billing/meters` as in Stripe's docs (reference Appendix B)."""

from tests.conftest import drain_usage
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


# --- event summaries: bounded ranges, pages read from SQL ----------------------------------------------------

DAY = 1_767_225_600  # 2026-01-01, the test clock's start


async def summaries(client, meter, **params):
    params = {"customer": "cus_1", "start_time": DAY, "end_time": DAY + 3600, **params}
    return await client.get(f"/v1/billing/meters/{meter['id']}/event_summaries", params=params)


async def walk(client, meter, direction="starting_after", **params) -> list[list[dict]]:
    """Every page of a list, following has_more with the last (or first) id as the cursor."""
    pages, cursor = [], {}
    while True:
        r = await summaries(client, meter, **params, **cursor)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["data"])
        if not body["has_more"]:
            return pages
        cursor = {direction: body["data"][-1 if direction == "starting_after" else 0]["id"]}


async def test_the_reported_slow_request_is_a_quick_400(client):
    # issue 7: 3,000,000 hour windows once took 17 s and 2.1 GB and blocked the event loop
    meter = await create_meter(client)
    r = await summaries(client, meter, start_time=0, end_time=10_800_000_000, value_grouping_window="hour")
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["param"], err["code"]) == ("end_time", "parameter_invalid")
    assert err["message"].startswith("Invalid end_time: the range from start_time to end_time may span at most 32 days")
    r = await client.get(f"/v1/billing/meters/{meter['id']}/event_summaries",
                         params={"customer[a]": "b", "start_time": DAY, "end_time": DAY + 3600})
    assert r.status_code == 400 and r.json()["error"]["param"] == "customer"
    assert "must be a" in r.json()["error"]["message"] and "string" in r.json()["error"]["message"]
    r = await summaries(client, meter, start_time="-60")
    assert r.status_code == 400 and r.json()["error"]["param"] == "start_time"
    r = await summaries(client, meter, end_time="253402300860")
    assert r.status_code == 400 and r.json()["error"]["param"] == "end_time"


async def test_the_longest_hourly_range_pages_through_every_window(runtime, client, clock):
    meter = await create_meter(client)
    clock.advance(32 * 86400)
    for hour in (0, 99, 100, 767):  # the first and last windows, and both sides of a page boundary
        ts = DAY + hour * 3600 + 59
        assert (await send_event(client, value=str(hour + 1), timestamp=str(ts))).status_code == 200
    await drain_usage(runtime)
    rng = {"end_time": DAY + 32 * 86400, "value_grouping_window": "hour", "limit": 100}
    pages = await walk(client, meter, **rng)
    assert [len(p) for p in pages] == [100] * 7 + [68]
    flat = [s for p in pages for s in p]
    assert [s["start_time"] for s in flat] == list(range(DAY, DAY + 32 * 86400, 3600))
    assert {(s["start_time"] - DAY) // 3600: s["aggregated_value"] for s in flat if s["aggregated_value"]} == {
        0: 1, 99: 100, 100: 101, 767: 768}
    assert len({s["id"] for s in flat}) == 768
    # Backwards from the end, Stripe-style: ending_before the first summary of the page seen last.
    last_page = (await summaries(client, meter, **rng, starting_after=flat[-69]["id"])).json()
    assert last_page["data"] == pages[-1] and not last_page["has_more"]
    back = (await summaries(client, meter, **rng, ending_before=flat[100]["id"])).json()
    assert back["data"] == pages[0] and not back["has_more"]
    back = (await summaries(client, meter, **{**rng, "limit": 10}, ending_before=flat[150]["id"])).json()
    assert back["data"] == flat[140:150] and back["has_more"]
    r = await summaries(client, meter, **{**rng, "end_time": DAY + 32 * 86400 + 3600})
    assert r.status_code == 400 and r.json()["error"]["param"] == "end_time"


async def test_grouped_summaries_page_in_sql_by_window_then_group(runtime, client, clock):
    meter = await create_meter(client, dims=("model", "region"))
    clock.advance(3 * 3600)
    for hour, model, region, value in [(0, "b", "eu", 1), (0, "a", "eu", 2), (0, "a", "us", 4), (1, "c", "eu", 8),
                                       (2, "a", "eu", 16), (2, "b", "us", 32)]:
        r = await send_event(client, value=str(value), timestamp=str(DAY + hour * 3600), model=model, region=region)
        assert r.status_code == 200, r.text
    await drain_usage(runtime)
    rng = {"end_time": DAY + 3 * 3600, "value_grouping_window": "hour", "dimension_group_by_keys[0]": "model"}

    def seen(pages):
        return [((s["start_time"] - DAY) // 3600, s["dimensions"]["model"], s["aggregated_value"])
                for p in pages for s in p]

    everything = [(0, "a", 6), (0, "b", 1), (1, "c", 8), (2, "a", 16), (2, "b", 32)]
    assert seen(await walk(client, meter, **rng, limit=100)) == everything
    forward = await walk(client, meter, **rng, limit=2)
    assert [len(p) for p in forward] == [2, 2, 1] and seen(forward) == everything
    # Backwards from the last summary: every page before it, newest page first.
    last = forward[-1][-1]["id"]
    back = (await summaries(client, meter, **rng, limit=2, ending_before=last)).json()
    assert seen([back["data"]]) == everything[2:4] and back["has_more"]
    back = (await summaries(client, meter, **rng, limit=2, ending_before=back["data"][0]["id"])).json()
    assert seen([back["data"]]) == everything[:2] and not back["has_more"]
    only_eu = await walk(client, meter, **rng, limit=100, **{"dimension_filters[region]": "eu"})
    assert seen(only_eu) == [(0, "a", 2), (0, "b", 1), (1, "c", 8), (2, "a", 16)]
    # A cursor from the ungrouped list, or from another meter, is not in this list.
    ungrouped = (await summaries(client, meter, end_time=DAY + 3 * 3600, value_grouping_window="hour")).json()
    for cursor in (ungrouped["data"][0]["id"], forward[0][0]["id"].replace("mtrusg_", "mtrusg_1")):
        r = await summaries(client, meter, **rng, starting_after=cursor)
        assert r.status_code == 400 and r.json()["error"]["code"] == "resource_missing", r.text
