"""Meter events over HTTP: v1 (as the stripe SDK sends it), the v2 session + stream, NDJSON, adjustments."""

import orjson

from tests.conftest import drain_usage
from tests.factories import create_meter, send_event


async def summary(client, meter, customer="cus_1", start=1_767_225_600, end=1_767_225_600 + 86400, **extra):
    r = await client.get(f"/v1/billing/meters/{meter['id']}/event_summaries",
                         params={"customer": customer, "start_time": start, "end_time": end, **extra})
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def test_v1_event_is_recorded_and_summarised(runtime, client):
    meter = await create_meter(client)
    r = await send_event(client, value="25", identifier="evt-1")
    assert r.status_code == 200
    assert r.json() == {"object": "billing.meter_event", "created": 1_767_225_600, "event_name": "alpaca_ai_tokens",
                        "identifier": "evt-1", "livemode": False, "timestamp": 1_767_225_600,
                        "payload": {"stripe_customer_id": "cus_1", "value": "25"}}
    await send_event(client, value="0.5")
    await send_event(client, value="-3")
    await drain_usage(runtime)
    assert [s["aggregated_value"] for s in await summary(client, meter)] == [22.5]


async def test_duplicate_identifier_is_reported_and_not_counted(runtime, client, clock):
    meter = await create_meter(client)
    assert (await send_event(client, identifier="same")).status_code == 200
    dup = await send_event(client, identifier="same", value="1000")
    assert dup.status_code == 400 and dup.headers["Stripe-Should-Retry"] == "false"
    assert dup.json()["error"]["message"] == "An event already exists with identifier same."
    await drain_usage(runtime)
    assert (await summary(client, meter))[0]["aggregated_value"] == 25
    # after 24 hours the identifier is free again
    clock.advance(24 * 3600 + 1)
    assert (await send_event(client, identifier="same", value="5",
                             timestamp=str(1_767_225_600 + 60))).status_code == 200
    await drain_usage(runtime)
    assert (await summary(client, meter))[0]["aggregated_value"] == 30


async def test_sdk_retry_with_the_same_idempotency_key_counts_once(runtime, client):
    meter = await create_meter(client)
    data = {"event_name": "alpaca_ai_tokens", "payload[stripe_customer_id]": "cus_1", "payload[value]": "7"}
    a = await client.post("/v1/billing/meter_events", data=data, headers={"Idempotency-Key": "retry-1"})
    runtime.services.edge.idempotency._entries.clear()  # as if the idempotency record were lost in a crash
    b = await client.post("/v1/billing/meter_events", data=data, headers={"Idempotency-Key": "retry-1"})
    assert a.status_code == 200 and b.status_code == 400  # the derived identifier makes it a duplicate
    await drain_usage(runtime)
    assert (await summary(client, meter))[0]["aggregated_value"] == 7


async def test_v2_session_and_stream_batch_with_bad_events(runtime, client):
    meter = await create_meter(client, dims=("model",))
    session = (await client.post("/v2/billing/meter_event_session")).json()
    assert session["object"] == "v2.billing.meter_event_session"
    events = [
        {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_1", "value": "10", "model": "a"},
         "identifier": "s-1", "timestamp": "2026-01-01T00:00:30.000Z"},
        {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_1", "value": "oops", "model": "a"}},
        {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_1", "value": "5", "model": "b"},
         "identifier": "s-1"},
        {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_1", "value": "4", "model": "b"}},
    ]
    r = await client.post("/v2/billing/meter_event_stream", json={"events": events},
                          headers={"Authorization": f"Bearer {session['authentication_token']}"}, auth=None)
    body = r.json()
    assert r.status_code == 200 and body["accepted"] == 2
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["error"]["param"] == "events[1][payload][value]"
    assert body["duplicates"] == [{"index": 2, "identifier": "s-1"}]
    await drain_usage(runtime)
    by_model = await summary(client, meter, **{"dimension_group_by_keys[0]": "model"})
    assert {s["dimensions"]["model"]: s["aggregated_value"] for s in by_model} == {"a": 10, "b": 4}
    only_b = await summary(client, meter, **{"dimension_filters[model]": "b"})
    assert only_b[0]["aggregated_value"] == 4


async def test_stream_rejects_expired_sessions_and_oversized_batches(client, clock):
    await create_meter(client)
    token = (await client.post("/v2/billing/meter_event_session")).json()["authentication_token"]
    too_many = {"events": [{"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "c", "value": "1"}}] * 101}
    r = await client.post("/v2/billing/meter_event_stream", json=too_many, headers={"Authorization": f"Bearer {token}"}, auth=None)
    assert r.status_code == 400 and r.json()["error"]["param"] == "events"
    clock.advance(15 * 60 + 1)
    r = await client.post("/v2/billing/meter_event_stream", json={"events": []},
                          headers={"Authorization": f"Bearer {token}"}, auth=None)
    assert r.status_code == 401 and r.json()["error"]["type"] == "temporary_session_expired"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = await client.post("/v2/billing/meter_event_stream", json={"events": []},
                          headers={"Authorization": f"Bearer {forged}"}, auth=None)
    assert r.status_code == 401


async def test_ndjson_batch_reports_lines(runtime, client):
    meter = await create_meter(client)
    lines = [orjson.dumps({"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_1", "value": "2"},
                           "identifier": f"n-{i}"}) for i in range(1000)]
    lines.insert(3, b"{not json")
    lines.insert(5, b'{"event_name": "alpaca_ai_tokens", "payload": {"value": "1"}}')
    r = await client.post("/v2/billing/meter_event_stream", content=b"\n".join(lines),
                          headers={"Content-Type": "application/x-ndjson"})
    body = r.json()
    assert body["accepted"] == 1000
    assert [(e["index"], e["error"]["param"]) for e in body["errors"]] == [
        (3, "line[3]"), (5, "line[5][payload][stripe_customer_id]")]
    await drain_usage(runtime)
    assert (await summary(client, meter))[0]["aggregated_value"] == 2000


async def test_oversized_body_is_refused(client, runtime):
    runtime.services.edge.max_body_bytes = 1000
    r = await client.post("/v2/billing/meter_event_stream", content=b"x" * 2000,
                          headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"


async def test_cancel_removes_the_event_everywhere(runtime, client):
    meter = await create_meter(client, event_name="seats", formula="last")
    await send_event(client, event_name="seats", value="3", identifier="a", timestamp="1767225600")
    await send_event(client, event_name="seats", value="9", identifier="b", timestamp="1767225610")
    await drain_usage(runtime)
    assert (await summary(client, meter))[0]["aggregated_value"] == 9
    r = await client.post("/v1/billing/meter_event_adjustments",
                          data={"event_name": "seats", "type": "cancel", "cancel[identifier]": "b"})
    assert r.status_code == 200 and r.json()["status"] == "pending"
    await drain_usage(runtime)
    assert (await summary(client, meter))[0]["aggregated_value"] == 3  # the last value falls back to event a
    r = await client.post("/v1/billing/meter_event_adjustments",
                          data={"event_name": "seats", "type": "cancel", "cancel[identifier]": "never-sent"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cancel[identifier]"


async def test_summaries_by_hour_and_day(runtime, client, clock):
    meter = await create_meter(client)
    day = 1_767_225_600
    clock.advance(2 * 3600)
    for offset, value in [(0, "1"), (59, "2"), (60, "4"), (3599, "8"), (3600, "16")]:
        assert (await send_event(client, value=value, timestamp=str(day + offset))).status_code == 200
    await drain_usage(runtime)
    hourly = await summary(client, meter, start=day, end=day + 3 * 3600, value_grouping_window="hour")
    assert [(s["start_time"] - day, s["aggregated_value"]) for s in hourly] == [(0, 15), (3600, 16), (7200, 0)]
    first_minute = await summary(client, meter, start=day, end=day + 60)
    assert first_minute[0]["aggregated_value"] == 3  # the minute rule: 0 s and 59 s share the first minute
    paged = (await client.get(f"/v1/billing/meters/{meter['id']}/event_summaries", params={
        "customer": "cus_1", "start_time": day, "end_time": day + 3 * 3600, "value_grouping_window": "hour",
        "limit": 2})).json()
    assert paged["has_more"] and len(paged["data"]) == 2
    rest = (await client.get(f"/v1/billing/meters/{meter['id']}/event_summaries", params={
        "customer": "cus_1", "start_time": day, "end_time": day + 3 * 3600, "value_grouping_window": "hour",
        "limit": 2, "starting_after": paged["data"][-1]["id"]})).json()
    assert [s["start_time"] - day for s in rest["data"]] == [7200] and not rest["has_more"]


async def test_v2_adjustment_has_the_v2_shape(runtime, client):
    await create_meter(client)
    await send_event(client, identifier="v2-a")
    r = await client.post("/v2/billing/meter_event_adjustments",
                          json={"event_name": "alpaca_ai_tokens", "type": "cancel", "cancel": {"identifier": "v2-a"}})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "v2.billing.meter_event_adjustment"
    assert body["id"].startswith("mea_") and body["created"].endswith("Z") and body["status"] == "pending"


async def test_poison_strings_are_refused_per_event_and_the_rest_is_counted(runtime, client):
    """Issue 7 item 2: a NUL in a payload used to stop aggregation for everyone. Now it is that event's 400 —
    on v1, in a JSON batch and in an NDJSON line — and the good events around it are aggregated."""
    meter = await create_meter(client)
    r = await send_event(client, customer="x\x00")
    assert r.status_code == 400 and r.json()["error"]["param"] == "payload[stripe_customer_id]"
    good = {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_1", "value": "3"}}
    batch = [good, {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "x\u0000", "value": "1"}},
             {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_1", "value": "٣"}}, good]
    body = (await client.post("/v2/billing/meter_event_stream", json={"events": batch})).json()
    assert body["accepted"] == 2
    assert [(e["index"], e["error"]["param"]) for e in body["errors"]] == [
        (1, "events[1][payload][stripe_customer_id]"), (2, "events[2][payload][value]")]
    lines = [orjson.dumps(good), orjson.dumps(batch[1]), b'{"event_name": "alpaca_ai_tokens", "payload": '
             b'{"stripe_customer_id": "\xff\xfe", "value": "1"}}', b'{"payload": {"a": 18446744073709551615}}']
    r = await client.post("/v2/billing/meter_event_stream", content=b"\n".join(lines),
                          headers={"Content-Type": "application/x-ndjson"})
    body = r.json()
    assert body["accepted"] == 1
    assert [(e["index"], e["error"]["param"]) for e in body["errors"]] == [
        (1, "line[1][payload][stripe_customer_id]"), (2, "line[2]"), (3, "line[3][payload][a]")]
    await drain_usage(runtime)
    assert (await summary(client, meter))[0]["aggregated_value"] == 9


async def test_ndjson_only_where_it_is_read_line_by_line(client):
    await create_meter(client)
    line = orjson.dumps({"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "c", "value": "1"}})
    for path in ("/v1/billing/meter_events", "/v2/billing/meter_events"):
        r = await client.post(path, content=line, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 415 and r.json()["error"]["param"] == "Content-Type"
    r = await client.post("/v2/billing/meter_event_stream", content=line, headers={"Content-Type": "text/csv"})
    assert r.status_code == 415
