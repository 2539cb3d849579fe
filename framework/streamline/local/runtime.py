"""The local runtime shared by `streamline up` and `streamline demo`.

`run_local` wipes and prepares the workdir, starts the embedded stack (moto, the TLS warehouse) and
provisions it, generates the dags folder, migrates Airflow's metadata database (SQLite, in the
workdir) and starts Airflow's components on 127.0.0.1 (api-server, scheduler with the
LocalExecutor, dag-processor, triggerer), waits until the API server is healthy and every feed's DAG
is registered unpaused, then hands a `Runtime` to the command's body. Whatever happens (the body
returns, raises, SIGINT or SIGTERM), Airflow is stopped first, then the stack, every process by PID.
The body streams events (`Runtime.stream`) and watches finished batches (`Runtime.watch`); the
rooms it uses: streamline.local.processes (supervision), .airflow_config (configuration),
.monitor (runs through the REST API), .latency and .reports.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from streamline.airflowapi import RestApi
from streamline.errors import StreamlineError
from streamline.generation import generate
from streamline.local import airflow_config, reports
from streamline.local.latency import LatencyMeter
from streamline.local.monitor import FinishedRun, Monitor
from streamline.local.processes import STOP_GRACE, Children, run_step, stop_signals
from streamline.local.stack import Stack, embedded_stack, free_port, provision, write_stack_file
from streamline.local.streaming import Streaming, firehose_config, start_generator
from streamline.local.trigger import override_trigger
from streamline.model import Feed
from streamline.project import Project
from streamline.rendering import RenderSettings
from streamline.tasks import DETECT_TASK

READY_TIMEOUT = 120.0
"""Seconds for the API server to be healthy, again for the DAGs to be registered, and again for
the poll feeds' first sensors."""
SENSOR_GRACE = 20.0
POLL_SECONDS = 1.0
STATUS_SECONDS = 30.0
MAX_TMPDIR_BYTES = 72
SUMMARY_WIDTH = 150
WORKDIR_MARKER = ".streamline-local"
EARLIER_MARKERS = (".streamline-up", "airflow-setup.log")
"""What workdirs of earlier versions of `up` and `demo` hold: they are wiped as well."""


class LocalRuntimeError(StreamlineError):
    """The local runtime could not start, or a part of it died."""


@dataclass
class RuntimeOptions:
    """What to stream, for how long, and where to keep files."""

    rate: float = 200.0
    duration: float | None = None
    seed: int | None = None
    duplicate_rate: float = 0.05
    malformed_rate: float = 0.0
    trigger: str | None = None
    workdir: Path = Path(".scratch/up")
    port: int | None = None
    parallelism: int = 4


def check_workdir(workdir: Path) -> None:
    """Raise LocalRuntimeError unless workdir is new, empty or made by the local runtime (it gets
    wiped), or when workdir/tmp is too long a path for the forkserver's unix socket."""
    if workdir.exists() and not workdir.is_dir():
        raise LocalRuntimeError(f"--workdir {workdir} is not a folder")
    marked = any((workdir / m).exists() for m in (WORKDIR_MARKER, *EARLIER_MARKERS))
    if workdir.is_dir() and any(workdir.iterdir()) and not marked:
        raise LocalRuntimeError(
            f"--workdir {workdir} is not empty and was not made by `streamline up` or `demo`; it "
            "is wiped at every start, so give a new or empty folder"
        )
    # The socket is TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX and AF_UNIX paths end at 107 bytes.
    if len(os.fsencode(workdir / "tmp")) > MAX_TMPDIR_BYTES:
        raise LocalRuntimeError(
            f"--workdir {workdir} is too long a path for Airflow's unix sockets: keep "
            f"{workdir / 'tmp'} under {MAX_TMPDIR_BYTES} bytes"
        )


@dataclass
class Runtime:
    """A running local runtime, as the command's body sees it."""

    feeds: Sequence[Feed]
    options: RuntimeOptions
    console: Console
    workdir: Path
    stack: Stack
    children: Children
    stopping: threading.Event
    api_url: str
    monitor: Monitor
    meter: LatencyMeter
    summaries: dict[str, reports.FeedSummary] = field(default_factory=dict)
    announced_dead: bool = False

    @property
    def journal(self) -> Path:
        """batches.jsonl: one JSON line per finished batch (FinishedRun.to_json)."""
        return self.workdir / "batches.jsonl"

    def poll(self) -> list[FinishedRun]:
        """Batches finished since the last poll, measured, journalled and in summaries (the
        monitor reads what the API server did not give this time at the next poll)."""
        found = self.monitor.poll()
        for run in found:
            self.meter.measure(run)
            self.summaries[run.feed].runs.append(run)
            with self.journal.open("a", encoding="utf-8") as out:
                out.write(run.to_json() + "\n")
        for feed, count in self.monitor.empty_runs.items():
            self.summaries[feed].empty_runs = count
        return found

    def stream(self) -> Streaming:
        """Start the edge generator as the options say."""
        o = self.options
        config = firehose_config(self.stack, self.feeds, rate=o.rate, duration=o.duration,
                                 seed=o.seed, duplicate_rate=o.duplicate_rate,
                                 malformed_rate=o.malformed_rate, progress_seconds=1.0)  # fmt: skip
        until = f"for {o.duration:.0f} s" if o.duration else "until Ctrl-C"
        malformed = f", malformed {o.malformed_rate:.0%}" if o.malformed_rate else ""
        self.console.print(
            f"streaming {o.rate:g} events/s through Firehose {until} "
            f"(duplicates {o.duplicate_rate:.0%}{malformed}); Ctrl-C stops everything"
        )
        return start_generator(config)

    def watch(
        self,
        streaming: Streaming,
        *,
        until: Callable[[], bool] = lambda: False,
        on_run: Callable[[FinishedRun], None] = lambda run: None,
        streamed_note: str = "",
    ) -> int:
        """Print each finished batch and a status line every STATUS_SECONDS until SIGINT/SIGTERM
        or until() is true; 0, or 1 when a component died or the generator failed."""
        begin = time.monotonic()
        next_status, announced = begin + STATUS_SECONDS, False
        while not self.stopping.wait(POLL_SECONDS):
            try:
                for run in self.poll():
                    reports.print_run(self.console, run)
                    on_run(run)
                if self._dead():
                    return 1
                if until():
                    return 0
            except KeyboardInterrupt:  # the Snowflake connector's own SIGINT handler, mid-query
                self.stopping.set()
                return 0
            except Exception:
                if not self._dead():  # a dead server explains it; else it is a real error
                    raise
                return 1
            if streaming.finished and not announced:
                announced = True
                if "error" in streaming.outcome:
                    error = streaming.outcome["error"]
                    self.console.print(f"[bold red]generator failed:[/] {error}")
                    return 1
                self.console.print(f"streaming finished{streamed_note}")
            if time.monotonic() >= next_status:
                next_status += STATUS_SECONDS
                reports.print_status_line(
                    self.console,
                    list(self.summaries.values()),
                    streaming.lines,
                    time.monotonic() - begin,
                )
        return 0

    def drained(self) -> bool:
        """No file waiting in landing or open in processing, and every batch of the ledger seen
        finished by the monitor."""
        from streamline.ledger import ConnectionRunner, read_batches
        from streamline.status import feed_status

        s3 = self.stack.boto3_client("s3")
        for feed in self.feeds:
            status = feed_status(feed, s3, self.stack.bucket, [])
            if status.backlog.files or status.open_batches:
                return False
        seen = {r.batch_id for s in self.summaries.values() for r in s.runs}
        with self.stack.connect() as conn:
            runner = ConnectionRunner(conn)
            for feed in self.feeds:
                rows = read_batches(runner, feed.layout.ledger, [feed.feed], latest=1_000_000)
                if any(row.batch_id not in seen for row in rows):
                    return False
        return True

    def _dead(self) -> bool:
        """Whether a child (an Airflow component, moto, the warehouse) exited; says which."""
        dead = self.children.dead()
        if dead and not self.announced_dead:
            self.announced_dead = True
            self.console.print(f"[bold red]{', '.join(dead)} exited[/]; see its log")
        return bool(dead)


Body = Callable[[Runtime], int]
INTERRUPTED = 130
"""run_local's exit code when SIGINT or SIGTERM stopped it (128 + SIGINT, as a shell reports)."""


def run_local(
    project: Project, feeds: Sequence[Feed], options: RuntimeOptions, console: Console, body: Body
) -> int:
    """Start the local runtime, run body on it, stop everything; body's exit code, 1 when the
    runtime failed, 2 when the workdir is refused, INTERRUPTED when SIGINT or SIGTERM (or a
    Ctrl-C caught by the Snowflake connector mid-query) stopped it and body found nothing wrong."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    if not console.is_terminal:  # a log file or a pipe: rich would cut the tables at 80 columns
        console.width = max(console.width, SUMMARY_WIDTH)
    workdir = options.workdir.resolve()
    try:
        check_workdir(workdir)
    except LocalRuntimeError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "logs").mkdir(parents=True)
    (workdir / WORKDIR_MARKER).write_text("made by streamline up or demo; wiped at each start\n")
    children = Children(workdir / "pids.json")
    with stop_signals() as stopping:
        try:
            code = _start(project, feeds, options, console, workdir, children, stopping, body)
            return INTERRUPTED if stopping.is_set() and code == 0 else code
        except KeyboardInterrupt:  # Ctrl-C during a warehouse query (the connector's handler)
            return INTERRUPTED
        except StreamlineError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            return 1
        finally:
            children.stop_all()
            children.write_pids()
            killed = children.killed
            note = f" ({', '.join(killed)} killed after {STOP_GRACE:.0f} s)" if killed else ""
            console.print(f"stopped every process{note}; logs are in {workdir / 'logs'}")


def _start(
    project: Project,
    feeds: Sequence[Feed],
    options: RuntimeOptions,
    console: Console,
    workdir: Path,
    children: Children,
    stopping: threading.Event,
    body: Body,
) -> int:
    started = time.monotonic()
    if options.trigger:
        project, feeds = override_trigger(project, options.trigger, workdir / "project")
    logs = workdir / "logs"
    with embedded_stack(logs) as stack:
        for name, process in zip(("moto", "warehouse"), stack.processes, strict=True):
            children.adopt(name, process)
        provision(stack, project, feeds)
        dags = workdir / "dags"
        generate(project, feeds, dags, RenderSettings(lake_url=f"s3://{stack.bucket}"),
                 stack.sqs_url_prefix)  # fmt: skip
        port = options.port or free_port()
        env = airflow_config.airflow_env(stack, project, workdir, dags, port, options.parallelism)

        def migrate(argv: list[str]) -> bool:  # False when stopped first
            return run_step(argv, env, logs / "airflow-migrate.log", stopping, "airflow db migrate")

        if not airflow_config.migrate_database(env, migrate):
            return 0
        console.print(
            f"stack provisioned and metadata db ready ({time.monotonic() - started:.0f} s); "
            "starting Airflow..."
        )
        api_url = airflow_config.api_url(port)
        runtime = Runtime(
            feeds, options, console, workdir, stack, children, stopping, api_url,
            Monitor(RestApi(api_url, timeout=10.0), feeds), LatencyMeter(stack.connect, feeds),
            {f.feed: reports.FeedSummary(f.feed) for f in feeds},
        )  # fmt: skip
        try:
            for name in airflow_config.COMPONENTS:
                argv = airflow_config.component_argv(name, port)
                children.start(name, argv, env, logs / f"{name}.log")
            write_stack_file(workdir, env, api_url)
            reports.print_endpoints(runtime.console, reports.endpoints(
                api_url, stack, workdir, runtime.feeds, runtime.journal
            ))  # fmt: skip
            if not _wait_ready(runtime):
                return 0
            console.print(
                f"Airflow is up ({time.monotonic() - started:.0f} s): UI {api_url}  "
                f"DAGs {', '.join(runtime.monitor.dags_ready())} unpaused"
            )
            return body(runtime)
        finally:
            runtime.meter.close()
            # Airflow first, while the lake and the warehouse are still there for its tasks.
            children.stop_all()


def _wait_ready(runtime: Runtime) -> bool:
    """Wait until the API server is healthy, every DAG registered and every poll feed's first
    sensor past its first poke (the first task processes of a fresh scheduler take 5-10 s to get
    there; data landing meanwhile would wait for them); False when stopped."""
    monitor = runtime.monitor
    running_since: float | None = None

    def sensors_poked() -> bool:
        nonlocal running_since
        state = monitor.sensors(DETECT_TASK)
        if state != "running":
            running_since = None
            return state == "poked"
        # All running; should their logs not say they poked, SENSOR_GRACE s of running will do.
        running_since = running_since or time.monotonic()
        return time.monotonic() - running_since > SENSOR_GRACE

    steps: tuple[tuple[str, str, Callable[[], bool]], ...] = (
        ("health", "api-server", monitor.healthy),
        ("dags", "dag-processor", lambda: len(monitor.dags_ready()) == len(runtime.feeds)),
        ("sensors", "scheduler", sensors_poked),
    )
    for what, component, ready in steps:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            runtime.children.check_alive()
            if time.monotonic() > deadline:
                raise LocalRuntimeError(
                    f"Airflow was not ready ({what}) within {READY_TIMEOUT:.0f} s; "
                    f"see {component}.log"
                )
            if runtime.stopping.wait(0.5):
                return False
    return True
