"""Run a feed's generated DAG with real Airflow, in-process, one DAG run per batch.

`python -m streamline.local.worker` is started by the local runtime with the stack's environment.
It watches the feed's landing prefix and starts a DAG run (`dag.test()`: the real operators, hooks
and connectors, in this process) as soon as objects land that no open batch owns, much as event
mode wakes the DAG from its queue. Each finished run is appended as one JSON line to the results
file. `--once` and `--reprocess ID` run once and exit; `--serve` runs once per line on stdin.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from streamline.layout import CLAIM_TASK, XCOM_BATCH_ID, LakeLayout

IDLE_POLL_SECONDS = 0.25


# --- the client side of --serve (the integration harness, benchmarks/capacity.py) ----------------


def serve_argv(
    dags_folder: Path, dag_id: str, bucket: str, prefix: str, results: Path, ready_file: Path
) -> list[str]:
    """The command line of a worker that warms up, touches ready_file, then runs the DAG once per
    request line on its stdin (serve_request), appending each run's summary to results."""
    return [
        sys.executable, "-m", "streamline.local.worker", "--serve",
        "--dags-folder", str(dags_folder), "--dag-id", dag_id, "--bucket", bucket,
        "--prefix", prefix, "--results", str(results), "--ready-file", str(ready_file),
    ]  # fmt: skip


def serve_request(conf: dict[str, Any] | None = None, *, reload: bool = False) -> bytes:
    """One request line for a --serve worker: a DAG run with conf; reload: parse the dags folder
    again first (a spec was edited)."""
    request = {"conf": conf, **({"reload": True} if reload else {})}
    return (json.dumps(request) + "\n").encode()


class ServedResults:
    """A --serve worker's results file, read in order: each finished run's summary (run_once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = 0

    def next(self) -> dict[str, Any] | None:
        """The summary of the next run the worker finished, or None while there is none yet."""
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        if len(lines) <= self.seen:
            return None
        self.seen += 1
        summary: dict[str, Any] = json.loads(lines[self.seen - 1])
        return summary


def _task_times(dag_run: Any) -> dict[str, dict[str, str | None]]:
    times = {}
    for ti in dag_run.get_task_instances():
        times[ti.task_id] = {
            "state": str(ti.state) if ti.state else None,
            "start": ti.start_date.isoformat() if ti.start_date else None,
            "end": ti.end_date.isoformat() if ti.end_date else None,
        }
    return times


def _xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """An XCom value of the run, as stored by Airflow (JSON), decoded."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = (
            session.query(XComModel.value)
            .filter(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
            .scalar()
        )
    if isinstance(stored, str | bytes):
        try:
            return json.loads(stored)
        except ValueError:  # a plain string value
            return stored.decode() if isinstance(stored, bytes) else stored
    return stored


def _copy_results(dag_run: Any) -> dict[str, int]:
    """Files, rows parsed, loaded and rejected by the load step's COPY (from its XCom result)."""
    from streamline.lake import copy_results

    results = copy_results(_xcom(dag_run, "load"))
    return {
        "files": len(results),
        "rows_parsed": sum(r.rows_parsed for r in results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "errors_seen": sum(r.errors_seen for r in results),
    }


def warm_up(dag: Any, bucket: str) -> None:
    """Pay the one-off costs (provider imports, connection lookups, TLS, logins) before data flows.

    Without this, the first batch of a fresh worker spends seconds importing and connecting.
    """
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    from streamline.tasks import s3_client

    aws_conn_id = dag.get_task("detect").op_kwargs["aws_conn_id"]
    s3_client(aws_conn_id).list_objects_v2(Bucket=bucket, MaxKeys=1)
    SnowflakeHook(snowflake_conn_id=dag.get_task("load").conn_id).get_first("SELECT 1")
    # dag.test() runs tasks through Airflow's task runner and execution API, in process: their
    # modules take about 7 s to import and the API's app about 3 s to build the first time.
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

    _ = InProcessExecutionAPI().app


def clear_hook_lineage_per_task() -> None:
    """Give each task instance of this process an empty hook lineage collector (idempotent).

    Hooks report what they ran (each SQL statement, each S3 object) to a collector shared by the
    process (airflow.sdk.lineage.get_hook_lineage_collector, cached); Airflow runs each task in a
    process of its own, so a task's collector holds only its own statements. dag.test() runs every
    task of every run in this process: without this, each task's OpenLineage events carried every
    earlier statement (up to [lineage] max_extras_per_collector, 200), each parsed again with
    sqlglot, about 7 s per task by a few hundred runs. A listener, run before the OpenLineage
    provider's, empties it as each task starts.
    https://airflow.apache.org/docs/apache-airflow/stable/administration-and-deployment/listeners.html
    """
    from airflow.listeners import hookimpl
    from airflow.sdk.listener import get_listener_manager

    class ClearHookLineage:
        @hookimpl(tryfirst=True)  # before the OpenLineage listener reads the collector
        def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
            from airflow.sdk import lineage

            lineage.get_hook_lineage_collector.cache_clear()

    manager = get_listener_manager()
    if not any(type(p).__name__ == "ClearHookLineage" for p in manager.pm.get_plugins()):
        manager.add_listener(ClearHookLineage())  # type: ignore[no-untyped-call]


def run_once(dag: Any, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """One DAG run now; a summary of what it did."""
    clear_hook_lineage_per_task()
    started = dt.datetime.now(dt.UTC)
    # dag.test() runs the tasks in this process, where merging a run's conf into the params sets
    # the value of the DAG's own Param objects: the next run of this process would inherit a
    # reprocess batch_id. Naming the param in every run's conf resets it.
    dag_run = dag.test(run_after=started, run_conf={"batch_id": None, **(conf or {})})
    ended = dt.datetime.now(dt.UTC)
    tasks = _task_times(dag_run)
    claim = tasks.get(CLAIM_TASK, {})
    batch_id = _xcom(dag_run, CLAIM_TASK, XCOM_BATCH_ID)
    return {
        "dag_id": dag.dag_id,
        "run_id": dag_run.run_id,
        "state": str(dag_run.state),
        "batch_id": str(batch_id) if batch_id else None,
        "claimed": claim.get("state") == "success",
        "started": started.isoformat(),
        "ended": ended.isoformat(),
        "tasks": tasks,
        "copy": _copy_results(dag_run) if claim.get("state") == "success" else {},
    }


def main(argv: list[str] | None = None) -> int:
    """Watch one feed and run its DAG per batch until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m streamline.local.worker")
    parser.add_argument("--dags-folder", type=Path, required=True)
    parser.add_argument("--dag-id", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--stop-file", type=Path, help="stop once this exists and landing is empty")
    parser.add_argument("--reprocess", help="run once for this batch id, then exit")
    parser.add_argument("--once", action="store_true", help="run once now, files or not, then exit")
    parser.add_argument(
        "--serve",
        action="store_true",
        help='warm up, then run once per line read on stdin ({"conf": {...} or null}) until EOF; '
        'a line with "reload": true parses the dags folder again first (a spec was edited)',
    )
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--ready-file", type=Path, help="touched once warmed up and watching")
    args = parser.parse_args(argv)

    import boto3
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(args.dags_folder), bundle_path=args.dags_folder)
    if args.dag_id not in bag.dags:
        print(f"DAG {args.dag_id} not found; import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    dag = bag.dags[args.dag_id]
    from streamline.lake import has_claimable

    s3 = boto3.client("s3")
    layout = LakeLayout(args.prefix)
    failures = 0
    with args.results.open("a", encoding="utf-8") as results:

        def record(summary: dict[str, Any]) -> None:
            results.write(json.dumps(summary) + "\n")
            results.flush()

        if args.reprocess or args.once:
            summary = run_once(dag, {"batch_id": args.reprocess} if args.reprocess else None)
            record(summary)
            return 0 if summary["state"] == "success" else 1
        warm_up(dag, args.bucket)
        if args.ready_file:
            args.ready_file.touch()
        if args.serve:
            # One process for many runs: Airflow's imports and its in-process execution API are
            # paid once (about 20 s here), not per run.
            for line in sys.stdin:
                if line.strip():
                    request = json.loads(line)
                    if request.get("reload"):  # as the DAG processor parses an edited spec
                        bag = BundleDagBag(dag_folder=str(args.dags_folder),
                                           bundle_path=args.dags_folder)  # fmt: skip
                        dag = bag.dags[args.dag_id]
                    record(run_once(dag, request.get("conf") or None))
            return 0
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline:
            if has_claimable(s3, args.bucket, layout):
                summary = run_once(dag)
                failures += summary["state"] != "success"
                record(summary)
                if summary["state"] != "success":
                    break
            elif args.stop_file and args.stop_file.exists():
                break
            else:
                time.sleep(IDLE_POLL_SECONDS)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
