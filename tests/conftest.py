"""Fixtures that start real infrastructure: PostgreSQL (embedded, or TALLY_TEST_DATABASE_URL) and tansu."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tally_edge.accounts import create_account
from tally_infra.embedded import start_embedded, stop_embedded

# The local-infrastructure helpers, shared with `tally bench`; tests import them from here too.
from tally_infra.local import (  # noqa: F401
    create_database,
    drop_database,
    free_port,
    tansu_binary,
    tansu_broker,
    with_database,
)
from tally_infra.settings import Settings


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A PostgreSQL server: TALLY_TEST_DATABASE_URL if set, else an embedded one started for this run (one per
    xdist worker). Its data lives outside pytest's temporary root: as root the wheel runs the server as another
    user, and another pytest session resets that root to mode 0700 (and prunes old runs), cutting it off."""
    url = os.environ.get("TALLY_TEST_DATABASE_URL")
    if url:
        yield url
        return
    data_dir = Path(tempfile.mkdtemp(prefix="tally-test-pg-"))
    try:
        yield start_embedded(data_dir, stop_at_exit=True)
        stop_embedded(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def db_url(pg_url) -> str:
    """A fresh, empty database for one test."""
    name = "t_" + uuid.uuid4().hex[:12]
    yield await create_database(pg_url, name)
    await drop_database(pg_url, name)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """One broker for the session (tests use their own topics or accounts)."""
    with tansu_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def fresh_kafka() -> str:
    """A broker of the test's own, for tests that read whole shared topics (billing-commands, meter-events)."""
    with tansu_broker() as bootstrap:
        yield bootstrap


class FakeClock:
    """Wall time for the edge (ingest), under the test's control."""

    def __init__(self, start: float = 1_767_225_600.0):  # 2026-01-01T00:00:00Z
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(db_url, clock, tmp_path):
    """The whole service in-process, with an account; yields the runtime (`.account`, `.key`).

    The log is in memory: these tests are about the services, not a log backend (tests/tally_infra's contract
    suite holds every backend to the same behaviour; tests/tally_cli runs the Postgres log end to end). A
    second runtime on the same database passes `log=runtime.log`, as a restarted process finds its log."""
    from tally_cli.runtime import build
    from tally_infra.logs.memory_log import MemoryLog

    settings = Settings(database_url=db_url, data_dir=tmp_path, partitions=4)
    rt = await build(settings, clock=clock, database_url=db_url, log=MemoryLog(settings.partitions))
    account, key = await create_account(rt.services.pool, now=int(clock()))
    rt.account, rt.key = account, key
    yield rt
    await rt.close()


@pytest.fixture
async def client(runtime):
    """An HTTP client on the ASGI app, authenticated with the account's secret key."""
    from tally_api.app import create_app

    transport = httpx.ASGITransport(app=create_app(runtime.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://tally.test",
                                 auth=(runtime.key, "")) as c:
        yield c


@pytest.fixture
async def billing_client(runtime):
    """Like `client`, with the billing worker and the aggregator running in-process, as in `tally run`."""
    from tally_api.app import create_app
    from tally_cli.runtime import start_billing_worker, start_postgres_aggregator

    start_postgres_aggregator(runtime)
    await start_billing_worker(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime.services)),
                                 base_url="http://tally.test", auth=(runtime.key, "")) as c:
        yield c


async def drain_usage(rt) -> int:
    """Run the aggregator over everything appended so far."""
    from tally_aggregator.postgres_loop import drain
    from tally_aggregator.store import UsageProjector

    return await drain(rt.services.log, UsageProjector(rt.services.pool, rt.services.settings.consumer_group))


def tally_env(data_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update({"TALLY_DATA_DIR": str(data_dir), **{f"TALLY_{k.upper()}": str(v) for k, v in extra.items()}})
    return env


def tally_bin() -> str:
    return shutil.which("tally") or str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "tally")


@pytest.fixture
def server(db_url, tmp_path):
    """`tally run` as a subprocess on a fresh database; yields (base URL, secret key)."""
    env = tally_env(tmp_path, database_url=db_url, port=free_port())
    stderr = open(tmp_path / "tally-run.stderr", "w+")
    proc = subprocess.Popen([tally_bin(), "run"], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        banner = proc.stdout.readline() + proc.stdout.readline()
        key = banner.split("test secret key: ")[1].split()[0]
        base = f"http://127.0.0.1:{env['TALLY_PORT']}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base, key
    finally:
        proc.terminate()
        try:
            proc.wait(30)  # uvicorn's graceful shutdown is bounded at 5 s, then the runtime and PostgreSQL close
        except subprocess.TimeoutExpired:
            # A stop that hangs is a bug: say where it hangs (py-spy, where installed) and what it logged.
            spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
            where = subprocess.run([spy, "dump", "--pid", str(proc.pid)], capture_output=True, text=True).stdout \
                if spy else "(install py-spy to see the stacks)"
            proc.kill()
            stderr.seek(0)
            raise AssertionError(f"`tally run` did not stop within 30 s of SIGTERM\n{where}\n"
                                 f"stderr:\n{stderr.read()[-4000:]}") from None
        finally:
            stderr.close()
