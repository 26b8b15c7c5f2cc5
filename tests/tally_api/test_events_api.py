"""`GET /v1/events/{id}`: the caller's own event, and nobody else's."""

from __future__ import annotations

import httpx

from tally_api.app import create_app
from tally_cli.runtime import start_billing_worker
from tally_edge.accounts import create_account


async def test_an_event_is_retrieved_by_its_account_only(runtime):
    await start_billing_worker(runtime)
    _, other_key = await create_account(runtime.services.pool, now=0)
    app = create_app(runtime.services)

    def as_(key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tally.test", auth=(key, ""))

    async with as_(runtime.key) as mine, as_(other_key) as theirs:
        customer = await mine.post("/v1/customers", data={"email": "a@example.com"})
        assert customer.status_code == 200, customer.text
        listed = (await mine.get("/v1/events", params={"type": "customer.created"})).json()["data"]
        assert len(listed) == 1
        event = listed[0]

        r = await mine.get(f"/v1/events/{event['id']}")
        assert r.status_code == 200, r.text
        assert r.json() == event
        assert (r.json()["object"], r.json()["data"]["object"]["id"]) == ("event", customer.json()["id"])

        # Another account's event does not exist for the caller: the same 404 as an unknown id.
        r = await theirs.get(f"/v1/events/{event['id']}")
        assert r.status_code == 404
        assert r.json()["error"] == {"type": "invalid_request_error", "code": "resource_missing", "param": "id",
                                     "message": f"No such event: '{event['id']}'"}
        assert (await theirs.get("/v1/events")).json()["data"] == []
        assert (await mine.get("/v1/events/evt_unknown")).status_code == 404
