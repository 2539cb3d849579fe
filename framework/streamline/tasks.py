"""The Python steps of a feed's DAG: detect, claim, finalize, and the ledger's failure callbacks.

Each runs inside an Airflow task with the provider hooks (S3Hook, SnowflakeHook), created when the
task runs, never at parse time. The lake work is `streamline.lake`'s, the ledger's
`streamline.ledger`'s; these functions tie them to a DAG run: its batch id, its conf, its XComs.

A run's conf may carry `batch_id` (reprocess that batch) and `quarantine` (relative key -> reason:
set those files of the batch aside instead of loading them).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, Any

from streamline.batches import batch_id_for, check_batch_id
from streamline.contracts import ContractConfig
from streamline.errors import BatchError
from streamline.layout import (
    CLAIM_TASK,
    PROCESSING,
    XCOM_BATCH_ID,
    XCOM_CLAIM,
    LakeLayout,
)
from streamline.ledger import claim_values, claim_xcom, record
from streamline.model import TableRef
from streamline.rendering import quote_identifier, quote_table

if TYPE_CHECKING:
    from types import FrameType

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from mypy_boto3_s3 import S3Client

    from streamline.gates import CheckResult
    from streamline.lake import Manifest
    from streamline.ledger import Runner

log = logging.getLogger(__name__)

LOAD_TASK, TRANSFORM_TASK, DETECT_TASK = "load", "transform", "detect"
GATED_TASKS = (LOAD_TASK, TRANSFORM_TASK)
"""The SQL steps whose gates (streamline.gates) decide whether they commit."""


def _airflow_exception(name: str, message: str) -> Exception:
    """Airflow's exception class `name`, from airflow.sdk (3.x) or airflow.exceptions (2.x)."""
    try:
        from airflow.sdk import exceptions
    except ImportError:  # Airflow 2.x (MWAA 2.10/2.11)
        from airflow import exceptions  # type: ignore[no-redef]
    cls: type[Exception] = getattr(exceptions, name)
    return cls(message)


def _skip(message: str) -> Exception:
    return _airflow_exception("AirflowSkipException", message)


def _fail(message: str) -> Exception:
    """An error that fails the task at once, without retries (retrying cannot help)."""
    return _airflow_exception("AirflowFailException", message)


def _caller_class(target_function_name: str) -> str | None:
    """The class of `self` in the innermost frame running a function of this name, or None.

    What the Amazon provider's AwsGenericHook._find_operator_class_name returns for the user agent
    it sends to AWS ("Caller/<operator class>"), found by walking the frames themselves: the
    provider calls inspect.stack(), which reads the source file of every frame on the stack, about
    0.2 s in a fresh task process (measured: benchmarks/latency.py, py-spy; provider 9.39.0; the
    same method in every provider MWAA pins, 9.0.0 up).
    The provider's method: https://github.com/apache/airflow/blob/main/providers/amazon/src/airflow/providers/amazon/aws/hooks/base_aws.py
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == target_function_name:
            # KeyError without a `self`, as the provider's (its caller then says "Unknown").
            return str(frame.f_locals["self"].__class__.__name__)
        frame = frame.f_back
    return None


def _executor_class() -> str | None:
    """AwsGenericHook._find_executor_class_name without inspect.stack(): the provider's fallback
    when no operator called the hook (a callback, the CLI). The last class among the globals of
    the innermost frame whose globals hold a class named BaseExecutor, or None."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        classes = [name for name, value in frame.f_globals.items() if isinstance(value, type)]
        if "BaseExecutor" in classes:
            return classes[-1]
        frame = frame.f_back
    return None


@cache
def _s3_hook_class() -> type[S3Hook]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    class StreamlineS3Hook(S3Hook):
        """S3Hook, with the caller of the hook found without inspect.stack() (_caller_class)."""

        _find_operator_class_name = staticmethod(_caller_class)
        _find_executor_class_name = staticmethod(_executor_class)

    # The hook logs as the provider's S3Hook (its logger is named after the class), so logging
    # settings and log searches aimed at the provider's hook still apply.
    StreamlineS3Hook.__module__ = S3Hook.__module__
    StreamlineS3Hook.__name__ = StreamlineS3Hook.__qualname__ = S3Hook.__name__
    return StreamlineS3Hook


def s3_client(aws_conn_id: str) -> S3Client:
    """A boto3 S3 client of the Airflow connection, as S3Hook(aws_conn_id).get_conn() makes it.

    The connection's credentials, region, endpoint and botocore config are the provider's; only
    the caller class in the user agent is found faster (_caller_class).
    """
    client: S3Client = _s3_hook_class()(aws_conn_id=aws_conn_id).get_conn()
    return client


def _warehouse(snowflake_conn_id: str) -> Runner:
    """A connection (logged in now) to the warehouse of the connection id; close it after use."""
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    from streamline.ledger import ConnectionRunner

    return ConnectionRunner(SnowflakeHook(snowflake_conn_id=snowflake_conn_id).get_conn())


def _conf(context: dict[str, Any]) -> dict[str, Any]:
    conf = dict(context["dag_run"].conf or {})
    params = context.get("params") or {}
    if not conf.get("batch_id") and params.get("batch_id"):
        conf["batch_id"] = params["batch_id"]
    return conf


def run_batch_id(context: dict[str, Any]) -> str:
    """The batch id of the task's DAG run: conf/param batch_id, else the run's run_after."""
    dag_run = context["dag_run"]
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return batch_id_for(when, _conf(context))


def _table(ledger: dict[str, str]) -> TableRef:
    return TableRef(ledger["database"], ledger["schema"], ledger["table"])


def detect_batch(feed: str, bucket: str, prefix: str, aws_conn_id: str, **context: Any) -> bool:
    """Task `detect` (a PythonSensor's poke): is there work for this run?

    For a reprocess run: at once (there is nothing to wait for: the claim fails a batch that
    does not exist; the sensor's soft_fail would turn a failure here into a skipped, "successful"
    run). For a cleared run (the task's try number above 1: detect has no retries) whose batch
    is still open and held by it: at once, so that its claim resumes the batch. Otherwise:
    landing/<prefix>/ holds an object that no open batch owns; folder markers (keys ending in /)
    are not data.
    """
    from streamline.lake import has_claimable, read_register

    batch_id = _conf(context).get("batch_id")
    if batch_id:
        check_batch_id(str(batch_id))
        return True
    s3, layout = s3_client(aws_conn_id), LakeLayout(prefix)
    if (getattr(context.get("ti"), "try_number", None) or 1) > 1:
        held = read_register(s3, bucket, layout).batches.get(run_batch_id(context))
        if held is not None and held.run_id == context["dag_run"].run_id:
            log.info("this run's batch %s is open: resuming it", held.batch_id)
            return True
    return has_claimable(s3, bucket, layout)


def claim_batch(
    feed: str,
    bucket: str,
    prefix: str,
    aws_conn_id: str,
    snowflake_conn_id: str,
    ledger: dict[str, str],
    max_files: int,
    max_bytes: int,
    raw: dict[str, str] | None = None,
    quarantine_table: dict[str, str] | None = None,
    schema_version: dict[str, str] | None = None,
    schema_contract: dict[str, Any] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """Task `claim`: commit the run's batch, move its files, hand the load step what to record.

    First, when schema_version is given (fingerprint, and the schema versions table: database,
    schema, table), checks that the warehouse holds the schema this DAG was rendered for
    (streamline.schema_versions.check_version); when it does not, the task fails before it takes
    any file (retries wait for `streamline apply`), and the files stay in landing/.

    Skips the run when nothing landed, or when the batch holds nothing to load: only zero-byte
    objects (set aside to quarantine/), or a reprocess set every file aside; the batch is then
    recorded empty, and a reprocess first deletes the batch's rows from the raw table (raw:
    database, schema, table), which an earlier load put there, and gives each file it set aside
    its row in the quarantine table (quarantine_table: database, schema, table).

    A header feed (schema_contract: contracts.ContractConfig.to_kwargs) has each file's header
    checked once the files are in processing/ (_hold_to_contract): files that cannot load are
    set aside to quarantine/ with their reason, and a batch its contract refuses (freeze) fails
    here, before anything loads, with its files kept in processing/<BATCH_ID>/.

    Pushes the XComs `batch_id` and `claim` (ledger.claim_xcom: the batch id, its files, and the
    claim's ledger values, which the load's first statements record: the claim itself needs no
    warehouse connection; for a header feed, also contracts.claim_fields).
    """
    from streamline.lake import Limits, NoBatchError, finalize, move_batch, register_batch
    from streamline.lineage import remember_manifest

    started = dt.datetime.now(dt.UTC)
    ti, dag_run = context["ti"], context["dag_run"]
    conf = _conf(context)
    batch_id = run_batch_id(context)
    layout = LakeLayout(prefix)
    s3 = s3_client(aws_conn_id)
    quarantine = conf.get("quarantine") or {}
    if not isinstance(quarantine, dict):
        raise BatchError('conf "quarantine" must map file names (relative keys) to reasons')
    table = _table(ledger)
    live_version = None
    if quarantine or schema_version:
        warehouse = _warehouse(snowflake_conn_id)
        try:
            if schema_version:
                from streamline.schema_versions import check_version

                live_version = check_version(
                    warehouse, _table(schema_version), feed, schema_version["fingerprint"]
                )
            if quarantine:
                _check_quarantine(warehouse, table, feed, batch_id)
        finally:
            warehouse.close()
    try:
        manifest = register_batch(
            s3,
            bucket,
            feed,
            layout,
            batch_id,
            dag_run.run_id,
            reprocess=bool(conf.get("batch_id")),
            limits=Limits(max_files=max_files, max_bytes=max_bytes),
            quarantine={str(k): str(v) for k, v in quarantine.items()},
        )
    except NoBatchError as exc:
        raise _fail(str(exc)) from None  # retries cannot help: the batch will not appear
    if manifest is None:
        raise _skip(f"no new files under s3://{bucket}/{layout.landing}")
    # From here on the batch exists: a failure is recorded against it in the ledger.
    ti.xcom_push(key=XCOM_BATCH_ID, value=batch_id)
    claimed = dict(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        files=len(manifest.data_files),
        bytes_=manifest.total_bytes,
        empty_files=len(manifest.empty_files),
        started=started,
        claimed=dt.datetime.now(dt.UTC),
        schema_version=live_version,
    )
    move_batch(s3, bucket, layout, manifest, finished=False)
    header_fields: dict[str, Any] = {}
    if schema_contract is not None and manifest.load_files:
        manifest, header_fields = _hold_to_contract(
            s3, bucket, layout, manifest, ContractConfig.from_kwargs(schema_contract),
            snowflake_conn_id, dag_run.run_id, reprocess=bool(conf.get("batch_id")),
        )  # fmt: skip
    summary = {
        "batch_id": batch_id,
        "files": len(manifest.load_files),
        "bytes": manifest.total_bytes,
        "empty_files": len(manifest.empty_files),
    }
    if not manifest.load_files:
        finalize(s3, bucket, prefix, batch_id, results=[])
        warehouse = _warehouse(snowflake_conn_id)
        try:
            rejected = None
            if manifest.reclaimed and raw is not None and quarantine_table is not None:
                rejected = _empty_reprocessed(warehouse, _table(raw), _table(quarantine_table),
                                              manifest)  # fmt: skip
            record(warehouse, table, feed, batch_id, {
                "status": "empty", "dag_id": dag_run.dag_id, "run_id": dag_run.run_id,
                "files": len(manifest.data_files), "empty_files": len(manifest.empty_files),
                "bytes": manifest.total_bytes, "claim_started_at": started,
                "claimed_at": claimed["claimed"], "published_at": dt.datetime.now(dt.UTC),
                "files_loaded": 0, "files_skipped": len(manifest.data_files),
                "files_deferred": 0, "rows_parsed": rejected, "rows_loaded": 0,
                "rows_rejected": rejected,
                "failed_step": None, "error": None, "checks": None,
            }, count_run=True)  # fmt: skip
        finally:
            warehouse.close()
        raise _skip(
            f"batch {batch_id} of {feed} holds no data: {len(manifest.files)} objects set aside "
            f"in s3://{bucket}/{layout.folder('quarantine', batch_id)}"
        )
    files = [e.relative_key for e in manifest.load_files]
    folder = layout.folder(PROCESSING, batch_id)
    if quarantine and quarantine_table is not None:
        # Files set aside now (the empty path above records them itself): their earlier
        # quarantine rows make way for one row each, before the load counts the rejected rows.
        from streamline.lake import files_set_aside
        from streamline.ledger import record_set_aside

        named = {folder + name for name in quarantine}
        aside = [f for f in files_set_aside(manifest, [], {}) if f.source_file in named]
        warehouse = _warehouse(snowflake_conn_id)
        try:
            record_set_aside(warehouse, _table(quarantine_table), batch_id, aside)
        finally:
            warehouse.close()
    xcom = claim_xcom(batch_id, folder, files, claim_values(**claimed))
    ti.xcom_push(key=XCOM_CLAIM, value={**xcom, **header_fields})
    remember_manifest(context, manifest)  # the lineage reports these files (no S3 read)
    log.info(
        "claimed batch %s of %s: %d files, %d bytes, %d zero-byte objects set aside",
        batch_id,
        feed,
        summary["files"],
        summary["bytes"],
        summary["empty_files"],
    )
    return summary


def _hold_to_contract(
    s3: S3Client,
    bucket: str,
    layout: LakeLayout,
    manifest: Manifest,
    config: ContractConfig,
    snowflake_conn_id: str,
    run_id: str,
    *,
    reprocess: bool,
) -> tuple[Manifest, dict[str, Any]]:
    """Check the headers of the batch's files to load against the feed's schema contract
    (streamline.contracts); returns the manifest (with the files set aside, now in quarantine/)
    and the claim's XCom fields for the load.

    Files set aside go through the claims register as a reprocess's --quarantine does (their
    reasons are in the manifest; finalize puts a row for each in the quarantine table). The
    warehouse is reached only when a header has columns after the spec's, or the mart evolves
    too (schema_contract_mart): to read the feed's evolved columns from its schema version and,
    under evolve, to add new ones. Raises
    AirflowFailException (no retry: the files would fail again) when the contract refuses the
    batch; the files wait in processing/<BATCH_ID>/ and the failure callback records the error.
    """
    from streamline.contracts import (
        claim_fields,
        decide,
        evolve_columns,
        known_evolved,
        read_headers,
        refusal,
    )
    from streamline.lake import move_batch, register_batch

    batch_id = manifest.batch_id
    folder = layout.folder(PROCESSING, batch_id)
    files = [(e.relative_key, e.size) for e in manifest.load_files]
    headers = read_headers(s3, bucket, folder, files, config.columns, config.format)
    evolved: list[str] = []
    recorded = None
    warehouse = None
    try:
        # The mart's merge sets evolved columns from each batch's rows, so it needs them all.
        extra = any(not isinstance(h, str) and h.extra for h in headers.values())
        if extra or config.mart is not None:
            from streamline.schema_versions import read_recorded

            warehouse = _warehouse(snowflake_conn_id)
            recorded = read_recorded(warehouse, config.schema_versions, config.feed)
            evolved = known_evolved(recorded, config)
        decision = decide(config.contract, config.columns, headers, evolved)
        if decision.set_aside:
            for rel, reason in sorted(decision.set_aside.items()):
                log.warning("batch %s: setting %s aside: %s", batch_id, rel, reason)
            updated = register_batch(
                s3, bucket, config.feed, layout, batch_id, run_id,
                reprocess=reprocess, quarantine=decision.set_aside,
            )  # fmt: skip
            assert updated is not None  # the batch is in the register: it was just claimed
            manifest = updated
            move_batch(s3, bucket, layout, manifest, finished=False)
        if decision.refused:
            raise _fail(str(refusal(config, batch_id, f"s3://{bucket}/{folder}", decision)))
        if warehouse is not None and config.contract == "evolve":
            evolved = evolve_columns(warehouse, config, recorded, decision.new_columns)
    finally:
        if warehouse is not None:
            warehouse.close()
    return manifest, claim_fields(decision, folder, evolved, config.contract)


def _empty_reprocessed(
    warehouse: Runner, raw: TableRef, quarantine: TableRef, manifest: Manifest
) -> int:
    """A reprocess set every file of the batch aside: delete the batch's rows an earlier load put
    in raw, give each file its quarantine row; the batch's rejected rows still in quarantine."""
    from streamline.lake import files_set_aside
    from streamline.ledger import count_quarantine, record_set_aside

    batch_id = manifest.batch_id
    warehouse.run(
        f"DELETE FROM {quote_table(raw)} WHERE {quote_identifier('batch_id')} = %(batch_id)s",
        parameters={"batch_id": batch_id},
    )
    record_set_aside(warehouse, quarantine, batch_id, files_set_aside(manifest, [], {}))
    return count_quarantine(warehouse, quarantine, batch_id, rejected_rows=True)


def _check_quarantine(warehouse: Runner, table: TableRef, feed: str, batch_id: str) -> None:
    """Refuse to set files of a batch aside when their rows already reached the mart: rows a
    transform merged cannot be taken back out by reloading the batch. (Rows only in raw are:
    the load replaces the batch's rows, and a batch left with no file to load has them deleted.)
    """
    from streamline.ledger import read_batch

    row = read_batch(warehouse, table, feed, batch_id)
    if row is not None and row.transformed_at is not None:
        raise BatchError(
            f"batch {batch_id} of {feed} was merged into the mart at {row.transformed_at}: "
            "setting its files aside now would leave their rows there; reprocess it without "
            "quarantine, or remove its rows from the mart first"
        )


def finalize_batch(
    feed: str,
    bucket: str,
    prefix: str,
    aws_conn_id: str,
    snowflake_conn_id: str,
    ledger: dict[str, str],
    quarantine_table: dict[str, str] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """Task `finalize`: move the batch on by each file's COPY outcome; put a row per file set
    aside whole in the quarantine table (quarantine_table: database, schema, table); record the
    batch published, with the outcome of every check its steps' gates ran (warn failures too)."""
    from streamline.gates import checks_in
    from streamline.lake import (
        DEFERRED,
        LOADED,
        QUARANTINED,
        copy_results,
        files_set_aside,
        finalize,
        set_skipped_aside,
        skipped_files,
    )
    from streamline.ledger import record_set_aside
    from streamline.lineage import remember_manifest

    ti = context["ti"]
    started = dt.datetime.now(dt.UTC)
    batch_id = check_batch_id(ti.xcom_pull(task_ids=CLAIM_TASK, key=XCOM_BATCH_ID))
    loaded = ti.xcom_pull(task_ids=LOAD_TASK)
    skipped = skipped_files(loaded)
    results = set_skipped_aside(copy_results(loaded), skipped)
    # Log in to the warehouse while the files move: the login takes as long as the moves.
    with ThreadPoolExecutor(max_workers=1) as pool:
        connecting = pool.submit(_warehouse, snowflake_conn_id)
        try:
            manifest = finalize(
                s3_client(aws_conn_id),
                bucket,
                prefix,
                batch_id,
                results,
                context["dag_run"].run_id,
            )
        finally:
            warehouse = connecting.result()
    remember_manifest(context, manifest)  # where each file ended, for the lineage
    counts = {
        "files_loaded": manifest.count(LOADED),
        "files_skipped": manifest.count(QUARANTINED),
        "files_deferred": manifest.count(DEFERRED),
    }  # the rows (parsed, loaded, rejected) are the load step's, counted in its transaction
    try:
        if quarantine_table is not None:
            aside = files_set_aside(manifest, results, skipped)
            record_set_aside(warehouse, _table(quarantine_table), batch_id, aside)
        record(
            warehouse,
            _table(ledger),
            feed,
            batch_id,
            {
                "status": "published",
                **counts,
                "checks": _checks_record(
                    [r for task in GATED_TASKS for r in checks_in(ti.xcom_pull(task_ids=task))]
                ),
                "checked_at": started,
                "published_at": dt.datetime.now(dt.UTC),
                "failed_step": None,
                "error": None,
            },
        )
    finally:
        warehouse.close()
    for entry in manifest.data_files:
        if entry.outcome in (QUARANTINED, DEFERRED):
            log.warning("batch %s: %s %s: %s", batch_id, entry.relative_key, entry.outcome,
                        entry.reason)  # fmt: skip
    log.info("published batch %s of %s: %s", batch_id, feed, counts)
    return {"batch_id": batch_id, **counts}


def record_failure(
    context: dict[str, Any],
    *,
    feed: str,
    bucket: str,
    prefix: str,
    aws_conn_id: str,
    snowflake_conn_id: str,
    ledger: dict[str, str],
    final: bool = True,
) -> None:
    """on_failure_callback / on_retry_callback: record the failed step and its error.

    With final (no retries left) the batch's status becomes failed; a retry keeps the status and
    records the attempt's error. Runs without a batch (detect, or a claim that committed nothing)
    record nothing, and neither does a run whose batch another run has taken over (a reprocess)
    or finished. Airflow runs task callbacks after the task, in its process:
    https://airflow.apache.org/docs/apache-airflow/stable/administration-and-deployment/logging-monitoring/callbacks.html
    """
    ti = context["ti"]
    if ti.task_id == DETECT_TASK:
        return
    batch_id = ti.xcom_pull(task_ids=CLAIM_TASK, key=XCOM_BATCH_ID)
    if not batch_id:
        log.info("no batch was committed by this run: nothing to record in the ledger")
        return
    owner = _batch_owner(context, bucket, prefix, aws_conn_id, batch_id)
    if owner is not None and owner != context["dag_run"].run_id:
        taken = f"run {owner}" if owner else "processed/ (finished)"
        log.warning("batch %s is with %s: not recording this run's failure", batch_id, taken)
        return
    exception = context.get("exception")
    error = f"{type(exception).__name__}: {exception}" if exception else "failed"
    try:
        warehouse = _warehouse(snowflake_conn_id)
    except Exception:  # the callback must not hide the task's own error
        log.exception("could not reach the warehouse to record the failure of batch %s", batch_id)
        return
    values: dict[str, Any] = {
        "failed_step": ti.task_id,
        "error": error,
        "failed_at": dt.datetime.now(dt.UTC),
        "run_id": context["dag_run"].run_id,
    }
    if ti.task_id in GATED_TASKS and final:
        checks = _failed_gate(ti)
        if checks:
            values["checks"] = _checks_record(checks)
            values["checked_at"] = values["failed_at"]
    if final:
        values["status"] = "failed"
    elif ti.task_id == CLAIM_TASK:  # the batch is claimed; its load has not recorded it yet
        values["status"] = "claimed"
    try:
        record(warehouse, _table(ledger), feed, check_batch_id(batch_id), values, count_run=True)
    except Exception:  # the callback must not hide the task's own error
        log.exception("could not record the failure of batch %s in the ledger", batch_id)
    finally:
        warehouse.close()


def _batch_owner(
    context: dict[str, Any], bucket: str, prefix: str, aws_conn_id: str, batch_id: str
) -> str | None:
    """The run that has the batch now (lake.open_batch_owner), or None when that cannot be told:
    then the failure is recorded anyway."""
    from streamline.lake import open_batch_owner

    try:
        if "{{" in bucket:  # callbacks' arguments are not rendered by Airflow
            bucket = str(context["task"].render_template(bucket, context))
        return open_batch_owner(s3_client(aws_conn_id), bucket, LakeLayout(prefix), batch_id)
    except Exception:
        log.exception("could not read the claims register of batch %s", batch_id)
        return None


def record_retry(context: dict[str, Any], **kwargs: Any) -> None:
    """on_retry_callback: record_failure without marking the batch failed."""
    record_failure(context, **{**kwargs, "final": False})


def _failed_gate(ti: Any) -> list[CheckResult]:
    """The checks of the gate that failed the task (GatedSQLExecuteQueryOperator's XCom)."""
    from streamline.gates import XCOM_CHECKS, CheckResult

    try:
        pushed = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_CHECKS) or []
        return [CheckResult(**item) for item in pushed]
    except Exception:  # the callback must not hide the task's own error
        log.exception("could not read the failed checks of %s", ti.task_id)
        return []


def _checks_record(checks: Sequence[CheckResult]) -> dict[str, Any]:
    """The ledger's CHECKS value: check name -> passed, severity, failing rows, detail."""
    return {
        c.name: {"passed": c.passed, "severity": c.severity, "failing_rows": c.failing_rows,
                 "detail": c.detail}
        for c in checks
    }  # fmt: skip
