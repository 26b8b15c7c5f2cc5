"""A billing call that timed out after its command reached the log: the retry with the same Idempotency-Key
gets that command's result, and nothing is done twice (README: the delivery contract)."""

from __future__ import annotations

import httpx

from tally_api.app import create_app
from tally_cli.runtime import start_billing_worker
from tally_edge.idempotency import flush


async def test_retry_after_a_503_waits_for_the_first_command_instead_of_creating_a_second_customer(runtime):
    runtime.services.billing.timeout = 0.3  # no worker yet: the first answer cannot come in time
    app = create_app(runtime.services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tally.test",
                                 auth=(runtime.key, "")) as api:
        headers = {"Idempotency-Key": "create-jenny"}
        first = await api.post("/v1/customers", data={"email": "jenny@example.com"}, headers=headers)
        assert first.status_code == 503 and first.headers["stripe-should-retry"] == "true"
        assert "Retry with the same Idempotency-Key" in first.json()["error"]["message"]
        await flush(runtime.services.edge.idempotency, runtime.pool)
        stored = await runtime.services.pool.fetchrow("select status from idempotency_keys where key = $1",
                                                      "create-jenny")
        assert stored["status"] == 0  # pending, so another process (or this one after a restart) waits too

        await start_billing_worker(runtime)
        retry = await api.post("/v1/customers", data={"email": "jenny@example.com"}, headers=headers)
        assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
        again = await api.post("/v1/customers", data={"email": "jenny@example.com"}, headers=headers)
        assert again.json()["id"] == retry.json()["id"]
        customers = (await api.get("/v1/customers")).json()["data"]
        assert [c["email"] for c in customers] == ["jenny@example.com"]

        other = await api.post("/v1/customers", data={"email": "other@example.com"}, headers=headers)
        assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")
        await flush(runtime.services.edge.idempotency, runtime.pool)
        stored = await runtime.services.pool.fetchrow("select status from idempotency_keys where key = $1",
                                                      "create-jenny")
        assert stored["status"] == 200  # the final result replaced the pending marker
