"""Reporters: a command's typed result, printed for people (rich) or for machines (JSON)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streamline.backfill import NOT_RUN, Backfill, Selection
from streamline.ledger import LedgerRow, QuarantinedRow
from streamline.status import StatusReport

if TYPE_CHECKING:
    from streamline.local.fidelity import ProbeResult


def _when(value: dt.datetime | None, now: dt.datetime) -> str:
    """A time as HH:MM:SS UTC, with the date when it is not today's."""
    if value is None:
        return "-"
    utc = value.astimezone(dt.UTC)
    return f"{utc:%H:%M:%S}" if utc.date() == now.date() else f"{utc:%Y-%m-%d %H:%M:%S}"


def _ago(value: dt.datetime | None, now: dt.datetime) -> str:
    if value is None:
        return "-"
    seconds = (now - value).total_seconds()
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def print_json(body: Any, console: Console) -> None:
    """One JSON document, nothing else, on the console's stream."""
    console.print(json.dumps(body, indent=2), markup=False, highlight=False, soft_wrap=True)


def print_probes(results: Sequence[ProbeResult], console: Console) -> None:
    """The fidelity probes: each one's outcome, then the figure (passing / total)."""
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    for column in ("probe", "result", "local warehouse", "Snowflake's documentation"):
        table.add_column(column, overflow="fold")
    for r in results:
        outcome = (
            "as documented"
            if r.passed
            else f"known gap: {r.probe.gap}"
            if r.probe.gap
            else "DIFFERS"
        )
        table.add_row(r.probe.name, outcome, r.got, r.probe.doc)
    console.print(table)
    passing = sum(r.passed for r in results)
    gaps = sum(bool(r.probe.gap) for r in results)
    console.print(
        f"{passing} of {len(results)} probes behave as Snowflake documents; {gaps} known gap"
        f"{'s' * (gaps != 1)} (docs/local-runtime.md)",
        markup=False,
        highlight=False,
    )


def print_quarantine(
    feed: str, rows: Sequence[QuarantinedRow], console: Console, total: int | None = None
) -> None:
    """A feed's quarantined rows, one line each: where, why, and the row as read; total, the
    count of all that matched (when more than those shown)."""
    if not rows:
        console.print(f"{feed}: no quarantined rows", markup=False, highlight=False)
        return
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    for column in ("batch", "file", "row", "column", "reason", "error", "record"):
        table.add_column(column, overflow="fold")
    for row in rows:
        line = "-" if row.source_row_number is None else str(row.source_row_number)
        where = (row.batch_id, row.source_file, line)
        table.add_row(*where, row.column_name or "-", row.error_code, row.error, row.record or "-")
    console.print(table)
    shown = f"{len(rows)} quarantined rows shown"
    if total is not None and total > len(rows):
        shown = f"{len(rows)} of {total} quarantined rows shown (raise --limit for more)"
    console.print(f"{feed}: {shown}", markup=False, highlight=False)


def print_status(report: StatusReport, console: Console) -> None:
    """Per feed: its problems with hints, the landing backlog, open and latest batches."""
    now = report.checked_at
    for feed in report.feeds:
        count = len(feed.problems)
        state = (
            "[green]healthy[/]" if feed.healthy else f"[red]{count} problem{'s' * (count != 1)}[/]"
        )
        backlog = feed.backlog
        waiting = (
            f"{backlog.files} files, {backlog.bytes} bytes, oldest {_ago(backlog.oldest, now)}"
            if backlog.files
            else "empty"
        )
        if backlog.empty_files:
            waiting += f"; {backlog.empty_files} zero-byte objects"
        console.print(f"[bold]{feed.feed}[/]: {state}; landing backlog: {waiting}")
        for problem in feed.problems:
            console.print(f"  [red]{problem.kind}[/]: {escape(problem.message)}")
            if problem.hint:
                console.print(f"      hint: {problem.hint}", markup=False)
        if feed.open_batches:
            opened = ", ".join(
                f"{b.batch_id} ({b.files} files, claimed {_ago(b.claimed_at, now)})"
                for b in feed.open_batches
            )
            console.print(f"  open batches: {opened}", markup=False)
        if feed.batches:
            console.print(_batches_table(feed.batches, now))
        else:
            console.print("  no batches in the ledger yet")
        if feed.redone is not None:
            redone = feed.redone
            span = (
                redone.first_batch_id
                if redone.batches == 1
                else f"{redone.first_batch_id} to {redone.last_batch_id}"
            )
            console.print(
                f"  redone (runs > 1): {redone.batches} batch{'es' * (redone.batches != 1)}, "
                f"{span}; the last claimed again {_when(redone.last_at, now)}",
                markup=False,
            )
    verdict = "[green]all feeds healthy[/]" if report.healthy else "[red]attention needed[/]"
    console.print(f"{verdict} (checked {report.checked_at:%Y-%m-%d %H:%M:%S} UTC; times in UTC)")


def _batches_table(rows: list[LedgerRow], now: dt.datetime) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    for name in ("batch", "status", "files", "loaded", "rows", "rejected", "set aside",
                 "deferred", "runs", "claimed", "finished"):  # fmt: skip
        left = name in ("batch", "status")
        table.add_column(name, justify="left" if left else "right", no_wrap=True)
    for row in rows:
        color = {"published": "green", "failed": "red", "empty": "dim"}.get(row.status, "yellow")
        finished = row.published_at or (row.failed_at if row.status == "failed" else None)
        table.add_row(
            row.batch_id,
            f"[{color}]{row.status}[/]",
            _count(row.files),
            _count(row.files_loaded),
            _count(row.rows_loaded),
            _count(row.rows_rejected),
            _count(row.files_skipped),
            _count(row.files_deferred),
            _count(row.runs),
            _when(row.claimed_at, now),
            _when(finished, now),
        )
    return table


def print_selection(selection: Selection, console: Console) -> None:
    """`reprocess --dry-run`: the batches it would reprocess, in order, and those left out."""
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    for column in ("batch", "in the lake"):
        table.add_column(column, no_wrap=True)
    for batch in selection.batches:
        where = "processed/ (published)" if batch.finished else "processing/ (open)"
        if batch.run_id and not batch.finished:
            where += f", last held by DAG run {batch.run_id}"
        table.add_row(batch.batch_id, where)
    count = len(selection.batches)
    console.print(
        f"would reprocess {count} batch{'es' * (count != 1)} of {selection.feed}, one DAG run "
        "at a time, in this order:",
        markup=False,
    )
    console.print(table)
    for batch, state in selection.left_out:
        console.print(
            f"left out: {batch.batch_id}, held by DAG run {batch.run_id}, which is {state}",
            markup=False,
        )


def print_backfill(result: Backfill, console: Console) -> None:
    """`reprocess` of several batches: a row per batch (its DAG run, outcome, rows loaded and
    runs from the ledger), then the verdict."""
    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    table.add_column("batch", no_wrap=True, min_width=max(len(r.batch_id) for r in result.runs))
    table.add_column("DAG run", overflow="fold")
    table.add_column("outcome", overflow="fold")
    for name in ("rows loaded", "runs", "seconds"):
        table.add_column(name, justify="right", no_wrap=True)
    for run in result.runs:
        color = "green" if run.ok else "dim" if run.run_id is None and not run.detail else "red"
        table.add_row(
            run.batch_id,
            run.run_id or "-",
            f"[{color}]{escape(run.outcome)}[/]",
            _count(run.rows_loaded),
            _count(run.row.runs if run.row is not None else None),
            f"{run.seconds:.0f}" if run.run_id else "-",
        )
    console.print(table)
    done = sum(run.ok for run in result.runs)
    total = len(result.runs)
    verdict = f"{done} of {total} batches of {result.feed} published"
    if result.published:
        console.print(f"[green]{verdict}[/]")
        return
    console.print(f"[red]{verdict}[/]")
    for run in result.runs:
        if not run.ok and run.detail:
            console.print(f"  {run.batch_id}: {run.detail}", markup=False)
    if result.stopped_at is not None:
        rest = [run.batch_id for run in result.runs if run.outcome == NOT_RUN]
        if rest:
            console.print(
                f"stopped at batch {result.stopped_at}; not run: {len(rest)} batches, "
                f"{rest[0]} to {rest[-1]} (--keep-going runs past a failure)",
                markup=False,
            )
