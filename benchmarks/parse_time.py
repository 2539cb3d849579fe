"""Parse-time benchmark: StreamLine's loader path against dag-factory alone, per feed.

Generates N synthetic feed specs in a throw-away project under $TMPDIR and times, per feed:

- StreamLine, stage by stage, as `streamline.dagloader.load_dags` runs them when Airflow parses
  streamline_dags.py: validate (YAML + schema + semantic checks + the template check, which
  renders each feed's SQL; kept for the next parse), write SQL, DAG build
  (build_dag_config + cast_with_type + dagfactory.load_yaml_dags(config_dict=...));
- `load_dags` itself, end to end, as a cross-check that the staged figures add up, and again on
  the same specs: the DAG processor's next parse, which takes the kept validation;
- dag-factory alone on the same DAGs: from dicts and from one YAML file per DAG.

Heavy imports (Airflow, providers, dag-factory) are paid once, timed, and reported apart; one
untimed warm-up pass pays the remaining first-use costs. Each figure is the median of --repeat
runs (--large-repeat at 1,000 feeds and more). Each run leaves a JSON record and a PNG plot
(benchmarks/records.py) and prints the goals of issue 12 as met / not met.

    uv run python benchmarks/parse_time.py [--feeds 10 100 500 2000] [--repeat 3]
        [--large-repeat 1] [--out DIR] [--profile] [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import importlib.metadata
import logging
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import records
import yaml
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from streamline.model import Feed
    from streamline.project import Project

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FEEDS = (10, 100, 500, 2000)
LARGE = 1000
"""From this many feeds, a measurement runs --large-repeat times (one run of every measurement
at 2,000 feeds takes about 3 minutes on 2 cores)."""
GOAL_FEEDS = 500
GOAL_MS_PER_FEED = 5.0
"""Issue 12: parse <= 5 ms per feed at 500 feeds, including validation."""
TIMEOUT_FEEDS = 2000
GOAL_WHOLE_S = 15.0
"""Issue 12: the loader at 2,000 feeds 'well inside' Airflow's 30 s import timeout: half of it."""

# Everything a parse of streamline_dags.py imports: the one-off cost excluded from per-feed figures.
STACK_MODULES = (
    "airflow",
    "airflow.sdk",
    "airflow.providers.amazon.aws.sensors.s3",
    "airflow.providers.standard.operators.python",
    "airflow.providers.common.sql.operators.sql",
    "airflow.providers.common.messaging.triggers.msg_queue",
    "dagfactory",
    "dagfactory.utils",
    "streamline.dagloader",
    "streamline.generation",
)

DOMAINS = ("sales", "billing", "logistics", "marketing", "support", "inventory", "people")
ENTITIES = ("orders", "invoices", "shipments", "leads", "tickets", "stock_moves", "payments")
REGIONS = ("eu", "us", "apac")
EXTRA_TYPES = (
    "VARCHAR(64)",
    "VARCHAR(255)",
    "NUMBER(12,2)",
    "NUMBER(38,0)",
    "BOOLEAN",
    "DATE",
    "TIMESTAMP_NTZ(3)",
    "FLOAT",
    "CHAR(3)",
    "VARIANT",
)

# Stage names, in table order; seconds per run are collected under these keys.
VALIDATE = "validate"
WRITE_SQL = "write sql"
DAG_BUILD = "dag build"
STAGES = (VALIDATE, WRITE_SQL, DAG_BUILD)
LOAD_DAGS = "load_dags"
LOAD_AGAIN = "load_dags, specs unchanged"
DF_DICT = "df dict"
DF_YAML = "df yaml"


class BenchmarkFailure(Exception):
    """The benchmark would measure nothing useful: a spec is invalid or a DAG did not build."""


# --- synthetic project ---------------------------------------------------------------------------


SQS_URL_PREFIX = "https://sqs.us-east-1.amazonaws.com/123456789012"
"""Queue URL prefix for the synthetic event-triggered feeds (no queue is contacted)."""


def feed_name(index: int) -> str:
    """Name of synthetic feed index: unique, and the same whatever the feed count."""
    domain = DOMAINS[index % len(DOMAINS)]
    entity = ENTITIES[(index // len(DOMAINS)) % len(ENTITIES)]
    return f"{domain}_{entity}_{index:04d}"


def synthetic_spec(index: int) -> dict[str, Any]:
    """A valid feed spec, varied by index: 8-12 columns, some composite keys, some references."""
    rng = random.Random(index)
    name = feed_name(index)
    domain = DOMAINS[index % len(DOMAINS)]
    composite = index % 5 == 4
    columns: list[dict[str, Any]] = [
        {"name": "id", "type": "VARCHAR(32)", "nullable": False, "description": "Row identifier."}
    ]
    if composite:
        columns.append({"name": "line_no", "type": "NUMBER(9,0)", "nullable": False})
    columns += [
        {"name": "status", "type": "VARCHAR(16)"},
        {"name": "amount", "type": "NUMBER(12,2)"},
    ]
    references: list[dict[str, Any]] = []
    if index % 3 == 2:
        target = feed_name(rng.randrange(index))
        columns.append({"name": "parent_id", "type": "VARCHAR(32)"})
        references.append(
            {"column": "parent_id", "feed": target, "to": "id", "max_orphan_ratio": 0.1}
        )
    width = rng.randint(8, 12)
    while len(columns) < width - 1:
        columns.append({"name": f"attr_{len(columns):02d}", "type": rng.choice(EXTRA_TYPES)})
    columns.append({"name": "updated_at", "type": "TIMESTAMP_NTZ(3)", "nullable": False})
    key = ["id", "line_no"] if composite else ["id"]
    checks: list[dict[str, Any]] = [
        {"type": "row_count", "min": 1},
        {"type": "not_null", "columns": [*key, "updated_at"]},
        {"type": "unique", "columns": key},
        {"type": "accepted_values", "column": "status", "values": ["new", "open", "closed"]},
    ]
    if rng.random() < 0.5:
        checks.append({"type": "range", "column": "amount", "min": 0})
    prefix = [f"{REGIONS[index % 3]}/{domain}/{name}", f"{domain}/{name}", name][index % 3]
    trigger: dict[str, Any] = (
        {"mode": "event"}
        if index % 4 == 3
        else {
            "mode": "poll",
            "poll_interval_seconds": rng.choice([2, 5, 10]),
            "timeout_seconds": 120,
        }
    )
    return {
        "feed": name,
        "description": f"Synthetic {domain} feed number {index}.",
        "source": {
            "prefix": prefix,
            "format": {
                "delimiter": rng.choice([",", ";", "|"]),
                "timestamp_format": "YYYY-MM-DD HH24:MI:SS.FF3",
            },
        },
        "columns": columns,
        "key": key,
        "ordering": "updated_at",
        "references": references,
        "raw": {"database": "streamline", "schema": f"raw_{domain}", "table": name},
        "mart": {"database": "streamline", "schema": f"mart_{domain}", "table": name},
        "copy": {"on_error": "abort_statement"},
        "transform": {"template": "append" if index % 5 == 1 else "merge_latest"},
        "checks": checks,
        "trigger": trigger,
        "dag": {"owner": f"team-{domain}", "tags": [domain], "retries": rng.randint(0, 3)},
    }


def make_project(root: Path) -> None:
    """A project folder with the repository's schema and templates and an empty pipelines/."""
    shutil.copytree(REPO / "schemas", root / "schemas")
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "pipelines").mkdir()


def write_specs(pipelines: Path, count: int) -> None:
    """Replace the specs in pipelines/ with count synthetic ones."""
    for old in pipelines.glob("*.yaml"):
        old.unlink()
    for index in range(count):
        text = yaml.safe_dump(synthetic_spec(index), sort_keys=False, default_flow_style=False)
        header = "# yaml-language-server: $schema=../schemas/feed.schema.json\n"
        (pipelines / f"{feed_name(index)}.yaml").write_text(header + text, encoding="utf-8")


# --- measurements --------------------------------------------------------------------------------


def import_stack() -> float:
    """Import Airflow, the providers, dag-factory and StreamLine; return the seconds it took."""
    start = time.perf_counter()
    for module in STACK_MODULES:
        importlib.import_module(module)
    from dagfactory import settings as dagfactory_settings

    dagfactory_settings.enable_telemetry = False
    return time.perf_counter() - start


def check_dags(globals_dict: dict[str, Any], expected: set[str], how: str) -> None:
    """Fail unless globals_dict holds exactly the expected DAGs, each with all its tasks."""
    from airflow.sdk import DAG

    dags = {name: value for name, value in globals_dict.items() if isinstance(value, DAG)}
    missing, extra = expected - set(dags), set(dags) - expected
    if missing or extra:
        raise BenchmarkFailure(
            f"{how}: {len(missing)} DAGs missing (e.g. {sorted(missing)[:3]}), "
            f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})"
        )
    from streamline.dagconfig import TASKS

    short = [name for name, dag in dags.items() if {t.task_id for t in dag.tasks} != set(TASKS)]
    if short:
        raise BenchmarkFailure(f"{how}: {len(short)} DAGs lack tasks, e.g. {short[0]}")


def timed(action: Callable[[], None]) -> float:
    """Seconds one call of action takes, after collecting the previous run's garbage."""
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def validated_feeds(project: Project) -> list[Feed]:
    """Every feed of the project, or BenchmarkFailure naming each spec error."""
    from streamline.errors import format_errors
    from streamline.validation import validate_paths

    result = validate_paths(project)
    if result.errors:
        raise BenchmarkFailure(
            "synthetic specs failed validation:\n" + format_errors(result.errors)
        )
    feeds: list[Feed] = result.feeds
    return feeds


def run_streamline_stages(project: Project, sql_dir: Path, expected: set[str]) -> dict[str, float]:
    """The loader's work on a first parse, split into its stages: {stage: seconds}."""
    import dagfactory
    from dagfactory.utils import cast_with_type

    from streamline import airflow_compat
    from streamline.dagconfig import build_dag_config
    from streamline.dagloader import Validated, config_docs_through_libyaml, feed_sql, validated
    from streamline.errors import format_errors
    from streamline.rendering import RenderSettings

    kept: list[Validated] = []
    fingerprints: dict[str, str] = {}
    globals_dict: dict[str, Any] = {}
    settings = RenderSettings.from_env()
    sqs_url_prefix = os.environ["STREAMLINE_SQS_URL_PREFIX"]  # main sets it
    version = airflow_compat.installed_airflow()

    def validate() -> None:  # as load_dags: renders in the template check, keeps the result
        kept.append(validated(project, sql_dir, version, settings))

    def write_sql() -> None:  # the SQL the validation rendered, into a fresh folder
        for feed in kept[0].result.feeds:
            fingerprints[feed.feed] = feed_sql(project, feed, kept[0], sql_dir, settings)

    def build() -> None:
        with config_docs_through_libyaml():  # as load_dags builds them
            for feed in kept[0].result.feeds:
                fingerprint = fingerprints[feed.feed]
                config = build_dag_config(feed, sql_dir, sqs_url_prefix, fingerprint)
                dagfactory.load_yaml_dags(globals_dict, config_dict=cast_with_type(config))

    # One collection before, none between the stages: load_dags runs them back to back, and its
    # garbage collections fall wherever allocation triggers them.
    gc.collect()
    seconds: dict[str, float] = {}
    for stage, action in ((VALIDATE, validate), (WRITE_SQL, write_sql), (DAG_BUILD, build)):
        start = time.perf_counter()
        action()
        seconds[stage] = time.perf_counter() - start
        if stage == VALIDATE and kept[0].result.errors:
            raise BenchmarkFailure(
                "synthetic specs failed validation:\n" + format_errors(kept[0].result.errors)
            )
    if len(kept[0].result.feeds) != len(expected):
        raise BenchmarkFailure(f"validation kept {len(kept[0].result.feeds)} of {len(expected)}")
    check_dags(globals_dict, expected, "StreamLine stages")
    return seconds


def run_load_dags(project: Project, sql_dir: Path, expected: set[str]) -> float:
    """Seconds for streamline.dagloader.load_dags over the whole project, as Airflow runs it."""
    from streamline.dagloader import ERROR_DAG_ID, load_dags

    globals_dict: dict[str, Any] = {}
    built: list[str] = []
    seconds = timed(lambda: built.extend(load_dags(globals_dict, project.root, sql_dir)))
    if ERROR_DAG_ID in globals_dict or set(built) != expected:
        raise BenchmarkFailure(f"load_dags built {len(built)} of {len(expected)} DAGs")
    check_dags(globals_dict, expected, "load_dags")
    return seconds


def run_dagfactory_dicts(configs: Sequence[dict[str, Any]], expected: set[str]) -> float:
    """Seconds for dag-factory to build one DAG per plain config dict (`__type__` cast included)."""
    import dagfactory
    from dagfactory.utils import cast_with_type

    globals_dict: dict[str, Any] = {}

    def build() -> None:
        for config in configs:
            dagfactory.load_yaml_dags(globals_dict, config_dict=cast_with_type(config))

    seconds = timed(build)
    check_dags(globals_dict, expected, "dag-factory from dicts")
    return seconds


def run_dagfactory_files(files: Sequence[Path], expected: set[str]) -> float:
    """Seconds for dag-factory to build one DAG per YAML config file."""
    import dagfactory

    globals_dict: dict[str, Any] = {}

    def build() -> None:
        for path in files:
            dagfactory.load_yaml_dags(globals_dict, config_filepath=str(path))

    seconds = timed(build)
    check_dags(globals_dict, expected, "dag-factory from YAML files")
    return seconds


@dataclass
class SizeResult:
    """Seconds per run of every measurement at one feed count."""

    feeds: int
    runs: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def median_ms_per_feed(self, stage: str) -> float:
        return statistics.median(self.runs[stage]) * 1000 / self.feeds

    def median_s(self, stage: str) -> float:
        return statistics.median(self.runs[stage])

    def figures(self) -> dict[str, Any]:
        """This feed count's figures for the JSON record: medians and every run, per measurement."""
        return {
            "feeds": self.feeds,
            "runs": len(self.runs[LOAD_DAGS]),
            "ms_per_feed": {k: round(self.median_ms_per_feed(k), 3) for k in self.runs},
            "median_s": {k: round(self.median_s(k), 3) for k in self.runs},
            "runs_s": {k: [round(v, 3) for v in runs] for k, runs in self.runs.items()},
        }


def measure_size(work: Path, project: Project, count: int, repeat: int) -> SizeResult:
    """Write count specs and run every measurement repeat times, interleaved."""
    from streamline.dagconfig import build_dag_config
    from streamline.generation import CONFIG_FOLDER, generate, write_feed_sql

    write_specs(project.pipelines_dir, count)
    feeds = validated_feeds(project)
    expected = {feed.dag.dag_id for feed in feeds}
    if len(expected) != count:
        raise BenchmarkFailure(f"{count} specs written, {len(expected)} valid feeds")
    # dag-factory alone gets the same DAGs: configs as StreamLine builds them, SQL already written.
    plain = work / f"plain_{count}"
    sqs_url_prefix = os.environ["STREAMLINE_SQS_URL_PREFIX"]  # main sets it
    generate(project, feeds, plain, sqs_url_prefix=sqs_url_prefix)
    sql_dir = plain / "streamline_sql"
    configs = [  # write_feed_sql finds the SQL in place: it gives the fingerprint, writes nothing
        build_dag_config(
            feed, sql_dir, sqs_url_prefix, write_feed_sql(project, feed, feeds, sql_dir)
        )
        for feed in feeds
    ]
    files = sorted((plain / CONFIG_FOLDER).glob("*.yaml"))
    result = SizeResult(count)
    for run in range(repeat):
        # A fresh SQL folder per run, so the SQL is written and validation not kept, as on a
        # first parse.
        fresh = [work / f"sql_{count}_{run}_{which}" for which in ("stages", "loader")]
        for stage, seconds in run_streamline_stages(project, fresh[0], expected).items():
            result.runs[stage].append(seconds)
        result.runs[LOAD_DAGS].append(run_load_dags(project, fresh[1], expected))
        # The DAG processor's next parse: same specs, SQL and validated specs in place.
        result.runs[LOAD_AGAIN].append(run_load_dags(project, fresh[1], expected))
        result.runs[DF_DICT].append(run_dagfactory_dicts(configs, expected))
        result.runs[DF_YAML].append(run_dagfactory_files(files, expected))
        for folder in fresh:
            shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(plain, ignore_errors=True)
    return result


def split_validate(project: Project, count: int, repeat: int, console: Console) -> None:
    """Time the parts of validation apart (no profiler), beside a C YAML parse of the same files."""
    from streamline.loading import LoadedSpec, find_spec_files, load_spec
    from streamline.rendering import render_feed
    from streamline.validation import validate_specs

    write_specs(project.pipelines_dir, count)
    paths, _ = find_spec_files([project.pipelines_dir])
    texts = [path.read_text(encoding="utf-8") for path in paths]
    specs: list[LoadedSpec] = []
    feeds: list[Feed] = []

    def load_ruamel() -> None:
        for path in paths:
            if not isinstance(load_spec(path), LoadedSpec):
                raise BenchmarkFailure(f"{path} did not load")

    def load_fast() -> None:
        specs.clear()
        for path in paths:
            spec = load_spec(path, positions=False)
            if isinstance(spec, LoadedSpec) and spec.document is None:
                specs.append(spec)

    def load_libyaml() -> None:
        for text in texts:
            yaml.load(text, Loader=yaml.CSafeLoader)

    def check() -> None:
        feeds.clear()
        feeds.extend(validate_specs(project, specs)[0])

    def render() -> None:
        for feed in feeds:
            render_feed(project, feed, feeds)

    parts = (
        ("load_spec with positions: ruamel round-trip (a spec with errors)", load_ruamel),
        ("load_spec without positions: libyaml's C parser (what validation reads)", load_fast),
        ("for comparison: PyYAML CSafeLoader (libyaml), same files", load_libyaml),
        ("validate_specs: schema + semantic checks + template check", check),
        ("  of which render_feed of every feed (its SQL is what load_dags writes)", render),
    )
    table = Table(
        title=f"Inside validate, {count} feeds, ms per feed (median of {repeat}, unprofiled)"
    )
    table.add_column("part")
    table.add_column("ms/feed", justify="right")
    for label, action in parts:
        runs = [timed(action) for _ in range(repeat)]
        if action is not load_ruamel and len(feeds if action is render else specs) != count:
            raise BenchmarkFailure(f"validate split: {label} saw too few specs")
        table.add_row(label, f"{statistics.median(runs) * 1000 / count:.2f}")
    console.print(table)


def profile_load_dags(work: Path, project: Project, count: int, console: Console) -> None:
    """cProfile one load_dags over count feeds: own time by library, then the top functions."""
    from streamline.dagloader import load_dags

    write_specs(project.pipelines_dir, count)
    profiler = cProfile.Profile()
    profiler.enable()
    load_dags({}, project.root, work / "sql_profile")
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    own: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        own[library_of(filename)] += tottime
    total = sum(own.values())
    table = Table(
        title=f"Where one load_dags of {count} feeds spends its time (cProfile, own time)"
    )
    table.add_column("library")
    table.add_column("s", justify="right")
    table.add_column("share", justify="right")
    for name, seconds in sorted(own.items(), key=lambda item: -item[1])[:12]:
        table.add_row(name, f"{seconds:.2f}", f"{seconds / total:.0%}")
    console.print(table)
    ours = Table(title="StreamLine and dag-factory functions by cumulative time")
    hot = Table(title="Hotspots by own time")
    for table in (ours, hot):
        table.add_column("function")
        table.add_column("cum s" if table is ours else "own s", justify="right")
        table.add_column("calls", justify="right")
    entries = sorted(raw.items(), key=lambda item: -item[1][3])
    mine = [item for item in entries if library_of(item[0][0]) in ("streamline", "dagfactory")]
    for (filename, line, func), (_, calls, _, cumtime, _) in mine[:15]:
        ours.add_row(f"{Path(filename).name}:{line} {func}", f"{cumtime:.2f}", str(calls))
    for (filename, line, func), (_, calls, tottime, _, _) in sorted(
        raw.items(), key=lambda item: -item[1][2]
    )[:10]:
        where = f"{library_of(filename)}:{Path(filename).name}:{line}"
        hot.add_row(f"{where} {func}", f"{tottime:.2f}", str(calls))
    console.print(ours)
    console.print(hot)
    console.print(
        "cProfile slows code made of many small calls (ruamel's parser) more than the rest: "
        "read shares, not seconds."
    )


def library_of(filename: str) -> str:
    """The top-level package a profiled file belongs to."""
    parts = Path(filename).parts
    for marker in ("site-packages", "framework"):
        if marker in parts:
            index = parts.index(marker)
            if index + 1 < len(parts):
                return parts[index + 1].removesuffix(".py").split("-")[0]
    if filename == "~" or filename.startswith("<") or "python3" in filename:
        return "python (stdlib, builtins)"
    return Path(filename).name


# --- report --------------------------------------------------------------------------------------


def parse_libraries() -> str:
    """The versions of the libraries a parse runs beside records.machine()'s."""
    names = ("jsonschema", "ruamel.yaml", "jinja2", "PyYAML")
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)


def report(console: Console, results: Sequence[SizeResult], repeat: str) -> None:
    """Print the per-feed table and the whole-parse table."""
    table = Table(
        title=f"Parse time per feed, ms (median of {repeat})",
        caption="df = dag-factory alone on the same DAGs. The stages are a first parse's: "
        "validate renders each feed's SQL in its template check and keeps its result; write SQL "
        "writes that SQL into a fresh folder. load_dags again is the next parse of the same "
        "specs: it takes the kept validation and renders no feed whose SQL files are in place "
        "(streamline.dagloader.validated).",
    )
    for header in (
        "feeds",
        "validate",
        "write\nSQL",
        "DAG\nbuild",
        "sum of\nstages",
        "load_dags\nmeasured",
        "load_dags\nagain",
        "df from\ndicts",
        "df from\nYAML",
        "load_dags\n÷ df YAML",
    ):
        table.add_column(header, justify="right")
    for result in results:
        stages = [result.median_ms_per_feed(s) for s in STAGES]
        loader = result.median_ms_per_feed(LOAD_DAGS)
        yaml_files = result.median_ms_per_feed(DF_YAML)
        table.add_row(
            str(result.feeds),
            *(f"{ms:.2f}" for ms in stages),
            f"{sum(stages):.2f}",
            f"{loader:.2f}",
            f"{result.median_ms_per_feed(LOAD_AGAIN):.2f}",
            f"{result.median_ms_per_feed(DF_DICT):.2f}",
            f"{yaml_files:.2f}",
            f"{loader / yaml_files:.1f}x",
        )
    console.print(table)

    timeout = import_timeout()
    whole = Table(title="One parse of streamline_dags.py (all feeds in one file), s (median)")
    for header in (
        "feeds",
        "validate",
        "write SQL",
        "DAG build",
        "load_dags",
        "of import timeout",
        "load_dags again",
        "df from dicts",
    ):
        whole.add_column(header, justify="right")
    for result in results:
        loader = result.median_s(LOAD_DAGS)
        whole.add_row(
            str(result.feeds),
            *(f"{result.median_s(s):.2f}" for s in STAGES),
            f"{loader:.2f}",
            f"{loader / timeout:.0%} of {timeout:.0f} s",
            f"{result.median_s(LOAD_AGAIN):.2f}",
            f"{result.median_s(DF_DICT):.2f}",
        )
    console.print(whole)


def import_timeout() -> float:
    """Airflow's core.dagbag_import_timeout, s: what one parse of the loader file must fit in."""
    from airflow.configuration import conf

    return conf.getfloat("core", "dagbag_import_timeout")


def judge(record: records.Record, results: Sequence[SizeResult]) -> None:
    """The goals of issue 12, from the measured feed counts (not measured: None)."""
    by_feeds = {result.feeds: result for result in results}
    at_goal = by_feeds.get(GOAL_FEEDS)
    at_timeout = by_feeds.get(TIMEOUT_FEEDS)
    record.goal(
        f"parse per feed at {GOAL_FEEDS} feeds (first parse, incl. validation)",
        at_goal.median_ms_per_feed(LOAD_DAGS) if at_goal else None, "<=", GOAL_MS_PER_FEED,
        unit="ms", note="load_dags on specs it has not seen: validates, renders, writes, builds",
    )  # fmt: skip
    record.goal(
        f"parse per feed at {GOAL_FEEDS} feeds (next parse, validation kept)",
        at_goal.median_ms_per_feed(LOAD_AGAIN) if at_goal else None, "<=", GOAL_MS_PER_FEED,
        unit="ms", note="the DAG processor's usual parse: the same specs again",
    )  # fmt: skip
    timeout = import_timeout()
    record.goal(
        f"load_dags at {TIMEOUT_FEEDS} feeds (first parse)",
        at_timeout.median_s(LOAD_DAGS) if at_timeout else None, "<=", GOAL_WHOLE_S, unit="s",
        note=f"'well inside' the {timeout:.0f} s import timeout: half of it, room for a slower "
        "or busier machine (an MWAA worker) and for the file's imports",
    )  # fmt: skip
    record.goal(
        f"load_dags at {TIMEOUT_FEEDS} feeds (next parse)",
        at_timeout.median_s(LOAD_AGAIN) if at_timeout else None, "<=", GOAL_WHOLE_S, unit="s",
        note="the DAG processor's usual parse: the same specs again",
    )  # fmt: skip


def plot(path: Path, results: Sequence[SizeResult], title: str) -> None:
    """ms per feed by feed count (StreamLine's stages stacked, load_dags first and next parse,
    dag-factory alone), and one whole parse in s beside the import timeout and the goal."""
    plt = records.pyplot()
    feeds = [result.feeds for result in results]
    fig, (per_feed, whole) = plt.subplots(1, 2, figsize=(13, 5.2))
    below = [0.0] * len(results)
    colours = ("#9ecae1", "#6baed6", "#3182bd")
    for stage, colour in zip(STAGES, colours, strict=True):
        top = [b + r.median_ms_per_feed(stage) for b, r in zip(below, results, strict=True)]
        per_feed.fill_between(feeds, below, top, color=colour, alpha=0.8, label=f"stage: {stage}")
        below = top
    lines = (
        (LOAD_DAGS, "load_dags, first parse", "#08306b", "o-"),
        (LOAD_AGAIN, "load_dags, next parse", "#e6550d", "s-"),
        (DF_DICT, "dag-factory alone, from dicts", "#31a354", "^--"),
        (DF_YAML, "dag-factory alone, from YAML files", "#756bb1", "v--"),
    )
    for stage, label, colour, style in lines:
        per_feed.plot(
            feeds, [r.median_ms_per_feed(stage) for r in results], style, color=colour, label=label
        )
    per_feed.axhline(GOAL_MS_PER_FEED, color="red", linestyle=":", label="goal at 500 feeds")
    per_feed.set(xscale="log", xlabel="feeds", ylabel="ms per feed", title="Per feed (median)")
    per_feed.set_ylim(bottom=0)
    per_feed.legend(fontsize="small")
    for stage, label, colour, style in lines[:3]:
        whole.plot(feeds, [r.median_s(stage) for r in results], style, color=colour, label=label)
    timeout = import_timeout()
    whole.axhline(timeout, color="black", linestyle="-", label=f"import timeout ({timeout:.0f} s)")
    whole.axhline(GOAL_WHOLE_S, color="red", linestyle=":", label="goal at 2,000 feeds")
    whole.set(xscale="log", xlabel="feeds", ylabel="s", title="One parse of the loader file")
    whole.set_ylim(bottom=0)
    whole.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--feeds",
        type=int,
        nargs="+",
        default=list(DEFAULT_FEEDS),
        metavar="N",
        help="feed counts to measure (default: 10 100 500 2000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="runs per measurement; the median is reported (default: 3)",
    )
    parser.add_argument(
        "--large-repeat",
        type=int,
        default=1,
        metavar="N",
        help=f"runs per measurement from {LARGE:,} feeds, at most --repeat (default: 1)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the JSON record and the PNG plot (default: $STREAMLINE_BENCH_OUT, "
        "else .scratch/bench)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one load_dags at the largest feed count",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10 feeds, one run: proves the benchmark still runs (make test), measures little",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds, args.repeat = [10], 1
    if min(args.repeat, args.large_repeat, *args.feeds) < 1:
        parser.error("--feeds, --repeat and --large-repeat take positive numbers")
    return args


def runs_at(count: int, args: argparse.Namespace) -> int:
    """How many runs of each measurement at count feeds."""
    return min(args.repeat, args.large_repeat) if count >= LARGE else args.repeat


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 1 when a spec is invalid or a DAG does not build."""
    started = time.perf_counter()
    args = parse_args(argv)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # The synthetic event-mode feeds' DAGs need a queue URL prefix; no queue is contacted.
    os.environ.setdefault("STREAMLINE_SQS_URL_PREFIX", SQS_URL_PREFIX)
    # Wide enough for the tables when piped to a file; a terminal keeps its own width.
    console = Console(width=None if sys.stdout.isatty() else 120)
    # Airflow's and dag-factory's deprecation warnings and per-DAG INFO logs would bury the report.
    warnings.simplefilter("ignore")
    import_seconds = import_stack()
    logging.disable(logging.INFO)
    record = records.Record(
        "parse_time", vars(args), out=records.out_dir(args.out), quick=args.quick
    )
    console.print(f"[bold]Machine:[/] {records.machine_line(record.machine)}; {parse_libraries()}")
    console.print(
        f"One-off import of Airflow, providers, dag-factory, StreamLine: {import_seconds:.2f} s"
    )
    sizes = sorted(set(args.feeds))
    results: list[SizeResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="streamline-bench-") as temp:
            work = Path(temp)
            from streamline.project import find_project

            make_project(work / "project")
            project = find_project(work / "project")
            warm = measure_size(work, project, min(10, *sizes), 1)
            console.print(
                f"Warm-up pass ({warm.feeds} feeds, untimed in the tables): "
                f"{sum(sum(runs) for runs in warm.runs.values()):.2f} s"
            )
            for count in sizes:
                results.append(measure_size(work, project, count, runs_at(count, args)))
                console.print(f"  measured {count} feeds x {runs_at(count, args)} runs")
            repeats = sorted({runs_at(count, args) for count in sizes})
            report(console, results, " / ".join(map(str, repeats)) + " runs")
            if args.profile:
                split_validate(project, max(sizes), args.repeat, console)
                profile_load_dags(work, project, max(sizes), console)
    except BenchmarkFailure as failure:
        console.print(f"[red]benchmark failed:[/] {failure}", highlight=False)
        return 1
    record.figures = {
        "import_s": round(import_seconds, 3),
        "import_timeout_s": import_timeout(),
        "large_from_feeds": LARGE,
        "sizes": [result.figures() for result in results],
    }
    judge(record, results)
    facts, versions = record.machine, record.machine["versions"]
    machine = (
        f"{facts['cpus']} CPUs, Python {facts['python']}, Airflow {versions['apache-airflow']}, "
        f"dag-factory {versions['dag-factory']}"
    )
    plot(record.plot_path(), results, f"parse_time {record.started}: {machine}")
    record.finish(console)
    console.print(f"Total wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
