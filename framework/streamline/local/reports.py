"""What the local runtime prints: endpoints, one line per finished batch, a status line, and one
summary table per run, the same for `up` and `demo` (latency as streamline.local.latency
defines it)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from streamline.local.latency import percentile
from streamline.local.monitor import FinishedRun
from streamline.local.stack import Stack
from streamline.model import Feed


def cli_command() -> str:
    """How to run this CLI again from a shell: `uv run streamline` when uv is on PATH (or its
    path, which `uv run` passes as $UV), else this process's own streamline script."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv:
        return f"{'uv' if shutil.which('uv') == uv else uv} run streamline"
    return sys.argv[0] if Path(sys.argv[0]).name == "streamline" else "streamline"


def endpoints(
    url: str, stack: Stack, workdir: Path, feeds: Sequence[Feed], journal: Path
) -> dict[str, str]:
    """Where a running local runtime is reached (API server at url), and its files."""
    return {
        "Airflow UI": f"{url}  (no login: everyone on 127.0.0.1 is admin)",
        "REST API": f"{url}/api/v2  (docs {url}/docs)",
        "AWS (moto)": f"{stack.aws_endpoint}  S3, Firehose, SQS, Secrets Manager",
        "warehouse": f"https://127.0.0.1:{stack.warehouse_port}  (fakesnow over TLS)",
        "feeds": ", ".join(f"{f.feed} ({f.trigger.mode})" for f in feeds),
        "metadata db": str(workdir / "airflow" / "airflow.db"),
        "logs": f"{workdir / 'logs'}  (one per component; task logs in logs/tasks)",
        "batches": str(journal),
        "pids": str(workdir / "pids.json"),
        "status": f"{cli_command()} status --local --workdir {workdir}",
    }


def print_endpoints(console: Console, rows: Mapping[str, str]) -> None:
    """One aligned `name  value` line per endpoint or file."""
    for name, value in rows.items():
        console.print(f"  [bold]{name:<12}[/] {value}", highlight=False)


def _figures(latencies: Sequence[float]) -> str:
    if not latencies:
        return "latency -"
    return f"latency p50 {percentile(latencies, 0.5):5.1f} s  max {max(latencies):5.1f} s"


def print_run(console: Console, run: FinishedRun) -> None:
    """One finished batch: feed, batch id, raw rows, latency, run time, state."""
    seconds = run.run_seconds
    took = f"run {seconds:4.1f} s" if seconds is not None else ""
    if not run.claimed:
        console.print(f"  {run.feed:<10} run {run.run_id}  {took}  {run.state} (no batch)",
                      highlight=False)  # fmt: skip
        return
    what = "reprocess" if run.reprocess else "batch"
    console.print(
        f"  {run.feed:<10} {what} {run.batch_id or run.run_id}  {run.rows:6d} rows  "
        f"{_figures(run.latencies)}  {took}  {run.state}",
        highlight=False,
    )


@dataclass
class FeedSummary:
    """One feed's figures over a run of the local runtime; the optional counts (None: not
    measured) are the demo's checks."""

    feed: str
    runs: list[FinishedRun] = field(default_factory=list)
    empty_runs: int = 0
    emitted_lines: int | None = None
    raw_rows: int | None = None
    mart_rows: int | None = None
    rejected_rows: int | None = None

    @property
    def batches(self) -> list[FinishedRun]:
        """Runs that claimed new files (reprocess runs and runs failed before a claim aside)."""
        return [r for r in self.runs if r.claimed and not r.reprocess]

    @property
    def latencies(self) -> list[float]:
        return [x for r in self.batches for x in r.latencies]


OPTIONAL = {"emitted": "emitted_lines", "raw rows": "raw_rows", "mart rows": "mart_rows",
            "rejected": "rejected_rows"}  # fmt: skip


def print_summary(console: Console, title: str, summaries: Sequence[FeedSummary]) -> None:
    """The per-feed table: batches, failed runs, reprocesses, runs without a batch, rows loaded,
    the optional counts any summary has, and latency p50 / p95 / max in seconds."""
    optional = [c for c, a in OPTIONAL.items() if any(getattr(s, a) is not None for s in summaries)]
    table = Table(title=title)
    columns = ["feed", "batches", "failed", "reprocessed", "empty runs", "rows", *optional,
               "p50 s", "p95 s", "max s"]  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "feed" else "right")
    for s in summaries:
        lat = s.latencies
        counts = [getattr(s, OPTIONAL[c]) for c in optional]
        table.add_row(
            s.feed,
            str(len(s.batches)),
            str(sum(r.state != "success" for r in s.runs)),
            str(sum(r.reprocess for r in s.runs)),
            str(s.empty_runs),
            str(sum(r.rows for r in s.batches)),
            *("-" if n is None else str(n) for n in counts),
            *(f"{percentile(lat, q):.1f}" if lat else "-" for q in (0.5, 0.95, 1.0)),
        )
    console.print(table)


def print_status_line(
    console: Console, summaries: Sequence[FeedSummary], lines: int, seconds: float
) -> None:
    """`[  30 s] N lines sent; <feed> B batches p50 X s p95 Y s; ...`"""
    parts = []
    for s in summaries:
        lat = s.latencies
        figures = (
            f" p50 {percentile(lat, 0.5):.1f} s p95 {percentile(lat, 0.95):.1f} s" if lat else ""
        )
        parts.append(f"{s.feed} {len(s.batches)} batches{figures}")
    console.print(f"[{seconds:4.0f} s] {lines} lines sent; " + "; ".join(parts), highlight=False)
