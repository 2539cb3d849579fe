"""Airflow's configuration for the local runtime: one environment for every component.

Airflow reads each setting from an `AIRFLOW__{SECTION}__{KEY}` environment variable
(https://airflow.apache.org/docs/apache-airflow/stable/howto/set-config.html), so the local runtime
configures its components by environment alone: no airflow.cfg is written. `airflow_env` gives
the settings the runtime needs (LocalExecutor, SQLite metadata database in the workdir, the API
server on 127.0.0.1, the simple auth manager with everyone admin, the stack's connections and
secrets backend, OpenLineage events to a file in the workdir: `lineage_env`) and
`AIRFLOW_TUNING`, the latency settings measured in docs/local-runtime.md, which the caller's
environment overrides one by one.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from streamline.local.stack import Stack
from streamline.project import Project

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
"""Airflow 3's components (https://airflow.apache.org/docs/apache-airflow/stable/
administration-and-deployment/overview.html), each a child process."""

PRELOAD = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.standard.sensors.python",
    "airflow.providers.amazon.aws.secrets.secrets_manager",
    "airflow.providers.common.sql.operators.sql",
    "airflow.providers.snowflake.hooks.snowflake",
    "airflow.providers.standard.operators.python",
    # The OpenLineage listener (lineage_env turns it on): without it here, each task process
    # imports it (the task model, SQLAlchemy's ORM, the client) before the task starts, 4-6 s
    # on the demo.
    "airflow.providers.openlineage.plugins.openlineage",
    "snowflake.connector",
    "dagfactory",
    "streamline.dagloader",
    "streamline.lake",
    "streamline.ledger",
    "streamline.tasks",
    "streamline.lineage",
    "streamline.local.warmup",  # last: parses the dags folder with everything above imported
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


LINEAGE_EVENTS = Path("lineage") / "events.jsonl"
"""Where, under a workdir, the local runtime's OpenLineage events go: one JSON event a line."""


def lineage_env(workdir: Path) -> dict[str, str]:
    """The OpenLineage provider's settings: every event appended to workdir/LINEAGE_EVENTS (made
    here) by the client's file transport, in place of an HTTP backend such as Marquez; each event
    sent from a thread of the task's process, not from a process forked per event (the provider's
    default: two forks per task instance, on the critical path of every step).
    https://airflow.apache.org/docs/apache-airflow-providers-openlineage/stable/guides/user.html
    https://airflow.apache.org/docs/apache-airflow-providers-openlineage/stable/configurations-ref.html#execute-in-thread
    """
    events = workdir / LINEAGE_EVENTS
    events.parent.mkdir(parents=True, exist_ok=True)
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
    }


def base_env(stack: Stack, project: Project, workdir: Path, dags: Path) -> dict[str, str]:
    """This process's environment plus the stack's (connections, secrets backend, lake), with
    AIRFLOW_HOME in workdir/airflow, TMPDIR in workdir/tmp (made here) and, unless this process's
    environment configures OpenLineage's transport itself, lineage_env."""
    env = {**os.environ, **stack.airflow_env(dags, project)}
    for name, value in lineage_env(workdir).items():
        env.setdefault(name, value)  # e.g. an HTTP transport to a local Marquez instead
    env.update(
        {
            "AIRFLOW_HOME": str(workdir / "airflow"),
            "TMPDIR": str(workdir / "tmp"),
            "AWS_ENDPOINT_URL": stack.aws_endpoint,
        }
    )
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def airflow_env(
    stack: Stack, project: Project, workdir: Path, dags: Path, port: int, parallelism: int
) -> dict[str, str]:
    """Environment of every Airflow component: base_env, the settings above, then the tuning
    defaults; the API server on http://127.0.0.1:port."""
    home = workdir / "airflow"
    base_url = api_url(port)
    env = base_env(stack, project, workdir, dags)
    env.update(
        {
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
    return env


def api_url(port: int) -> str:
    """The local API server's base URL (UI, /api/v2, /execution)."""
    return f"http://127.0.0.1:{port}"


def airflow_argv(*command: str) -> list[str]:
    """Command line of `airflow COMMAND...` in this interpreter."""
    return [sys.executable, "-m", "airflow", *command]


def component_argv(name: str, port: int) -> list[str]:
    """Command line of one of COMPONENTS."""
    if name == "api-server":
        return airflow_argv("api-server", "--host", "127.0.0.1", "--port", str(port))
    if name in ("scheduler", "triggerer"):
        return airflow_argv(name, "--skip-serve-logs")
    return airflow_argv(name)


def prepare_airflow(env: dict[str, str], log: Path) -> None:
    """Migrate the metadata database (migrated_database) and register the DAGs once, for
    in-process DAG runs (`dag.test()`, streamline.local.worker) that would otherwise race to do it.

    Raises subprocess.CalledProcessError when either command fails (its output is in log).
    """
    with log.open("wb") as out:

        def run(argv: list[str]) -> bool:
            subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
            return True

        migrate_database(env, run)
        run(airflow_argv("dags", "reserialize"))


def migrate_database(env: dict[str, str], run: Callable[[list[str]], bool]) -> bool:
    """Bring env's metadata database to this Airflow's schema: a copy of one migrated before
    (migrated_database), else `airflow db migrate` through run (False: it did not finish), whose
    result is kept for the next time (keep_migrated_database). False when run returned False."""
    if migrated_database(env):
        return True
    if not run(airflow_argv("db", "migrate")):
        return False
    keep_migrated_database(env)
    return True


def database_cache() -> Path:
    """Where migrated metadata databases are kept: <cache_dir>/airflow-db."""
    from streamline.local import cache_dir

    return cache_dir() / "airflow-db"


def _sqlite_path(env: dict[str, str]) -> Path | None:
    """The SQLite file of env's metadata database (AIRFLOW_HOME/airflow.db by default); None for
    another database."""
    url = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if url is None:
        return Path(env.get("AIRFLOW_HOME", Path.home() / "airflow")) / "airflow.db"
    prefix = "sqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) else None


KEYED_SETTINGS = ("AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT",)
"""Settings `airflow db migrate` writes into the database (the default pool's slots), besides the
log filename templates."""


def _database_key(env: dict[str, str]) -> str:
    """What a migrated database depends on: Airflow's and its providers' versions (each may add
    migrations or tables), the Python, and the settings `db migrate` writes into it (the log
    filename templates, KEYED_SETTINGS)."""
    import hashlib
    import importlib.metadata

    parts = sorted(
        f"{d.metadata['Name']}=={d.version}"
        for d in importlib.metadata.distributions()
        if (d.metadata["Name"] or "").lower().replace("_", "-").startswith("apache-airflow")
    )
    parts += sorted(
        f"{k}={v}"
        for k, v in env.items()
        if (k.startswith("AIRFLOW__LOGGING__") and k.endswith("_TEMPLATE")) or k in KEYED_SETTINGS
    )
    parts.append(sys.version.split()[0])
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _sound(path: Path) -> bool:
    """Whether path is a whole SQLite database that `airflow db migrate` finished: SQLite's
    quick_check passes and the migration version is recorded."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            checked = conn.execute("PRAGMA quick_check").fetchone()
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return checked == ("ok",) and version is not None
    except sqlite3.Error:
        return False


def migrated_database(env: dict[str, str]) -> bool:
    """Put a copy of a database this Airflow migrated before (keep_migrated_database) where env
    wants a new SQLite metadata database, instead of running `airflow db migrate` (10-20 s here,
    at every start of the local runtime or the test stack). False, and migrate, when there is none
    to copy, when the database (or a journal of it) exists already or is not SQLite, or when the
    copy is not sound (_sound: truncated, empty, unreadable): a copy that is not sound is removed
    from the cache, with a warning naming it."""
    import shutil

    target = _sqlite_path(env)
    cached = database_cache() / f"{_database_key(env)}.db"
    if target is None or not cached.is_file():
        return False
    if any(target.with_name(target.name + end).exists() for end in ("", "-wal", "-shm")):
        return False
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, partial)
        if not _sound(partial):
            print(f"warning: {cached} is not a sound metadata database: removed, migrating",
                  file=sys.stderr)  # fmt: skip
            cached.unlink(missing_ok=True)
            partial.unlink(missing_ok=True)
            return False
        os.replace(partial, target)
    except OSError:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        return False
    return True


def keep_migrated_database(env: dict[str, str]) -> None:
    """Keep a copy of env's freshly migrated SQLite metadata database for migrated_database when
    it is sound (written whole with os.replace; a failure to keep it is not an error)."""
    import shutil

    source = _sqlite_path(env)
    if source is None or not source.is_file() or not _sound(source):
        return
    cache, key = database_cache(), _database_key(env)  # the key reads every installed package
    partial = cache / f"{key}.{os.getpid()}.partial"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, partial)
        os.replace(partial, cache / f"{key}.db")
    except OSError:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
