"""Capacity benchmark: one batch of N MiB through the real DAG, beside DuckDB's read_csv.

For each size (10, 100 and 500 MiB by default) the script writes deterministic CSV for the orders
feed with the edge generator's event code (streamline_edge.events, seeded, on a fake clock) into
local files, in two shapes of the same bytes:

- "firehose": many objects of --object-mib each (default 1 MiB). The lake's objects come from
  Firehose, which closes an object at whichever buffering hint it reaches first, size (1-128 MiB,
  default 5 MiB) or interval. StreamLine provisions its streams for low latency, SizeInMBs 1 and
  IntervalInSeconds 1 (streamline.local.stack.provision; the edge generator also flushes once a
  second), so under a sustained load of several MiB/s every object is closed at 1 MiB: 1 MiB is
  the size the lake holds when there is a lot to load, and the most objects per MiB. (At the
  default 5 MiB, 10 MiB would be two objects, not "many".)
- "large": a few large objects (--large-objects, default 4), as a bulk backfill would land.

Each shape is uploaded into the feed's landing prefix (boto3 managed transfer, untimed), then one
DAG run of the orders feed's generated DAG runs the batch (detect -> claim -> load -> transform ->
finalize) in one long-lived `streamline.local.worker --serve` process, started once and reused
for every run, so Airflow's imports and warm-up are paid once and not timed. The per-task seconds
come from the run's task instances. The run must load every line (raw row count == lines, the
mart holds one row per order) and leave nothing in landing/ or processing/; then the lake and
the feed's tables are emptied for the next run.

In the same run, on the same local files, DuckDB's read_csv reads the shape's files into a table
(CREATE TABLE AS, the feed's columns and types, in memory, the machine's threads): the local
ceiling for parsing these bytes into a table. The goal (issue 12): the load path's MiB/s (landing
-> mart, the batch finished: first task start to finalize's end) is at least half of DuckDB's.

moto's request log (the stack's moto.log) is read for each run: S3 requests by kind and zone, per
object of the batch.

    uv run python benchmarks/capacity.py [--sizes 10 100 500] [--quick] [--out DIR]
        [--workdir DIR] [--keep] [--object-mib 1] [--large-objects 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import REPO, Record, console, out_dir, pyplot
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from streamline.local.worker import ServedResults

MIB = 1024**2
DEFAULT_SIZES = (10, 100, 500)
FEED = "orders"
SHAPES = ("firehose", "large")
TASKS = ("detect", "claim", "load", "transform", "finalize")
GOAL_RATIO = 0.5
READY_TIMEOUT = 240.0
SEED = 12


class BenchmarkFailure(Exception):
    """A run did not do what it must (failed, lost rows, left files): nothing to measure."""


# --- data ----------------------------------------------------------------------------------------


@dataclass
class Data:
    """The CSV of one size: the same lines as many Firehose-sized files and as a few large ones."""

    mib: float
    lines: int
    bytes: int
    orders: int  # distinct order ids: the mart's rows after the batch
    files: dict[str, list[Path]]

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["files"] = {shape: [str(p) for p in paths] for shape, paths in self.files.items()}
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Data:
        files = {shape: [Path(p) for p in paths] for shape, paths in body["files"].items()}
        return cls(body["mib"], body["lines"], body["bytes"], body["orders"], files)


def generate_data(
    folder: Path, mib: float, object_bytes: int, large_objects: int, seed: int
) -> Data:
    """Write mib MiB of orders CSV (whole lines, at least that many bytes) into folder, once as
    objects of about object_bytes (Firehose closes an object once its buffer reaches the size
    hint) and once as large_objects objects of equal size; reused when folder already holds it."""
    from streamline_edge.clock import FakeClock
    from streamline_edge.events import iter_events

    done = folder / "data.json"
    if done.exists():
        return Data.from_json(json.loads(done.read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    for shape in SHAPES:
        (folder / shape).mkdir(parents=True)
    target = int(mib * MIB)
    clock = FakeClock()
    events = iter_events(FEED, seed=seed, clock=clock)
    files: dict[str, list[Path]] = {shape: [] for shape in SHAPES}
    handles: dict[str, Any] = {}
    sizes = dict.fromkeys(SHAPES, 0)
    total = lines = orders = 0

    def roll(shape: str) -> None:
        if shape in handles:
            handles[shape].close()
        path = folder / shape / f"{len(files[shape]):06d}.csv"
        files[shape].append(path)
        handles[shape] = path.open("wb")
        sizes[shape] = 0

    large_bytes = -(-target // large_objects)
    roll("firehose")
    roll("large")
    chunk: list[bytes] = []
    chunk_bytes = 0
    try:
        while total < target:
            clock.advance(0.001)  # one event a millisecond: distinct, increasing updated_at
            line = next(events).line.encode()
            orders = max(orders, int(line[4:14]))  # ord_0000000042: ids are dense from 1
            chunk.append(line)
            chunk_bytes += len(line)
            total += len(line)
            lines += 1
            if chunk_bytes < 64 * 1024 and total < target:
                continue
            # Whole lines per file: a file is closed once it reached its size, as Firehose does.
            for shape, limit in (("firehose", object_bytes), ("large", large_bytes)):
                handles[shape].write(b"".join(chunk))
                sizes[shape] += chunk_bytes
                if sizes[shape] >= limit and total < target:
                    roll(shape)
            chunk, chunk_bytes = [], 0
    finally:
        for handle in handles.values():
            handle.close()
    data = Data(mib, lines, total, orders, files)
    done.write_text(json.dumps(data.to_json()))
    return data


# --- the stack, the worker -----------------------------------------------------------------------


@dataclass
class Worker:
    """One `streamline.local.worker --serve` process: a DAG run per line sent."""

    process: subprocess.Popen[bytes]
    results: ServedResults

    @classmethod
    def start(cls, env: dict[str, str], dags: Path, dag_id: str, bucket: str, prefix: str,
              workdir: Path) -> Worker:  # fmt: skip
        from streamline.local.worker import ServedResults, serve_argv

        results, ready = workdir / "results.jsonl", workdir / "worker.ready"
        results.unlink(missing_ok=True)
        ready.unlink(missing_ok=True)
        log = (workdir / "worker.log").open("ab")
        process = subprocess.Popen(
            serve_argv(dags, dag_id, bucket, prefix, results, ready), env=env,
            stdin=subprocess.PIPE, stdout=log, stderr=log,
            start_new_session=True,  # Ctrl-C reaches this script, which stops it by PID
        )  # fmt: skip
        log.close()
        worker = cls(process, ServedResults(results))
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if process.poll() is not None:
                raise BenchmarkFailure(
                    f"the worker exited with {process.returncode}; see {log.name}"
                )
            if time.monotonic() > deadline:
                worker.stop()
                raise BenchmarkFailure(f"the worker was not ready in {READY_TIMEOUT:.0f} s")
            time.sleep(0.1)
        return worker

    def run(self, timeout: float) -> dict[str, Any]:
        """One DAG run now; the worker's summary of it."""
        assert self.process.stdin is not None
        from streamline.local.worker import serve_request

        self.process.stdin.write(serve_request())
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            summary = self.results.next()
            if summary is not None:
                return summary
            if self.process.poll() is not None:
                raise BenchmarkFailure(f"the worker exited with {self.process.returncode}")
            time.sleep(0.05)
        raise BenchmarkFailure(f"no result from the worker in {timeout:.0f} s")

    def stop(self) -> None:
        """End of input, then SIGTERM, then SIGKILL: by PID, never by name."""
        if self.process.poll() is not None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            from streamline.local.processes import stop_process

            stop_process(self.process)


@dataclass
class Local:
    """The running stack, the project's orders feed and the worker that runs its DAG."""

    stack: Any
    feed: Any
    feeds: Sequence[Any]
    worker: Worker
    moto_log: Path
    workdir: Path

    def s3(self) -> Any:
        return self.stack.boto3_client("s3")

    def keys(self, prefix: str) -> list[str]:
        pages = (
            self.s3()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.stack.bucket, Prefix=prefix)
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def reset(self) -> None:
        """An empty lake (the zones' folder markers kept) and empty tables, as the integration
        harness resets them (tests/integration/harness.py, Local.reset), plus the landing table."""
        from streamline.lake import delete_keys
        from streamline.rendering import quote_table

        keys = [k for k in self.keys("") if k.count("/") > 1 or not k.endswith("/")]
        if failed := delete_keys(self.s3(), self.stack.bucket, keys):
            raise BenchmarkFailure(f"reset: {len(failed)} objects not deleted: {failed[:3]}")
        with self.stack.connect() as conn:
            for feed in self.feeds:
                layout = feed.layout
                for table in (feed.raw, feed.mart, layout.ledger, layout.quarantine,
                              layout.landing_table):  # fmt: skip
                    conn.cursor().execute(f"DELETE FROM {quote_table(table)}")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.stack.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall())


def upload(local: Local, paths: Sequence[Path], shape: str) -> tuple[float, list[str]]:
    """Put the files into the feed's landing prefix (boto3 managed transfer, 8 at a time) under
    Firehose-style keys; (seconds, keys)."""
    from boto3.s3.transfer import TransferConfig

    from streamline_edge.targets import landing_key, object_name

    s3 = local.s3()
    config = TransferConfig(max_concurrency=8)
    start = 1_767_225_600.0  # 2026-01-01, the generator's fake clock
    keys = [
        landing_key(local.feed.source.prefix, start, object_name(FEED, start, shape, i))
        for i in range(len(paths))
    ]

    def put(item: tuple[Path, str]) -> None:
        s3.upload_file(str(item[0]), local.stack.bucket, item[1], Config=config)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, zip(paths, keys, strict=True)))
    return time.perf_counter() - began, keys


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Measured:
    """One size x shape: the DAG run's seconds, DuckDB's, S3 requests, and checks passed."""

    mib: float
    shape: str
    objects: int
    lines: int
    bytes: int
    upload_s: float
    tasks: dict[str, float]  # seconds per task
    gaps: dict[str, float]  # hand-offs: run start -> detect, then task end -> next task start
    run_s: float  # the worker's dag.test(), start to end
    batch_s: float  # detect's start to finalize's end
    mart_s: float  # detect's start to transform's end: the mart holds the batch
    duckdb_s: list[float] = field(default_factory=list)
    s3_requests: dict[str, int] = field(default_factory=dict)

    @property
    def mb(self) -> float:
        return self.bytes / MIB

    @property
    def mib_per_s(self) -> float:
        return self.mb / self.batch_s

    @property
    def duckdb_median_s(self) -> float:
        return statistics.median(self.duckdb_s)

    @property
    def duckdb_mib_per_s(self) -> float:
        return self.mb / self.duckdb_median_s

    @property
    def ratio(self) -> float:
        return self.mib_per_s / self.duckdb_mib_per_s

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.update(
            mib_per_s=self.mib_per_s,
            mart_mib_per_s=self.mb / self.mart_s,
            duckdb_median_s=self.duckdb_median_s,
            duckdb_mib_per_s=self.duckdb_mib_per_s,
            ratio=self.ratio,
        )
        return body


def _when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)


def task_seconds(summary: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], float]:
    """Seconds per task, the hand-offs before each (the first from the run's start), and the
    batch's seconds (detect's start to finalize's end)."""
    tasks = summary["tasks"]
    seconds, gaps = {}, {}
    previous = _when(summary["started"])
    for name in TASKS:
        info = tasks.get(name) or {}
        if info.get("state") != "success" or not info.get("start") or not info.get("end"):
            raise BenchmarkFailure(f"task {name}: {info.get('state')} (run {summary['state']})")
        start, end = _when(info["start"]), _when(info["end"])
        gaps[name] = (start - previous).total_seconds()
        seconds[name] = (end - start).total_seconds()
        previous = end
    gaps["end"] = (_when(summary["ended"]) - previous).total_seconds()
    batch = (_when(tasks["finalize"]["end"]) - _when(tasks["detect"]["start"])).total_seconds()
    return seconds, gaps, batch


_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP')
"""A request line of moto's log (werkzeug's; error and partial responses are in ANSI colours)."""


def s3_requests(moto_log: Path, offset: int, bucket: str) -> dict[str, int]:
    """S3 requests to the bucket in moto's log after offset, by method, query and zone
    (e.g. "PUT processing/", "POST ?delete", "GET claims/")."""
    counts: Counter[str] = Counter()
    with moto_log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    for found in _REQUEST.finditer(text):
        method, target = found.groups()
        path, _, query = target.partition("?")
        parts = path.lstrip("/").split("/")
        if parts[0] != bucket:
            continue  # SQS, Secrets Manager, Firehose
        name = query.split("=")[0]
        if name in ("delete", "list-type"):
            counts[f"{method} ?{name}"] += 1
            continue
        if name in ("uploads", "uploadId", "partNumber"):
            counts[f"{method} (multipart) {parts[1] + '/' if len(parts) > 1 else ''}"] += 1
            continue
        zone = parts[1] + "/" if len(parts) > 1 and parts[1] else "(bucket)"
        counts[f"{method} {zone}"] += 1
    return dict(sorted(counts.items()))


def duckdb_sql_type(snowflake_type: str) -> str:
    """The DuckDB type read_csv gives a column of this Snowflake type (the feed's)."""
    kind = snowflake_type.upper().replace(" ", "")
    if kind.startswith(("VARCHAR", "CHAR", "STRING", "TEXT")):
        return "VARCHAR"
    if found := re.fullmatch(r"(?:NUMBER|DECIMAL|NUMERIC)\((\d+),(\d+)\)", kind):
        return f"DECIMAL({found[1]},{found[2]})"
    if kind.startswith("TIMESTAMP_NTZ") or kind == "TIMESTAMP":
        return "TIMESTAMP"
    if kind in ("FLOAT", "DOUBLE"):
        return "DOUBLE"
    if kind == "BOOLEAN":
        return "BOOLEAN"
    if kind == "DATE":
        return "DATE"
    raise BenchmarkFailure(f"no DuckDB type for {snowflake_type}")


def duckdb_read(feed: Any, paths: Sequence[Path], lines: int) -> float:
    """Seconds for DuckDB's read_csv of the files into an in-memory table with the feed's columns
    and types; checks every line became a row."""
    import duckdb

    from streamline.local.copy_files import strptime_format

    fmt = feed.source.format
    columns = ", ".join(f"'{c.name}': '{duckdb_sql_type(c.type)}'" for c in feed.columns)
    nulls = ", ".join("'" + m.replace("'", "''") + "'" for m in fmt.null_markers)
    files = ", ".join(f"'{p}'" for p in paths)
    sql = (
        f"CREATE TABLE t AS SELECT * FROM read_csv([{files}], columns = {{{columns}}}, "
        f"header = false, delim = '{fmt.delimiter}', quote = '\"', nullstr = [{nulls}], "
        f"timestampformat = '{strptime_format(fmt.timestamp_format)}', auto_detect = false)"
    )
    with duckdb.connect() as conn:
        began = time.perf_counter()
        conn.execute(sql)
        seconds = time.perf_counter() - began
        (rows,) = conn.execute("SELECT count(*) FROM t").fetchone() or (0,)
    if rows != lines:
        raise BenchmarkFailure(f"DuckDB read {rows} rows of {lines} lines")
    return seconds


def warm_up(local: Local, data: Data, say: Console) -> None:
    """One small untimed DAG run (the first 1000 lines as one object): the first run of a fresh
    worker pays first-use costs (module imports, the first connections) that later runs do not."""
    local.reset()
    head = local.workdir / "warm-up.csv"
    with data.files["firehose"][0].open("rb") as source:
        head.write_bytes(b"".join(line for _, line in zip(range(1000), source, strict=False)))
    upload(local, [head], "warmup")
    began = time.perf_counter()
    summary = local.worker.run(timeout=300)
    if summary["state"] != "success":
        raise BenchmarkFailure(f"the warm-up run: {summary['state']}; see worker.log")
    local.reset()
    say.print(f"warm-up run: {time.perf_counter() - began:.1f} s (untimed)")


def measure(local: Local, data: Data, shape: str, repeat: int, say: Console) -> Measured:
    """Land the shape's files, run the batch through the DAG, check it; DuckDB on the same files."""
    from streamline.rendering import quote_table

    local.reset()
    paths = data.files[shape]
    upload_s, keys = upload(local, paths, shape)
    offset = local.moto_log.stat().st_size
    summary = local.worker.run(timeout=600 + 6 * data.mib)
    if summary["state"] != "success":
        raise BenchmarkFailure(f"{data.mib:g} MiB {shape}: run {summary['state']}; see worker.log")
    tasks, gaps, batch_s = task_seconds(summary)
    requests = s3_requests(local.moto_log, offset, local.stack.bucket)
    feed = local.feed
    batch = summary["batch_id"]
    (raw_rows,) = local.query(
        f"SELECT COUNT(*) FROM {quote_table(feed.raw)} WHERE \"BATCH_ID\" = '{batch}'"
    )[0]
    (mart_rows,) = local.query(f"SELECT COUNT(*) FROM {quote_table(feed.mart)}")[0]
    if raw_rows != data.lines or summary["copy"].get("rows_loaded") != data.lines:
        raise BenchmarkFailure(
            f"{data.mib:g} MiB {shape}: raw holds {raw_rows} rows, the COPY loaded "
            f"{summary['copy'].get('rows_loaded')}, of {data.lines} lines"
        )
    if mart_rows != data.orders:
        raise BenchmarkFailure(f"mart holds {mart_rows} rows of {data.orders} orders")
    left = [k for k in local.keys(feed.layout.lake.landing) if not k.endswith("/")]
    left += [k for k in local.keys("processing/") if not k.endswith("/")]
    if left:
        raise BenchmarkFailure(f"{len(left)} objects left in landing/ or processing/: {left[:3]}")
    if summary["copy"].get("files") != len(keys):
        raise BenchmarkFailure(f"the COPY read {summary['copy'].get('files')} of {len(keys)} files")
    transform_end = _when(summary["tasks"]["transform"]["end"])
    mart_s = (transform_end - _when(summary["tasks"]["detect"]["start"])).total_seconds()
    measured = Measured(
        mib=data.mib, shape=shape, objects=len(paths), lines=data.lines, bytes=data.bytes,
        upload_s=upload_s, tasks=tasks, gaps=gaps,
        run_s=(_when(summary["ended"]) - _when(summary["started"])).total_seconds(),
        batch_s=batch_s, mart_s=mart_s, s3_requests=requests,
    )  # fmt: skip
    local.reset()  # moto holds objects in memory: free them before DuckDB runs
    for _ in range(repeat):
        measured.duckdb_s.append(duckdb_read(feed, paths, data.lines))
    say.print(
        f"  {data.mib:g} MiB {shape} ({len(paths)} objects, {data.lines} lines): batch "
        f"{batch_s:.1f} s ({measured.mib_per_s:.1f} MiB/s), DuckDB {measured.duckdb_median_s:.2f} s"
        f" ({measured.duckdb_mib_per_s:.1f} MiB/s), ratio {measured.ratio:.2f}",
        highlight=False,
    )
    return measured


# --- the stack, started and stopped --------------------------------------------------------------


@contextmanager
def running(workdir: Path, say: Console) -> Iterator[Local]:
    """The embedded stack, provisioned with the shipped project (both feeds; orders is measured),
    the DAGs generated, Airflow's database ready, one worker warmed up; all stopped after."""
    from streamline.generation import generate
    from streamline.local.airflow_config import AIRFLOW_TUNING, base_env, prepare_airflow
    from streamline.local.stack import embedded_stack, provision
    from streamline.project import find_project
    from streamline.rendering import RenderSettings
    from streamline.validation import validate_paths

    project_dir = workdir / "project"
    shutil.rmtree(project_dir, ignore_errors=True)
    for name in ("schemas", "templates", "pipelines"):
        shutil.copytree(REPO / name, project_dir / name)
    for spec in (project_dir / "pipelines").glob("*.yaml"):  # a failure fails now, not in 5 s
        spec.write_text(spec.read_text().replace("retries: 2", "retries: 0"))
    project = find_project(project_dir)
    result = validate_paths(project)
    if not result.ok:
        raise BenchmarkFailure(f"the shipped specs do not validate: {result.errors}")
    feeds = result.feeds
    feed = next(f for f in feeds if f.feed == FEED)
    began = time.perf_counter()
    with embedded_stack(workdir / "stack") as stack:
        provision(stack, project, feeds)
        dags = workdir / "dags"
        shutil.rmtree(dags, ignore_errors=True)
        settings = RenderSettings(lake_url=f"s3://{stack.bucket}")
        generate(project, feeds, dags, settings, stack.sqs_url_prefix)
        shutil.rmtree(workdir / "airflow", ignore_errors=True)
        env = base_env(stack, project, workdir, dags)
        # As the local runtime's task processes run: no cloud metadata probe at each login.
        name = "SNOWFLAKE_DISABLE_PLATFORM_DETECTION"
        env.setdefault(name, AIRFLOW_TUNING[name])
        prepare_airflow(env, workdir / "airflow-setup.log")
        say.print(f"stack up, DAGs generated, Airflow ready: {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        worker = Worker.start(env, dags, feed.dag.dag_id, stack.bucket, feed.source.prefix,
                              workdir)  # fmt: skip
        say.print(f"worker warmed up: {time.perf_counter() - began:.1f} s (untimed)")
        try:
            moto_log = workdir / "stack" / "moto.log"
            yield Local(stack, feed, feeds, worker, moto_log, workdir)
        finally:
            worker.stop()


# --- report --------------------------------------------------------------------------------------


def _table(title: str, headers: Sequence[str], caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption)
    for header in headers:
        table.add_column(header, justify="left" if header in ("shape", "request") else "right")
    return table


def report(say: Console, runs: Sequence[Measured]) -> None:
    """The tables: seconds per task, throughput beside DuckDB, hand-offs, S3 requests."""
    steps = _table(
        "Capacity: seconds per task of one DAG run (the orders feed, one batch)",
        ["MiB", "shape", "objects", "rows", *TASKS, "hand-offs", "batch s", "run s"],
        "task: its start to its end; hand-offs: the gaps before each task (the first from the "
        "run's start) and after the last; batch: detect's start to finalize's end; run: the "
        "worker's dag.test(), start to end",
    )
    for m in runs:
        steps.add_row(
            f"{m.mb:.0f}", m.shape, str(m.objects), str(m.lines),
            *(f"{m.tasks[t]:.2f}" for t in TASKS), f"{sum(m.gaps.values()):.2f}",
            f"{m.batch_s:.1f}", f"{m.run_s:.1f}",
        )  # fmt: skip
    say.print(steps)
    speed = _table(
        "Capacity: MiB/s landing -> mart beside DuckDB read_csv on the same files",
        [
            "MiB",
            "shape",
            "objects",
            "batch s",
            "MiB/s",
            "to mart s",
            "to mart MiB/s",
            "DuckDB s",
            "DuckDB MiB/s",
            "ratio",
        ],
        "MiB/s: MiB / batch s; to mart: detect's start to transform's end (the mart holds the "
        "batch; its files still in processing/); DuckDB: read_csv into an in-memory table with the "
        "feed's types, median of the reads; ratio: MiB/s / DuckDB MiB/s (goal >= 0.5)",
    )
    for m in runs:
        speed.add_row(
            f"{m.mb:.0f}", m.shape, str(m.objects), f"{m.batch_s:.1f}", f"{m.mib_per_s:.2f}",
            f"{m.mart_s:.1f}", f"{m.mb / m.mart_s:.2f}", f"{m.duckdb_median_s:.2f}",
            f"{m.duckdb_mib_per_s:.0f}", f"{m.ratio:.3f}",
        )  # fmt: skip
    say.print(speed)
    gaps = _table(
        "Hand-offs, s: the gap before each task (detect: from the run's start)",
        ["MiB", "shape", *(f"-> {t}" for t in TASKS), "after finalize"],
    )
    for m in runs:
        gaps.add_row(f"{m.mb:.0f}", m.shape, *(f"{m.gaps[t]:.2f}" for t in (*TASKS, "end")))
    say.print(gaps)
    requests = _table(
        "S3 requests to the lake during the DAG run (moto's log): count (per object)",
        ["request", *(f"{m.mb:.0f} MiB {m.shape}" for m in runs)],
        "PUT processing/ and PUT processed/ are CopyObject (claim, finalize) and the batch's "
        "manifests; HEAD landing/ is claim's ETag check; HEAD + GET processing/ are the load's "
        "downloads; POST ?delete is DeleteObjects (up to 1000 keys); GET ?list-type is a listing",
    )
    kinds = sorted({k for m in runs for k in m.s3_requests})
    for kind in [*kinds, "all"]:
        cells = []
        for m in runs:
            n = sum(m.s3_requests.values()) if kind == "all" else m.s3_requests.get(kind, 0)
            cells.append(f"{n} ({n / m.objects:.2f})")
        requests.add_row(kind, *cells)
    say.print(requests)


def plot(record: Record, runs: Sequence[Measured]) -> Path:
    plt = pyplot()
    fig, (speed, stack) = plt.subplots(1, 2, figsize=(13, 5))
    for shape, marker in zip(SHAPES, ("o", "s"), strict=True):
        mine = [m for m in runs if m.shape == shape]
        if not mine:
            continue
        sizes = [m.mb for m in mine]
        speed.plot(sizes, [m.mib_per_s for m in mine], marker=marker, label=f"DAG, {shape}")
        speed.plot(sizes, [m.duckdb_mib_per_s for m in mine], marker=marker, linestyle="--",
                   label=f"DuckDB read_csv, {shape}")  # fmt: skip
        goal = "goal: 50% of DuckDB" if shape == SHAPES[0] else None
        speed.plot(sizes, [GOAL_RATIO * m.duckdb_mib_per_s for m in mine], linestyle=":",
                   color="grey", label=goal)  # fmt: skip
    speed.set_xscale("log")
    speed.set_yscale("log")
    speed.set_xlabel("batch, MiB")
    speed.set_ylabel("MiB/s")
    speed.set_title("Landing -> mart (batch finished) vs DuckDB read_csv")
    speed.legend(fontsize=8)
    labels = [f"{m.mb:.0f} MiB\n{m.shape}" for m in runs]
    bottom = [0.0] * len(runs)
    for part in (*TASKS, "hand-offs"):
        values = [sum(m.gaps.values()) if part == "hand-offs" else m.tasks[part] for m in runs]
        stack.bar(labels, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    stack.set_ylabel("s")
    stack.set_title("Seconds per task of the DAG run")
    stack.legend(fontsize=8)
    fig.tight_layout()
    path = record.plot_path()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # fmt: off
    add = parser.add_argument
    add("--sizes", type=float, nargs="+", default=list(DEFAULT_SIZES), metavar="MIB",
        help="batch sizes in MiB (default: 10 100 500)")
    add("--object-mib", type=float, default=1.0,
        help="size of a Firehose-sized object, MiB (default 1; see the docstring)")
    add("--large-objects", type=int, default=4, help="objects of the large shape (default 4)")
    add("--repeat", type=int, default=3,
        help="DuckDB reads per shape, median reported (default 3; the DAG runs once)")
    add("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    add("--quick", action="store_true",
        help="1 MiB as 2 objects in both shapes, one DuckDB read (over --sizes, --object-mib, "
             "--large-objects and --repeat): proves it runs, judges no goal")
    add("--out", help="folder for the record and plot (default $STREAMLINE_BENCH_OUT, else "
                      ".scratch/bench)")
    add("--workdir", type=Path, help="stack, data and logs (default: a new folder in .scratch)")
    add("--keep", action="store_true", help="keep the workdir (logs, CSV)")
    add("--seed", type=int, default=SEED)
    # fmt: on
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.object_mib, args.large_objects, args.repeat = [1.0], 0.5, 2, 1
    if min(args.sizes) <= 0 or args.object_mib <= 0 or args.large_objects < 1 or args.repeat < 1:
        parser.error("--sizes, --object-mib, --large-objects and --repeat take positive numbers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 1 when a run fails or does not load every row."""
    started = time.perf_counter()
    args = parse_args(argv)
    for name, value in (("DO_NOT_TRACK", "1"), ("AIRFLOW__CORE__LOAD_EXAMPLES", "False"),
                        ("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")):  # fmt: skip
        os.environ.setdefault(name, value)
    say = console()
    # The warehouse checks log in with the Snowflake connector, which logs each login at INFO.
    logging.getLogger("snowflake.connector").setLevel(logging.WARNING)
    # Eight uploads at once, each in parts: urllib3 warns that it closes the spare connections.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    record = Record("capacity", arguments, out=out_dir(args.out), quick=args.quick)
    stamp = record.stem.split("-", 1)[1]
    workdir = (args.workdir or REPO / ".scratch" / f"capacity-{stamp}").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # SIGTERM as Ctrl-C: unwind, so every process started here is stopped by PID.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    say.print(f"workdir {workdir}", highlight=False)
    runs: list[Measured] = []
    code = 0
    try:
        sizes = sorted(set(args.sizes))
        datasets = []
        for mib in sizes:
            began = time.perf_counter()
            folder = workdir / "data" / f"{mib:g}MiB-{args.object_mib:g}-{args.large_objects}"
            data = generate_data(folder, mib, int(args.object_mib * MIB), args.large_objects,
                                 args.seed)  # fmt: skip
            datasets.append(data)
            say.print(
                f"data {mib:g} MiB: {data.lines} lines, {data.orders} orders, "
                + ", ".join(f"{len(p)} {s} objects" for s, p in data.files.items())
                + f" ({time.perf_counter() - began:.1f} s, untimed)",
                highlight=False,
            )
        with running(workdir, say) as local:
            if not args.quick:  # quick mode proves the script runs; it measures too little
                warm_up(local, datasets[0], say)
            for data in datasets:
                for shape in args.shapes:
                    runs.append(measure(local, data, shape, args.repeat, say))
    except BenchmarkFailure as failure:
        say.print(f"[red]benchmark failed:[/] {failure}", highlight=False)
        code = 1
    except KeyboardInterrupt:
        say.print("[red]interrupted[/]: every process started here is stopped")
        code = 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if runs:
        report(say, runs)
        record.figures["runs"] = [m.to_json() for m in runs]
        record.figures["units"] = "MiB = 2**20 bytes; seconds"
        for m in runs:
            record.goal(
                f"capacity vs DuckDB read_csv, {m.mb:.0f} MiB {m.shape}",
                m.ratio, ">=", GOAL_RATIO, unit="x",
                note=f"{m.mib_per_s:.1f} vs {m.duckdb_mib_per_s:.0f} MiB/s",
            )  # fmt: skip
        plot(record, runs)
        record.figures["wall_s"] = round(time.perf_counter() - started, 1)
        record.finish(say)
    say.print(f"Total wall time: {time.perf_counter() - started:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
