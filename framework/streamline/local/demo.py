"""`streamline demo`: the whole pipeline on one machine, then a report.

Edge events stream through Firehose into the lake; each feed's generated DAG runs with real Airflow
once per batch; the raw and mart tables are then counted, latencies measured, and one batch re-run
to show that it adds zero rows. Everything started is stopped; any failure makes the exit non-zero.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamline.errors import StreamlineError
from streamline.generation import generate
from streamline.local.stack import Stack, embedded_stack, firehose_config, provision, stop_process
from streamline.local.up import percentile
from streamline.model import Feed
from streamline.project import Project
from streamline.rendering import RenderSettings, quote_identifier, quote_literal, quote_table

WORKER_GRACE_SECONDS = 120.0
WORKER_READY_SECONDS = 90.0


@dataclass
class DemoOptions:
    """How much to stream and for how long."""

    duration: float = 20.0
    rate: float = 200.0
    seed: int = 42
    duplicate_rate: float = 0.05
    malformed_rate: float = 0.01
    workdir: Path = Path(".scratch/demo")


@dataclass
class FeedReport:
    feed: str
    batches: list[dict[str, Any]] = field(default_factory=list)
    raw_rows: int = 0
    mart_rows: int = 0
    distinct_keys: int = 0
    rejected_rows: int = 0
    emitted_lines: int = 0
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _airflow_env(stack: Stack, project: Project, workdir: Path, dags: Path) -> dict[str, str]:
    env = {**os.environ, **stack.airflow_env(dags, project)}
    env["AIRFLOW_HOME"] = str(workdir / "airflow")
    env["TMPDIR"] = str(workdir / "tmp")
    env["AWS_ENDPOINT_URL"] = stack.aws_endpoint
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def prepare_airflow(env: dict[str, str], log: Path) -> None:
    """Create the metadata DB and register the DAGs once, so parallel workers never race to."""
    with log.open("wb") as out:
        for command in (["db", "migrate"], ["dags", "reserialize"]):
            subprocess.run(
                [sys.executable, "-m", "airflow", *command],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
            )


def _start_worker(
    env: dict[str, str], dags: Path, feed: Feed, stack: Stack, results: Path, stop: Path, log: Path
) -> subprocess.Popen[bytes]:
    ready = results.with_suffix(".ready")
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "streamline.local.worker",
                "--dags-folder", str(dags),
                "--dag-id", feed.dag.dag_id,
                "--bucket", stack.bucket,
                "--prefix", feed.source.prefix,
                "--results", str(results),
                "--stop-file", str(stop),
                "--ready-file", str(ready),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_ready(workers: dict[str, subprocess.Popen[bytes]], ready: list[Path]) -> None:
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while not all(path.exists() for path in ready):
        failed = [name for name, worker in workers.items() if worker.poll() is not None]
        if failed:
            raise StreamlineError(f"DAG worker for {', '.join(failed)} exited while warming up")
        if time.monotonic() > deadline:
            raise StreamlineError(f"DAG workers not ready after {WORKER_READY_SECONDS:.0f} s")
        time.sleep(0.2)


def _read_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _count(cursor: Any, sql: str) -> int:
    cursor.execute(sql)
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _parse_ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def measure_feed(stack: Stack, feed: Feed, batches: list[dict[str, Any]]) -> FeedReport:
    """Count raw and mart rows and measure event -> mart latency for each finished batch."""
    report = FeedReport(feed.feed, batches=batches)
    raw, mart = quote_table(feed.raw), quote_table(feed.mart)
    keys = ", ".join(quote_identifier(k) for k in feed.key)
    ordering = quote_identifier(feed.ordering)
    with stack.connect() as conn:
        cursor = conn.cursor()
        report.raw_rows = _count(cursor, f"SELECT COUNT(*) FROM {raw}")
        report.mart_rows = _count(cursor, f"SELECT COUNT(*) FROM {mart}")
        report.rejected_rows = _count(
            cursor, f"SELECT COUNT(*) FROM {quote_table(feed.layout.quarantine)}"
        )
        report.distinct_keys = _count(
            cursor, f"SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM {raw})"
        )
        # An event re-sent later (an injected duplicate) keeps its original timestamp; only the
        # first arrival of each (key, ordering) pair measures event -> mart latency.
        seen: set[tuple[Any, ...]] = set()
        for batch in sorted(batches, key=lambda b: b["started"]):
            if not batch.get("claimed"):
                continue
            visible = batch["tasks"].get("transform", {}).get("end")
            if not visible:
                continue
            cursor.execute(
                f"SELECT {keys}, {ordering} FROM {raw} "
                f'WHERE "BATCH_ID" = {quote_literal(batch["batch_id"])}'
            )
            rows = [tuple(row) for row in cursor.fetchall()]
            visible_at = _parse_ts(visible)
            lags = []
            for row in rows:
                if row in seen:
                    continue
                seen.add(row)
                written = row[-1] if row[-1].tzinfo else row[-1].replace(tzinfo=dt.UTC)
                lags.append((visible_at - written).total_seconds())
            batch["rows"] = len(rows)
            if lags:
                batch["latency_p50"] = statistics.median(lags)
                batch["latency_max"] = max(lags)
                report.latencies.extend(lags)
    if report.mart_rows != report.distinct_keys:
        report.problems.append(
            f"mart has {report.mart_rows} rows for {report.distinct_keys} distinct keys"
        )
    failed = [b for b in batches if b["state"] != "success"]
    if failed:
        report.problems.append(f"{len(failed)} DAG runs failed: {[b['run_id'] for b in failed]}")
    return report


def run_demo(
    project: Project, feeds: Sequence[Feed], options: DemoOptions, console: Console
) -> int:
    """Run the demo end to end; 0 when every check held."""
    from streamline_edge import run as run_generator

    # Local-only credentials for moto; the generator uses the default boto3 chain like on the edge.
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    if not console.is_terminal:
        console.width = max(console.width, 120)
    workdir = options.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started = time.monotonic()
    problems: list[str] = []
    with embedded_stack(workdir) as stack:
        console.print(
            f"[bold]embedded stack[/] moto {stack.aws_endpoint}, "
            f"warehouse https://127.0.0.1:{stack.warehouse_port}"
        )
        provision(stack, project, feeds)
        dags = workdir / "dags"
        settings = RenderSettings(lake_url=f"s3://{stack.bucket}")
        generate(project, feeds, dags, settings, stack.sqs_url_prefix)
        env = _airflow_env(stack, project, workdir, dags)
        prepare_airflow(env, workdir / "airflow-setup.log")
        console.print(
            f"provisioned lake, {len(feeds)} Firehose streams and queues, warehouse objects; "
            f"Airflow metadata db ready ({time.monotonic() - started:.1f} s)"
        )
        stop = workdir / "stop"
        workers: dict[str, subprocess.Popen[bytes]] = {}
        results = {f.feed: workdir / f"runs-{f.feed}.jsonl" for f in feeds}
        try:
            for feed in feeds:
                workers[feed.feed] = _start_worker(
                    env,
                    dags,
                    feed,
                    stack,
                    results[feed.feed],
                    stop,
                    workdir / f"worker-{feed.feed}.log",
                )
            _wait_ready(workers, [results[f.feed].with_suffix(".ready") for f in feeds])
            console.print(f"DAG workers warmed up ({time.monotonic() - started:.1f} s)")
            config = firehose_config(
                stack,
                feeds,
                rate=options.rate,
                duration=options.duration,
                seed=options.seed,
                duplicate_rate=options.duplicate_rate,
                malformed_rate=options.malformed_rate,
            )
            outcome: dict[str, Any] = {}

            def stream() -> None:
                try:
                    outcome["stats"] = run_generator(config)
                except Exception as exc:  # reported below, after the workers stop
                    outcome["error"] = exc

            console.print(
                f"streaming {options.rate:.0f} events/s for {options.duration:.0f} s "
                f"through Firehose (duplicates {options.duplicate_rate:.0%}, malformed "
                f"{options.malformed_rate:.0%})..."
            )
            generator = threading.Thread(target=stream, name="generator")
            generator.start()
            seen: dict[str, int] = dict.fromkeys(results, 0)
            deadline = time.monotonic() + options.duration + WORKER_GRACE_SECONDS
            while time.monotonic() < deadline:
                if not generator.is_alive() and not stop.exists():
                    stop.touch()
                for name, path in results.items():
                    runs = _read_results(path)
                    for run in runs[seen[name] :]:
                        _print_run(console, name, run)
                    seen[name] = len(runs)
                if all(w.poll() is not None for w in workers.values()):
                    break
                time.sleep(0.5)
            generator.join()
            if "error" in outcome:
                problems.append(f"generator failed: {outcome['error']}")
            for name, worker in workers.items():
                if worker.poll() is None:
                    problems.append(f"worker for {name} did not finish in time")
                elif worker.returncode != 0:
                    problems.append(f"worker for {name} exited {worker.returncode}")
        finally:
            stop.touch()
            for worker in workers.values():
                stop_process(worker)
        stats = outcome.get("stats")
        reports = [measure_feed(stack, f, _read_results(results[f.feed])) for f in feeds]
        for report in reports:
            if stats is not None and report.feed in stats.feeds:
                emitted = stats.feeds[report.feed]
                report.emitted_lines = emitted.lines
                # Every line is a raw row or a quarantined one; exactly the malformed ones are
                # quarantined.
                if report.raw_rows + report.rejected_rows != report.emitted_lines:
                    report.problems.append(
                        f"raw has {report.raw_rows} rows and quarantine {report.rejected_rows} "
                        f"for {report.emitted_lines} lines emitted"
                    )
                if report.rejected_rows != emitted.malformed:
                    report.problems.append(
                        f"{report.rejected_rows} rows quarantined for {emitted.malformed} "
                        "malformed lines emitted"
                    )
        _print_summary(console, reports)
        problems.extend(f"{r.feed}: {p}" for r in reports for p in r.problems)
        problems.extend(_rerun_one_batch(console, stack, env, dags, feeds, reports, workdir))
        problems.extend(_report_status(console, stack, feeds))
    elapsed = time.monotonic() - started
    if problems:
        console.print("[bold red]demo failed:[/]")
        for problem in problems:
            console.print(f"  - {problem}", markup=False)
        return 1
    console.print(f"[bold green]demo passed[/] in {elapsed:.0f} s; every process stopped")
    return 0


def _print_run(console: Console, feed: str, run: dict[str, Any]) -> None:
    if not run.get("claimed"):
        console.print(f"  {feed:<10} run {run['run_id']}: no new files ({run['state']})")
        return
    copy = run.get("copy", {})
    console.print(
        f"  {feed:<10} batch {run['batch_id']}: {copy.get('files', 0)} files, "
        f"{copy.get('rows_loaded', 0)} rows loaded -> {run['state']}"
    )


def _print_summary(console: Console, reports: Sequence[FeedReport]) -> None:
    table = Table(title="StreamLine demo: per feed")
    for column in ("feed", "batches", "files", "emitted", "raw rows", "mart rows", "rejected",
                   "latency p50 s", "p95 s", "max s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "feed" else "right")
    for r in reports:
        claimed = [b for b in r.batches if b.get("claimed")]
        files = sum(int(b.get("copy", {}).get("files", 0)) for b in claimed)
        table.add_row(
            r.feed,
            str(len(claimed)),
            str(files),
            str(r.emitted_lines),
            str(r.raw_rows),
            str(r.mart_rows),
            str(r.rejected_rows),
            f"{percentile(r.latencies, 0.5):.1f}",
            f"{percentile(r.latencies, 0.95):.1f}",
            f"{max(r.latencies, default=float('nan')):.1f}",
        )
    console.print(table)
    batches = Table(title="per batch: event written -> visible in the mart")
    for column in ("feed", "batch", "rows", "p50 s", "max s", "run s"):
        batches.add_column(column, justify="left" if column in ("feed", "batch") else "right")
    for r in reports:
        for b in r.batches:
            if not b.get("claimed"):
                continue
            run_seconds = (_parse_ts(b["ended"]) - _parse_ts(b["started"])).total_seconds()
            batches.add_row(
                r.feed,
                b["batch_id"],
                str(b.get("rows", "")),
                f"{b.get('latency_p50', float('nan')):.1f}",
                f"{b.get('latency_max', float('nan')):.1f}",
                f"{run_seconds:.1f}",
            )
    console.print(batches)


def _rerun_one_batch(
    console: Console,
    stack: Stack,
    env: dict[str, str],
    dags: Path,
    feeds: Sequence[Feed],
    reports: Sequence[FeedReport],
    workdir: Path,
) -> list[str]:
    """Re-run the first batch of the first feed that has one; it must add zero rows."""
    for feed, report in zip(feeds, reports, strict=True):
        claimed = [b for b in report.batches if b.get("claimed") and b["state"] == "success"]
        if not claimed:
            continue
        batch_id = claimed[0]["batch_id"]
        before = _table_counts(stack, feed)
        results = workdir / f"rerun-{feed.feed}.jsonl"
        with (workdir / f"rerun-{feed.feed}.log").open("wb") as out:
            code = subprocess.run(
                [
                    sys.executable, "-m", "streamline.local.worker",
                    "--dags-folder", str(dags),
                    "--dag-id", feed.dag.dag_id,
                    "--bucket", stack.bucket,
                    "--prefix", feed.source.prefix,
                    "--results", str(results),
                    "--reprocess", batch_id,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode  # fmt: skip
        after = _table_counts(stack, feed)
        added = (after[0] - before[0], after[1] - before[1])
        console.print(
            f"re-ran {feed.feed} batch {batch_id}: raw {before[0]} -> {after[0]}, "
            f"mart {before[1]} -> {after[1]}: {added[0]} + {added[1]} rows added"
        )
        problems = []
        if code != 0:
            problems.append(f"re-run of {feed.feed} batch {batch_id} failed (exit {code})")
        if added != (0, 0):
            problems.append(f"re-run of {feed.feed} batch {batch_id} added rows: {added}")
        return problems
    return ["no batch was loaded, so none could be re-run"]


def _report_status(console: Console, stack: Stack, feeds: Sequence[Feed]) -> list[str]:
    """`streamline status` of the demo's stack, before it stops: every batch must be published."""
    from streamline.ledger import ConnectionRunner
    from streamline.reporting import print_status
    from streamline.status import collect_status

    s3 = stack.boto3_client("s3")
    with stack.connect() as conn:
        report = collect_status(
            feeds, lambda feed: s3, lambda feed: ConnectionRunner(conn), stack.bucket, latest=3
        )
    console.print("[bold]streamline status[/] (the batch ledger and the lake, as the demo ends):")
    print_status(report, console)
    problems = [f"{f.feed}: {p.kind}: {p.message}" for f in report.feeds for p in f.problems]
    for feed in report.feeds:
        open_batches = [b.batch_id for b in feed.open_batches]
        if open_batches:
            problems.append(f"{feed.feed}: batches still open: {open_batches}")
        unpublished = [r.batch_id for r in feed.batches if r.status not in ("published", "empty")]
        if unpublished:
            problems.append(f"{feed.feed}: batches not published: {unpublished}")
    return problems


def _table_counts(stack: Stack, feed: Feed) -> tuple[int, int]:
    with stack.connect() as conn:
        cursor = conn.cursor()
        return (
            _count(cursor, f"SELECT COUNT(*) FROM {quote_table(feed.raw)}"),
            _count(cursor, f"SELECT COUNT(*) FROM {quote_table(feed.mart)}"),
        )
