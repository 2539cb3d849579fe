"""`streamline up`: the long-running local mode, with Airflow's own scheduler.

The embedded stack (moto, the TLS fakesnow warehouse) is started and provisioned, the dags folder
generated and the metadata database (SQLite, in the workdir) migrated; then Airflow's components
run as child processes on 127.0.0.1: api-server, scheduler (LocalExecutor), dag-processor and
triggerer. The edge generator streams events through Firehose while every finished batch is
reported with its end-to-end latency (event `updated_at` -> end of the batch's transform task,
when its rows are in the mart). SIGINT or SIGTERM stops the generator and every child by PID.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table

from streamline.errors import StreamlineError
from streamline.generation import generate
from streamline.local.stack import (
    Stack,
    embedded_stack,
    firehose_config,
    free_port,
    provision,
    write_stack_file,
)
from streamline.model import Feed
from streamline.project import Project
from streamline.rendering import RenderSettings, quote_identifier, quote_literal, quote_table

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
READY_TIMEOUT = 120.0
STOP_GRACE = 10.0
SIGNAL_AGAIN_AFTER = 2.0
STOP_ORDER = (("scheduler", "triggerer", "dag-processor"), ("api-server",))
"""The API server goes last: tasks that are still finishing report their state through it."""
POLL_SECONDS = 1.0
STATUS_SECONDS = 30.0
MAX_TMPDIR_BYTES = 72
WORKDIR_MARKER = ".streamline-up"

PRELOAD = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.standard.sensors.python",
    "airflow.providers.amazon.aws.secrets.secrets_manager",
    "airflow.providers.common.sql.operators.sql",
    "airflow.providers.snowflake.hooks.snowflake",
    "airflow.providers.standard.operators.python",
    "snowflake.connector",
    "dagfactory",
    "streamline.dagloader",
    "streamline.lake",
    "streamline.ledger",
    "streamline.tasks",
)
"""Modules every task process needs, imported once by the LocalExecutor's forkserver."""

AIRFLOW_TUNING: dict[str, str] = {
    # One scheduler loop after another: sleep this little when a loop found nothing to do, so a
    # finished task's successor is queued within a fraction of a second (default 1 s).
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    # Parsing is not on the latency path once the DAGs exist (runs use the serialized DAG); one
    # parsing process instead of two leaves the second core to the tasks.
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    # Every task is a fork of a LocalExecutor worker. Started from a forkserver that has already
    # imported the operators, hooks, the Snowflake connector and the DAG loader, a task skips
    # about 2-3 s of imports (the connector alone is about 1.8 s and 100 MB).
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": ",".join(PRELOAD),
    # A task's supervisor notices its task process exited only at its next wake-up when the
    # process closes its sockets before it can be reaped; it then sleeps up to this interval
    # (default 5 s) with its LocalExecutor worker held. Seen on about a third of the tasks.
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
    # The Snowflake connector probes cloud metadata endpoints (AWS STS, instance metadata) at
    # every login for its telemetry: about 0.35 s per SQL task here, and pointless locally.
    "SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true",
}
"""Airflow settings that lower latency here (the environment overrides each one);
docs/local-runtime.md has the measurements behind them."""


class UpError(StreamlineError):
    """A component of `streamline up` did not start or died."""


@dataclass
class UpOptions:
    """What to stream, for how long, and where to keep files."""

    rate: float = 200.0
    duration: float | None = None
    seed: int | None = None
    duplicate_rate: float = 0.05
    trigger: str | None = None
    workdir: Path = Path(".scratch/up")
    port: int | None = None
    parallelism: int = 4


@dataclass
class Batch:
    """One finished DAG run that claimed files: when its tasks ran and how late its rows were."""

    feed: str
    run_id: str
    state: str
    batch_id: str | None
    tasks: dict[str, dict[str, str | None]]
    run_queued: str | None
    run_start: str | None
    run_end: str | None
    rows: int = 0
    latencies: list[float] = field(default_factory=list)

    def to_json(self) -> str:
        body = {k: v for k, v in self.__dict__.items() if k != "latencies"}
        if self.latencies:
            body["latency_p50"] = round(statistics.median(self.latencies), 3)
            body["latency_max"] = round(max(self.latencies), 3)
        return json.dumps(body)


# ----------------------------------------------------------------------------------- processes


class Children:
    """Child processes started in their own process group, stopped by PID and group id."""

    def __init__(self, pid_file: Path) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.pid_file = pid_file
        self.extra: dict[str, int] = {}
        self.killed: list[str] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            # A session of its own: a terminal's Ctrl-C reaches `up`, which stops them in order.
            self.processes[name] = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.write_pids()

    def write_pids(self) -> None:
        pids = {**self.extra, **{n: p.pid for n, p in self.processes.items()}}
        body = {"up": os.getpid(), "children": pids, "groups": self.groups()}
        self.pid_file.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")

    def groups(self) -> list[int]:
        return [p.pid for p in self.processes.values()]

    def dead(self) -> list[str]:
        """Names of children that exited."""
        return [n for n, p in self.processes.items() if p.poll() is not None]

    def stop_all(self) -> list[str]:
        """Stop the children in STOP_ORDER; return the names of those that had to be killed."""
        killed: list[str] = []
        for names in (*STOP_ORDER, tuple(n for n in self.processes if not _in_order(n))):
            killed += _stop_together([(n, self.processes[n]) for n in names if n in self.processes])
        return killed


def _in_order(name: str) -> bool:
    return any(name in names for names in STOP_ORDER)


def _stop_together(children: list[tuple[str, subprocess.Popen[bytes]]]) -> list[str]:
    """SIGTERM each child, then its whole process group, then SIGKILL what is left of it."""
    for _, process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    now = time.monotonic()
    deadline, again = now + STOP_GRACE, now + SIGNAL_AGAIN_AFTER
    while any(p.poll() is None for _, p in children) and time.monotonic() < deadline:
        if again and time.monotonic() >= again:
            again = 0.0
            # The scheduler waits for its running tasks (a sensor may poke for minutes), even when
            # signalled again: its workers and tasks get the signal too, so they end now.
            for _, process in children:
                if process.poll() is None:
                    _signal_group(process.pid, signal.SIGTERM)
        time.sleep(0.1)
    killed = [name for name, process in children if process.poll() is None]
    for _, process in children:
        # Workers and task processes may outlive their component: its group goes with it.
        _kill_group(process.pid)
        process.wait(timeout=10)
    return killed


def _kill_group(pgid: int) -> None:
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM for the duration of the block."""
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _run_step(
    argv: list[str], env: dict[str, str], log: Path, stopping: threading.Event, what: str
) -> bool:
    """Run a command to completion (False when told to stop first); raise UpError on failure."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    while process.poll() is None:
        if stopping.wait(0.2):
            process.terminate()
            process.wait(timeout=STOP_GRACE)
            return False
    if process.returncode != 0:
        raise UpError(f"{what} exited with {process.returncode}; see {log}")
    return True


# ------------------------------------------------------------------------------------- airflow


def check_workdir(workdir: Path) -> None:
    """Raise UpError unless workdir is new, empty or an earlier `up` workdir (it gets wiped),
    or when workdir/tmp is too long a path for the forkserver's unix socket."""
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / WORKDIR_MARKER).exists():
        raise UpError(
            f"--workdir {workdir} is not empty and was not made by `streamline up`; it is wiped "
            "at every start, so give a new or empty folder"
        )
    if workdir.exists() and not workdir.is_dir():
        raise UpError(f"--workdir {workdir} is not a folder")
    # The socket is TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX and AF_UNIX paths end at 107 bytes.
    if len(os.fsencode(workdir / "tmp")) > MAX_TMPDIR_BYTES:
        raise UpError(
            f"--workdir {workdir} is too long a path for Airflow's unix sockets: keep "
            f"{workdir / 'tmp'} under {MAX_TMPDIR_BYTES} bytes"
        )


def airflow_env(
    stack: Stack, project: Project, workdir: Path, dags: Path, port: int, parallelism: int
) -> dict[str, str]:
    """Environment of every Airflow component: the stack's settings, 127.0.0.1, tuning."""
    home = workdir / "airflow"
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **stack.airflow_env(dags, project)}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "TMPDIR": str(workdir / "tmp"),
            "AWS_ENDPOINT_URL": stack.aws_endpoint,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            # Local only: everyone who reaches 127.0.0.1 is admin, no login page.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(workdir / "logs" / "tasks"),
            "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(
                workdir / "logs" / "dag-processor"
            ),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }
    )
    for name, value in AIRFLOW_TUNING.items():
        env.setdefault(name, value)  # the caller's environment wins: tuning is a default
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def component_argv(name: str, port: int) -> list[str]:
    """Command line of one Airflow component."""
    airflow = [sys.executable, "-m", "airflow"]
    if name == "api-server":
        return [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)]
    if name in ("scheduler", "triggerer"):
        return [*airflow, name, "--skip-serve-logs"]
    return [*airflow, name]


def wait_healthy(base_url: str, children: Children, stopping: threading.Event) -> bool:
    """Wait until the API server says the metadata database is healthy; False when stopped."""
    deadline = time.monotonic() + READY_TIMEOUT
    url = f"{base_url}/api/v2/monitor/health"
    while time.monotonic() < deadline:
        _check_alive(children)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = json.loads(response.read())
            if body.get("metadatabase", {}).get("status") == "healthy":
                return True
        except (OSError, ValueError):
            pass
        if stopping.wait(0.5):
            return False
    raise UpError(f"the API server was not healthy at {url} within {READY_TIMEOUT:.0f} s")


def _check_alive(children: Children) -> None:
    dead = children.dead()
    if dead:
        raise UpError(f"{', '.join(dead)} exited; see its log in {children.pid_file.parent}")


# -------------------------------------------------------------------------------- trigger mode


def override_trigger(project: Project, mode: str, folder: Path) -> Project:
    """A copy of the project whose specs all say `trigger.mode: mode`; pipelines/ is untouched."""
    from ruamel.yaml import YAML

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "pipelines").mkdir(parents=True)
    for name in ("templates", "schemas"):
        if (project.root / name).is_dir():
            (folder / name).symlink_to((project.root / name).resolve())
    yaml = YAML()  # round trip: comments and layout survive
    yaml.preserve_quotes = True
    for spec in sorted(project.pipelines_dir.iterdir()):
        if spec.suffix not in (".yaml", ".yml"):
            continue
        data = yaml.load(spec.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            trigger = data.setdefault("trigger", {})
            if isinstance(trigger, dict):
                trigger["mode"] = mode
        with (folder / "pipelines" / spec.name).open("w", encoding="utf-8") as out:
            yaml.dump(data, out)
    return Project(
        root=folder.resolve(),
        pipelines_dir=(folder / "pipelines").resolve(),
        templates_dir=project.templates_dir,
        schema_path=project.schema_path,
    )


# ------------------------------------------------------------------------------------- monitor


def _ts(value: Any) -> dt.datetime | None:
    """A timestamp from SQLite (Airflow writes naive UTC text) or the warehouse, as aware UTC."""
    if value is None:
        return None
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _iso(value: Any) -> str | None:
    when = _ts(value)
    return when.isoformat() if when else None


class Monitor:
    """Finished DAG runs from the metadata database, their rows' latency from the warehouse."""

    def __init__(self, db_path: Path, stack: Stack, feeds: Sequence[Feed], journal: Path) -> None:
        self.db_path = db_path
        self.stack = stack
        self.feeds = {f.dag.dag_id: f for f in feeds}
        self.journal = journal
        self.seen: set[int] = set()
        self.batches: dict[str, list[Batch]] = {f.feed: [] for f in feeds}
        self.empty_runs: dict[str, int] = dict.fromkeys(self.batches, 0)
        self._warehouse: Any = None

    def _db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        return conn

    def dags_ready(self) -> list[str]:
        """DAG ids of the feeds that the dag-processor has registered, unpaused."""
        if not self.db_path.exists():
            return []
        marks = ",".join("?" * len(self.feeds))
        try:
            with closing(self._db()) as db:
                rows = db.execute(
                    f"SELECT dag_id FROM dag WHERE dag_id IN ({marks}) AND NOT is_paused",
                    list(self.feeds),
                ).fetchall()
        except sqlite3.Error:
            return []
        return sorted(r["dag_id"] for r in rows)

    def poll(self) -> list[Batch]:
        """Runs that finished since the last call and claimed files, with their latencies."""
        marks = ",".join("?" * len(self.feeds))
        found: list[Batch] = []
        try:
            with closing(self._db()) as db:
                runs = db.execute(
                    "SELECT id, dag_id, run_id, state, queued_at, start_date, end_date FROM dag_run"
                    f" WHERE dag_id IN ({marks}) AND state IN ('success', 'failed') ORDER BY id",
                    list(self.feeds),
                ).fetchall()
                for run in runs:
                    if run["id"] in self.seen:
                        continue
                    self.seen.add(run["id"])
                    batch = self._batch(db, run)
                    if batch is not None:
                        found.append(batch)
        except sqlite3.Error:
            return found  # the database is busy or not there yet: next time
        for batch in found:
            self._measure(batch)
            self.batches[batch.feed].append(batch)
            with self.journal.open("a", encoding="utf-8") as out:
                out.write(batch.to_json() + "\n")
        return found

    def _batch(self, db: sqlite3.Connection, run: sqlite3.Row) -> Batch | None:
        feed = self.feeds[run["dag_id"]]
        tasks = {
            row["task_id"]: {
                "state": row["state"],
                "queued": _iso(row["queued_dttm"]),
                "start": _iso(row["start_date"]),
                "end": _iso(row["end_date"]),
            }
            for row in db.execute(
                "SELECT task_id, state, queued_dttm, start_date, end_date FROM task_instance"
                " WHERE dag_id = ? AND run_id = ?",
                (run["dag_id"], run["run_id"]),
            )
        }
        if run["state"] == "success" and tasks.get("claim", {}).get("state") != "success":
            self.empty_runs[feed.feed] += 1  # the sensor timed out: no files, no batch
            return None
        value = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = 'claim'"
            " AND key = 'batch_id'",
            (run["dag_id"], run["run_id"]),
        ).fetchone()
        batch_id = _xcom_text(value["value"]) if value else None
        return Batch(
            feed=feed.feed,
            run_id=run["run_id"],
            state=run["state"],
            batch_id=batch_id,
            tasks=tasks,
            run_queued=_iso(run["queued_at"]),
            run_start=_iso(run["start_date"]),
            run_end=_iso(run["end_date"]),
        )

    def _measure(self, batch: Batch) -> None:
        visible = _ts(batch.tasks.get("transform", {}).get("end"))
        if batch.batch_id is None or visible is None:
            return
        feed = next(f for f in self.feeds.values() if f.feed == batch.feed)
        raw, ordering, batch_id = (
            quote_table(feed.raw),
            quote_identifier(feed.ordering),
            quote_literal(batch.batch_id),
        )
        keys = [quote_identifier(k) for k in (*feed.key, feed.ordering)]
        same = " AND ".join(f"p.{k} = r.{k}" for k in keys)
        # An event counts once, in the first batch that carried it: a duplicate line re-sends an
        # old event (old updated_at) later, which says nothing about this pipeline's latency.
        events = (
            f"SELECT DISTINCT {', '.join(f'r.{k}' for k in keys)} FROM {raw} AS r"
            f' WHERE r."BATCH_ID" = {batch_id} AND NOT EXISTS'
            f' (SELECT 1 FROM {raw} AS p WHERE p."BATCH_ID" < {batch_id} AND {same})'
        )
        try:
            if self._warehouse is None:
                self._warehouse = self.stack.connect()
            cursor = self._warehouse.cursor()
            cursor.execute(f'SELECT COUNT(*) FROM {raw} WHERE "BATCH_ID" = {batch_id}')
            batch.rows = int(cursor.fetchone()[0])
            cursor.execute(f"SELECT {ordering} FROM ({events})")
            written = [_ts(row[0]) for row in cursor.fetchall()]
        except Exception:  # the warehouse may be stopping; the batch stays without latency
            self._warehouse = None
            return
        batch.latencies = [(visible - w).total_seconds() for w in written if w is not None]

    def close(self) -> None:
        if self._warehouse is not None:
            with suppress(Exception):
                self._warehouse.close()
            self._warehouse = None


def _xcom_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    try:
        decoded = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        decoded = value
    return str(decoded) if decoded else None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of values; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------- generator


class _StoppableClock:
    """The system clock whose waits end the generator (as Ctrl-C would) once told to stop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.interrupted = False

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self.interrupted:  # flushing after the stop: retries keep their real back-off
            time.sleep(max(0.0, seconds))
        elif self.stop.wait(max(0.0, seconds)):
            self.interrupted = True
            raise KeyboardInterrupt  # the runner flushes its buffers and returns its stats


@dataclass
class Streaming:
    thread: threading.Thread
    stop: threading.Event
    outcome: dict[str, Any]


def start_generator(stack: Stack, feeds: Sequence[Feed], options: UpOptions) -> Streaming:
    """Stream events through Firehose in a thread until the duration ends or stop is set."""
    from streamline_edge import run as run_generator

    config = firehose_config(
        stack,
        feeds,
        rate=options.rate,
        duration=options.duration,
        seed=options.seed,
        duplicate_rate=options.duplicate_rate,
        progress_seconds=1.0,
    )
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def progress(stats: Any) -> None:
        outcome["lines"] = stats.lines

    def stream() -> None:
        try:
            outcome["stats"] = run_generator(
                config, clock=_StoppableClock(stop), on_progress=progress
            )
        except Exception as exc:  # reported by the main loop
            outcome["error"] = exc

    thread = threading.Thread(target=stream, name="generator", daemon=True)
    thread.start()
    return Streaming(thread, stop, outcome)


# ----------------------------------------------------------------------------------------- run


def run_up(project: Project, feeds: Sequence[Feed], options: UpOptions, console: Console) -> int:
    """Run until SIGINT or SIGTERM; 0 after a clean stop, 1 when a component failed."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    workdir = options.workdir.resolve()
    try:
        check_workdir(workdir)
    except UpError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    (workdir / WORKDIR_MARKER).write_text("made by streamline up; wiped at its next start\n")
    started = time.monotonic()
    children = Children(workdir / "pids.json")
    with stop_signals() as stopping:
        try:
            return _run(project, feeds, options, console, workdir, children, stopping, started)
        except KeyboardInterrupt:  # Ctrl-C during a warehouse query (the connector's handler)
            return 0
        except UpError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            return 1
        finally:
            killed = children.killed + children.stop_all()
            children.write_pids()
            note = f" ({', '.join(killed)} killed after {STOP_GRACE:.0f} s)" if killed else ""
            console.print(f"stopped every process{note}; logs are in {workdir / 'logs'}")


def _run(
    project: Project,
    feeds: Sequence[Feed],
    options: UpOptions,
    console: Console,
    workdir: Path,
    children: Children,
    stopping: threading.Event,
    started: float,
) -> int:
    if options.trigger:
        from streamline.validation import validate_paths

        project = override_trigger(project, options.trigger, workdir / "project")
        result = validate_paths(project, base=project.root)
        if result.errors:
            raise UpError(f"specs with trigger.mode {options.trigger} do not validate")
        feeds = result.feeds
    logs = workdir / "logs"
    with embedded_stack(logs) as stack:
        children.extra.update({"moto": stack.processes[0].pid, "warehouse": stack.processes[1].pid})
        children.write_pids()
        provision(stack, project, feeds)
        dags = workdir / "dags"
        generate(project, feeds, dags, RenderSettings(lake_url=f"s3://{stack.bucket}"),
                 stack.sqs_url_prefix)  # fmt: skip
        port = options.port or free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = airflow_env(stack, project, workdir, dags, port, options.parallelism)
        if not _run_step([sys.executable, "-m", "airflow", "db", "migrate"], env,
                         logs / "airflow-migrate.log", stopping, "airflow db migrate"):  # fmt: skip
            return 0
        console.print(
            f"stack provisioned and metadata db migrated ({time.monotonic() - started:.0f} s); "
            "starting Airflow..."
        )
        db_path = workdir / "airflow" / "airflow.db"
        monitor = Monitor(db_path, stack, feeds, workdir / "batches.jsonl")
        try:
            for name in COMPONENTS:
                children.start(name, component_argv(name, port), env, logs / f"{name}.log")
            modes = {f.feed: f.trigger.mode for f in feeds}
            write_stack_file(workdir, env, base_url)
            _print_endpoints(console, stack, workdir, base_url, modes)
            if not wait_healthy(base_url, children, stopping) or not _wait_dags(
                monitor, children, stopping
            ):
                return 0
            console.print(
                f"Airflow is up ({time.monotonic() - started:.0f} s): UI {base_url}  "
                f"DAGs {', '.join(monitor.dags_ready())} unpaused"
            )
            return _stream_and_watch(console, stack, feeds, options, children, stopping, monitor)
        finally:
            monitor.close()
            # Airflow first, while the lake and the warehouse are still there for its tasks.
            children.killed = children.stop_all()


def _wait_dags(monitor: Monitor, children: Children, stopping: threading.Event) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while len(monitor.dags_ready()) < len(monitor.feeds):
        _check_alive(children)
        if time.monotonic() > deadline:
            raise UpError(
                f"the DAGs were not registered within {READY_TIMEOUT:.0f} s; see dag-processor.log"
            )
        if stopping.wait(0.5):
            return False
    return True


def _stream_and_watch(
    console: Console,
    stack: Stack,
    feeds: Sequence[Feed],
    options: UpOptions,
    children: Children,
    stopping: threading.Event,
    monitor: Monitor,
) -> int:
    streaming = start_generator(stack, feeds, options)
    until = f"for {options.duration:.0f} s" if options.duration else "until Ctrl-C"
    console.print(
        f"streaming {options.rate:g} events/s through Firehose {until} "
        f"(duplicates {options.duplicate_rate:.0%}); Ctrl-C stops everything"
    )
    begin = time.monotonic()
    next_status = begin + STATUS_SECONDS
    announced_end = False
    code = 0
    try:
        while not stopping.wait(POLL_SECONDS):
            try:
                finished = monitor.poll()
            except KeyboardInterrupt:
                # The Snowflake connector swaps in its own SIGINT handler while a query runs.
                break
            for batch in finished:
                _print_batch(console, batch)
            dead = children.dead()
            if dead:
                console.print(f"[bold red]{', '.join(dead)} exited[/]; see its log")
                code = 1
                break
            if not streaming.thread.is_alive() and not announced_end:
                announced_end = True
                if "error" in streaming.outcome:
                    console.print(f"[bold red]generator failed:[/] {streaming.outcome['error']}")
                    code = 1
                    break
                console.print("streaming finished; Airflow keeps running until Ctrl-C")
            if time.monotonic() >= next_status:
                next_status += STATUS_SECONDS
                _print_status(console, monitor, streaming, time.monotonic() - begin)
    finally:
        streaming.stop.set()
        streaming.thread.join(timeout=30)
    console.print("stopping...")
    _print_summary(console, monitor, streaming)
    return code


# ------------------------------------------------------------------------------------ reports


def _cli() -> str:
    """How to run this CLI again from a shell: `uv run streamline` when uv is on PATH (or its
    path, which `uv run` passes as $UV), else this process's own streamline script."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv:
        return f"{'uv' if shutil.which('uv') == uv else uv} run streamline"
    return sys.argv[0] if Path(sys.argv[0]).name == "streamline" else "streamline"


def _print_endpoints(
    console: Console, stack: Stack, workdir: Path, base_url: str, modes: dict[str, str]
) -> None:
    rows = {
        "Airflow UI": f"{base_url}  (no login: everyone on 127.0.0.1 is admin)",
        "REST API": f"{base_url}/api/v2  (docs {base_url}/docs)",
        "AWS (moto)": f"{stack.aws_endpoint}  S3, Firehose, SQS, Secrets Manager",
        "warehouse": f"https://127.0.0.1:{stack.warehouse_port}  (fakesnow over TLS)",
        "feeds": ", ".join(f"{feed} ({mode})" for feed, mode in modes.items()),
        "metadata db": str(workdir / "airflow" / "airflow.db"),
        "logs": f"{workdir / 'logs'}  (one per component; task logs in logs/tasks)",
        "batches": str(workdir / "batches.jsonl"),
        "pids": str(workdir / "pids.json"),
        "status": f"{_cli()} status --local --workdir {workdir}",
    }
    for name, value in rows.items():
        console.print(f"  [bold]{name:<12}[/] {value}", highlight=False)


def _print_batch(console: Console, batch: Batch) -> None:
    lat = batch.latencies
    latency = "latency -"
    if lat:
        latency = f"latency p50 {statistics.median(lat):5.1f} s  max {max(lat):5.1f} s"
    start, end = _ts(batch.run_start), _ts(batch.run_end)
    run = f"run {(end - start).total_seconds():4.1f} s" if start and end else ""
    console.print(
        f"  {batch.feed:<10} batch {batch.batch_id or batch.run_id}  {batch.rows:6d} rows  "
        f"{latency}  {run}"
        f"  {batch.state}",
        highlight=False,
    )


def _print_status(console: Console, monitor: Monitor, streaming: Streaming, seconds: float) -> None:
    parts = []
    for feed, batches in monitor.batches.items():
        lat = [x for b in batches for x in b.latencies]
        figures = (
            f" p50 {percentile(lat, 0.5):.1f} s p95 {percentile(lat, 0.95):.1f} s" if lat else ""
        )
        parts.append(f"{feed} {len(batches)} batches{figures}")
    lines = streaming.outcome.get("lines", 0)
    console.print(f"[{seconds:4.0f} s] {lines} events sent; " + "; ".join(parts), highlight=False)


def _print_summary(console: Console, monitor: Monitor, streaming: Streaming) -> None:
    table = Table(title="streamline up: event written -> visible in the mart")
    for column in ("feed", "batches", "failed", "empty runs", "rows", "p50 s", "p95 s", "max s"):
        table.add_column(column, justify="left" if column == "feed" else "right")
    for feed, batches in monitor.batches.items():
        lat = [x for b in batches for x in b.latencies]
        table.add_row(
            feed,
            str(len(batches)),
            str(sum(b.state != "success" for b in batches)),
            str(monitor.empty_runs[feed]),
            str(sum(b.rows for b in batches)),
            f"{percentile(lat, 0.5):.1f}",
            f"{percentile(lat, 0.95):.1f}",
            f"{max(lat, default=float('nan')):.1f}",
        )
    console.print(table)
    stats = streaming.outcome.get("stats")
    if stats is not None:
        console.print(f"generator: {stats.lines} lines sent in {stats.elapsed_seconds:.0f} s")
