"""Recovery from infrastructure faults without a restart, on both logs.

Under a load of meter events, PostgreSQL is SIGKILLed (embedded log) or the broker is cut off (Kafka log).
While it is down every request is answered fast with 503 `service_unavailable` and `Stripe-Should-Retry: true`,
and `/readyz` names what is missing. Once it is back, tally (never restarted) carries on: every event the
clients retried until acknowledged is aggregated exactly once, and billing works again.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import psutil
import pytest

from tests.conftest import free_port, tally_env, tansu_binary
from tests.tally_cli.outage import FlakyProxy, Load, OwnPostgres, Tally, own_dir, usage_total, wait_for

pytestmark = pytest.mark.slow

FAST = 2.0  # seconds: the bound on any answer while a dependency is down


async def _meter(c: httpx.AsyncClient, event_name: str) -> str:
    r = await c.post("/v1/billing/meters", data={"display_name": "tokens", "event_name": event_name,
                                                 "default_aggregation[formula]": "sum"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def _not_ready(c: httpx.AsyncClient, dependency: str):
    started = time.monotonic()
    r = await c.get("/readyz")
    took = time.monotonic() - started
    if r.status_code == 503 and r.json()["checks"][dependency] != "ok":
        return r, took
    return None


async def _ready(c: httpx.AsyncClient):
    r = await c.get("/readyz")
    return r if r.status_code == 200 else None


def _assert_outage_answers(load: Load, during: list[tuple[int, float, dict, str | None]]) -> None:
    """Every refusal was a fast, retriable 503 in Stripe's shape; none was a 500 or a hang."""
    assert load.refusals and during, "the outage was never observed by ingest and billing"
    refusals = [(r.status, r.seconds, r.error, r.should_retry) for r in load.refusals] + during
    for status, seconds, error, retry in refusals:
        assert status == 503, (status, error)
        assert error["type"] == "api_error" and error["code"] == "service_unavailable", error
        assert retry == "true"
        assert seconds < FAST, f"a request took {seconds:.2f} s to fail"


async def _customer_works(c: httpx.AsyncClient):
    r = await c.post("/v1/customers", data={"name": "after the outage"})
    if r.status_code == 200:
        return r.json()
    assert r.status_code == 503, r.text  # billing may still be catching up, but only ever says so
    return None


async def _some_usage(c: httpx.AsyncClient, meter: str, customer: str, start: int) -> bool:
    return await usage_total(c, meter, customer, start, (int(time.time()) // 60 + 2) * 60) > 0


async def _exact(c: httpx.AsyncClient, load: Load, meter: str, customer: str, start: int):
    total = await usage_total(c, meter, customer, start, (int(time.time()) // 60 + 2) * 60)
    return total == load.total() and total


async def _load_through_outage(c: httpx.AsyncClient, load: Load, meter: str, customer: str, start: int, *,
                               dependency: str, cut, restore) -> None:
    """The shared script: load, cut `dependency`, check fast 503s and readiness, restore, check exact totals."""
    runner = asyncio.create_task(load.run())
    try:
        await load.until_acked(150, 60)
        # (faust may still be joining its group: a broker lost before it ever consumed is another story)
        await wait_for(lambda: _some_usage(c, meter, customer, start), 60, "the aggregator to be consuming")
        await cut()
        # then readiness names the dependency, quickly, in Stripe's error shape
        r, took = await wait_for(lambda: _not_ready(c, dependency), 10, f"/readyz to name {dependency}")
        assert took < FAST + 0.5 and r.headers["stripe-should-retry"] == "true"
        assert r.json()["error"]["code"] == "service_unavailable" and dependency in r.json()["error"]["message"]
        assert (await c.get("/healthz")).status_code == 200  # liveness: the process itself is fine
        # and a billing call fails fast too
        during = []
        for _ in range(3):
            started = time.monotonic()
            b = await c.post("/v1/customers", data={"name": "during the outage"})
            during.append((b.status_code, time.monotonic() - started, b.json().get("error", {}),
                           b.headers.get("stripe-should-retry")))
        await asyncio.sleep(2)
        acked_while_down = len(load.acked)
        await restore()
        await wait_for(lambda: _ready(c), 60, "/readyz to be 200 again")
        await load.until_acked(acked_while_down + 150, 60)
    finally:
        load.stop.set()
        await asyncio.wait_for(runner, 60)
    _assert_outage_answers(load, during)
    # then billing works again, and every acknowledged event is aggregated exactly once
    assert await wait_for(lambda: _customer_works(c), 30, "billing to answer again")
    await wait_for(lambda: _exact(c, load, meter, customer, start), 60, "usage to equal the acknowledged total")
    await asyncio.sleep(1.5)
    assert await _exact(c, load, meter, customer, start), "usage changed after it was exact (counted twice)"


async def test_postgres_killed_under_load_and_started_again(tmp_path):
    with own_dir("outage") as root:
        await _postgres_killed(root, tmp_path)


async def _postgres_killed(root, tmp_path):
    # given tally run on a PostgreSQL of the test's own, and a meter
    pg = OwnPostgres(root)
    env = tally_env(tmp_path / "tally", database_url=pg.url, port=free_port(), partitions=4)
    tally = Tally(["run"], env, tmp_path / "tally.log")
    try:
        await asyncio.to_thread(tally.wait_banner)
        async with httpx.AsyncClient(base_url=tally.base, auth=(tally.key, ""), timeout=30) as c:
            await wait_for(lambda: _ready(c), 30, "tally to be ready")
            meter, customer = await _meter(c, "pg_tokens"), "cus_outage"
            start = (int(time.time()) // 60 - 1) * 60
            load = Load(c, "pg_tokens", customer)
            # when the postmaster is SIGKILLed under load, and PostgreSQL alone is started again a few s later
            await _load_through_outage(c, load, meter, customer, start, dependency="postgres",
                                       cut=lambda: asyncio.to_thread(pg.kill),
                                       restore=lambda: asyncio.to_thread(pg.start))
        # (then, above: fast 503s while down, and exact totals after) and tally never restarted
        assert tally.proc.poll() is None, tally.log()
    except BaseException:
        print(tally.log())
        raise
    finally:
        tally.stop()
        pg.stop()


async def test_broker_unreachable_under_load_and_back(db_url, tmp_path):
    # given tansu behind a proxy that can cut it off (tansu keeps topics in memory, so it is never restarted),
    # tally run and the faust aggregator on the Kafka log
    import subprocess

    broker_port = free_port()
    proxy = await FlakyProxy(broker_port).start()
    advertised = f"tcp://127.0.0.1:{proxy.port}"
    broker = subprocess.Popen([tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
                               "--advertised-listener-url", advertised],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # (log_append_timeout: the appends in flight when the broker goes are given up on after it; later ones fail
    # at once. The default, 5 s, would let those few exceed FAST.)
    env = tally_env(tmp_path, database_url=db_url, kafka_bootstrap=f"127.0.0.1:{proxy.port}", port=free_port(),
                    partitions=4, kafka_session_timeout=6, log_append_timeout=1.5)
    procs: list[Tally] = []
    try:
        await wait_for(lambda: _port_open(broker_port), 20, "tansu to listen")
        tally = Tally(["run"], env, tmp_path / "tally.log")
        procs.append(tally)
        tally = await asyncio.to_thread(tally.wait_banner)
        procs.append(Tally(["aggregator"], env, tmp_path / "aggregator.log"))
        async with httpx.AsyncClient(base_url=tally.base, auth=(tally.key, ""), timeout=30) as c:
            await wait_for(lambda: _ready(c), 60, "tally to be ready")
            meter, customer = await _meter(c, "kafka_tokens"), "cus_broker"
            start = (int(time.time()) // 60 - 1) * 60
            load = Load(c, "kafka_tokens", customer)
            # when the broker is unreachable for a few seconds under load
            await _load_through_outage(c, load, meter, customer, start, dependency="log",
                                       cut=proxy.cut, restore=proxy.restore)
        assert all(p.proc.poll() is None for p in procs), [p.log() for p in procs]
    except BaseException:
        for p in procs:
            print(p.log())
        raise
    finally:
        for p in procs:
            p.stop()
        await proxy.close()
        broker.kill()
        broker.wait()


async def _port_open(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    return True


def _postgres_of(pgdata) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "postgres" and str(pgdata) in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_stop_stops_the_embedded_postgres(tmp_path, sig):
    with own_dir("stop") as data_dir:
        _clean_stop(data_dir, tmp_path, sig)


def _clean_stop(data_dir, tmp_path, sig):
    # given tally run with no database URL: it starts an embedded PostgreSQL in its data directory
    env = tally_env(data_dir, port=free_port())
    pgdata = (data_dir / "pg").resolve()
    tally = None
    try:
        for attempt in range(2):
            tally = Tally(["run"], env, tmp_path / f"tally{attempt}.log")
            tally.wait_banner()
            assert _postgres_of(pgdata), "no embedded PostgreSQL was started"
            r = httpx.get(f"{tally.base}/readyz", timeout=10)
            assert r.status_code == 200, r.text
            # when it is stopped cleanly (SIGTERM, or Ctrl-C)
            tally.proc.send_signal(sig)
            assert tally.proc.wait(30) == 0, tally.log()
            # then no PostgreSQL of that data directory is left (its last process exits just after pg_ctl
            # returns), and (second round) a new start works
            _, alive = psutil.wait_procs(_postgres_of(pgdata), timeout=10)
            assert not alive, (tally.log(), [p.info for p in alive])
    finally:
        if tally is not None:
            tally.stop()
        for leftover in _postgres_of(pgdata):  # only after a failure: the server this test caused to start
            leftover.kill()
