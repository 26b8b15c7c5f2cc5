"""The delivery contract: after an ambiguous answer (a timeout, a 5xx) a client retries the same meter event
with the same `identifier` (or the same `Idempotency-Key`), and it is counted once, whatever happened to
the first attempt.

Two ways the first answer gets lost, both after tally did the work: a gateway between client and tally
times out (the client sees a 504 while tally answered 200), and tally's own write commits but the
acknowledgement is lost (tally answers 5xx). A retry may reach another tally process, one that has never
seen the first attempt; the aggregator's dedup by identifier is what keeps the count right.
"""

from __future__ import annotations

import httpx
import pytest

from tally_api.app import create_app
from tally_cli.runtime import build
from tests.conftest import drain_usage
from tests.factories import create_meter

DAY = 1_767_225_600
EVENT = {"event_name": "alpaca_ai_tokens", "payload[stripe_customer_id]": "cus_1", "payload[value]": "7"}


class Gateway:
    """An ASGI proxy in front of tally: while `losing`, it lets tally handle the request to the end and then
    answers 504 itself, as a load balancer does when tally answers after its timeout."""

    def __init__(self, app):
        self.app, self.losing, self.lost = app, False, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.losing:
            return await self.app(scope, receive, send)
        answered: list[dict] = []

        async def swallow(message):
            answered.append(message)

        await self.app(scope, receive, swallow)
        self.lost.append(answered[0]["status"])
        await send({"type": "http.response.start", "status": 504, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"gateway timeout"})


class LostAcknowledgement:
    """The meter-events log with one write that commits and then fails, as a connection cut just after
    PostgreSQL (or Kafka) committed would: tally cannot tell the client whether the event was taken."""

    def __init__(self, log):
        self.log, self.armed = log, False

    async def append(self, topic, records):
        offsets = await self.log.append(topic, records)
        if self.armed:
            self.armed = False
            raise ConnectionResetError("connection lost before the commit was acknowledged")
        return offsets

    def __getattr__(self, name):
        return getattr(self.log, name)


@pytest.fixture
async def gateway(runtime):
    gw = Gateway(create_app(runtime.services))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw), base_url="http://tally.test",
                                 auth=(runtime.key, "")) as c:
        c.gateway = gw
        yield c


@pytest.fixture
async def other_process(runtime, db_url, clock):
    """Starts a second tally process on the same database and log, which never sees the first attempt."""
    started = []

    async def start() -> httpx.AsyncClient:
        rt = await build(runtime.services.settings, clock=clock, database_url=db_url, log=runtime.log)
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt.services)),
                              base_url="http://tally.test", auth=(runtime.key, ""))
        started.append((rt, c))
        return c

    yield start
    for rt, c in started:
        await c.aclose()
        await rt.close()


async def counted(client) -> float:
    r = await client.get("/v1/billing/meters", params={"limit": 1})
    meter = r.json()["data"][0]["id"]
    r = await client.get(f"/v1/billing/meters/{meter}/event_summaries",
                         params={"customer": "cus_1", "start_time": DAY, "end_time": DAY + 86400})
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["aggregated_value"]


def lose_next_acknowledgement(runtime) -> LostAcknowledgement:
    ingestor = runtime.services.ingestor
    if not isinstance(ingestor.log, LostAcknowledgement):
        ingestor.log = LostAcknowledgement(ingestor.log)
    ingestor.log.armed = True
    return ingestor.log


async def test_a_timed_out_event_retried_with_its_identifier_counts_once(runtime, gateway, other_process):
    await create_meter(gateway)
    event = {**EVENT, "identifier": "order-1042"}
    gateway.gateway.losing = True
    first = await gateway.post("/v1/billing/meter_events", data=event)
    gateway.gateway.losing = False
    assert first.status_code == 504 and gateway.gateway.lost == [200]  # tally took it; the client cannot know
    retry = await gateway.post("/v1/billing/meter_events", data=event)
    assert retry.status_code == 400 and retry.headers["Stripe-Should-Retry"] == "false"
    assert (retry.json()["error"]["code"], retry.json()["error"]["param"]) == ("duplicate_meter_event", "identifier")
    # The same retry through a process that never saw the first attempt is accepted again, and still
    # counted once: the aggregator drops the identifier it already counted.
    elsewhere = await other_process()
    assert (await elsewhere.post("/v1/billing/meter_events", data=event)).status_code == 200
    assert await drain_usage(runtime) == 2
    assert await counted(gateway) == 7


async def test_a_5xx_event_retried_with_its_identifier_counts_once(runtime, client):
    await create_meter(client)
    event = {**EVENT, "identifier": "order-1043"}
    lose_next_acknowledgement(runtime)
    first = await client.post("/v1/billing/meter_events", data=event)
    assert first.status_code >= 500 and first.headers["Stripe-Should-Retry"] == "true"
    retry = await client.post("/v1/billing/meter_events", data=event)
    assert retry.status_code == 200  # tally does not know the first write went through ...
    assert await drain_usage(runtime) == 2  # ... so the log holds the event twice ...
    assert await counted(client) == 7  # ... and it is counted once
    assert (await client.post("/v1/billing/meter_events", data=event)).status_code == 400


async def test_a_timed_out_event_retried_with_its_idempotency_key_counts_once(runtime, gateway, other_process):
    await create_meter(gateway)
    key = {"Idempotency-Key": "4d1f7b2e-retry"}  # no identifier: tally derives one from the key
    gateway.gateway.losing = True
    assert (await gateway.post("/v1/billing/meter_events", data=EVENT, headers=key)).status_code == 504
    gateway.gateway.losing = False
    retry = await gateway.post("/v1/billing/meter_events", data=EVENT, headers=key)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"  # Stripe's replay
    elsewhere = await (await other_process()).post("/v1/billing/meter_events", data=EVENT, headers=key)
    assert elsewhere.status_code == 200 and elsewhere.json()["identifier"] == retry.json()["identifier"]
    await drain_usage(runtime)
    assert await counted(gateway) == 7


async def test_a_5xx_event_retried_with_its_idempotency_key_counts_once(runtime, client):
    await create_meter(client)
    key = {"Idempotency-Key": "4d1f7b2e-5xx"}
    lose_next_acknowledgement(runtime)
    first = await client.post("/v1/billing/meter_events", data=EVENT, headers=key)
    assert first.status_code >= 500 and first.headers["Stripe-Should-Retry"] == "true"
    retry = await client.post("/v1/billing/meter_events", data=EVENT, headers=key)
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry.headers  # a 5xx is not replayed
    assert await drain_usage(runtime) == 2
    assert await counted(client) == 7


async def test_without_identifier_or_key_a_retry_counts_twice(runtime, client):
    """Why the README says to always send one: tally cannot tell a retry from a second event."""
    await create_meter(client)
    lose_next_acknowledgement(runtime)
    assert (await client.post("/v1/billing/meter_events", data=EVENT)).status_code >= 500
    assert (await client.post("/v1/billing/meter_events", data=EVENT)).status_code == 200
    await drain_usage(runtime)
    assert await counted(client) == 14
