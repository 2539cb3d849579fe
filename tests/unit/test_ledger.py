"""The batch ledger: its SQL against fakesnow in-process, and the task callables that write it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlglot
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from moto import mock_aws
from sqlglot import exp

from streamline import ledger, tasks
from streamline.errors import BatchError
from streamline.layout import LEDGER_COLUMNS, LakeLayout
from streamline.model import TableRef
from streamline.rendering import quote_identifier, quote_table

TABLE = TableRef("db", "raw", "streamline_batches")  # the warehouse fixture's (conftest.py)
BATCH = "20260101T000000.000000Z"


def rows(runner: ledger.ConnectionRunner) -> list[dict[str, Any]]:
    names = [c.name for c in LEDGER_COLUMNS]
    sql = f"SELECT {', '.join(map(quote_identifier, names))} FROM {quote_table(TABLE)}"
    return [dict(zip(names, r, strict=True)) for r in runner.get_records(sql)]


def test_upsert_sql_updates_the_row_or_inserts_it_keyed_by_feed_and_batch() -> None:
    names = ["feed", "batch_id", "status", "run_id", "checks", "claimed_at"]
    update, insert = ledger.upsert_sql(TABLE, {n: f"%({n})s" for n in names}, count_run=True)
    trees = [sqlglot.parse_one(s.replace("%(", ":").replace(")s", ""), read="snowflake")
             for s in (update, insert)]  # fmt: skip
    assert [type(t) for t in trees] == [exp.Update, exp.Insert]
    key = '"FEED" = %(feed)s AND "BATCH_ID" = %(batch_id)s'
    fence = '("CLAIMED_AT" IS NULL OR "RUN_ID" = %(run_id)s OR "CLAIMED_AT" <= CAST('
    assert f"WHERE {key}\n  AND {fence}" in update and insert.endswith(f"WHERE {key})")
    assert "PARSE_JSON(%(checks)s)" in update and "CAST(%(claimed_at)s AS TIMESTAMP_LTZ)" in insert
    with pytest.raises(ValueError, match="unknown: \\['nope'\\]"):
        ledger.upsert_sql(TABLE, {"feed": "'x'", "batch_id": "'y'", "nope": "1"})


def test_a_retried_write_updates_its_row_and_a_new_run_is_counted(
    warehouse: ledger.ConnectionRunner,
) -> None:
    started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    claim = {"dag_id": "orders", "files": 3, "bytes_": 30, "empty_files": 0, "started": started,
             "claimed": started}  # fmt: skip

    def load_records_claim(run_id: str) -> None:  # the load step's first statement, rendered
        values = ledger.claim_values(run_id=run_id, **claim)  # type: ignore[arg-type]
        for sql in ledger.claim_sql(TABLE, "orders", f"'{BATCH}'", values).split(";\n"):
            warehouse.run(sql)

    load_records_claim("run-'1")  # quoted: a run id may hold a quote
    load_records_claim("run-'1")  # a retry
    [row] = rows(warehouse)
    assert (row["status"], row["runs"], row["files"], row["bytes"]) == ("claimed", 1, 3, 30)
    ledger.record(warehouse, TABLE, "orders", BATCH, {"status": "failed", "failed_step": "load",
                  "error": "x" * 5000, "failed_at": started})  # fmt: skip
    [row] = rows(warehouse)
    assert row["status"] == "failed" and len(row["error"]) == ledger.ERROR_CHARS
    load_records_claim("run-2")  # a reprocess
    [row] = rows(warehouse)
    assert (row["status"], row["runs"], row["error"], row["failed_step"]) == (
        "claimed", 2, None, None,
    )  # fmt: skip
    ledger.record(warehouse, TABLE, "orders", BATCH, {"checks": {"row_count": True}})
    assert json.loads(rows(warehouse)[0]["checks"]) == {"row_count": True}


def test_a_stale_runs_claim_leaves_a_later_claim_alone(warehouse: ledger.ConnectionRunner) -> None:
    """The original run stalled; a reprocess claimed the batch later and published it. The
    original's retried load records its (earlier) claim again: the reprocess's row stands."""
    first = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def load_records_claim(run_id: str, claimed: dt.datetime) -> None:
        values = ledger.claim_values(run_id=run_id, dag_id="orders", files=3, bytes_=30,
                                     empty_files=0, started=claimed, claimed=claimed)  # fmt: skip
        for sql in ledger.claim_sql(TABLE, "orders", f"'{BATCH}'", values).split(";\n"):
            warehouse.run(sql)

    load_records_claim("original", first)
    load_records_claim("reprocess", first + dt.timedelta(seconds=30))
    ledger.record(warehouse, TABLE, "orders", BATCH, {"status": "published"})
    load_records_claim("original", first)  # the stalled run's load, retried
    [row] = rows(warehouse)
    assert (row["status"], row["run_id"], row["runs"]) == ("published", "reprocess", 2)
    load_records_claim("original", first + dt.timedelta(seconds=60))  # cleared and claimed again
    [row] = rows(warehouse)
    assert (row["status"], row["run_id"], row["runs"]) == ("claimed", "original", 3)


def test_read_batches_gives_the_latest_and_every_unfinished_batch(
    warehouse: ledger.ConnectionRunner,
) -> None:
    ids = [f"20260101T0000{n:02d}.000000Z" for n in range(6)]
    for n, batch_id in enumerate(ids):
        status = "failed" if n == 0 else "published"
        ledger.record(warehouse, TABLE, "orders", batch_id, {"status": status, "runs": 1})
    ledger.record(warehouse, TABLE, "customers", ids[0], {"status": "published"})
    found = ledger.read_batches(warehouse, TABLE, ["orders"], latest=2)
    assert [(r.batch_id, r.status) for r in found] == [
        (ids[5], "published"),
        (ids[4], "published"),
        (ids[0], "failed"),
    ]
    assert all(r.feed == "orders" for r in found)
    assert found[0].to_json()["updated_at"].endswith("+00:00")


# --- the task callables, with a recording warehouse and moto ---------------------------------


class Recorder:
    """A warehouse that records the ledger writes it is asked to make."""

    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []

    def run(self, sql: str, autocommit: bool = True, parameters: Any = None) -> None:
        if sql.startswith("UPDATE"):  # one write: its UPDATE (its INSERT binds the same values)
            self.writes.append(dict(parameters or {}))

    def get_records(self, sql: str, parameters: Any = None) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class FakeTaskInstance:
    def __init__(self, task_id: str = "claim", load: Any = None) -> None:
        self.task_id = task_id
        self.xcom: dict[str, Any] = {}
        self.load = load
        self.transform: Any = None

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        if key == "return_value" and task_ids in ("load", "transform"):
            return getattr(self, task_ids)
        return self.xcom.get(key)


class FakeDagRun:
    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        self.conf = conf or {}
        self.run_after = dt.datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=dt.UTC)
        self.logical_date = None
        self.run_id = "manual__1"
        self.dag_id = "orders"


LAKE = {"feed": "orders", "bucket": "lake", "prefix": "orders", "aws_conn_id": "lake_test"}
LEDGER = {"snowflake_conn_id": "wh", "ledger": {"database": "db", "schema": "raw",
                                                "table": "streamline_batches"}}  # fmt: skip


@pytest.fixture
def lake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Recorder]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_TEST", json.dumps(
        {"conn_type": "aws", "extra": {"region_name": "us-east-1"}}))  # fmt: skip
    recorder = Recorder()
    monkeypatch.setattr(tasks, "_warehouse", lambda conn_id: recorder)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lake")
        yield s3, recorder


def test_claim_pushes_the_batch_its_files_and_its_ledger_values(
    lake: tuple[Any, Recorder],
) -> None:
    s3, recorder = lake
    s3.put_object(Bucket="lake", Key="landing/orders/it's", Body=b"a,b\n")
    s3.put_object(Bucket="lake", Key="landing/orders/empty", Body=b"")
    ti = FakeTaskInstance()
    context = {"ti": ti, "dag_run": FakeDagRun(), "params": {"batch_id": None}}
    summary = tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **context)
    assert summary == {"batch_id": "20260304T050607.000890Z", "files": 1, "bytes": 4,
                       "empty_files": 1}  # fmt: skip
    assert ti.xcom["batch_id"] == "20260304T050607.000890Z"
    claim = ti.xcom["claim"]  # for the SQL steps, one XCom read each
    assert claim["batch_id"] == "20260304T050607.000890Z"
    assert claim["copy_files"] == "'it\\'s'"
    assert claim["source_files"] == "'processing/20260304T050607.000890Z/orders/it\\'s'"
    values = claim["ledger"]  # quoted for the load's first statements
    assert (values["run_id"], values["files"], values["empty_files"]) == ("'manual__1'", "1", "1")
    assert recorder.writes == []  # the claim itself needs no warehouse


def test_a_claim_of_only_zero_byte_objects_is_an_empty_batch(lake: tuple[Any, Recorder]) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    s3, recorder = lake
    s3.put_object(Bucket="lake", Key="landing/orders/empty", Body=b"")
    context = {"ti": FakeTaskInstance(), "dag_run": FakeDagRun(), "params": {}}
    with pytest.raises(AirflowSkipException, match="holds no data"):
        tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **context)
    [write] = recorder.writes
    assert (write["status"], write["empty_files"], write["files"]) == ("empty", 1, 0)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
    assert "quarantine/20260304T050607.000890Z/orders/empty" in keys
    assert not tasks.detect_batch(**LAKE, **context)


def test_nothing_landed_skips_without_a_ledger_row(lake: tuple[Any, Recorder]) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    _, recorder = lake
    context = {"ti": FakeTaskInstance(), "dag_run": FakeDagRun(), "params": {}}
    assert not tasks.detect_batch(**LAKE, **context)
    with pytest.raises(AirflowSkipException):
        tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **context)
    assert recorder.writes == []


def test_finalize_records_the_copy_outcome_and_publishes(lake: tuple[Any, Recorder]) -> None:
    s3, recorder = lake
    for name in ("ok", "bad"):
        s3.put_object(Bucket="lake", Key=f"landing/orders/{name}", Body=b"a\n")
    ti = FakeTaskInstance()
    context = {"ti": ti, "dag_run": FakeDagRun(), "params": {}}
    tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **context)
    folder = f"s3://lake/processing/{ti.xcom['batch_id']}/orders/"
    ti.load = [[["Statement executed successfully."]], [
        [folder + "ok", "LOADED", 3, 3, 3, 0, None, None, None, None],
        [folder + "bad", "LOAD_FAILED", 2, 0, 2, 2, "bad value", 2, 1, '"T"["A":1]'],
    ], [["rejected_rows", "error", True, 0, None]]]  # fmt: skip
    ti.transform = [
        [["ok"]],
        [["row_count", "error", True, 0, None],
         ["range__amount", "warn", False, 2, "first: f, row 1: -1"]],
    ]  # fmt: skip
    done = tasks.finalize_batch(**LAKE, **LEDGER, **context)
    assert done["files_loaded"] == 1 and done["files_skipped"] == 1
    write = recorder.writes[-1]
    assert write["status"] == "published" and json.loads(write["checks"]) == {
        "rejected_rows": {"passed": True, "severity": "error", "failing_rows": 0, "detail": None},
        "row_count": {"passed": True, "severity": "error", "failing_rows": 0, "detail": None},
        "range__amount": {"passed": False, "severity": "warn", "failing_rows": 2,
                          "detail": "first: f, row 1: -1"},
    }  # fmt: skip
    assert "rows_parsed" not in write and "rows_rejected" not in write  # the load counts rows
    assert not tasks.detect_batch(**LAKE, **context)  # nothing left to claim


def test_failure_callbacks_record_only_batches_that_exist(lake: tuple[Any, Recorder]) -> None:
    _, recorder = lake
    context = {"ti": FakeTaskInstance("load"), "dag_run": FakeDagRun(),
               "exception": RuntimeError("boom")}  # fmt: skip
    tasks.record_failure(context, **LAKE, **LEDGER)
    assert recorder.writes == []  # the claim committed no batch
    s3, _ = lake
    s3.put_object(Bucket="lake", Key="landing/orders/f", Body=b"a\n")
    claim = {"ti": FakeTaskInstance(), "dag_run": FakeDagRun(), "params": {}}
    tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **claim)
    context["ti"].xcom["batch_id"] = claim["ti"].xcom["batch_id"]
    tasks.record_retry(context, **LAKE, **LEDGER)
    tasks.record_failure(context, **LAKE, **LEDGER)
    retry, final = recorder.writes
    assert "status" not in retry and retry["error"] == "RuntimeError: boom"
    assert (final["status"], final["failed_step"]) == ("failed", "load")
    # A reprocess took the batch over: the old run's late failure is not recorded against it.
    takeover = {"ti": FakeTaskInstance(), "dag_run": FakeDagRun({"batch_id": context["ti"].xcom[
        "batch_id"]}), "params": {}}  # fmt: skip
    takeover["dag_run"].run_id = "manual__2"
    tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **takeover)
    tasks.record_failure(context, **LAKE, **LEDGER)
    assert len(recorder.writes) == 2


def test_a_reprocess_detects_its_batch_not_new_files(lake: tuple[Any, Recorder]) -> None:
    s3, _ = lake
    s3.put_object(Bucket="lake", Key="landing/orders/new", Body=b"a\n")
    reprocess = {"ti": FakeTaskInstance(), "dag_run": FakeDagRun({"batch_id": BATCH})}
    # No such batch: detect lets the run go on at once, and the claim fails it (no retries).
    assert tasks.detect_batch(**LAKE, **reprocess)
    with pytest.raises(AirflowFailException, match=f"no batch {BATCH} of orders in s3://lake"):
        tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, params={}, **reprocess)
    s3.put_object(Bucket="lake", Key=LakeLayout("orders").manifest("processed", BATCH), Body=b"{}")
    assert tasks.detect_batch(**LAKE, **reprocess)


def test_a_cleared_run_detects_its_own_open_batch(lake: tuple[Any, Recorder]) -> None:
    """Clearing a whole DAG run whose batch stayed open (e.g. its finalize failed): detect lets
    it resume the batch, though landing/ holds nothing new; a first try waits for files."""
    s3, _ = lake
    s3.put_object(Bucket="lake", Key="landing/orders/f", Body=b"a\n")
    context = {"ti": FakeTaskInstance(), "dag_run": FakeDagRun(), "params": {}}
    tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **context)
    assert not tasks.detect_batch(**LAKE, **context)  # the first try: nothing new landed
    cleared = {**context, "ti": FakeTaskInstance("detect")}
    cleared["ti"].try_number = 2
    assert tasks.detect_batch(**LAKE, **cleared)
    other = FakeDagRun()
    other.run_id = "manual__2"
    assert not tasks.detect_batch(**LAKE, **{**cleared, "dag_run": other})  # not its batch


def test_a_reprocess_that_sets_every_file_aside_empties_the_batch_out_of_raw(
    lake: tuple[Any, Recorder], warehouse: ledger.ConnectionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows an earlier load put in raw go (the files, landed again, would add them twice); each
    file set aside gets its quarantine row; the ledger says empty, with no earlier error."""
    from streamline.layout import QUARANTINE_COLUMNS

    s3, _ = lake
    kept = ledger.ConnectionRunner(warehouse.connection)
    monkeypatch.setattr(kept, "close", lambda: None)
    monkeypatch.setattr(tasks, "_warehouse", lambda conn_id: kept)
    raw, quarantine = TableRef("db", "raw", "orders"), TableRef("db", "raw", "orders_quarantine")
    columns = ", ".join(f"{quote_identifier(c.name)} {c.type}" for c in QUARANTINE_COLUMNS)
    warehouse.run(f"CREATE TABLE {quote_table(quarantine)} ({columns})")
    warehouse.run(f'CREATE TABLE {quote_table(raw)} ("ORDER_ID" VARCHAR, "BATCH_ID" VARCHAR)')
    s3.put_object(Bucket="lake", Key="landing/orders/only", Body=b"a\n")
    ti = FakeTaskInstance()
    tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100,
                      **{"ti": ti, "dag_run": FakeDagRun(), "params": {}})  # fmt: skip
    batch_id = ti.xcom["batch_id"]
    warehouse.run(f"INSERT INTO {quote_table(raw)} VALUES ('a', '{batch_id}'), ('b', 'other')")
    ledger.record(warehouse, TABLE, "orders", batch_id, {"status": "failed", "error": "check",
                                                         "failed_step": "transform"})  # fmt: skip
    run = FakeDagRun({"batch_id": batch_id, "quarantine": {"only": "ticket 11"}})
    tables = {"raw": {"database": "db", "schema": "raw", "table": "orders"},
              "quarantine_table": {"database": "db", "schema": "raw",
                                   "table": "orders_quarantine"}}  # fmt: skip
    with pytest.raises(AirflowSkipException, match="holds no data"):
        tasks.claim_batch(**LAKE, **LEDGER, **tables, max_files=10, max_bytes=100,
                          **{"ti": FakeTaskInstance(), "dag_run": run, "params": {}})  # fmt: skip
    assert warehouse.get_records(f'SELECT "ORDER_ID" FROM {quote_table(raw)}') == [("b",)]
    [aside] = ledger.read_quarantine(warehouse, quarantine)
    assert (aside.error_code, aside.source_row_number, aside.record) == (
        "file_set_aside",
        None,
        None,
    )
    assert aside.error == f"ticket 11; the file is kept whole in quarantine/{batch_id}/orders/only"
    [row] = rows(warehouse)
    assert (row["status"], row["error"], row["failed_step"], row["files_skipped"],
            row["rows_rejected"]) == ("empty", None, None, 1, 0)  # fmt: skip


def test_quarantine_is_refused_once_the_batch_reached_the_mart(
    lake: tuple[Any, Recorder], warehouse: ledger.ConnectionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, _ = lake
    kept = ledger.ConnectionRunner(warehouse.connection)
    monkeypatch.setattr(kept, "close", lambda: None)  # the fixture's connection outlives a task
    monkeypatch.setattr(tasks, "_warehouse", lambda conn_id: kept)
    for name in ("good", "poison"):
        s3.put_object(Bucket="lake", Key=f"landing/orders/{name}", Body=b"a\n")
    ti = FakeTaskInstance()
    first = {"ti": ti, "dag_run": FakeDagRun(), "params": {}}
    tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **first)
    batch_id = ti.xcom["batch_id"]
    run = FakeDagRun({"batch_id": batch_id, "quarantine": {"poison": "y"}})
    again = {"ti": FakeTaskInstance(), "dag_run": run, "params": {}}
    ledger.record(warehouse, TABLE, "orders", batch_id, {"transformed_at": dt.datetime.now(dt.UTC)})
    with pytest.raises(BatchError, match="was merged into the mart"):
        tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **again)
    ledger.record(warehouse, TABLE, "orders", batch_id, {"transformed_at": None})
    summary = tasks.claim_batch(**LAKE, **LEDGER, max_files=10, max_bytes=100, **again)
    assert summary["files"] == 1 and again["ti"].xcom["claim"]["copy_files"] == "'good'"
