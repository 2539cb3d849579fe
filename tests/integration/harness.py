"""The local stack for integration tests: moto, the TLS fakesnow warehouse and real Airflow.

Each feed's DAG runs in a long-lived `streamline.local.worker --serve` process (`dag.test()`: the
real operators, hooks and connectors), so Airflow's start-up is paid once per feed, not per run.
A run can be given faults to inject (tests/integration/faults/sitecustomize.py): an S3 or
warehouse error, or a SIGKILL of the worker in the middle of a step; a killed worker is started
again for the next run, as Airflow would start a new task process.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from streamline.layout import LEDGER_COLUMNS
from streamline.local.stack import Stack
from streamline.local.worker import ServedResults, serve_argv, serve_request
from streamline.model import Feed
from streamline.project import Project, find_project
from streamline.rendering import quote_identifier, quote_table

ROOT = Path(__file__).resolve().parents[2]
FAULTS_DIR = Path(__file__).resolve().parent / "faults"
PRELOADED = Path(__file__).resolve().parent / "preloaded.py"
RUN_TIMEOUT = 180.0
READY_TIMEOUT = 120.0


def fast_project(folder: Path) -> Project:
    """The repo's project with specs tuned for tests: a short sensor timeout, one quick retry;
    and orders_skip, the orders spec under on_error skip_file."""
    for name in ("schemas", "templates", "pipelines"):
        shutil.copytree(ROOT / name, folder / name)
    # A third feed: orders under on_error skip_file (tests/integration/test_rejects.py).
    orders = (folder / "pipelines" / "orders.yaml").read_text()
    (folder / "pipelines" / "orders_skip.yaml").write_text(
        orders.replace("feed: orders\n", "feed: orders_skip\n")
        .replace("prefix: orders\n", "prefix: orders_skip\n")
        .replace("table: orders\n", "table: orders_skip\n")
        .replace("on_error: continue", "on_error: skip_file")
        .replace("max_rejected_ratio: 0.1", "max_rejected_ratio: 0.5")
    )
    # A fourth: profiles, the customers spec under other names, whose spec
    # tests/integration/test_spec_changes.py edits (and whose tables it alters).
    customers = (folder / "pipelines" / "customers.yaml").read_text()
    (folder / "pipelines" / "profiles.yaml").write_text(
        customers.replace("feed: customers\n", "feed: profiles\n")
        .replace("prefix: customers\n", "prefix: profiles\n")
        .replace("table: customers\n", "table: profiles\n")
        .replace("tags: [customers]", "tags: [profiles]")
    )
    for spec in (folder / "pipelines").glob("*.yaml"):
        text = spec.read_text()
        text = text.replace("timeout_seconds: 120", "timeout_seconds: 3")
        text = text.replace("retries: 2", "retries: 1").replace(
            "retry_delay_seconds: 5", "retry_delay_seconds: 0"
        )
        if spec.stem == "customers":  # small batches, for the backlog test
            text += "\nbatch:\n  max_files: 200\n"
        spec.write_text(text)
    return find_project(folder)


@dataclass
class Worker:
    """One `worker --serve` process of one feed; started again after it dies."""

    local: Local
    feed: str
    name: str = ""
    process: subprocess.Popen[bytes] | None = None
    results: ServedResults = field(default_factory=lambda: ServedResults(Path()))
    starts: int = 0

    def ensure(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        spec = self.local.feeds[self.feed]
        name = self.name or self.feed
        results = self.local.workdir / f"results-{name}-{self.starts}.jsonl"
        self.results = ServedResults(results)
        ready = results.with_suffix(".ready")
        log = (self.local.workdir / f"worker-{name}.log").open("ab")
        command = serve_argv(self.local.dags, spec.dag.dag_id, self.local.stack.bucket,
                             spec.source.prefix, results, ready)  # fmt: skip
        self.process = subprocess.Popen(
            command, env=self.local.env, stdin=subprocess.PIPE, stdout=log, stderr=log
        )
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            assert self.process.poll() is None, f"worker {self.feed} died; see {log.name}"
            assert time.monotonic() < deadline, f"worker {self.feed} not ready; see {log.name}"
            time.sleep(0.1)

    def send(self, conf: dict[str, Any] | None = None, *, reload: bool = False) -> None:
        """Start a run with conf; reload: parse the dags folder again first (a spec was edited)."""
        self.ensure()
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(serve_request(conf, reload=reload))
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any] | None:
        """The summary of the run sent last; None when the worker died (was killed) first."""
        assert self.process is not None
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            summary = self.results.next()
            if summary is not None:
                return summary
            if self.process.poll() is not None:
                return None
            time.sleep(0.05)
        raise AssertionError(f"no result from worker {self.feed} in {RUN_TIMEOUT:.0f} s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stdin: IO[bytes] | None = self.process.stdin
            if stdin is not None:
                stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Preloaded:
    """tests/integration/preloaded.py, running: `streamline` commands without their imports."""

    process: subprocess.Popen[str]
    workdir: Path
    calls: int = 0

    @classmethod
    def start(cls, env: dict[str, str], workdir: Path) -> Preloaded:
        process = subprocess.Popen(
            [sys.executable, str(PRELOADED)], env=env, cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        commands = cls(process, workdir)
        assert commands.answer(READY_TIMEOUT).get("ready"), "preloaded.py did not start"
        return commands

    def answer(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.stop()
            raise subprocess.TimeoutExpired(str(PRELOADED), timeout)
        line = self.process.stdout.readline()
        assert line, f"preloaded.py exited with {self.process.wait()}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(
        self, argv: list[str], env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        assert self.process.stdin is not None
        self.calls += 1
        out, err = (self.workdir / f"cli-{self.calls}.{name}" for name in ("out", "err"))
        request = {"argv": argv, "env": env, "cwd": str(ROOT), "stdout": str(out),
                   "stderr": str(err)}  # fmt: skip
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        code = int(self.answer(timeout)["code"])
        return subprocess.CompletedProcess(
            ["streamline", *argv], code, out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )  # fmt: skip

    def stop(self) -> None:
        """End it and any command still running (its children share its process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Local:
    stack: Stack
    project: Project
    feeds: dict[str, Feed]
    dags: Path
    env: dict[str, str]
    workdir: Path
    workers: dict[str, Worker] = field(default_factory=dict)
    spawned: int = 0
    commands: Preloaded | None = None

    @property
    def plan(self) -> Path:
        return self.workdir / "faults.json"

    def worker(self, feed: str) -> Worker:
        """The feed's worker (started again, by Worker.ensure, after it was killed)."""
        return self.workers.setdefault(feed, Worker(self, feed))

    def extra_worker(self, feed: str) -> Worker:
        """Another worker of feed, started now, for two runs of one feed at once (stop it after)."""
        self.spawned += 1
        extra = Worker(self, feed, name=f"{feed}-{self.spawned}")
        extra.ensure()
        return extra

    def run(
        self, feed: str, *, reprocess: str | None = None, reload: bool = False, **conf: Any
    ) -> dict[str, Any]:
        """One DAG run of feed, now; its summary (state "killed" when the worker was killed).
        reload: the worker parses the DAG again first (its spec was edited)."""
        self.start(feed, reprocess=reprocess, reload=reload, **conf)
        return self.wait(feed)

    def start(
        self, feed: str, *, reprocess: str | None = None, reload: bool = False, **conf: Any
    ) -> None:
        if reprocess:
            conf["batch_id"] = reprocess
        self.worker(feed).send(conf or None, reload=reload)

    def wait(self, feed: str) -> dict[str, Any]:
        summary = self.worker(feed).receive()
        return summary if summary is not None else {"state": "killed"}

    @contextmanager
    def faults(self, *faults: dict[str, Any]) -> Iterator[list[str]]:
        """Inject these faults into the runs inside the block; yields the ids that fired."""
        fired_file = Path(f"{self.plan}.fired")
        fired_file.unlink(missing_ok=True)
        self.plan.write_text(json.dumps({"faults": list(faults)}))
        fired: list[str] = []
        try:
            yield fired
        finally:
            self.plan.write_text(json.dumps({"faults": []}))
            if fired_file.exists():
                fired.extend(fired_file.read_text().split())

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        if self.commands is not None:
            self.commands.stop()

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """`streamline --project <project> ...` with the stack's Airflow connections in its
        environment (plus env), as on a laptop pointed at a deployment's; run by a child of the
        preloaded process (tests/integration/preloaded.py), which paid the imports once."""
        if self.commands is None:
            self.commands = Preloaded.start(self.cli_env(), self.workdir)
        return self.commands.run(
            ["--project", str(self.project.root), *args], {**self.cli_env(), **(env or {})},
            timeout,
        )  # fmt: skip

    def cli_env(self) -> dict[str, str]:
        return {**self.env, "AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET": self.stack.bucket}

    # --- the lake and the warehouse ----------------------------------------------------------

    def land(self, feed: str, *files: Sequence[str]) -> None:
        """Put each list of CSV lines through the feed's Firehose stream (one object each)."""
        firehose = self.stack.boto3_client("firehose")
        for lines in files:
            records = [{"Data": (line + "\n").encode()} for line in lines]
            firehose.put_record_batch(DeliveryStreamName=self.stack.streams[feed], Records=records)

    def put(self, key: str, body: bytes) -> None:
        self.stack.boto3_client("s3").put_object(Bucket=self.stack.bucket, Key=key, Body=body)

    def keys(self, prefix: str) -> list[str]:
        """Data objects under prefix: no folder markers, manifests or claims registers."""
        s3 = self.stack.boto3_client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.stack.bucket, Prefix=prefix
        )
        return [
            o["Key"]
            for page in pages
            for o in page.get("Contents", [])
            if not o["Key"].endswith(("/", ".manifest.json")) and not o["Key"].startswith("claims/")
        ]

    def objects(self, prefix: str, *, markers: bool = False) -> list[str]:
        """Every key under prefix (folder markers only with markers=True)."""
        s3 = self.stack.boto3_client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.stack.bucket, Prefix=prefix
        )
        found = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return [k for k in found if markers or not k.endswith("/")]

    def read_text(self, key: str) -> str:
        s3 = self.stack.boto3_client("s3")
        body: bytes = s3.get_object(Bucket=self.stack.bucket, Key=key)["Body"].read()
        return body.decode()

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_text(key))

    def lineage(self, batch_id: str) -> dict[str, dict[str, Any]]:
        """The OpenLineage COMPLETE event of each step (by task id) that reported batch_id, from
        the file transport's events (streamline.local.airflow_config.lineage_env)."""
        from streamline.lineage import BATCH_FACET
        from streamline.local.airflow_config import LINEAGE_EVENTS

        found: dict[str, dict[str, Any]] = {}
        for line in (self.workdir / LINEAGE_EVENTS).read_text().splitlines():
            event = json.loads(line)
            batch = event["run"]["facets"].get(BATCH_FACET, {}).get("batch_id")
            if event["eventType"] == "COMPLETE" and batch == batch_id:
                found[event["job"]["name"].split(".", 1)[1]] = event
        return found

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.stack.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall())

    def count(self, feed: str, table: str, where: str = "") -> int:
        ref = getattr(self.feeds[feed], table)
        return int(self.query(f"SELECT COUNT(*) FROM {quote_table(ref)} {where}")[0][0])

    def ledger(self, feed: str) -> dict[str, dict[str, Any]]:
        """The feed's ledger rows by batch id, as column -> value."""
        spec = self.feeds[feed]
        names = [c.name for c in LEDGER_COLUMNS]
        rows = self.query(
            f"SELECT {', '.join(map(quote_identifier, names))} FROM "
            f"{quote_table(spec.layout.ledger)} WHERE \"FEED\" = '{feed}'"
        )
        return {row[1]: dict(zip(names, row, strict=True)) for row in rows}

    def seed_customers(self, *ids: int) -> None:
        """Put customers straight into the customers mart, so orders' reference check passes."""
        columns = '"CUSTOMER_ID", "CREATED_AT", "UPDATED_AT", "BATCH_ID", "MERGED_AT"'
        values = ", ".join(
            f"('cus_{i:06d}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'seed', "
            "CURRENT_TIMESTAMP())"
            for i in ids
        )
        mart = quote_table(self.feeds["customers"].mart)
        self.query(f"INSERT INTO {mart} ({columns}) VALUES {values}")

    def reset(self) -> None:
        """An empty lake, empty tables and ledger, no faults."""
        s3 = self.stack.boto3_client("s3")
        for key in self.objects("", markers=True):
            if key.count("/") > 1 or not key.endswith("/"):  # keep the zones' folder markers
                s3.delete_object(Bucket=self.stack.bucket, Key=key)
        with self.stack.connect() as conn:
            for feed in self.feeds.values():
                for table in (feed.raw, feed.mart, feed.layout.ledger, feed.layout.quarantine):
                    conn.cursor().execute(f"DELETE FROM {quote_table(table)}")
        self.plan.write_text(json.dumps({"faults": []}))

    # --- what must hold after any fault, once runs converge ----------------------------------

    def assert_converged(self, feed: str, events: Sequence[str], *, key_columns: int = 1) -> None:
        """Every event once in raw, in one batch; the mart is the latest per key; nothing left in
        landing/ or processing/ or open in the claims register; the ledger agrees with the lake.

        events are the CSV lines emitted (each distinct); the first key_columns fields are the key
        and the last field orders versions (updated_at).
        """
        spec = self.feeds[feed]
        raw, mart = quote_table(spec.raw), quote_table(spec.mart)
        names = ", ".join(quote_identifier(c.name) for c in spec.columns)
        rows = self.query(f'SELECT {names}, "BATCH_ID" FROM {raw}')
        seen = Counter(_line(row[:-1]) for row in rows)
        twice = {line: n for line, n in seen.items() if n > 1}
        assert not twice, f"loaded more than once: {twice}"
        assert set(seen) == set(events), (
            f"missing: {sorted(set(events) - set(seen))[:5]}, unexpected: "
            f"{sorted(set(seen) - set(events))[:5]}"
        )
        latest: dict[tuple[str, ...], str] = {}
        for line in events:
            fields = line.split(",")
            key = tuple(fields[:key_columns])
            if key not in latest or fields[-1] > latest[key].split(",")[-1]:
                latest[key] = line
        mart_rows = {_line(row) for row in self.query(f"SELECT {names} FROM {mart}")}
        assert mart_rows == set(latest.values()), "the mart is not the latest state per key"
        assert self.keys(spec.layout.lake.landing) == [], "files left in landing/"
        assert self.objects("processing/") == [], "batches left in processing/"
        register = self.read_json(spec.layout.lake.claims)
        assert register["batches"] == {}, f"open batches: {list(register['batches'])}"
        batches = {row[-1] for row in rows}
        ledger = self.ledger(feed)
        for batch_id in batches:
            row = ledger.get(batch_id)
            assert row is not None, f"batch {batch_id} is not in the ledger"
            assert row["status"] == "published", (batch_id, row["status"], row["error"])
            manifest = self.read_json(spec.layout.lake.manifest("processed", batch_id))
            files = [f for f in manifest["files"] if f["outcome"] == "loaded"]
            assert row["files_loaded"] == len(files), (batch_id, row)
            in_raw = sum(1 for r in rows if r[-1] == batch_id)
            assert row["rows_loaded"] == in_raw, (batch_id, row["rows_loaded"], in_raw)
            assert len(self.keys(f"processed/{batch_id}/")) == len(files)
        unfinished = {b: r["status"] for b, r in ledger.items() if r["status"] != "published"}
        assert not unfinished, f"ledger rows not published: {unfinished}"


def _line(values: Sequence[Any]) -> str:
    """A raw or mart row as the CSV line the generator helpers below write."""
    out = []
    for value in values:
        if value is None:
            out.append("")
        elif hasattr(value, "strftime"):
            out.append(value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
        elif hasattr(value, "quantize"):
            out.append(f"{value:.2f}" if value != value.to_integral() else str(int(value)))
        else:
            out.append(str(value))
    return ",".join(out)


def order(order_id: int, status: str, updated: str, customer: int = 1) -> str:
    return (
        f"ord_{order_id:010d},cus_{customer:06d},{status},2,19.90,EUR,"
        f"2026-01-01 10:00:00.000,2026-01-01 {updated}"
    )


def customer(customer_id: int, tier: str, updated: str) -> str:
    return (
        f"cus_{customer_id:06d},c{customer_id}@example.com,Customer {customer_id},DE,{tier},"
        f"2026-01-01 09:00:00.000,2026-01-01 {updated}"
    )


def process_alive(pid: int) -> bool:
    """Whether a process with this PID exists (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_env(stack_env: dict[str, str], plan: Path) -> dict[str, str]:
    """The worker's environment: the stack's, plus the fault plan hook on PYTHONPATH."""
    env = {**os.environ, **stack_env, "STREAMLINE_FAULT_PLAN": str(plan)}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(FAULTS_DIR), os.environ.get("PYTHONPATH")) if p
    )
    return env
