"""The load generator of `tally bench`: a lean keep-alive HTTP/1.1 client and the closed-loop and paced load
drivers built on it.

The client is an `asyncio.Protocol` over raw sockets (no httpx/aiohttp machinery per request): one core of it
issues well over 20,000 requests/s, so the server under test, not the generator, is what is measured.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

import orjson


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
