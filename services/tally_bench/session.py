"""One `tally bench` run: its sizes, its infrastructure, and the rows, notes and profiles the phases add.

Every phase takes the `Bench` and adds its figures with `add`; an HTTP load phase runs through `load`, and a
missed target is re-run briefly under py-spy with `profile_http`.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tally_infra.local import HOST

from .cpu import CpuMeter
from .http_client import LoadResult, accepted_from_batch, closed_loop
from .infra import Infra, Server
from .profiles import collapsed_top, pyspy_record
from .report import Row, print_report, print_row


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


class Bench:
    def __init__(self, quick: bool):
        self.sz = QUICK if quick else FULL
        self.quick = quick
        self.rows: list[Row] = []
        self.profiles: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.cpu = CpuMeter()
        self.run = uuid.uuid4().hex[:6]
        self.tmp = Path(tempfile.mkdtemp(prefix="tally-bench-"))
        self.infra = Infra(self.tmp, self.run, self.cpu)
        self.record_size = 0

    async def new_database(self, phase: str) -> str:
        return await self.infra.new_database(phase)

    def server(self, name: str, args: list[str], db_url: str, **env) -> Server:
        return self.infra.server(name, args, db_url, **env)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print_row(row)
        return row

    def report(self) -> None:
        print_report("tally bench" + (" --quick" if self.quick else ""), self.rows, self.notes, self.profiles)

    async def load(self, srv: Server, make, conns: int, *, seconds: float | None = None, batch: bool = False,
                   limit: int = 10_000_000) -> tuple[LoadResult, dict]:
        snap = self.cpu.snap()
        res = await closed_loop(HOST, srv.port, make, conns=conns, seconds=seconds or self.sz.seconds,
                                max_requests=limit, accepted=accepted_from_batch if batch else (lambda _b, n: n))
        if res.errors:
            self.notes.append(f"{srv.name}: {res.errors} failed requests; first: {res.first_error}")
        return res, self.cpu.since(snap)

    async def profile_http(self, figure: str, srv: Server, make, conns: int, batch: bool = False) -> None:
        """Re-run a missed HTTP phase briefly with py-spy sampling the server."""
        out = self.tmp / f"profile-{len(self.profiles)}.txt"
        spy = asyncio.create_task(pyspy_record(srv.proc.pid, self.sz.profile_seconds, out))
        await asyncio.sleep(0.3)
        await closed_loop(HOST, srv.port, make, conns=conns, seconds=self.sz.profile_seconds, warmup=0,
                          max_requests=10_000_000, accepted=accepted_from_batch if batch else (lambda _b, n: n))
        err = await spy
        self.profiles[figure] = [err] if err else collapsed_top(out, self.sz.profile_seconds)
