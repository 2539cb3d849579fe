"""Load a deploy bundle's dags folder and run each DAG once, inside an MWAA target's environment.

Run by `streamline deploy --check` (streamline.local.mwaa_check) with the target environment's
Python, as a script: it imports only the standard library and that environment's Airflow, so the
same file serves Airflow 2.10 to 3.3. The caller sets the environment (AIRFLOW_HOME, connections,
variables; see Stack.airflow_env) and has already landed one object per feed.

    python mwaa_probe.py DAGS_FOLDER SNOWFLAKE_CONN_ID [DAG_ID ...]

Prints one JSON document on a line of stdout that starts with MARK:
{"airflow": "3.0.6", "snowflake_provider": "6.4.0", "warehouse_host": true,
 "import_errors": {path: message}, "dags": {dag_id: [task_id, ...]},
 "runs": {dag_id: {"state": "success", "seconds": 12.3, "warehouse_reached": true,
                   "tasks": {task_id: state}}}}
warehouse_host tells whether the installed SnowflakeHook passes the connection's host and port
to the connector (older providers only ever reach <account>.snowflakecomputing.com, so there
the runs can only get as far as the warehouse connection, which then fails at once and is
recorded as warehouse_reached). The caller judges the result.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any

MARK = "STREAMLINE-PROBE-RESULT "
"""Prefix of the result line, which Airflow's own logging cannot print."""


def _dag_bag(folder: str) -> Any:
    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.x and 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=folder)  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES=False


def _serialize(dag: Any) -> str | None:
    """Serialize the DAG as the DAG processor does before the scheduler sees it; the error or
    None. (An asset watcher's trigger is built here, e.g. MessageQueueTrigger's queue match.)"""
    from airflow.serialization import serialized_objects

    serializer: Any = getattr(serialized_objects, "DagSerialization", None)  # Airflow 3.2+
    serializer = serializer or getattr(serialized_objects, "SerializedDAG")  # noqa: B009
    try:
        serializer.to_dict(dag)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _warehouse_host(conn_id: str) -> bool:
    """Whether SnowflakeHook would connect to the connection's own host (extra "host")."""
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    params = SnowflakeHook(snowflake_conn_id=conn_id)._get_conn_params
    return "host" in (params() if callable(params) else params)


_WAREHOUSE_CALLS: list[str] = []
_STOPPED: list[bool] = []


def _stop_at_the_warehouse() -> None:
    """Where the hook cannot reach the local warehouse: record each connection attempt and fail
    it at once (instead of a DNS failure for <account>.snowflakecomputing.com)."""
    import snowflake.connector

    def connect(**kwargs: Any) -> Any:
        _WAREHOUSE_CALLS.append(str(kwargs.get("account")))
        raise ConnectionError("mwaa_probe: the check stops at the warehouse connection")

    snowflake.connector.connect = connect  # type: ignore[assignment]
    _STOPPED.append(True)


def _set_start_dates() -> None:
    """dag.test() on Airflow 2 runs a task without the start date that a worker records before it
    renders templates (TaskInstance.check_and_change_state_before_execution); record it the same."""
    import airflow.models.dag as dag_module

    run_task = dag_module._run_task

    def started(*, ti: Any, session: Any, **kwargs: Any) -> Any:
        if ti.start_date is None:
            ti.start_date = dt.datetime.now(dt.UTC)
            session.merge(ti)
            session.commit()
        return run_task(ti=ti, session=session, **kwargs)

    dag_module._run_task = started


def _run(dag: Any, warehouse_host: bool) -> dict[str, Any]:
    # A check must end: a failed task fails the run now instead of waiting out its retries.
    for task in dag.tasks:
        task.retries = 0
        if not warehouse_host:  # the failure callbacks write to the ledger, in the warehouse
            task.on_failure_callback = None
            # The claim checks the schema version in the warehouse before it takes files: left
            # out here, so that the claim's lake work is still run and checked.
            if isinstance(getattr(task, "op_kwargs", None), dict) and task.op_kwargs.get(
                "schema_version"
            ):
                task.op_kwargs["schema_version"] = None
    started = time.monotonic()
    calls = len(_WAREHOUSE_CALLS)
    kwargs: dict[str, Any] = {"run_conf": {"batch_id": None}}
    if "run_after" in dag.test.__code__.co_varnames:  # Airflow 3
        kwargs["run_after"] = dt.datetime.now(dt.UTC)
    dag_run = dag.test(**kwargs)
    states = {
        ti.task_id: str(ti.state) if ti.state else None for ti in dag_run.get_task_instances()
    }
    return {
        "state": str(dag_run.state),
        "seconds": round(time.monotonic() - started, 1),
        # Only counted where the connection is stopped (no local warehouse host); else None.
        "warehouse_reached": len(_WAREHOUSE_CALLS) > calls if _STOPPED else None,
        "tasks": {task.task_id: states.get(task.task_id) for task in dag.tasks},
    }


def main(argv: list[str]) -> int:
    from importlib.metadata import version

    folder, conn_id, wanted = argv[0], argv[1], argv[2:]
    started = time.monotonic()
    if version("apache-airflow").startswith("2."):
        _set_start_dates()
    bag = _dag_bag(folder)
    load_seconds = round(time.monotonic() - started, 1)
    result: dict[str, Any] = {
        "airflow": version("apache-airflow"),
        "snowflake_provider": version("apache-airflow-providers-snowflake"),
        "warehouse_host": _warehouse_host(conn_id),
        "load_seconds": load_seconds,
        "import_errors": {str(path): str(message) for path, message in bag.import_errors.items()},
        "dags": {
            dag_id: [t.task_id for t in dag.tasks] for dag_id, dag in sorted(bag.dags.items())
        },
        "runs": {},
    }
    if not result["warehouse_host"]:
        _stop_at_the_warehouse()
    for dag_id, dag in sorted(bag.dags.items()):
        problem = _serialize(dag)
        if problem:
            result["import_errors"][f"{dag_id} (serialization)"] = problem
    if not result["import_errors"]:
        for dag_id in wanted or sorted(bag.dags):
            if dag_id not in bag.dags:
                result["runs"][dag_id] = {"state": "missing", "seconds": 0, "tasks": {}}
                continue
            try:
                result["runs"][dag_id] = _run(bag.dags[dag_id], result["warehouse_host"])
            except Exception as exc:  # the run could not even start: report it as the run's
                result["runs"][dag_id] = {
                    "state": f"error: {type(exc).__name__}: {exc}",
                    "seconds": 0,
                    "tasks": {},
                }
    print(MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
