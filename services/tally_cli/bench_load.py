"""The measuring tools of `tally bench`: a lean keep-alive HTTP/1.1 client, closed-loop and paced load drivers,
the raw limits (COPY, produce, consume + parse), the in-process aggregation and replay measurements, per-process
CPU accounting, and profile summaries (py-spy for the server, cProfile and SQL timing in-process).

The client is an `asyncio.Protocol` over raw sockets (no httpx/aiohttp machinery per request): one core of it
issues well over 20,000 requests/s, so the server under test, not the generator, is what is measured.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import itertools
import os
import pstats
import shutil
import sys
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
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
            try:
                status, body = await asyncio.wait_for(conn.request(data), 60)
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                res.fail(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = await HttpConn.open(host, port)
                continue
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


async def paced(host: str, port: int, make: Maker, *, rate: float, seconds: float, conns: int,
                on_reply: Callable[[int, float, int, bytes], None]) -> tuple[LoadResult, float]:
    """Open loop: request i is sent at t0 + i/rate (on a free connection; if none is free it waits, and the
    achieved rate shows it). Returns the result and the achieved request rate."""
    free: asyncio.Queue[HttpConn] = asyncio.Queue()
    for _ in range(conns):
        free.put_nowait(await HttpConn.open(host, port))
    res, tasks = LoadResult(concurrency=conns), set()

    async def one(i: int, conn: HttpConn, data: bytes, n: int) -> None:
        try:
            status, body = await asyncio.wait_for(conn.request(data), 60)
        except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
            res.fail(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = await HttpConn.open(host, port)
        else:
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


def _short(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (pkg/file.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])})" if parts else name


def collapsed_top(path: Path, seconds: float, rate: int = 200, top: int = 18) -> list[str]:
    """Top functions of a py-spy raw profile, by inclusive and by self samples."""
    incl: dict[str, int] = defaultdict(int)
    self_: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f]
        total += n
        for f in set(frames):
            incl[f] += n
        if frames:
            self_[frames[-1]] += n
    if not total:
        return ["(no samples: the process was idle)"]
    busy = total / (seconds * rate)
    out = [f"{total} samples, the server's Python thread busy ~{min(busy, 1.0):.0%} of the phase",
           f"{'incl%':>6} {'self%':>6}  function (by inclusive time)"]
    for f, n in sorted(incl.items(), key=lambda x: -x[1])[:top]:
        out.append(f"{100 * n / total:6.1f} {100 * self_.get(f, 0) / total:6.1f}  {f}")
    out.append(f"{'self%':>6}  function (by self time)")
    for f, n in sorted(self_.items(), key=lambda x: -x[1])[:top // 2]:
        out.append(f"{100 * n / total:6.1f}  {f}")
    return out


async def cprofile(coro_factory, top: int = 18) -> list[str]:
    """Run a coroutine under cProfile (in-process phases); top functions by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        await coro_factory()
    finally:
        prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(top)
    lines = [ln for ln in s.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return ["cProfile (Python time only; awaits are not counted as the caller's time):"] + lines[start:]


class TimedConnection(asyncpg.Connection):
    """asyncpg connection that adds up wall time per SQL statement (awaited round trip, PG work included)."""

    stats: dict[str, list] = defaultdict(lambda: [0, 0.0])

    @classmethod
    def reset(cls) -> None:
        cls.stats = defaultdict(lambda: [0, 0.0])

    def _add(self, query, t0: float, rows: int = 1) -> None:
        key = " ".join(str(query).split())[:90]
        st = TimedConnection.stats[key]
        st[0] += rows
        st[1] += perf_counter() - t0

    async def execute(self, query, *args, **kw):
        t0 = perf_counter()
        try:
            return await super().execute(query, *args, **kw)
        finally:
            self._add(query, t0)

    async def executemany(self, command, args, **kw):
        t0 = perf_counter()
        try:
            return await super().executemany(command, args, **kw)
        finally:
            self._add(command, t0)

    async def fetch(self, query, *args, **kw):
        t0 = perf_counter()
        try:
            return await super().fetch(query, *args, **kw)
        finally:
            self._add(query, t0)

    async def fetchval(self, query, *args, **kw):
        t0 = perf_counter()
        try:
            return await super().fetchval(query, *args, **kw)
        finally:
            self._add(query, t0)

    async def fetchrow(self, query, *args, **kw):
        t0 = perf_counter()
        try:
            return await super().fetchrow(query, *args, **kw)
        finally:
            self._add(query, t0)

    async def copy_records_to_table(self, table_name, **kw):
        t0 = perf_counter()
        try:
            return await super().copy_records_to_table(table_name, **kw)
        finally:
            self._add(f"COPY {table_name}", t0)


def sql_breakdown(wall: float, top: int = 8) -> list[str]:
    stats = TimedConnection.stats
    in_sql = sum(v[1] for v in stats.values())
    out = [f"SQL round trips {in_sql:.2f} s of {wall:.2f} s wall ({in_sql / wall:.0%}); the rest is Python "
           f"(decode, fold, encode) in this process", f"{'calls':>7} {'seconds':>8} {'%wall':>6}  statement"]
    for q, (n, t) in sorted(stats.items(), key=lambda x: -x[1][1])[:top]:
        out.append(f"{n:7d} {t:8.2f} {100 * t / wall:6.1f}  {q}")
    return out
