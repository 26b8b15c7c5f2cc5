"""Test data builders, so tests read as worked examples."""

from __future__ import annotations


async def create_meter(client, event_name="alpaca_ai_tokens", formula="sum", dims=(), **extra) -> dict:
    data = {"display_name": f"{event_name} meter", "event_name": event_name,
            "default_aggregation[formula]": formula, **extra}
    for i, d in enumerate(dims):
        data[f"dimension_payload_keys[{i}]"] = d
    r = await client.post("/v1/billing/meters", data=data)
    assert r.status_code == 200, r.text
    return r.json()


async def send_event(client, customer="cus_1", value="25", event_name="alpaca_ai_tokens", **extra):
    data = {"event_name": event_name, "payload[stripe_customer_id]": customer, "payload[value]": value}
    for k, v in extra.items():
        data[k if k in ("identifier", "timestamp") else f"payload[{k}]"] = v
    return await client.post("/v1/billing/meter_events", data=data)
