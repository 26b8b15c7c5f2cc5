"""Crash safety on the embedded log: SIGKILL loses no accepted event and counts none twice."""

import asyncio
import os
import signal
import subprocess

import httpx
import orjson
import pytest

from tally_aggregator.store import UsageProjector
from tally_cli.database import open_pool as create_pool
from tally_core.codec import decode, encode
from tally_core.meter_events import partition_key
from tally_infra.logs.ports import METER_EVENTS
from tally_infra.logs.postgres_log import PostgresLog
from tests.conftest import free_port, tally_bin, tally_env
from tests.reference import only_last_meaningful, projected_usage, reference_usage
from tests.workload import workload

pytestmark = pytest.mark.slow


async def wait_until(predicate, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_aggregator_killed_mid_stream_resumes_exactly(db_url, tmp_path):
    # given 60,000 events in the log
    pool = await create_pool(db_url)
    log = PostgresLog(pool, 4)
    records = workload(60_000, account="acct_crash", seed=3)
    for i in range(0, len(records), 5000):
        await log.append(METER_EVENTS, [(partition_key(r), encode(r)) for r in records[i:i + 5000]])
    ends = await log.end_offsets(METER_EVENTS)
    projector = UsageProjector(pool)
    env = tally_env(tmp_path, database_url=db_url, partitions=4, aggregator_batch=1000)

    async def consumed():
        return sum((await projector.positions()).values())

    # when the aggregator is SIGKILLed part way through, twice, and restarted
    for _ in range(2):
        before = await consumed()
        proc = subprocess.Popen([tally_bin(), "aggregator"], env=env)
        try:
            await wait_until(lambda: _more(consumed, before + 8000), 60, "the aggregator to make progress")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert await consumed() < sum(ends.values())  # it really died mid-stream
    proc = subprocess.Popen([tally_bin(), "aggregator"], env=env)
    try:
        await wait_until(lambda: _equal(projector.positions, ends), 120, "the aggregator to finish")
    finally:
        proc.terminate()
        proc.wait()
    # then the projection equals the reference fold: nothing lost, nothing doubled
    back = [(r.partition, r.offset, decode(r.value)) async for batch in log.scan(METER_EVENTS) for r in batch]
    back.sort(key=lambda x: (x[0], x[1]))
    expect = only_last_meaningful(reference_usage(back), {"mtr_last"})
    assert only_last_meaningful(await projected_usage(pool), {"mtr_last"}) == expect
    await log.close()
    await pool.close()


async def _more(consumed, target):
    return await consumed() >= target


async def _equal(positions, ends):
    return await positions() == ends


async def test_every_acknowledged_event_survives_a_killed_ingest(db_url, tmp_path):
    env = tally_env(tmp_path, database_url=db_url, partitions=4, port=free_port())
    out = subprocess.run([tally_bin(), "create-account"], env=env, capture_output=True, text=True, check=True)
    _account, key = out.stdout.split()
    proc = subprocess.Popen([tally_bin(), "serve", "api+ingest"], env=env)
    base = f"http://127.0.0.1:{env['TALLY_PORT']}"
    acked: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=base, auth=(key, ""), timeout=5) as c:
            await wait_until(lambda: _up(c), 30, "the server to start")
            r = await c.post("/v1/billing/meters", data={"display_name": "t", "event_name": "tokens",
                                                         "default_aggregation[formula]": "sum"})
            assert r.status_code == 200, r.text

            async def producer(worker: int):
                for i in range(100_000):
                    ident = f"w{worker}-{i}"
                    try:
                        if i % 10 == 0:  # every tenth request is an NDJSON batch of 200
                            ids = [f"{ident}-{j}" for j in range(200)]
                            body = b"\n".join(orjson.dumps({"event_name": "tokens", "identifier": x, "payload": {
                                "stripe_customer_id": f"cus_{worker}", "value": "1"}}) for x in ids)
                            r = await c.post("/v2/billing/meter_event_stream", content=body,
                                             headers={"Content-Type": "application/x-ndjson"})
                            if r.status_code == 200 and r.json()["accepted"] == 200:
                                acked.extend(ids)
                        else:
                            r = await c.post("/v1/billing/meter_events", data={
                                "event_name": "tokens", "identifier": ident,
                                "payload[stripe_customer_id]": f"cus_{worker}", "payload[value]": "1"})
                            if r.status_code == 200:
                                acked.append(ident)
                    except httpx.HTTPError:
                        return  # the server is gone

            tasks = [asyncio.create_task(producer(w)) for w in range(16)]
            await wait_until(lambda: _count(acked, 3000), 60, "acknowledged events")
            os.kill(proc.pid, signal.SIGKILL)  # mid-stream, with requests in flight
            proc.wait()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pool = await create_pool(db_url)
    log = PostgresLog(pool, 4)
    in_log = {decode(r.value)["identifier"] async for batch in log.scan(METER_EVENTS) for r in batch}
    assert len(acked) >= 3000
    assert set(acked) <= in_log, f"{len(set(acked) - in_log)} acknowledged events are missing from the log"
    await log.close()
    await pool.close()


async def _up(client):
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def _count(items, n):
    return len(items) >= n
