"""Ingestion over HTTP against the real server processes, each figure beside its raw limit: `tally run` on the
Postgres log (with the end-to-end lag, accepted → visible in summaries), and `tally serve api+ingest` without
the in-process aggregator for comparison. The Kafka server's HTTP phases reuse `http_phases`.

Every load loop is bounded by a count and a time; where a target is missed the phase is run again briefly under
py-spy (`Bench.profile_http`).
"""

from __future__ import annotations

import asyncio
import time
from time import perf_counter

import asyncpg
import orjson

from tally_cli.database import open_pool
from tally_edge.accounts import create_account
from tally_infra.local import HOST
from tally_infra.logs.ports import METER_EVENTS

from .events import EVENT, NDJSON_LINES, STREAM_EVENTS, Events
from .http_client import HttpConn, build_request, call, paced, percentile
from .infra import Server
from .profiles import collapsed_top, pyspy_record
from .raw_limits import raw_copy
from .report import Row, console
from .session import Bench

CONNS_SINGLE, CONNS_STREAM, CONNS_NDJSON = 128, 16, 4
LAG_RATE = 10_000


async def setup_api(bench: Bench, srv: Server, key: str) -> tuple[Events, str]:
    form = f"display_name=Bench&event_name={EVENT}&default_aggregation%5Bformula%5D=sum".encode()
    status, meter = await call(HOST, srv.port, "POST", "/v1/billing/meters", auth=key,
                               ctype="application/x-www-form-urlencoded", body=form)
    if status != 200:
        raise RuntimeError(f"creating the meter failed: {status} {meter}")
    status, sess = await call(HOST, srv.port, "POST", "/v2/billing/meter_event_session", auth=key)
    if status != 200:
        raise RuntimeError(f"creating a meter event session failed: {status} {sess}")
    return Events(srv.port, key, sess["authentication_token"], bench.run), meter["id"]


async def http_phases(bench: Bench, srv: Server, ev: Events, backend: str, trivial: float | None, *, raw: float | None,
                      raw_what: str, batch_target: float | None, batch_ratio: float | None, between=None,
                      targets: bool = True) -> None:
    phases = [
        (f"single-event POST /v1/billing/meter_events [{backend}]", ev.single, CONNS_SINGLE, False, "req/s"),
        (f"v2 meter_event_stream, {STREAM_EVENTS} events/request [{backend}]", ev.stream, CONNS_STREAM, True,
         "ev/s"),
        (f"NDJSON stream, {NDJSON_LINES} lines/request [{backend}]", ev.ndjson, CONNS_NDJSON, True, "ev/s"),
    ]
    for figure, make, conns, batch, unit in phases:
        res, cpu = await bench.load(srv, make, conns, batch=batch)
        note = f"{conns} connections; {res.requests:,} requests in {res.seconds:.1f} s"
        if batch:
            row = Row(figure, res.ev_rate, unit, raw, raw_what, batch_target if targets else None,
                      batch_ratio if targets else None, note=note, cpu=cpu)
        else:
            row = Row(figure, res.req_rate, unit, trivial, "GET /healthz, same server and connections",
                      5000 if targets else None, 0.5 if targets else None, note=note, cpu=cpu)
        if res.errors:
            row.note += f"; {res.errors} errors"
        bench.add(row)
        if row.met is False:
            await bench.profile_http(figure, srv, make, conns, batch)
        if between is not None:
            await between()


async def postgres_backend(bench: Bench) -> None:
    console.rule("embedded default: `tally run` (Postgres log, in-process aggregator)")
    url = await bench.new_database("pg")
    srv = bench.server("pg", ["run"], url)
    key = await srv.start()
    bench.cpu.track("server", srv.proc.pid)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        ev, meter = await setup_api(bench, srv, key)
        trivial, cpu = await bench.load(srv, ev.healthz, CONNS_SINGLE)
        bench.add(Row("trivial endpoint GET /healthz [postgres server]", trivial.req_rate, "req/s",
                      note=f"{CONNS_SINGLE} connections (raw limit of the single POSTs)", cpu=cpu))
        await lag_phase(bench, srv, ev, meter)

        async def catch_up() -> None:
            t0 = perf_counter()
            behind = await backlog(pool)
            while behind and perf_counter() - t0 < bench.sz.catchup:
                await asyncio.sleep(0.25)
                behind = await backlog(pool)
            if behind:
                bench.notes.append(f"tally run's aggregator was still {behind:,} records behind after "
                                   f"{bench.sz.catchup:.0f} s; the next phase shared the server with it.")

        await catch_up()
        raw = await raw_copy(url, bench.sz.raw_records, bench.record_size, bench.cpu)
        bench.add(Row("raw limit: asyncpg COPY into log_records-shaped table", raw[0], "rows/s",
                      note=f"{bench.sz.raw_records:,} rows of {bench.record_size} B, 20,000 per COPY+commit",
                      cpu=raw[1]))
        await http_phases(bench, srv, ev, "postgres", trivial.req_rate, raw=raw[0], raw_what="raw COPY",
                          batch_target=50_000, batch_ratio=None, between=catch_up)
    finally:
        await pool.close()
        await srv.stop()
        bench.cpu.track("server", None)


async def postgres_ingest_only(bench: Bench) -> None:
    """For comparison: the same ingest on the Postgres log without the in-process aggregator sharing the core."""
    console.rule("for comparison: Postgres log, ingest only (`tally serve api+ingest`, no aggregator)")
    url = await bench.new_database("pgi")
    key = await make_account(url)
    srv = bench.server("pgi", ["serve", "api+ingest"], url)
    await srv.start()
    bench.cpu.track("server", srv.proc.pid)
    try:
        ev, _ = await setup_api(bench, srv, key)
        await http_phases(bench, srv, ev, "postgres, ingest only", None, raw=None, raw_what="", batch_target=None,
                          batch_ratio=None, targets=False)
    finally:
        await srv.stop()
        bench.cpu.track("server", None)


async def make_account(url: str) -> str:
    """An account on a database no server has opened yet; returns its secret key."""
    pool = await open_pool(url)
    try:
        return (await create_account(pool, now=int(time.time())))[1]
    finally:
        await pool.close()


async def backlog(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "select coalesce((select sum(next_offset) from log_heads where topic = $1), 0) - "
        "coalesce((select sum(next_offset) from consumer_offsets "
        "          where topic = $1 and group_id = 'tally-aggregator'), 0)",
        METER_EVENTS)


async def lag_phase(bench: Bench, srv: Server, ev: Events, meter: str, *, seconds: float | None = None,
                    record: bool = True) -> None:
    """Paced v2 stream at 10,000 events/s; every 10th request carries a marker customer whose summary is
    polled (every 20 ms) until it shows the event: accepted (the 200 reply) → visible."""
    seconds = seconds or bench.sz.lag_seconds
    start = int(time.time()) // 60 * 60 - 120
    polls: asyncio.Queue[HttpConn] = asyncio.Queue()
    for _ in range(8):
        polls.put_nowait(await HttpConn.open(HOST, srv.port))
    lags: list[float] = []
    missing = [0]
    tasks: set[asyncio.Task] = set()

    async def watch(customer: str, accepted_at: float) -> None:
        req = build_request("GET", f"/v1/billing/meters/{meter}/event_summaries?customer={customer}"
                            f"&start_time={start}&end_time={start + 7200}", ev.hostport, auth=ev.key)
        while perf_counter() - accepted_at < 30:
            conn = await polls.get()
            try:
                status, body = await conn.request(req)
            except (OSError, ConnectionError):
                conn.close()
                conn, status, body = await HttpConn.open(HOST, srv.port), 0, b""
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

    snap = bench.cpu.snap()
    res, achieved = await paced(HOST, srv.port, make, rate=LAG_RATE / STREAM_EVENTS, seconds=seconds, conns=32,
                                on_reply=on_reply)
    await asyncio.gather(*tasks)
    cpu = bench.cpu.since(snap)
    while not polls.empty():
        polls.get_nowait().close()
    if not record:
        return
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    note = (f"paced {LAG_RATE:,} ev/s for {seconds:.0f} s, achieved {achieved * STREAM_EVENTS:,.0f} ev/s sent, "
            f"{res.events / res.seconds:,.0f} accepted; {len(lags)} markers, {missing[0]} never seen; "
            f"polled every 20 ms")
    bench.add(Row("end-to-end lag p50, accepted → visible in summaries [postgres]", round(p50, 3), "s", note=note,
                  cpu=cpu))
    ok_rate = achieved * STREAM_EVENTS >= 0.95 * LAG_RATE and not missing[0]
    row = bench.add(Row("end-to-end lag p99, accepted → visible in summaries [postgres]", round(p99, 3), "s",
                        max_abs=2.0, force_miss=not ok_rate, note="" if ok_rate else "rate not sustained", cpu=cpu))
    if row.met is False:
        out = bench.tmp / "profile-lag.txt"
        spy = asyncio.create_task(pyspy_record(srv.proc.pid, bench.sz.profile_seconds, out))
        await asyncio.sleep(0.3)
        await lag_phase(bench, srv, ev, meter, seconds=bench.sz.profile_seconds, record=False)
        err = await spy
        bench.profiles[row.figure] = [err] if err else collapsed_top(out, bench.sz.profile_seconds)
