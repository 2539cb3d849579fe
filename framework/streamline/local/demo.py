"""`streamline demo`: the whole pipeline on one machine for a short while, checked and reported.

On the local runtime (streamline.local.runtime: the same stack and Airflow components as `up`),
edge events stream through Firehose for --duration seconds, with injected duplicate and malformed
lines; while they do, the first published batch is reprocessed through the REST API, as
`streamline reprocess` does, and must keep its rows. Once the stream has ended and every landed file
is published, the demo counts the tables and checks that nothing was lost, duplicated or silent:
- raw rows + quarantined rows = lines emitted, and quarantined rows = malformed lines emitted;
- the mart holds one row per distinct key of raw;
- every DAG run succeeded and `streamline status` shows every batch published.
Any failed check makes the exit code 1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from streamline.airflowapi import ApiError, RestApi, trigger_run
from streamline.local import reports
from streamline.local.latency import has_latency
from streamline.local.monitor import FinishedRun
from streamline.local.runtime import INTERRUPTED, Runtime, RuntimeOptions, run_local
from streamline.model import Feed
from streamline.project import Project
from streamline.rendering import quote_identifier, quote_table

DRAIN_SECONDS = 60.0
"""After the stream ends (and a reprocess waiting behind a poll sensor): how long every landed
file has to be published."""


def run_demo(
    project: Project, feeds: Sequence[Feed], options: RuntimeOptions, console: Console
) -> int:
    """Run the demo end to end (options.duration seconds of streaming, then the checks); 0 when
    every check held, 1 otherwise, 2 for a refused workdir."""
    started = time.monotonic()
    problems: list[str] = []
    code = run_local(project, feeds, options, console, lambda rt: _demo(rt, problems))
    if code == 2:
        return 2
    if code == INTERRUPTED:
        problems.insert(0, "interrupted (SIGINT or SIGTERM): nothing was checked")
    elif code and not problems:
        problems.append(f"the local runtime failed (exit {code}); see the output above")
    if problems:
        console.print("[bold red]demo failed:[/]")
        for problem in problems:
            console.print(f"  - {problem}", markup=False)
        return 1
    elapsed = time.monotonic() - started
    console.print(f"[bold green]demo passed[/] in {elapsed:.0f} s; every process stopped")
    return 0


@dataclass
class Rerun:
    """Reprocesses the first published batch of the first generated feed once, while the stream
    runs (after the stream, a poll feed's DAG would wait out its sensor's timeout first); it must
    keep its rows."""

    runtime: Runtime
    batch: FinishedRun | None = None
    outcome: FinishedRun | None = None
    run_id: str | None = None
    """The reprocess's DAG run."""
    refused: str | None = None
    """Why the API server did not start it (trigger_run has tried again on its own)."""
    problems: list[str] = field(default_factory=list)

    def on_run(self, run: FinishedRun) -> None:
        if self.batch is not None and run.run_id == self.run_id:
            self.outcome = run
            self._judge()
        elif (
            self.batch is None
            and self.refused is None
            and run.feed == self.feed  # one feed's batches wait for it
            and run.state == "success"
            and run.batch_id
        ):
            feed = next(f for f in self.runtime.feeds if f.feed == run.feed)
            try:  # as `streamline reprocess --local` does
                run_id = trigger_run(
                    RestApi(self.runtime.api_url), feed.dag.dag_id, {"batch_id": run.batch_id}
                )
            except ApiError as exc:
                self.refused = str(exc)
                return
            self.batch, self.run_id = run, run_id
            self.runtime.console.print(
                f"  reprocessing {run.feed} batch {run.batch_id} ({run.rows} rows): "
                f"DAG run {run_id}"
            )

    @property
    def feed(self) -> str | None:
        """The first feed the generator streams (customers in the shipped project)."""
        return next((f.feed for f in self.runtime.feeds if has_latency(f)), None)

    @property
    def done(self) -> bool:
        return self.feed is None or self.outcome is not None or self.refused is not None

    def _judge(self) -> None:
        assert self.batch is not None and self.outcome is not None
        name = f"{self.batch.feed} batch {self.batch.batch_id}"
        self.runtime.console.print(
            f"re-ran {name}: raw rows of the batch {self.batch.rows} -> {self.outcome.rows}"
        )
        if self.outcome.state != "success":
            self.problems.append(f"the reprocess of {name} failed")
        elif self.outcome.rows != self.batch.rows:
            self.problems.append(
                f"the reprocess of {name} changed its raw rows: {self.batch.rows} -> "
                f"{self.outcome.rows}"
            )


def _demo(runtime: Runtime, problems: list[str]) -> int:
    streaming = runtime.stream()
    rerun = Rerun(runtime)
    # A reprocess waits for the run in progress, which in poll mode may be a sensor waiting for
    # files that no longer come: up to its trigger.timeout_seconds.
    sensor = max(f.trigger.timeout_seconds for f in runtime.feeds)
    deadline = time.monotonic() + (runtime.options.duration or 0.0) + sensor + DRAIN_SECONDS

    def finished() -> bool:
        if not streaming.finished:
            return False
        return (rerun.done and runtime.drained()) or time.monotonic() > deadline

    code = 1
    try:
        code = runtime.watch(streaming, until=finished, on_run=rerun.on_run)
    finally:
        streaming.end(timeout=30.0 if code == 0 else 2.0)
    if runtime.stopping.is_set():
        return 0  # run_local reports the interruption
    if code:
        problems.append("a process of the local runtime exited (above); nothing was checked")
        return code
    if not runtime.drained():
        problems.append("files were still waiting or open when the demo's time ran out")
    if rerun.feed is None:
        problems.append("the generator streams none of these feeds: nothing was loaded")
    elif rerun.refused is not None:
        problems.append(f"the reprocess could not be triggered: {rerun.refused}")
    elif rerun.batch is None:
        problems.append("no batch was published, so none could be reprocessed")
    elif rerun.outcome is None:
        problems.append(f"the reprocess of batch {rerun.batch.batch_id} did not finish in time")
    problems.extend(rerun.problems)
    stats = streaming.outcome.get("stats")
    if "error" in streaming.outcome:
        problems.append(f"generator failed: {streaming.outcome['error']}")
    summaries = list(runtime.summaries.values())
    problems.extend(count_and_check(runtime, summaries, stats))
    reports.print_summary(runtime.console, "StreamLine demo: per feed", summaries)
    problems.extend(report_status(runtime))
    return code


def _count(cursor: Any, sql: str) -> int:
    cursor.execute(sql)
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def count_and_check(
    runtime: Runtime, summaries: Sequence[reports.FeedSummary], stats: Any
) -> list[str]:
    """Fill each summary's counts; the problems they show."""
    problems = []
    feeds = {f.feed: f for f in runtime.feeds}
    with runtime.stack.connect() as conn:
        cursor = conn.cursor()
        for s in summaries:
            feed = feeds[s.feed]
            raw, keys = quote_table(feed.raw), ", ".join(quote_identifier(k) for k in feed.key)
            s.raw_rows = _count(cursor, f"SELECT COUNT(*) FROM {raw}")
            s.mart_rows = _count(cursor, f"SELECT COUNT(*) FROM {quote_table(feed.mart)}")
            s.rejected_rows = _count(
                cursor, f"SELECT COUNT(*) FROM {quote_table(feed.layout.quarantine)}"
            )
            distinct = _count(cursor, f"SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM {raw})")
            if s.mart_rows != distinct:
                problems.append(f"{s.feed}: mart has {s.mart_rows} rows for {distinct} keys")
            failed = [r.run_id for r in s.runs if r.state != "success"]
            if failed:
                problems.append(f"{s.feed}: {len(failed)} DAG runs failed: {failed}")
            if stats is None or s.feed not in stats.feeds:
                continue
            emitted = stats.feeds[s.feed]
            s.emitted_lines = emitted.lines
            # Every line is a raw row or a quarantined one; exactly the malformed ones quarantined.
            if s.raw_rows + s.rejected_rows != emitted.lines:
                problems.append(
                    f"{s.feed}: raw has {s.raw_rows} rows and quarantine {s.rejected_rows} "
                    f"for {emitted.lines} lines emitted"
                )
            if s.rejected_rows != emitted.malformed:
                problems.append(
                    f"{s.feed}: {s.rejected_rows} rows quarantined for {emitted.malformed} "
                    "malformed lines emitted"
                )
    return problems


def report_status(runtime: Runtime) -> list[str]:
    """`streamline status` of the demo's stack, before it stops: every batch must be published."""
    from streamline.ledger import ConnectionRunner
    from streamline.reporting import print_status
    from streamline.status import collect_status

    s3 = runtime.stack.boto3_client("s3")
    with runtime.stack.connect() as conn:
        report = collect_status(runtime.feeds, lambda feed: s3, lambda feed: ConnectionRunner(conn),
                                runtime.stack.bucket, latest=3)  # fmt: skip
    runtime.console.print(
        "[bold]streamline status[/] (the batch ledger and the lake, as the demo ends):"
    )
    print_status(report, runtime.console)
    problems = [f"{f.feed}: {p.kind}: {p.message}" for f in report.feeds for p in f.problems]
    for feed in report.feeds:
        open_batches = [b.batch_id for b in feed.open_batches]
        if open_batches:
            problems.append(f"{feed.feed}: batches still open: {open_batches}")
        unpublished = [r.batch_id for r in feed.batches if r.status not in ("published", "empty")]
        if unpublished:
            problems.append(f"{feed.feed}: batches not published: {unpublished}")
    return problems
