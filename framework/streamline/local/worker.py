"""Run a feed's generated DAG with real Airflow, in-process, one DAG run per batch.

`python -m streamline.local.worker` is started by the local runtime with the stack's environment.
It watches the feed's landing prefix and starts a DAG run (`dag.test()`: the real operators, hooks
and connectors, in this process) as soon as objects land, much as event mode wakes the DAG from its
queue. Each finished run is appended as one JSON line to the results file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from streamline.batches import batch_id_for

IDLE_POLL_SECONDS = 0.25


def _landing_has_files(s3: Any, bucket: str, prefix: str) -> bool:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=f"landing/{prefix}/", MaxKeys=1)
    return bool(page.get("KeyCount"))


def _task_times(dag_run: Any) -> dict[str, dict[str, str | None]]:
    times = {}
    for ti in dag_run.get_task_instances():
        times[ti.task_id] = {
            "state": str(ti.state) if ti.state else None,
            "start": ti.start_date.isoformat() if ti.start_date else None,
            "end": ti.end_date.isoformat() if ti.end_date else None,
        }
    return times


def _plain(value: Any) -> Any:
    """Undo Airflow's XCom serialization envelopes ({"__classname__": ..., "__data__": ...})."""
    if isinstance(value, dict) and "__data__" in value:
        return _plain(value["__data__"])
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _copy_results(dag_run: Any) -> dict[str, int]:
    """Files, rows parsed, loaded and rejected by the load step's COPY (from its XCom result)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    totals = {"files": 0, "rows_parsed": 0, "rows_loaded": 0, "errors_seen": 0}
    with create_session() as session:
        stored = (
            session.query(XComModel.value)
            .filter(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == "load",
                XComModel.key == "return_value",
            )
            .scalar()
        )
    value = _plain(json.loads(stored) if isinstance(stored, str | bytes) else stored)
    for statement in value or []:
        for record in statement or []:
            # COPY result: (file, status, rows_parsed, rows_loaded, error_limit, errors_seen, ...)
            if isinstance(record, list) and len(record) >= 6 and isinstance(record[2], int):
                totals["files"] += 1
                totals["rows_parsed"] += int(record[2])
                totals["rows_loaded"] += int(record[3])
                totals["errors_seen"] += int(record[5] or 0)
    return totals


def warm_up(dag: Any, bucket: str) -> None:
    """Pay the one-off costs (provider imports, connection lookups, TLS, logins) before data flows.

    Without this, the first batch of a fresh worker spends seconds importing and connecting.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    S3Hook(aws_conn_id=dag.get_task("detect").aws_conn_id).get_conn().list_objects_v2(
        Bucket=bucket, MaxKeys=1
    )
    SnowflakeHook(snowflake_conn_id=dag.get_task("load").conn_id).get_first("SELECT 1")


def run_once(dag: Any, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """One DAG run now; a summary of what it did."""
    started = dt.datetime.now(dt.UTC)
    dag_run = dag.test(run_after=started, run_conf=conf)
    ended = dt.datetime.now(dt.UTC)
    tasks = _task_times(dag_run)
    claim = tasks.get("claim", {})
    return {
        "dag_id": dag.dag_id,
        "run_id": dag_run.run_id,
        "state": str(dag_run.state),
        "batch_id": batch_id_for(started, conf),
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
    s3 = boto3.client("s3")
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
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline:
            if _landing_has_files(s3, args.bucket, args.prefix):
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
