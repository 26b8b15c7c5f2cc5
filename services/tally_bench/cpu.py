"""Per-process CPU accounting for `tally bench`: how many cores each named process tree (the bench, the server
under test, PostgreSQL, tansu) used during a phase, and how much went to everything else on the machine."""

from __future__ import annotations

import os
from time import perf_counter

import psutil


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
