"""`streamline deploy --check`: install a bundle as Amazon MWAA would, then run its DAGs there.

For the target MWAA version this
1. builds (once, then caches) a virtual environment with the image's Python and installs the
   bundle as MWAA does: `pip install --constraint mwaa_essential_constraints-<v>.txt -r
   requirements.txt`, with requirements.txt's constraint URL replaced by the copy in infra/mwaa/
   and its `--find-links` by the unpacked plugins.zip;
   https://docs.aws.amazon.com/mwaa/latest/userguide/working-dags-dependencies.html
2. starts the embedded stack (moto, the local warehouse), provisions the feeds and lands one small
   object per feed, written in the feed's own file format;
3. loads the dags folder there with Airflow's DagBag (no import error allowed) and runs every DAG
   once with `dag.test()`: detect, claim, load, transform and finalize against the stack, through
   that version's Airflow, providers and Snowflake connector.

The environments live in $STREAMLINE_CACHE_DIR (default ~/.cache/streamline), one folder per
target and content of its constraint files and requirements; a check reinstalls only the wheel.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streamline.dagconfig import TASKS
from streamline.errors import StreamlineError
from streamline.local import cache_dir
from streamline.migrations import canonical_type
from streamline.model import Column, Feed
from streamline.mwaa import MwaaTarget, target_requirements
from streamline.project import Project

PROBE = Path(__file__).with_name("mwaa_probe.py")
WAREHOUSE_TASKS = ("load", "transform", "finalize")
"""Tasks that connect to the warehouse (detect works on the lake only; so does the claim where
the probe leaves its schema version check out, as it does where the warehouse is stopped)."""
PROBE_MARK = "STREAMLINE-PROBE-RESULT "
PROBE_TIMEOUT_SECONDS = 900
SAMPLE_ROWS = 3
SAMPLE_TIME = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
_ENCODINGS = {"UTF8": "utf-8", "ISO-8859-1": "latin-1", "WINDOWS1252": "cp1252"}
_ELEMENT_VALUES = {"YYYY": "2026", "YY": "26", "MMMM": "January", "MON": "Jan", "MM": "01"}
_ELEMENT_VALUES |= {"DD": "01", "DY": "Thu", "HH24": "12", "HH12": "12", "HH": "12", "AM": "PM"}
_ELEMENT_VALUES |= {"PM": "PM", "MI": "00", "SS": "00", "TZH:TZM": "+00:00", "TZHTZM": "+0000"}
_ELEMENT_VALUES |= {"FF": "000000000", **{f"FF{n}": "0" * n for n in range(1, 10)}}


class CheckError(StreamlineError):
    """The target environment could not be built or the check could not run (exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class ProbeResult:
    """What the probe saw in the target environment (streamline.local.mwaa_probe)."""

    airflow: str
    snowflake_provider: str
    warehouse_host: bool
    """False when the target's SnowflakeHook cannot be pointed at the local warehouse: the runs
    are then checked up to the warehouse connection (the lake tasks)."""
    import_errors: dict[str, str]
    dags: dict[str, list[str]]
    runs: dict[str, dict[str, Any]]
    log: Path
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each phase: install, stack (start and provision), load (Airflow and the
    DagBag, in the probe), runs (every dag.test())."""

    def verdict(self, dag_id: str) -> str:
        """'passed', 'passed up to the warehouse connection', or what failed."""
        run = self.runs[dag_id]
        if run["state"] == "success":
            return "passed"
        if not self.warehouse_host:
            lake = [task for task in TASKS if task not in WAREHOUSE_TASKS]
            if run.get("warehouse_reached") and all(
                run["tasks"].get(task) == "success" for task in lake
            ):
                return "passed up to the warehouse connection"
        failed = [task for task, state in run["tasks"].items() if state != "success"]
        return f"FAILED: {run['state']} ({', '.join(failed) or 'no task ran'})"

    @property
    def ok(self) -> bool:
        return not self.import_errors and all(
            self.verdict(dag_id).startswith("passed") for dag_id in self.runs
        )


# ---- the target environment ----------------------------------------------------------------


def find_uv() -> str:
    """The uv executable: on PATH, or beside this Python (the project's venv).

    Raises CheckError when there is none.
    """
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if not found:
        raise CheckError(
            "deploy --check builds the MWAA environment with uv, which is not on PATH: "
            "install it (https://docs.astral.sh/uv/) or run through `make`, which does"
        )
    return found


def find_python(version: str) -> str:
    """An interpreter of Python major.minor `version` on this machine (uv's discovery, then
    pyenv's versions). Raises CheckError when there is none."""
    uv = find_uv()
    found = subprocess.run(
        [uv, "python", "find", "--no-python-downloads", version],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        return found.stdout.strip()
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True):
        return str(candidate)
    raise CheckError(
        f"no Python {version} on this machine, the MWAA image's Python: install one "
        f"(`uv python install {version}`)"
    )


def _run(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise CheckError(
            f"`{' '.join(command[:4])} ...` failed (exit {done.returncode}); the end of {log}:\n"
            + "\n".join(tail)
        )


def local_requirements(bundle_root: Path, target: MwaaTarget, plugins: Path) -> Path:
    """The bundle's requirements.txt as MWAA reads it, pointing at local copies: the constraint
    file in infra/mwaa/ and the unpacked plugins.zip."""
    text = (bundle_root / "requirements.txt").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^--constraint .*$", f'--constraint "{target.constraints}"', text)
    text = re.sub(r"(?m)^--find-links .*$", f"--find-links {plugins}", text)
    path = plugins.parent / "requirements-local.txt"
    path.write_text(text, encoding="utf-8")
    return path


def environment(target: MwaaTarget, bundle_root: Path, workdir: Path) -> Path:
    """The target's cached environment with the bundle installed; returns its folder, which
    holds venv/ and airflow-home/ (a migrated metadata database to copy).

    Built on first use and cached by the content of the target's constraint files and
    requirements (the wheel aside); then only the streamline wheel is reinstalled.
    """
    uv = find_uv()
    key = hashlib.sha256()
    for path in (target.constraints, target.essential_constraints):
        key.update(path.read_bytes())
    key.update("\n".join(target_requirements(target)).encode())
    home = cache_dir() / f"mwaa-{target.airflow_version}-py{target.python_version}-"
    home = home.with_name(home.name + key.hexdigest()[:12])
    venv = home / "venv"
    python = venv / "bin" / "python"
    log = workdir / "install.log"
    plugins = workdir / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(bundle_root / "plugins.zip") as archive:
        archive.extractall(plugins)
    requirements = local_requirements(bundle_root, target, plugins)
    for attempt in (1, 2):
        fresh = not (home / "ready").is_file()
        try:
            if fresh:
                shutil.rmtree(home, ignore_errors=True)
                home.mkdir(parents=True)
                interpreter = find_python(target.python_version)
                _run([uv, "venv", "--quiet", "--python", interpreter, str(venv)], log)
            # MWAA's step: its essential constraints, then requirements.txt (and its constraint
            # line).
            _run(
                [uv, "pip", "install", "--quiet", "--python", str(python),
                 "--constraint", str(target.essential_constraints),
                 "--requirement", str(requirements), "--reinstall-package", "streamline"],
                log,
            )  # fmt: skip
            if fresh or not (home / "airflow-home" / "airflow.db").is_file():
                _migrate_template(python, home, log)
                (home / "ready").write_text(target.airflow_version, encoding="utf-8")
            return home
        except CheckError:
            if fresh or attempt == 2:
                raise
            # A cached environment that no longer installs (damaged, half-deleted): rebuild it.
            (home / "ready").unlink(missing_ok=True)
    raise AssertionError("unreachable")


def _airflow_home_env(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_ANALYTICS": "false",
        # Nothing written beside the DAG file: the bundle folder is what gets uploaded.
        "PYTHONDONTWRITEBYTECODE": "1",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    }


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    return {name: os.environ[name] for name in keep if name in os.environ}


def _migrate_template(python: Path, home: Path, log: Path) -> None:
    """An Airflow metadata database, migrated once per environment; each check copies it."""
    template = home / "airflow-home"
    template.mkdir(exist_ok=True)
    env = _base_env() | _airflow_home_env(template)
    _run([str(python), "-m", "airflow", "db", "migrate"], log, env)


# ---- sample data ---------------------------------------------------------------------------


def _format_time(snowflake_format: str, auto: str) -> str:
    from streamline.local.copy_files import format_elements

    if snowflake_format.upper() == "AUTO":
        return auto
    parts = []
    for element in format_elements(snowflake_format):
        if element.startswith('"'):
            parts.append(element[1:-1])
        else:
            parts.append(_ELEMENT_VALUES.get(element.upper(), element))
    return "".join(parts)


def _sample_value(feed: Feed, column: Column, row: int) -> str:
    """Row `row`'s value of a column: one its type, format and checks accept. A reference column
    takes the referenced column's values (the parent's sample has SAMPLE_ROWS rows)."""
    for check in feed.checks:
        if check.column == column.name and check.type == "accepted_values" and check.values:
            return check.values[row % len(check.values)]
        if check.column == column.name and check.type == "range":
            bound = check.min if check.min is not None else check.max
            if bound is not None:
                return f"{bound:g}"
    named = column.name
    for ref in feed.references:
        if ref.column == column.name:
            named, row = ref.to, row % SAMPLE_ROWS
    sql_type = canonical_type(column.type)  # synonyms folded; CHAR alone is CHAR(1)
    base = sql_type.base
    fmt = feed.source.format
    if base in ("NUMBER", "FLOAT"):
        return str(row + 1)
    if base == "BOOLEAN":
        return "true"
    if base.startswith("TIMESTAMP"):
        auto = SAMPLE_TIME.strftime("%Y-%m-%d %H:%M:%S.") + f"{row:03d}"
        return _format_time(fmt.timestamp_format, auto)
    if base == "DATE":
        return _format_time(fmt.date_format, SAMPLE_TIME.strftime("%Y-%m-%d"))
    if base == "TIME":
        return "12:00:00"
    if base == "BINARY":
        return "00"
    if base in ("VARIANT", "OBJECT", "ARRAY"):
        return "{}"
    # A non-ASCII letter, so that the file's encoding is exercised, then the row number.
    text = f"{named[:2]}\u00e9{row}"
    return text[-sql_type.size :] if base == "TEXT" and sql_type.size else text


def sample_rows(feed: Feed) -> int:
    """How many rows the sample has: SAMPLE_ROWS, or more when a row_count check asks for more."""
    wanted = [int(c.min) for c in feed.checks if c.type == "row_count" and c.min is not None]
    return max([SAMPLE_ROWS, *wanted])


def sample_object(feed: Feed) -> bytes:
    """A small landed object for the feed: SAMPLE_ROWS rows in its own file format (header,
    delimiter, quote, encoding, compression), values of each column's type, meeting its
    accepted_values and range checks."""
    import csv
    import io

    fmt = feed.source.format
    text = io.StringIO()
    if fmt.quote == "none":
        writer = csv.writer(
            text,
            delimiter=fmt.delimiter,
            quoting=csv.QUOTE_NONE,
            quotechar=None,
            lineterminator="\n",
        )
    else:
        writer = csv.writer(text, delimiter=fmt.delimiter, quotechar=fmt.quote, lineterminator="\n")
    if fmt.header:
        writer.writerow([column.name for column in feed.columns])
    for row in range(sample_rows(feed)):
        writer.writerow([_sample_value(feed, column, row) for column in feed.columns])
    data = text.getvalue().encode(_ENCODINGS.get(fmt.encoding, "utf-8"))
    if fmt.compression == "gzip":
        return gzip.compress(data, mtime=0)
    if fmt.compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def land_samples(stack: Any, feeds: Sequence[Feed]) -> None:
    """Put one sample object in each feed's landing folder, named as Firehose names them."""
    s3 = stack.boto3_client("s3")
    stamp = time.strftime("%Y/%m/%d/%H", time.gmtime())
    for feed in feeds:
        suffix = {"gzip": ".gz", "zstd": ".zst"}.get(feed.source.format.compression, "")
        key = f"{feed.layout.lake.landing}{stamp}/streamline-check-{feed.feed}-1.csv{suffix}"
        s3.put_object(Bucket=stack.bucket, Key=key, Body=sample_object(feed))


# ---- the check -----------------------------------------------------------------------------


def run_probe(
    python: Path,
    dags: Path,
    env: dict[str, str],
    workdir: Path,
    snowflake_conn_id: str,
    dag_ids: Sequence[str],
) -> ProbeResult:
    """Run the probe with the target's Python; its output goes to workdir/probe.log."""
    log = workdir / "probe.log"
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(
            [str(python), str(PROBE), str(dags), snowflake_conn_id, *dag_ids],
            stdout=subprocess.PIPE,
            stderr=out,
            env=env,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
        out.write(done.stdout)
    marked = [line for line in done.stdout.splitlines() if line.startswith(PROBE_MARK)]
    if not marked:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise CheckError(
            f"the probe ended (exit {done.returncode}) without a result; the end of {log}:\n"
            + "\n".join(tail)
        )
    data = json.loads(marked[-1][len(PROBE_MARK) :])
    return ProbeResult(
        data["airflow"],
        data["snowflake_provider"],
        data["warehouse_host"],
        data["import_errors"],
        data["dags"],
        data["runs"],
        log,
        {"load": data.get("load_seconds", 0.0)},
    )


def check_bundle(
    project: Project, feeds: Sequence[Feed], bundle_root: Path, target: MwaaTarget, workdir: Path
) -> ProbeResult:
    """Install the bundle in the target's environment and run each feed's DAG there once.

    workdir (emptied first) keeps the logs: install.log, probe.log, the stack's server logs.
    Raises CheckError when the environment cannot be built or the probe gives no result.
    """
    missing = [name for name in ("moto", "fakesnow", "duckdb") if not _importable(name)]
    if missing:
        raise CheckError(
            f"deploy --check runs the DAGs against the embedded stack, which needs "
            f"{', '.join(missing)}: install the project's `local` dependency group (`uv sync "
            "--group local`; with pip: moto[server], fakesnow[server], duckdb, zstandard)"
        )

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with terminate_as_interrupt(), environment_lock(target):
        return _check_locked(project, feeds, bundle_root, target, workdir)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@contextmanager
def environment_lock(target: MwaaTarget) -> Iterator[None]:
    """Hold the target's cached environment for one check at a time: a second check of the same
    version waits (its wheel would replace the first one's mid-run)."""
    import fcntl

    cache_dir().mkdir(parents=True, exist_ok=True)
    path = cache_dir() / f"mwaa-{target.airflow_version}.lock"
    with path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another check of Airflow {target.airflow_version} to finish ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _check_locked(
    project: Project,
    feeds: Sequence[Feed],
    bundle_root: Path,
    target: MwaaTarget,
    workdir: Path,
) -> ProbeResult:
    from streamline.local.stack import embedded_stack, provision

    started = time.monotonic()
    cached = environment(target, bundle_root, workdir)
    python = cached / "venv" / "bin" / "python"
    seconds = {"install": time.monotonic() - started}
    home = workdir / "airflow"
    home.mkdir()
    # Only the migrated database: Airflow writes a fresh airflow.cfg for this home.
    shutil.copy2(cached / "airflow-home" / "airflow.db", home / "airflow.db")
    started = time.monotonic()
    with embedded_stack(workdir / "stack") as stack:
        provision(stack, project, feeds)
        land_samples(stack, feeds)
        seconds["stack"] = time.monotonic() - started
        env = _base_env() | stack.airflow_env(bundle_root / "dags", project)
        # The bundle as deployed: it finds its own project folder, and its loader sets the queue
        # URL prefix given to deploy (the DAG runs read the lake, not the queues).
        env.pop("STREAMLINE_PROJECT_DIR", None)
        env.pop("STREAMLINE_SQS_URL_PREFIX", None)
        env |= _airflow_home_env(home) | {"STREAMLINE_SQL_DIR": str(workdir / "sql")}
        env |= feed_connections(stack, feeds, env)
        conn_id = feeds[0].dag.snowflake_conn_id
        dag_ids = [feed.dag.dag_id for feed in feeds]
        result = run_probe(python, bundle_root / "dags", env, workdir, conn_id, dag_ids)
    seconds["load"] = result.seconds.get("load", 0.0)
    seconds["runs"] = sum(run["seconds"] for run in result.runs.values())
    return replace(result, seconds={k: round(v, 1) for k, v in seconds.items()})


def feed_connections(stack: Any, feeds: Sequence[Feed], env: dict[str, str]) -> dict[str, str]:
    """AIRFLOW_CONN_<ID> variables pointing every connection id the feeds name (dag.aws_conn_id,
    dag.snowflake_conn_id) at the stack, beside the default ones the stack defines."""
    from streamline.local.stack import AWS_CONN_ID

    lake = env[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"]
    warehouse = json.dumps(stack.snowflake_connection())
    extra: dict[str, str] = {}
    for feed in feeds:
        extra.setdefault(f"AIRFLOW_CONN_{feed.dag.aws_conn_id.upper()}", lake)
        extra.setdefault(f"AIRFLOW_CONN_{feed.dag.snowflake_conn_id.upper()}", warehouse)
    return {name: value for name, value in extra.items() if name not in env}


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a check as Ctrl-C does: the probe is killed and the stack's servers stopped
    (the default action would end this process and leave them running)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
