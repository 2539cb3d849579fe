"""Turn a feed into dag-factory's config shape: plain data, `__type__` where Airflow needs objects.

The same dict is written as YAML by `streamline generate` and built into a DAG by the loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamline import airflow_compat, lineage
from streamline.batches import BATCH_ID_EXAMPLE, BATCH_ID_RE
from streamline.contracts import ContractConfig
from streamline.layout import CLAIM_TASK, LANDING, PROCESSING
from streamline.model import Feed, TableRef

TASKS = ("detect", CLAIM_TASK, "load", "transform", "finalize")
"""Task ids, in run order; the SQL tasks read <task>.sql from the feed's SQL folder."""

LAKE_BUCKET = "{{ var.value.get('streamline_lake_bucket', 'streamline-lake') }}"
"""The lake bucket, resolved when a task runs (Airflow Variable streamline_lake_bucket)."""

START_DATE = "2025-01-01"
GATED_SQL = "streamline.gates.GatedSQLExecuteQueryOperator"
LINEAGE_PYTHON = "streamline.lineage.LineagePythonOperator"
"""The PythonOperator of the claim and finalize steps, which report their lineage."""


def _seconds(value: float) -> dict[str, Any]:
    return {"__type__": "datetime.timedelta", "seconds": value}


def _table_parts(table: TableRef) -> dict[str, str]:
    """A table as a task's keyword argument (streamline.tasks._table reads it back)."""
    return {"database": table.database, "schema": table.schema, "table": table.table}


def build_dag_config(
    feed: Feed,
    sql_dir: Path,
    sqs_url_prefix: str | None = None,
    schema_fingerprint: str | None = None,
) -> dict[str, Any]:
    """The dag-factory config {dag_id: {...}} of one feed; its SQL lives in sql_dir/<feed>/.
    schema_fingerprint is what its runs' claims check the warehouse's schema version against
    (None: no check).

    Class paths are the installed Airflow's (streamline.airflow_compat). Raises ValueError for a
    feed in event mode without sqs_url_prefix or on Airflow 2.
    """
    layout = feed.layout
    classes = airflow_compat.class_paths()
    contract = ContractConfig.of(feed)
    lake = {
        "feed": feed.feed,
        "bucket": LAKE_BUCKET,
        "prefix": layout.lake.prefix,
        "aws_conn_id": feed.dag.aws_conn_id,
    }
    ledger = {
        "snowflake_conn_id": feed.dag.snowflake_conn_id,
        "ledger": _table_parts(layout.ledger),
    }
    # autocommit: a statement outside BEGIN ... COMMIT commits on its own (the load's first
    # statement records the claimed batch even when the load then fails); the templates delimit
    # their transactions themselves.
    statements = {
        "conn_id": feed.dag.snowflake_conn_id,
        "autocommit": True,
        "split_statements": True,
    }

    def step_lineage(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> dict[str, Any]:
        # What the step reads and writes, reported to OpenLineage when it ends (streamline.lineage).
        return lineage.lineage_config(
            feed.feed, LAKE_BUCKET, layout.lake.prefix, feed.dag.aws_conn_id, inputs, outputs
        )

    batch_files = lineage.files(PROCESSING)
    tasks: dict[str, dict[str, Any]] = {
        "detect": {
            # detect decides what counts as new data (not a folder marker, not owned by an open
            # batch), which S3KeySensor's key pattern cannot express: a PythonSensor pokes it.
            "operator": classes["sensor"],
            # New files in landing/, or, for a run that reprocesses a batch, that batch.
            "python_callable": "streamline.tasks.detect_batch",
            "op_kwargs": lake,
            "poke_interval": feed.trigger.poll_interval_seconds,
            "timeout": feed.trigger.timeout_seconds,
            "mode": "poke",
            "soft_fail": True,
            "retries": 0,
        },
        CLAIM_TASK: {
            "operator": LINEAGE_PYTHON,
            "python_callable": "streamline.tasks.claim_batch",
            "op_kwargs": {
                **lake,
                **ledger,
                "max_files": feed.batch.max_files,
                "max_bytes": feed.batch.max_bytes,
                "raw": _table_parts(feed.raw),
                "quarantine_table": _table_parts(layout.quarantine),
                # Before it takes files: the warehouse holds the schema this DAG was made for.
                "schema_version": (
                    {"fingerprint": schema_fingerprint, **_table_parts(layout.schema_versions)}
                    if schema_fingerprint
                    else None
                ),
                # A header feed's files are checked against its schema contract at claim.
                **({"schema_contract": contract.to_kwargs()} if contract else {}),
            },
            "lineage": step_lineage([lineage.files(LANDING)], [batch_files]),
            "dependencies": ["detect"],
        },
        "load": {
            "operator": GATED_SQL,
            **statements,
            "sql": "load.sql",
            # Keep every statement's result: the COPY's rows (loaded, rejected) are in the XCom.
            "return_last": False,
            "lineage": step_lineage(
                [batch_files], [lineage.table(feed.raw), lineage.table(layout.quarantine)]
            ),
            "dependencies": [CLAIM_TASK],
        },
        "transform": {
            "operator": GATED_SQL,
            **statements,
            "sql": "transform.sql",
            # Keep every statement's result: the gate's checks are in the XCom.
            "return_last": False,
            "lineage": step_lineage([lineage.table(feed.raw)], [lineage.table(feed.mart)]),
            "dependencies": ["load"],
        },
        "finalize": {
            "operator": LINEAGE_PYTHON,
            "python_callable": "streamline.tasks.finalize_batch",
            "op_kwargs": {
                **lake,
                **ledger,
                "quarantine_table": _table_parts(layout.quarantine),
            },
            "lineage": step_lineage([batch_files], [lineage.files(lineage.FINISHED)]),
            "dependencies": ["transform"],
        },
    }
    callback = {**lake, **ledger}
    config: dict[str, Any] = {
        "description": feed.description or f"StreamLine feed {feed.feed}",
        "default_args": {
            "owner": feed.dag.owner,
            "retries": feed.dag.retries,
            "retry_delay": _seconds(feed.dag.retry_delay_seconds),
            "execution_timeout": _seconds(feed.dag.task_timeout_seconds),
            # A failed attempt is recorded in the batch ledger (status failed once retries are
            # spent); dag-factory turns {callback: path, **kwargs} into a partial.
            "on_failure_callback": {"callback": "streamline.tasks.record_failure", **callback},
            "on_retry_callback": {"callback": "streamline.tasks.record_retry", **callback},
        },
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": feed.dag.max_active_runs,
        "dagrun_timeout": _seconds(feed.dag.run_timeout_seconds),
        "template_searchpath": str(sql_dir / feed.feed),
        "tags": ["streamline", f"feed:{feed.feed}", *feed.dag.tags],
        "params": {
            "batch_id": {
                "__type__": classes["param"],
                "default": None,
                "type": ["null", "string"],
                "pattern": BATCH_ID_RE.pattern,
                "description": f"Reprocess this batch (e.g. {BATCH_ID_EXAMPLE}), not new files",
            }
        },
        "schedule": _schedule(feed, sqs_url_prefix),
        "tasks": tasks,
    }
    return {feed.dag.dag_id: config}


def _schedule(feed: Feed, sqs_url_prefix: str | None) -> Any:
    if feed.trigger.mode == "poll":
        # One run after another; each waits at the sensor until files land, so latency is one poke.
        return "@continuous"
    if not airflow_compat.supports_event_mode(airflow_compat.installed_airflow()):
        raise ValueError(
            f"feed {feed.feed!r} is event-triggered, which needs Airflow 3's asset watchers; "
            f"this is Airflow {airflow_compat.installed_airflow()}: set trigger.mode to poll"
        )
    if not sqs_url_prefix:
        raise ValueError(
            f"feed {feed.feed!r} is event-triggered: set STREAMLINE_SQS_URL_PREFIX (or generate "
            "--sqs-url-prefix) to the queue URL prefix, e.g. https://sqs.eu-west-1.amazonaws.com/1234"
        )
    layout = feed.layout
    queue = f"{sqs_url_prefix.rstrip('/')}/{layout.queue}"
    return [
        {
            "__type__": "airflow.sdk.Asset",
            "name": layout.landing_asset,
            "watchers": [
                {
                    "__type__": "airflow.sdk.AssetWatcher",
                    "name": layout.queue_watcher,
                    # The trigger sleeps waiter_delay seconds after an empty poll (default 60).
                    "trigger": airflow_compat.message_queue_trigger(
                        queue,
                        feed.dag.aws_conn_id,
                        max(1, round(feed.trigger.poll_interval_seconds)),
                    ),
                }
            ],
        }
    ]
