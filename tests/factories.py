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


async def billing_snapshot(pool) -> dict:
    """Every billing projection's rows, in a stable order (compared before and after `replay billing`)."""
    import orjson

    from tally_billing.store import PROJECTION_TABLES
    out = {}
    for table in PROJECTION_TABLES:
        rows = await pool.fetch(f"select * from {table} order by account, id")
        out[table] = [tuple(orjson.loads(v) if k == "data" else v for k, v in r.items()) for r in rows]
    return out


async def assert_rebuilt_and_redecided(runtime) -> None:
    """Stop the worker; `replay billing` must rebuild every projection row for row, and re-deciding every
    command must give exactly the logged events (the two promises every billing rule keeps)."""
    import asyncio

    from tally_cli.replay import redecide_billing, replay_billing
    for t in runtime.tasks:
        t.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    runtime.tasks.clear()
    pool = runtime.services.pool
    live = await billing_snapshot(pool)
    await replay_billing(pool, runtime.services.log)
    assert await billing_snapshot(pool) == live
    result = await redecide_billing(runtime.services.log, scratch_topic="billing-events-redecide")
    assert result.first_difference is None
