"""Latency benchmark: event written -> visible in the mart, with Airflow's real scheduler.

Every scenario runs on the local runtime of `streamline up` (streamline.local.runtime: moto, the
TLS warehouse and Airflow's api-server, scheduler, dag-processor and triggerer on 127.0.0.1) with
the shipped pipelines/ (customers and orders), each in a fresh workdir:

- **sustained** (the reference design's rate, 2 MB/s by default, 120 s): Firehose-sized objects are
  generated before Airflow starts (the edge generator with a simulated clock, `--mbps` across both
  feeds, one object per feed per second as the local Firehose flushes), then replayed into
  `landing/` on that schedule, so the edge's own CPU stays out of the figure. Latency per event is
  *object landed -> batch visible* plus the event's age in its object when the object was shipped
  (0-1 s of edge buffering), exactly what the generator's `updated_at` would give had it run live:
  streamline.local.latency measures `visible - updated_at` and the replay's offset (replay start -
  simulated start) is taken off.
- **poll** and **event** (low rate: 200 events/s by default, 60 s): the edge generator streams live
  through the local Firehose, every feed in that trigger mode (`streamline up --trigger`).
- **firehose**: the edge generator as fast as it goes through the local Firehose for a few seconds,
  no Airflow: the rate the Firehose path itself sustains here.

Visible = the end of the batch's `transform` task (its MERGE and checks committed), read from
Airflow's REST API. Each scenario checks nothing was lost or doubled (raw rows = lines sent, one
mart row per key, every DAG run succeeded) and prints latency p50/p95/max, batches, the backlog
(objects waiting in landing/, sampled each second), the seconds per task and per hand-off, and CPU
seconds and peak memory of each component (psutil, the process and its descendants). Goals are
printed met / not met; a JSON record and a PNG plot are written (benchmarks/records.py).

    uv run python benchmarks/latency.py [--scenarios sustained poll event firehose]
        [--mbps 2] [--duration 120] [--rate 200] [--low-duration 60] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import os
import shutil
import statistics
import sys
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import records

REPO = records.REPO
WORKDIR = REPO / ".scratch" / "bench-latency"
SCENARIOS = ("sustained", "poll", "event", "firehose")
SAMPLE_SECONDS = 1.0
DRAIN_SECONDS = 180.0
"""After the last event: how long every landed file has to be published."""


# --- the replay of pre-generated objects ---------------------------------------------------------


@dataclass
class Shipped:
    """One pre-generated object: its key under the lake, local path, bytes, simulated ship time."""

    key: str
    path: Path
    size: int
    at: float


@dataclass
class Replay:
    """Pre-generated objects in ship order, the generator's stats, and the simulated clock's start
    (epoch s): an event's updated_at minus origin is its offset into the replay."""

    objects: list[Shipped]
    stats: Any
    origin: float


def pregenerate(folder: Path, mbps: float, seconds: float, seed: int) -> Replay:
    """Generate `seconds` of edge traffic at `mbps` into folder (as Firehose-sized objects, one per
    feed and second) with a simulated clock."""
    from streamline_edge import GeneratorConfig, run
    from streamline_edge.clock import FakeClock
    from streamline_edge.targets import LocalTarget

    class Quiet(FakeClock):
        """FakeClock that keeps no list of its sleeps (millions here)."""

        def sleep(self, s: float) -> None:
            if s > 0:
                self.advance(max(s, 1e-9))  # at least 1 ns, as FakeClock.sleep

    origin = float(int(time.time()))
    clock = Quiet(start=origin)
    shipped: list[Shipped] = []

    class Recording(LocalTarget):
        def _write(self, key: str, data: bytes) -> None:
            super()._write(key, data)
            shipped.append(Shipped(key, self.root / key, len(data), clock.time()))

    config = GeneratorConfig(
        target="local", out=str(folder), feeds="customers,orders", seed=seed, mbps=mbps,
        duration=seconds, duplicate_rate=0.0, flush_seconds=1.0,
    )  # fmt: skip
    target = Recording(folder, clock=clock, flush_seconds=1.0, flush_bytes=config.flush_bytes,
                       run_id="replay")  # fmt: skip
    stats = run(config, clock=clock, target=target)
    for item in shipped:
        item.at -= origin
    return Replay(shipped, stats, origin)


def start_replay(stack: Any, replay: Replay, log: list[float]) -> Any:
    """PUT each object into the stack's lake at its simulated time after now, in a thread; a
    streamline.local.streaming.Streaming whose outcome gets the generator stats when done. log
    gets each PUT's lateness against the schedule (s)."""
    from streamline.local.streaming import Streaming

    streaming = Streaming(threading.Thread(), threading.Event())
    s3 = stack.boto3_client("s3")
    streaming.outcome["started"] = time.time()

    objects, stats = replay.objects, replay.stats

    def put_all() -> None:
        begin, sent = streaming.outcome["started"], 0
        try:
            for item in objects:
                wait = begin + item.at - time.time()
                if wait > 0 and streaming.stop.wait(wait):
                    break
                s3.put_object(Bucket=stack.bucket, Key=item.key, Body=item.path.read_bytes())
                log.append(max(0.0, time.time() - (begin + item.at)))
                sent += 1
                streaming.outcome["lines"] = round(stats.lines * sent / len(objects))
            streaming.outcome["stats"] = stats
        except Exception as exc:
            streaming.outcome["error"] = exc

    streaming.thread = threading.Thread(target=put_all, name="replay", daemon=True)
    streaming.thread.start()
    return streaming


# --- sampling: backlog, CPU and memory per component -------------------------------------------


@dataclass
class Sampler:
    """Each SAMPLE_SECONDS: objects waiting in landing/, and per component (a child of the
    runtime and its descendants) CPU seconds so far and resident memory."""

    runtime: Any
    started: float = field(default_factory=time.monotonic)
    backlog: list[tuple[float, int]] = field(default_factory=list)
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    rss: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="sampler", daemon=True).start()

    def _loop(self) -> None:
        s3 = self.runtime.stack.boto3_client("s3")
        landings = [f.layout.lake.landing for f in self.runtime.feeds]
        while not self.stop.wait(SAMPLE_SECONDS):
            now = time.monotonic() - self.started
            try:
                waiting = sum(_count_objects(s3, self.runtime.stack.bucket, p) for p in landings)
                self.backlog.append((now, waiting))
            except Exception:  # the lake stopping at the end
                pass
            processes = {n: p.pid for n, p in self.runtime.children.processes.items()}
            processes["benchmark"] = os.getpid()  # the replay and the monitor; not its children
            for name, pid in processes.items():
                cpu, rss = _tree_usage(pid, descendants=name != "benchmark")
                if cpu is not None:
                    self.cpu[name].append((now, cpu))
                    self.rss[name] = max(self.rss[name], rss)

    def usage(self, since: float, until: float) -> dict[str, dict[str, float]]:
        """Per component: CPU seconds between since and until (s after start), the mean CPU
        (cores), and peak RSS in MiB over the whole run."""
        out = {}
        for name, points in self.cpu.items():
            inside = [(t, c) for t, c in points if since <= t <= until]
            if len(inside) < 2:
                continue
            seconds = inside[-1][1] - inside[0][1]
            span = inside[-1][0] - inside[0][0]
            out[name] = {
                "cpu_s": round(seconds, 1),
                "cores": round(seconds / span, 2) if span else math.nan,
                "peak_rss_mib": round(self.rss[name] / 2**20),
            }
        return out


def _count_objects(s3: Any, bucket: str, prefix: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(page.get("KeyCount", 0) for page in pages)


def _tree_usage(pid: int, *, descendants: bool = True) -> tuple[float | None, float]:
    """CPU seconds (its own, its reaped children's, its live descendants') and RSS bytes of the
    process tree at pid, or of the process alone; (None, 0) when it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        cpu = times.user + times.system
        rss = root.memory_info().rss
        if not descendants:
            return cpu, rss
        cpu += times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                t = child.cpu_times()
                cpu += t.user + t.system
                rss += child.memory_info().rss
            except psutil.Error:
                continue
        return cpu, rss
    except psutil.Error:
        return None, 0.0


# --- a scenario on the local runtime -------------------------------------------------------------


@dataclass
class Outcome:
    """What one scenario measured (the figures of the JSON record)."""

    scenario: str
    trigger: str
    offered: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    batches: int = 0
    failed_runs: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    backlog: list[tuple[float, int]] = field(default_factory=list)
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    tasks: dict[str, float] = field(default_factory=dict)
    handoffs: dict[str, float] = field(default_factory=dict)
    replay_late_max: float | None = None
    megabytes: float = 0.0
    drain_seconds: float | None = None

    def pct(self, q: float) -> float:
        from streamline.local.latency import percentile

        return percentile(self.latencies, q) if self.latencies else math.nan

    @property
    def backlog_growth(self) -> float:
        """Objects waiting in landing/, least-squares slope over the offered load, per minute."""
        points = [(t, n) for t, n in self.backlog if t <= self.seconds]
        if len(points) < 3:
            return math.nan
        slope = statistics.linear_regression([t for t, _ in points], [n for _, n in points]).slope
        return slope * 60.0

    def summary(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if k not in ("latencies",)}
        body.update(
            events=len(self.latencies),
            p50=self.pct(0.5),
            p95=self.pct(0.95),
            max=max(self.latencies, default=math.nan),
            backlog_growth_per_min=self.backlog_growth,
            backlog_max=max((n for _, n in self.backlog), default=0),
        )
        return body


def run_scenario(name: str, args: argparse.Namespace, console: Any, workdir: Path) -> Outcome:
    """Run one scenario on a fresh local runtime; its outcome (what failed in its problems)."""
    from streamline.local.runtime import RuntimeOptions, run_local
    from streamline.project import find_project
    from streamline.validation import validate_paths

    project = find_project(REPO)
    result = validate_paths(project)
    if result.errors:
        raise SystemExit(f"the shipped pipelines do not validate: {result.errors}")
    trigger = "event" if name == "event" else args.trigger if name == "sustained" else "poll"
    replay: Replay | None = None
    if name == "sustained":
        began = time.monotonic()
        replay = pregenerate(workdir / "replay", args.mbps, args.duration, args.seed)
        stats = replay.stats
        console.print(
            f"sustained: {len(replay.objects)} objects, {stats.bytes / 1e6:.1f} MB, "
            f"{stats.lines} events "
            f"pre-generated in {time.monotonic() - began:.1f} s"
        )
        offered = f"{args.mbps:g} MB/s replayed for {args.duration:g} s"
        seconds = args.duration
    else:
        offered = f"{args.rate:g} events/s through Firehose for {args.low_duration:g} s"
        seconds = args.low_duration
    outcome = Outcome(name, trigger, offered, seconds)
    options = RuntimeOptions(
        rate=args.rate, duration=args.low_duration, seed=args.seed, duplicate_rate=0.0,
        trigger=trigger, workdir=workdir / "runtime",
    )  # fmt: skip

    def body(runtime: Any) -> int:
        return _measure(runtime, outcome, replay)

    code = run_local(project, result.feeds, options, console, body)
    if code and not outcome.problems:
        outcome.problems.append(f"the local runtime failed (exit {code}); see above")
    return outcome


def _measure(runtime: Any, outcome: Outcome, replay: Replay | None) -> int:
    from streamline.local import reports
    from streamline.local.demo import count_and_check

    sampler = Sampler(runtime)
    sampler.start()
    late: list[float] = []
    if replay is not None:
        streaming = start_replay(runtime.stack, replay, late)
        outcome.megabytes = replay.stats.bytes / 1e6
    else:
        streaming = runtime.stream()
    load_started = time.monotonic()
    last_event: list[float] = []

    def finished() -> bool:
        if not streaming.finished:
            return False
        if not last_event:
            last_event.append(time.monotonic())
        drained = runtime.drained()
        return drained or time.monotonic() - last_event[0] > DRAIN_SECONDS

    code = 1
    try:
        code = runtime.watch(streaming, until=finished)
    finally:
        streaming.end(timeout=30.0)
        sampler.stop.set()
    if code:
        outcome.problems.append("a process of the local runtime exited; see its log")
        return code
    if last_event:
        outcome.drain_seconds = round(time.monotonic() - last_event[0], 1)
    if not runtime.drained():
        outcome.problems.append("files were still waiting or open when the time ran out")
    if "error" in streaming.outcome:
        outcome.problems.append(f"the event source failed: {streaming.outcome['error']}")
    stats = streaming.outcome.get("stats")
    if replay is None and stats is not None:
        outcome.megabytes = stats.bytes / 1e6
    summaries = list(runtime.summaries.values())
    outcome.problems.extend(count_and_check(runtime, summaries, stats))
    offset, title = 0.0, f"{outcome.scenario}: per feed (as measured)"
    if replay is not None:  # the events' updated_at are simulated times: take the offset off
        offset = streaming.outcome["started"] - replay.origin
        title = (
            f"{outcome.scenario}: per feed, latency from the events' simulated times "
            f"(the replay's offset of {offset:.1f} s NOT taken off)"
        )
        outcome.replay_late_max = round(max(late, default=0.0), 3)
    reports.print_summary(runtime.console, title, summaries)
    if replay is not None:
        runtime.console.print(
            f"the table above and the batch lines during the run count from the events' simulated "
            f"times: the figures below take off the replay's offset of {offset:.1f} s (its start "
            f"minus the simulated clock's)"
        )
    runs = [r for s in summaries for r in s.runs]
    outcome.latencies = [lat - offset for s in summaries for lat in s.latencies]
    outcome.batches = sum(len(s.batches) for s in summaries)
    outcome.failed_runs = sum(r.state != "success" for r in runs)
    outcome.rows = sum(r.rows for s in summaries for r in s.batches)
    outcome.backlog = [(round(t - (load_started - sampler.started), 1), n)
                       for t, n in sampler.backlog]  # fmt: skip
    begin = load_started - sampler.started
    outcome.usage = sampler.usage(begin, begin + outcome.seconds)
    outcome.tasks, outcome.handoffs = _task_seconds(runs)
    return 0


def _task_seconds(runs: Sequence[Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean seconds per task (start -> end) and per hand-off (previous task's end -> this task's
    start, queueing included) over the batches (runs that claimed files)."""
    from streamline.local.monitor import timestamp

    durations: dict[str, list[float]] = defaultdict(list)
    gaps: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if not run.batch_id or run.state != "success":
            continue
        spans = []
        for task_id, t in run.tasks.items():
            start, end = timestamp(t.get("start")), timestamp(t.get("end"))
            if start and end:
                spans.append((start, end, task_id))
                durations[task_id].append((end - start).total_seconds())
        spans.sort()
        for (_, prev_end, prev), (start, _, task_id) in itertools.pairwise(spans):
            gaps[f"{prev} -> {task_id}"].append((start - prev_end).total_seconds())
    mean = {k: round(statistics.fmean(v), 2) for k, v in durations.items()}
    return mean, {k: round(statistics.fmean(v), 2) for k, v in gaps.items()}


# --- the Firehose path alone ---------------------------------------------------------------------


def run_firehose(args: argparse.Namespace, console: Any, workdir: Path) -> dict[str, Any]:
    """The edge generator unpaced through the local Firehose for args.firehose_seconds: MB/s."""
    from streamline.local.stack import embedded_stack, provision
    from streamline.local.streaming import firehose_config, start_generator
    from streamline.project import find_project
    from streamline.validation import validate_paths

    project = find_project(REPO)
    feeds = validate_paths(project).feeds
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    with embedded_stack(workdir / "logs") as stack:
        provision(stack, project, feeds)
        config = firehose_config(stack, feeds, rate=1e9, duration=args.firehose_seconds,
                                 seed=args.seed, duplicate_rate=0.0)  # fmt: skip
        from dataclasses import replace

        config = replace(config, rate=None)  # unpaced
        streaming = start_generator(config)
        streaming.thread.join(args.firehose_seconds + 60)
        streaming.end()
        if "error" in streaming.outcome:
            raise SystemExit(f"the generator failed: {streaming.outcome['error']}")
        stats = streaming.outcome["stats"]
    figures = {
        "seconds": round(stats.elapsed_seconds, 2),
        "events": stats.lines,
        "megabytes": round(stats.bytes / 1e6, 2),
        "mb_per_s": round(stats.mb_per_second, 2),
        "events_per_s": round(stats.lines_per_second),
        "api_calls": stats.delivery.api_calls,
    }
    console.print(
        f"firehose: {figures['events']} events, {figures['megabytes']} MB in "
        f"{figures['seconds']} s: {figures['mb_per_s']} MB/s, {figures['events_per_s']} events/s"
    )
    return figures


# --- report --------------------------------------------------------------------------------------


def report(console: Any, outcomes: Sequence[Outcome]) -> None:
    from rich.table import Table

    table = Table(title="Event written -> visible in the mart (s), real scheduler")
    for header in ("scenario", "trigger", "offered", "MB", "events", "batches", "failed",
                   "p50", "p95", "max", "backlog max", "growth /min", "drain s"):  # fmt: skip
        table.add_column(header, justify="left" if header in ("scenario", "offered") else "right")
    for o in outcomes:
        table.add_row(
            o.scenario, o.trigger, o.offered, f"{o.megabytes:.1f}", str(len(o.latencies)),
            str(o.batches), str(o.failed_runs), f"{o.pct(0.5):.2f}", f"{o.pct(0.95):.2f}",
            f"{max(o.latencies, default=math.nan):.2f}",
            str(max((n for _, n in o.backlog), default=0)), f"{o.backlog_growth:.2f}",
            "-" if o.drain_seconds is None else f"{o.drain_seconds:.0f}",
        )  # fmt: skip
    console.print(table)
    tasks = Table(title="Mean seconds per task and hand-off (previous end -> start), per batch")
    tasks.add_column("scenario")
    tasks.add_column("step")
    tasks.add_column("s", justify="right")
    for o in outcomes:
        for step, s in {**o.tasks, **o.handoffs}.items():
            tasks.add_row(o.scenario, step, f"{s:.2f}")
    console.print(tasks)
    usage = Table(title="CPU and memory per component during the offered load")
    for header in ("scenario", "component", "CPU s", "cores", "peak RSS MiB"):
        usage.add_column(header, justify="left" if header in ("scenario", "component") else "right")
    for o in outcomes:
        for name, u in sorted(o.usage.items(), key=lambda kv: -kv[1]["cpu_s"]):
            usage.add_row(o.scenario, name, f"{u['cpu_s']:.1f}", f"{u['cores']:.2f}",
                          str(u["peak_rss_mib"]))  # fmt: skip
    console.print(usage)


def plot(outcomes: Sequence[Outcome], path: Path) -> None:
    """Latency distribution per scenario, and the sustained run's backlog over time."""
    plt = records.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for o in outcomes:
        if o.latencies:
            ordered = sorted(o.latencies)
            n = len(ordered)
            left.plot(ordered, [(i + 1) / n for i in range(n)], label=f"{o.scenario} ({o.trigger})")
        if o.backlog:
            right.plot([t for t, _ in o.backlog], [n for _, n in o.backlog], label=o.scenario)
    goals = (
        (2.5, "-.", "2.5 s: goal p50 at 200 events/s"),
        (5.0, ":", "5 s: goal p50 at 2 MB/s, p95 at 200 events/s"),
        (10.0, "--", "10 s: goal p95 at 2 MB/s"),
    )
    for x, style, label in goals:
        left.axvline(x, color="grey", linestyle=style, linewidth=1, label=label)
    left.set(xlabel="event written -> visible in the mart (s)", ylabel="fraction of events",
             title="Latency (CDF)")  # fmt: skip
    left.legend(fontsize="small")
    right.set(xlabel="s since the load began", ylabel="objects waiting in landing/",
              title="Backlog")  # fmt: skip
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def judge(record: records.Record, outcomes: dict[str, Outcome]) -> None:
    sustained = outcomes.get("sustained")
    if sustained is not None:
        rate = sustained.offered
        record.goal(f"sustained p50 ({rate})", sustained.pct(0.5), "<=", 5.0, unit="s")
        record.goal(f"sustained p95 ({rate})", sustained.pct(0.95), "<=", 10.0, unit="s")
        record.goal(
            "sustained backlog growth",
            sustained.backlog_growth,
            "<=",
            1.0,
            unit="objects/min",
            note="least-squares slope of objects in landing/",
        )
    for mode in ("poll", "event"):
        o = outcomes.get(mode)
        if o is not None:
            record.goal(f"{mode} p50 ({o.offered})", o.pct(0.5), "<=", 2.5, unit="s")
            record.goal(f"{mode} p95 ({o.offered})", o.pct(0.95), "<=", 5.0, unit="s")


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--mbps", type=float, default=2.0, help="sustained rate, MB/s (2)")
    parser.add_argument("--duration", type=float, default=120.0, help="sustained seconds (120)")
    parser.add_argument(
        "--trigger",
        choices=("poll", "event"),
        default="poll",
        help="trigger mode of the sustained run (poll, as pipelines/ ship)",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="low rate, events/s (200)")
    parser.add_argument("--low-duration", type=float, default=60.0, help="low-rate seconds (60)")
    parser.add_argument("--firehose-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--out", help="folder of the JSON record and PNG plot")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sustained 0.1 MB/s for 8 s and firehose 2 s (over --scenarios, --mbps, --duration "
        "and --firehose-seconds): proves it runs, judges no goal",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.scenarios = ["sustained", "firehose"]
        args.mbps, args.duration, args.firehose_seconds = 0.1, 8.0, 2.0
    for name in ("mbps", "duration", "rate", "low_duration", "firehose_seconds"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios; 1 when one lost, doubled or failed something, or measured nothing."""
    args = parse_args(argv)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")
    warnings.simplefilter("ignore")
    logging.getLogger("snowflake.connector").setLevel(logging.WARNING)  # a line per login
    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)  # a line per client
    console = records.console()
    record = records.Record("latency", vars(args), quick=args.quick)
    if args.out:
        record.out = Path(args.out)
    console.print(f"[bold]Machine:[/] {records.machine_line(record.machine)}")
    outcomes: dict[str, Outcome] = {}
    failed = False
    for name in args.scenarios:
        workdir = args.workdir / name
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        console.rule(name)
        if name == "firehose":
            record.figures["firehose"] = run_firehose(args, console, workdir)
            continue
        outcome = run_scenario(name, args, console, workdir)
        outcomes[name] = outcome
        for problem in outcome.problems:
            console.print(f"[red]{name}: {problem}[/]", highlight=False)
        failed |= bool(outcome.problems)
        if not outcome.latencies:
            console.print(f"[red]{name}: no latency was measured[/]")
            failed = True
        shutil.rmtree(workdir / "replay", ignore_errors=True)
    record.figures["scenarios"] = {n: o.summary() for n, o in outcomes.items()}
    report(console, list(outcomes.values()))
    if outcomes:
        plot(list(outcomes.values()), record.plot_path())
    judge(record, outcomes)
    record.finish(console)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
