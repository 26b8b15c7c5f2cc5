"""What `tally bench` prints: one `Row` per figure, beside its raw limit and target, as each phase ends and in
the closing tables (figures, CPU per process tree, notes, profiles of missed targets)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cpu import fmt_cpu

OTHER_BUSY = 0.3  # cores used by processes outside the bench before a figure is flagged
console = Console(width=200)


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


_MET = {True: "[green]met[/]", False: "[red]missed[/]", None: ""}


def print_row(row: Row) -> None:
    """The line printed as a figure is measured."""
    value = f"{row.value:,.0f} {row.unit}" if row.value is not None and row.unit != "s" else f"{row.value} s"
    console.print(f"  {escape(row.figure)}: {value} {_MET[row.met]}  [dim]{escape(row.note)}[/]")


def print_report(title: str, rows: list[Row], notes: list[str], profiles: dict[str, list[str]]) -> None:
    """The closing tables. A figure measured while other processes were busy is marked † (and `notes` gets
    the explanation)."""
    t = Table(title=title, show_lines=False)
    for col, just in (("figure", "left"), ("measured", "right"), ("raw limit", "right"), ("ratio", "right"),
                      ("target", "left"), ("", "left")):
        t.add_column(col, justify=just)
    for r in rows:
        value = f"{r.value:,.3f} s" if r.unit == "s" else f"{r.value:,.0f} {r.unit}" if r.value is not None else "-"
        raw = f"{r.raw:,.0f} ({r.raw_what})" if r.raw else ""
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
        busy = " †" if r.cpu and r.cpu.get("other", 0) > OTHER_BUSY else ""
        t.add_row(escape(r.figure) + busy, value, escape(raw), ratio, r.target, _MET[r.met])
    console.print(t)
    c = Table(title="CPU used during each phase (cores; 2 = the whole machine)")
    c.add_column("figure")
    c.add_column("cpu by process tree")
    for r in rows:
        if r.cpu:
            c.add_row(escape(r.figure), fmt_cpu(r.cpu))
    console.print(c)
    if any(r.cpu and r.cpu.get("other", 0) > OTHER_BUSY for r in rows):
        notes.append(f"† other processes on this machine used more than {OTHER_BUSY} cores during that phase "
                     "(see the CPU table): the figure is lower than on an idle machine.")
    for n in notes:
        console.print(f"• {n}")
    for figure, lines in profiles.items():
        console.rule(f"profile: {escape(figure)}")
        for ln in lines:
            console.print(ln, markup=False, highlight=False)
