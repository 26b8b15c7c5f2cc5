"""Where the time went when a target is missed: py-spy samples of the server under test, cProfile of an
in-process phase, wall time per SQL statement, and Python's garbage-collector pauses."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from time import perf_counter

import asyncpg


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
    "tally_edge": "tally_edge: endpoint wrapper (auth, params, idempotency), http helpers",
    "tally_api": "tally_api: routes and the billing gateway",
    "tally_catalog": "tally_catalog: meters, products and prices cache",
    "tally_aggregator": "tally_aggregator: usage projection",
    "tally_infra": "tally_infra: logs, pool",
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
            for (file, line, func), (_cc, nc, tt, ct, _) in stats.items() if "tally_bench/" not in file]
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


class GcPauses:
    """Time Python's cyclic garbage collector spends while the block runs (it scales with the books in memory)."""

    def __init__(self) -> None:
        self.by_gen: dict[int, list] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
        self._t = 0.0

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = perf_counter()
        else:
            st = self.by_gen[info["generation"]]
            st[0] += 1
            st[1] += perf_counter() - self._t

    def __enter__(self) -> "GcPauses":
        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *_exc) -> None:
        gc.callbacks.remove(self._cb)

    @property
    def seconds(self) -> float:
        return sum(t for _, t in self.by_gen.values())

    def summary(self, wall: float) -> str:
        return (f"GC pauses {self.seconds:.2f} s of {wall:.2f} s wall ({self.seconds / wall:.0%}): "
                + ", ".join(f"gen{g} {n}× {t:.2f} s" for g, (n, t) in self.by_gen.items()))
