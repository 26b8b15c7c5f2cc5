"""The measuring tools of `tally bench`: a lean keep-alive HTTP/1.1 client, closed-loop and paced load drivers,
the raw limits (COPY, produce, consume + parse), the in-process aggregation and replay measurements, per-process
CPU accounting, and profile summaries (py-spy for the server, cProfile and SQL timing in-process).

The client is an `asyncio.Protocol` over raw sockets (no httpx/aiohttp machinery per request): one core of it
issues well over 20,000 requests/s, so the server under test, not the generator, is what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import itertools
import os
import pstats
import shutil
import sys
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import asyncpg
import orjson
import psutil


class HttpConn(asyncio.Protocol):
    """One keep-alive connection; `request` writes pre-built bytes and resolves to (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiting: deque[asyncio.Future] = deque()
        self.lost: Exception | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> "HttpConn":
        _, conn = await asyncio.get_running_loop().create_connection(cls, host, port)
        return conn

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            i = head.find(b"\r\ncontent-length:")
            if i < 0:
                length = 0
            else:
                j = head.find(b"\r\n", i + 2)
                length = int(head[i + 17:j if j > 0 else None])
            total = end + 4 + length
            if len(buf) < total:
                return
            status, body = int(head[9:12]), bytes(buf[end + 4:total])
            del buf[:total]
            if self.waiting:
                fut = self.waiting.popleft()
                if not fut.done():
                    fut.set_result((status, body))

    def connection_lost(self, exc) -> None:
        self.lost = exc or ConnectionError("connection closed by the server")
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(self.lost)

    def request(self, data: bytes) -> asyncio.Future:
        if self.lost is not None:
            raise self.lost
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        self.transport.write(data)
        return fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def build_request(method: str, path: str, host: str, *, auth: str | None = None, body: bytes = b"",
                  ctype: str | None = None, headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if auth:
        lines.append(f"Authorization: Bearer {auth}")
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def call(host: str, port: int, method: str, path: str, **kw) -> tuple[int, dict]:
    """One request on a fresh connection; the body parsed as JSON (or {"text": ...})."""
    conn = await HttpConn.open(host, port)
    try:
        status, body = await asyncio.wait_for(conn.request(build_request(method, path, f"{host}:{port}", **kw)), 30)
    finally:
        conn.close()
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, {"text": body.decode(errors="replace")}


@dataclass
class LoadResult:
    requests: int = 0
    events: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_error: str = ""
    concurrency: int = 0

    @property
    def req_rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ev_rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def fail(self, what: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = what[:300]


# make(i) -> (request bytes, events carried); events of a 200 response are counted by `accepted(body, n)`.
Maker = Callable[[int], tuple[bytes, int]]


def accepted_from_batch(body: bytes, _n: int) -> int:
    return orjson.loads(body).get("accepted", 0)


async def closed_loop(host: str, port: int, make: Maker, *, conns: int, seconds: float, max_requests: int,
                      accepted: Callable[[bytes, int], int] = lambda _b, n: n, warmup: float = 1.0) -> LoadResult:
    """`conns` connections, one request in flight on each, for `seconds` after `warmup` (bounded by count too).
    Completions inside the measuring window are counted; the window ends at the deadline or the last reply."""
    pool = [await HttpConn.open(host, port) for _ in range(conns)]
    res, counter = LoadResult(concurrency=conns), itertools.count()
    t_measure = perf_counter() + warmup
    deadline = t_measure + seconds
    last = [t_measure]

    async def worker(conn: HttpConn) -> None:
        while True:
            i = next(counter)
            if i >= max_requests or perf_counter() >= deadline:
                return
            data, n = make(i)
            conn, reply = await _exchange(conn, data, res, host, port)
            if reply is None:
                continue
            status, body = reply
            t = perf_counter()
            if t < t_measure or t > deadline:
                continue
            last[0] = max(last[0], t)
            if status == 200:
                res.requests += 1
                res.events += accepted(body, n)
            else:
                res.fail(f"HTTP {status}: {body[:250]!r}")

    try:
        await asyncio.gather(*(worker(c) for c in pool))
    finally:
        for c in pool:
            c.close()
    res.seconds = max(1e-9, min(deadline, last[0]) - t_measure)
    return res


async def _exchange(conn: "HttpConn", data: bytes, res: "LoadResult", host: str, port: int):
    """One request; on a broken connection count the failure and return a fresh connection and no reply."""
    try:
        return conn, await asyncio.wait_for(conn.request(data), 60)
    except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
        res.fail(f"{type(exc).__name__}: {exc}")
        conn.close()
        return await HttpConn.open(host, port), None


async def paced(host: str, port: int, make: Maker, *, rate: float, seconds: float, conns: int,
                on_reply: Callable[[int, float, int, bytes], None]) -> tuple[LoadResult, float]:
    """Open loop: request i is sent at t0 + i/rate (on a free connection; if none is free it waits, and the
    achieved rate shows it). Returns the result and the achieved request rate."""
    free: asyncio.Queue[HttpConn] = asyncio.Queue()
    for _ in range(conns):
        free.put_nowait(await HttpConn.open(host, port))
    res, tasks = LoadResult(concurrency=conns), set()

    async def one(i: int, conn: HttpConn, data: bytes, n: int) -> None:
        conn, reply = await _exchange(conn, data, res, host, port)
        if reply is not None:
            status, body = reply
            if status == 200:
                res.requests += 1
                res.events += accepted_from_batch(body, n)
                on_reply(i, perf_counter(), status, body)
            else:
                res.fail(f"HTTP {status}: {body[:250]!r}")
        free.put_nowait(conn)

    t0 = perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        delay = t0 + i / rate - perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await free.get()
        data, n = make(i)
        task = asyncio.create_task(one(i, conn, data, n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sent_for = perf_counter() - t0
    await asyncio.gather(*tasks)
    res.seconds = perf_counter() - t0
    while not free.empty():
        free.get_nowait().close()
    return res, total / sent_for


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


# ---------------------------------------------------------------- CPU accounting


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live descendants, and its reaped children."""
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for c in p.children(recursive=True):
            try:
                ct = c.cpu_times()
                total += ct.user + ct.system
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0.0


def _busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class CpuMeter:
    """Cores used per named process tree during a phase, plus 'other' (everything else on the machine)."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {"bench": os.getpid()}

    def track(self, name: str, pid: int | None) -> None:
        if pid:
            self.pids[name] = pid
        else:
            self.pids.pop(name, None)

    def snap(self) -> tuple[float, float, dict[str, float]]:
        me = os.times()
        per = {n: _tree_cpu(p) for n, p in self.pids.items() if n != "bench"}
        per["bench"] = me.user + me.system
        return perf_counter(), _busy(), per

    def since(self, snap) -> dict[str, float]:
        t1, busy1, per1 = self.snap()
        t0, busy0, per0 = snap
        wall = max(1e-9, t1 - t0)
        out = {n: max(0.0, per1[n] - per0.get(n, per1[n])) / wall for n in per1}
        out["other"] = max(0.0, (busy1 - busy0) / wall - sum(out.values()))
        return out


def fmt_cpu(cpu: dict[str, float] | None) -> str:
    if not cpu:
        return ""
    return " ".join(f"{n} {v:.2f}" for n, v in cpu.items() if v >= 0.01)


# ---------------------------------------------------------------- profiles


def pyspy_bin() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


async def pyspy_record(pid: int, seconds: float, out: Path) -> str | None:
    """Sample `pid` for `seconds` (raw collapsed stacks into `out`); returns an error text or None."""
    exe = pyspy_bin()
    if exe is None:
        return "py-spy is not installed (pip install py-spy into the venv to see the server's profile)"
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "-d", str(max(1, int(seconds))), "-r", "200", "--nonblocking",
        "--format", "raw", "-o", str(out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    if proc.returncode != 0 or not out.exists():
        return f"py-spy failed: {err.decode(errors='replace')[-300:]}"
    return None


LOOP = "Runner.run (asyncio/runners.py)"


def _split(frame: str) -> tuple[str, str]:
    """`func (path/to/file.py:123)` -> (`func (pkg/file.py)`, full path)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    return (f"{name} ({'/'.join(parts[-2:])})" if parts else name), path


_COMPONENTS = {
    "tally_core": "tally_core: validation, forms, codec, aggregation maths",
    "tally_ingest": "tally_ingest: ingest routes and Ingestor",
    "tally_api": "tally_api: endpoint wrapper (auth, params, idempotency)",
    "tally_infra": "tally_infra: http helpers, logs, usage store",
    "starlette": "HTTP framework: uvicorn + starlette",
    "uvicorn": "HTTP framework: uvicorn + starlette",
    "httptools": "HTTP framework: uvicorn + starlette",
    "aiokafka": "aiokafka (producer/consumer Python code)",
    "asyncpg": "asyncpg (protocol, encode/decode)",
}


def _component(paths: list[str], names: list[str]) -> str:
    if any(n.startswith("run_postgres_aggregator ") for n in names):
        return "in-process aggregator loop (tally run): read, fold, upsert"
    if names and names[-1] == LOOP:
        return "event loop: uvloop C code (socket I/O, callbacks)"
    for path in reversed(paths):  # the leaf-most frame of a known package decides (py-spy paths are module-relative)
        parts = Path(path).parts
        for anchor in ("site-packages", "services"):
            if anchor in parts:
                parts = parts[parts.index(anchor) + 1:]
        if parts and parts[0] in _COMPONENTS:
            return _COMPONENTS[parts[0]]
    return "other (stdlib)"


def collapsed_top(path: Path, seconds: float, rate: int = 200, top: int = 15) -> list[str]:
    """Where a py-spy raw profile's samples went: by component, by function (self), and tally's own functions
    by inclusive time. Stacks are cut at the event loop (the start-up chain above it is in every sample)."""
    incl: dict[str, int] = defaultdict(int)
    self_: dict[str, int] = defaultdict(int)
    comp: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        split = [_split(f) for f in stack.split(";") if f]
        names = [s for s, _ in split]
        if LOOP in names:
            split = split[names.index(LOOP):]
            names = names[names.index(LOOP):]
        total += n
        comp[_component([p for _, p in split], names)] += n
        for f in set(names):
            incl[f] += n
        if names:
            self_[names[-1]] += n
    if not total:
        return ["(no samples: the process was idle)"]
    busy = total / (seconds * rate)
    out = [f"py-spy: {total} samples at {rate} Hz over {seconds:.0f} s; the server process was on CPU "
           f"~{min(busy, 1.0):.0%} of the time", "  by component (leaf-most known package of each sample):"]
    out += [f"  {100 * n / total:6.1f}%  {c}" for c, n in sorted(comp.items(), key=lambda x: -x[1])]
    out.append("  top functions by self time:")
    for f, n in sorted(self_.items(), key=lambda x: -x[1])[:top]:
        out.append(f"  {100 * n / total:6.1f}%  {'event loop (uvloop C code)' if f == LOOP else f}")
    out.append("  tally functions by inclusive time:")
    ours = [(f, n) for f, n in incl.items() if "(tally_" in f or "(logs/" in f]
    for f, n in sorted(ours, key=lambda x: -x[1])[:top]:
        out.append(f"  {100 * n / total:6.1f}%  {f}")
    return out


async def cprofile(coro_factory, top: int = 20) -> list[str]:
    """Run a coroutine under cProfile (in-process phases); top functions by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        await coro_factory()
    finally:
        prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, func) -> (cc, ncalls, tottime, cumtime, callers)
    rows = [(ct, tt, nc, f"{func} ({'/'.join(Path(file).parts[-2:])}:{line})")
            for (file, line, func), (_cc, nc, tt, ct, _) in stats.items() if "tally_cli/bench" not in file]
    out = ["cProfile of a re-run (Python only; time a coroutine spends awaiting is not counted):",
           f"  {'cumtime':>8} {'tottime':>8} {'calls':>9}  function"]
    for ct, tt, nc, name in sorted(rows, key=lambda r: -r[0])[:top]:
        out.append(f"  {ct:8.3f} {tt:8.3f} {nc:9d}  {name}")
    return out


class TimedConnection(asyncpg.Connection):
    """asyncpg connection that adds up wall time per SQL statement (awaited round trip, PG work included)."""

    stats: dict[str, list] = defaultdict(lambda: [0, 0.0])

    @classmethod
    def clear_stats(cls) -> None:
        cls.stats = defaultdict(lambda: [0, 0.0])

    def _add(self, query, t0: float, rows: int = 1) -> None:
        key = " ".join(str(query).split())[:90]
        st = TimedConnection.stats[key]
        st[0] += rows
        st[1] += perf_counter() - t0


def _timed(name: str):
    """Wrap one asyncpg.Connection method so its wall time is added to the statement's stats."""
    method = getattr(asyncpg.Connection, name)

    async def wrapper(self, first, *args, **kw):
        t0 = perf_counter()
        try:
            return await method(self, first, *args, **kw)
        finally:
            self._add(f"COPY {first}" if name == "copy_records_to_table" else first, t0)

    wrapper.__name__ = name
    return wrapper


for _name in ("execute", "executemany", "fetch", "fetchval", "fetchrow", "copy_records_to_table"):
    setattr(TimedConnection, _name, _timed(_name))


def sql_breakdown(wall: float, top: int = 8) -> list[str]:
    stats = TimedConnection.stats
    in_sql = sum(v[1] for v in stats.values())
    out = [f"SQL round trips {in_sql:.2f} s of {wall:.2f} s wall ({in_sql / wall:.0%}); the rest is Python "
           f"(decode, fold, encode) in this process", f"{'calls':>7} {'seconds':>8} {'%wall':>6}  statement"]
    for q, (n, t) in sorted(stats.items(), key=lambda x: -x[1][1])[:top]:
        out.append(f"{n:7d} {t:8.2f} {100 * t / wall:6.1f}  {q}")
    return out


# ---------------------------------------------------------------- raw limits (in-process, bounded to 60 s each)

RAW_SECONDS = 60.0
GROUP = "bench"
LOG_COLUMNS = ("topic", "partition", "offset", "key", "value")


async def raw_copy(url: str, n: int, size: int, cpu: CpuMeter) -> tuple[float, dict]:
    """asyncpg COPY of log_records-shaped rows (same primary key), 20,000 rows per COPY and commit."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("drop table if exists bench_raw_log; "
                           "create table bench_raw_log (like log_records including all)")
        key, value, per = b"acct_bench:cus_00001", b"x" * size, 20_000
        batches = [[("meter-events", (i // per) % 8, i, key, value) for i in range(s, min(n, s + per))]
                   for s in range(0, n, per)]
        snap, t0, done = cpu.snap(), perf_counter(), 0
        for rows in batches:
            async with conn.transaction():
                await conn.copy_records_to_table("bench_raw_log", records=rows, columns=LOG_COLUMNS)
            done += len(rows)
            if perf_counter() - t0 > RAW_SECONDS:
                break
        rate = done / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await conn.execute("drop table if exists bench_raw_log")
        await conn.close()


async def raw_produce(bootstrap: str, n: int, size: int, cpu: CpuMeter) -> tuple[float, dict]:
    """aiokafka create_batch/send_batch with KafkaLog's producer settings, ≤32 batches in flight."""
    from aiokafka import AIOKafkaProducer

    from tally_infra.logs.kafka_log import create_topics

    await create_topics(bootstrap, {"bench-raw": 8})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=1 << 20,
                                max_request_size=8 << 20, enable_idempotence=False)
    await producer.start()
    try:
        key, value = b"acct_bench:cus_00001", b"x" * size
        inflight: deque = deque()
        snap, t0, sent, part = cpu.snap(), perf_counter(), 0, 0
        while sent < n and perf_counter() - t0 < RAW_SECONDS:
            batch = producer.create_batch()
            while sent < n and batch.append(key=key, value=value, timestamp=None) is not None:
                sent += 1
            inflight.append(await producer.send_batch(batch, "bench-raw", partition=part % 8))
            part += 1
            if len(inflight) >= 32:
                await inflight.popleft()
        await asyncio.gather(*inflight)
        rate = sent / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await producer.stop()


async def raw_kafka_consume(bootstrap: str, n: int, cpu: CpuMeter) -> tuple[float, dict]:
    """aiokafka getmany over every partition of meter-events (KafkaLog's consumer settings) + orjson.loads."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from tally_infra.logs.ports import METER_EVENTS

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_bytes=50 << 20, max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        known = consumer.partitions_for_topic(METER_EVENTS) or range(8)
        parts = [TopicPartition(METER_EVENTS, p) for p in sorted(known)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        n = min(n, sum((await consumer.end_offsets(parts)).values()))
        loads = orjson.loads
        snap, t0, got = cpu.snap(), perf_counter(), 0
        while got < n and perf_counter() - t0 < RAW_SECONDS:
            for msgs in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for m in msgs:
                    loads(m.value)
                got += len(msgs)
        rate = got / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await consumer.stop()


async def raw_pg_consume(url: str, n: int, cpu: CpuMeter) -> tuple[float, dict]:
    """Keyset pages of 10,000 log_records per partition + orjson.loads of every value."""
    conn = await asyncpg.connect(url)
    try:
        loads = orjson.loads
        snap, t0, got = cpu.snap(), perf_counter(), 0
        for part in range(8):
            off = 0
            while got < n and perf_counter() - t0 < RAW_SECONDS:
                rows = await conn.fetch('select "offset", value from log_records where topic = $1 and partition = $2 '
                                        'and "offset" >= $3 order by "offset" limit 10000', "meter-events", part, off)
                if not rows:
                    break
                for r in rows:
                    loads(r[1])
                got += len(rows)
                off = rows[-1][0] + 1
        rate = got / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await conn.close()


async def prefill_postgres(url: str, items: list[tuple[bytes, bytes]], cpu: CpuMeter) -> tuple[float, dict]:
    """Append records to the Postgres log the way ingest does (PostgresLog.append, 10,000 per call)."""
    from tally_infra.db import create_pool
    from tally_infra.logs.ports import METER_EVENTS
    from tally_infra.logs.postgres_log import PostgresLog

    pool = await create_pool(url)
    log = PostgresLog(pool, 8)
    try:
        snap, t0 = cpu.snap(), perf_counter()
        for s in range(0, len(items), 10_000):
            await log.append(METER_EVENTS, items[s:s + 10_000])
        return len(items) / (perf_counter() - t0), cpu.since(snap)
    finally:
        await log.close()
        await pool.close()


# ---------------------------------------------------------------- aggregation and replay (in-process)


class Capped:
    """A log whose meter-events scan stops after `limit` records (replaying the first part of a big topic)."""

    def __init__(self, log, limit: int):
        self.log, self.limit, self.partitions = log, limit, log.partitions

    async def end_offsets(self, topic: str) -> dict[int, int]:
        return await self.log.end_offsets(topic)

    async def scan(self, topic: str, start=None, batch: int = 10_000):
        from tally_infra.logs.ports import METER_EVENTS

        n = 0
        async with contextlib.aclosing(self.log.scan(topic, start, batch)) as it:
            async for records in it:
                yield records
                n += len(records)
                if topic == METER_EVENTS and n >= self.limit:
                    return


async def _usage_check(pool: asyncpg.Pool, expected: int) -> str:
    counted = int(await pool.fetchval("select coalesce(sum(event_count), 0) from usage_minutes"))
    indexed = await pool.fetchval("select count(*) from meter_event_index")
    ok = counted == expected == indexed
    return (f"usage counts {counted:,} events" if ok else
            f"MISMATCH: usage_minutes counts {counted:,}, meter_event_index {indexed:,}, applied {expected:,}")


async def _measure(url: str, kafka_log, n: int, cpu: CpuMeter, run, profile_if_below: tuple[float, float],
                   profile_cap: int):
    """Time `run(pool, log, cap)` with SQL timing; re-run the first `profile_cap` records under cProfile if slow."""
    from tally_infra.logs.postgres_log import PostgresLog
    from tally_infra.usage_store import truncate_usage

    pool = await asyncpg.create_pool(url, min_size=2, max_size=10, connection_class=TimedConnection)
    log = kafka_log or PostgresLog(pool, 8)
    try:
        async with pool.acquire() as conn:
            await truncate_usage(conn, GROUP)
        TimedConnection.clear_stats()
        snap, t0 = cpu.snap(), perf_counter()
        got = await run(pool, log, n)
        wall = perf_counter() - t0
        used, sql = cpu.since(snap), sql_breakdown(wall)
        rate = got / wall
        check = f"{got:,} records in {wall:.1f} s; " + await _usage_check(pool, got)
        profile = None
        if rate < max(profile_if_below):
            async with pool.acquire() as conn:
                await truncate_usage(conn, GROUP)
            profile = await cprofile(lambda: run(pool, log, profile_cap))
        return rate, used, sql, check, profile
    finally:
        if kafka_log is None:
            await log.close()
        await pool.close()


async def _drain(pool, log, cap: int) -> int:
    """Postgres log: the aggregator's own `drain` (batch 5000, as `tally run`); Kafka: KafkaLog.scan + apply,
    what the faust agent calls."""
    from tally_aggregator.postgres_loop import drain
    from tally_infra.logs.ports import METER_EVENTS
    from tally_infra.logs.postgres_log import PostgresLog
    from tally_infra.usage_store import UsageProjector

    projector = UsageProjector(pool, GROUP)
    if isinstance(log, PostgresLog):
        return await drain(Capped(log, cap), projector, batch=5000)
    done = 0
    async with contextlib.aclosing(log.scan(METER_EVENTS, None, 10_000)) as it:
        async for records in it:
            done += await projector.apply(records)
            if done >= cap:
                break
    return done


async def _replay(pool, log, cap: int) -> int:
    from .replay import replay_usage

    return await replay_usage(pool, Capped(log, cap), GROUP, batch=10_000)


async def measure_drain(url, kafka_log, n, cpu, *, profile_if_below, profile_cap):
    return await _measure(url, kafka_log, n, cpu, _drain, profile_if_below, profile_cap)


async def measure_replay(url, kafka_log, n, cpu, *, profile_if_below, profile_cap):
    return await _measure(url, kafka_log, n, cpu, _replay, profile_if_below, profile_cap)
