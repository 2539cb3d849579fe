"""What every benchmark run leaves behind: a JSON record, a PNG plot, and goals judged met or not.

Each script under benchmarks/ builds one `Record`: the machine it ran on, its arguments, its
figures (plain JSON data: numbers, lists, dicts) and its goals. `Record.finish` prints the goals
as a table of met / not met and writes `<out>/<name>-<UTC stamp>.json`; the script saves its plot
beside it with `Record.plot_path`. Nothing here asserts a speed: a goal not met is a figure to
read, not a failure (the scripts exit non-zero only when they could not measure).

    record = Record("capacity", vars(args))
    record.figures["runs"] = [...]
    record.goal("capacity vs DuckDB read_csv", ratio, ">=", 0.5, unit="x")
    fig.savefig(record.plot_path())
    record.finish(console)
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / ".scratch" / "bench"
"""Where records and plots go unless --out or $STREAMLINE_BENCH_OUT says otherwise (ignored by
git; docs/benchmarks/ holds the published copies)."""

VERSIONS = ("apache-airflow", "dag-factory", "fakesnow", "moto", "duckdb", "boto3")


def out_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder for records and plots: override, else $STREAMLINE_BENCH_OUT, else DEFAULT_OUT."""
    chosen = override or os.environ.get("STREAMLINE_BENCH_OUT") or DEFAULT_OUT
    return Path(chosen)


def machine() -> dict[str, Any]:
    """CPU model and count, memory (GiB), OS, Python and the stack's library versions."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = math.nan
    try:
        import psutil

        memory = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def machine_line(facts: dict[str, Any]) -> str:
    """machine() on one line, for the top of a report."""
    libs = ", ".join(f"{k} {v}" for k, v in facts["versions"].items() if v)
    return (
        f"{facts['cpus']} CPUs ({facts['cpu']}), {facts['memory_gib']} GiB, {facts['os']}, "
        f"Python {facts['python']}; {libs}"
    )


@dataclass
class Goal:
    """One goal of issue 12: `measured <op> target`, in `unit`. measured None = not measured."""

    name: str
    measured: float | None
    op: str
    target: float
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        """True or False; None when nothing was measured (a NaN counts as not measured)."""
        if self.measured is None or math.isnan(self.measured):
            return None
        if self.op == "<=":
            return self.measured <= self.target
        if self.op == ">=":
            return self.measured >= self.target
        raise ValueError(f"goal {self.name!r}: unknown operator {self.op!r}")

    @property
    def verdict(self) -> str:
        return {True: "met", False: "not met", None: "not measured"}[self.met]


@dataclass
class Record:
    """One run of one benchmark: what the JSON record holds."""

    name: str
    arguments: dict[str, Any]
    started: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    machine: dict[str, Any] = field(default_factory=machine)
    figures: dict[str, Any] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)
    out: Path = field(default_factory=out_dir)
    quick: bool = False
    """A quick run (--quick) proves the script runs and measures too little to judge: its goals
    are recorded as not measured, the value it saw only in the note."""

    @property
    def stem(self) -> str:
        """<name>-<UTC stamp>: the file name of the record and its plot, without suffix."""
        stamp = self.started.replace("-", "").replace(":", "")
        return f"{self.name}-{stamp}"

    def goal(
        self, name: str, measured: float | None, op: str, target: float, *, unit: str = "",
        note: str = "",
    ) -> Goal:  # fmt: skip
        """Add a goal and return it (not measured in a quick run)."""
        if self.quick:
            seen = figure(measured, unit)
            note = f"quick run, too little to judge (saw {seen})" + (f"; {note}" if note else "")
            measured = None
        added = Goal(name, measured, op, target, unit, note)
        self.goals.append(added)
        return added

    def plot_path(self) -> Path:
        """Where this run's PNG goes (the folder is made)."""
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / f"{self.stem}.png"

    def write(self) -> Path:
        """Write the JSON record; its path."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{self.stem}.json"
        data = asdict(self)
        data.pop("out")
        data.pop("quick")
        for goal, saved in zip(self.goals, data["goals"], strict=True):
            saved["met"] = goal.met
        text = json.dumps(_no_nan(data), indent=2, default=str, allow_nan=False)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    def finish(self, console: Console) -> Path:
        """Print the goals (met / not met) and write the record; the record's path."""
        print_goals(console, self.goals, f"{self.name}: goals")
        path = self.write()
        plot = self.out / f"{self.stem}.png"
        shown = f" and {plot}" if plot.exists() else ""
        console.print(f"record: {path}{shown}", highlight=False)
        return path


def _no_nan(value: Any) -> Any:
    """value with every NaN or infinity as None (null): JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def figure(value: float | None, unit: str) -> str:
    """A measured value with its unit, to 3 significant figures; '-' for none."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g} {unit}".strip()


def print_goals(console: Console, goals: Sequence[Goal], title: str) -> None:
    """The goals as a table: goal, measured, target, met / not met."""
    table = Table(title=title)
    for header in ("goal", "measured", "target", "verdict", "note"):
        table.add_column(header)
    styles = {True: "green", False: "red", None: "yellow"}
    for goal in goals:
        table.add_row(
            goal.name,
            figure(goal.measured, goal.unit),
            f"{goal.op} {figure(goal.target, goal.unit)}",
            f"[{styles[goal.met]}]{goal.verdict}[/]",
            goal.note,
        )
    console.print(table)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no screen here; PNG files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def console() -> Console:
    """A console wide enough for the tables when piped to a file; a terminal keeps its width."""
    import sys

    return Console(width=None if sys.stdout.isatty() else 140)
