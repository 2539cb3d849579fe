"""The local runtime's rooms without servers: the run monitor against a fake REST API, the latency
definition, the reports, process supervision with real child processes, and the workdir rules."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from streamline.airflowapi import ApiError
from streamline.local import processes, reports
from streamline.local.latency import first_arrivals_sql, has_latency, percentile
from streamline.local.monitor import FinishedRun, Monitor
from streamline.local.runtime import LocalRuntimeError, check_workdir
from streamline.model import Feed
from streamline.project import find_project
from streamline.validation import validate_paths


@pytest.fixture(scope="module")
def feeds() -> dict[str, Feed]:
    return {f.feed: f for f in validate_paths(find_project()).feeds}


class FakeApi:
    """Answers GETs from a dict of path -> JSON; records every path; fails paths in `failing`."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self.failing: set[str] = set()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.calls.append(path)
        base = path.split("?")[0]
        if base in self.failing:
            raise ApiError(f"GET {path}: HTTP 500", status=500)
        if base not in self.answers:
            raise ApiError(f"GET {path}: HTTP 404", status=404)
        return self.answers[base]


def _run(run_id: str, state: str, end: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"dag_run_id": run_id, "state": state, "queued_at": end, "start_date": end,
            "end_date": end, "conf": conf or {}}  # fmt: skip


def _tasks(claim: str) -> dict[str, Any]:
    names = ("detect", "claim", "load", "transform", "finalize")
    return {"task_instances": [
        {"task_id": n, "state": claim if n == "claim" else "success", "queued_when": None,
         "start_date": "2026-11-30T10:00:01+00:00", "end_date": "2026-11-30T10:00:02+00:00"}
        for n in names
    ]}  # fmt: skip


@pytest.fixture
def api(feeds: dict[str, Any]) -> FakeApi:
    base = "/dags/customers/dagRuns"
    return FakeApi({
        base: {"dag_runs": [
            _run("r1", "success", "2026-11-30T10:00:05+00:00"),
            _run("r2", "success", "2026-11-30T10:00:06+00:00"),
            _run("r3", "success", "2026-11-30T10:00:07+00:00", {"batch_id": "20261130T100000Z"}),
        ]},
        f"{base}/r1/taskInstances": _tasks("success"),
        f"{base}/r1/taskInstances/claim/xcomEntries/batch_id": {"value": '"20261130T100000Z"'},
        f"{base}/r2/taskInstances": _tasks("skipped"),
        f"{base}/r3/taskInstances": _tasks("success"),
        f"{base}/r3/taskInstances/claim/xcomEntries/batch_id": {"value": "20261130T100000Z"},
        "/dags/customers": {"is_paused": False},
    })  # fmt: skip


def test_monitor_reads_batches_empty_runs_and_reprocesses(
    api: FakeApi, feeds: dict[str, Any]
) -> None:
    monitor = Monitor(api, [feeds["customers"]])
    assert monitor.dags_ready() == ["customers"]
    found = monitor.poll()
    assert [(r.run_id, r.batch_id, r.reprocess) for r in found] == [
        ("r1", "20261130T100000Z", False),
        ("r3", "20261130T100000Z", True),
    ]
    assert monitor.empty_runs == {"customers": 1}  # r2: the sensor found no file
    assert found[0].task_end("transform") is not None and found[0].run_seconds == 0.0
    assert monitor.poll() == []  # nothing twice
    assert "end_date_gte=2026-11-30T10%3A00%3A07%2B00%3A00" in api.calls[-1]


def test_monitor_reads_a_run_again_after_an_api_error(api: FakeApi, feeds: dict[str, Any]) -> None:
    monitor = Monitor(api, [feeds["customers"]])
    api.failing.add("/dags/customers/dagRuns/r1/taskInstances")
    assert monitor.poll() == [] and monitor.last_error is not None
    api.failing.clear()
    assert [r.run_id for r in monitor.poll()] == ["r1", "r3"]


def test_an_api_error_in_one_feed_loses_no_run_of_another(feeds: dict[str, Any]) -> None:
    api = FakeApi({
        "/dags/customers/dagRuns": {"dag_runs": [_run("c1", "success", "2026-11-30T10:00:05Z")]},
        "/dags/customers/dagRuns/c1/taskInstances": _tasks("success"),
        "/dags/customers/dagRuns/c1/taskInstances/claim/xcomEntries/batch_id": {"value": "b1"},
        "/dags/orders/dagRuns": {"dag_runs": [_run("o1", "failed", "2026-11-30T10:00:06Z")]},
        "/dags/orders/dagRuns/o1/taskInstances": _tasks("upstream_failed"),
    })  # fmt: skip
    api.failing.add("/dags/orders/dagRuns")
    monitor = Monitor(api, [feeds["customers"], feeds["orders"]])
    assert [r.run_id for r in monitor.poll()] == ["c1"]
    assert monitor.last_error is not None
    api.failing.clear()
    [failed] = monitor.poll()  # read by the next poll; it failed before a claim: not a batch
    assert (failed.run_id, failed.claimed, failed.batch_id) == ("o1", False, None)
    out = io.StringIO()
    reports.print_run(Console(file=out, width=200), failed)
    assert "(no batch)" in out.getvalue()
    summary = reports.FeedSummary("orders", runs=[failed])
    assert summary.batches == []


def test_a_cleared_run_that_ends_again_is_reported_again(
    api: FakeApi, feeds: dict[str, Any]
) -> None:
    monitor = Monitor(api, [feeds["customers"]])
    assert len(monitor.poll()) == 2
    runs = api.answers["/dags/customers/dagRuns"]["dag_runs"]
    runs[0] = {**runs[0], "end_date": "2026-11-30T10:01:00+00:00"}  # cleared, ended again
    assert [r.run_id for r in monitor.poll()] == ["r1"]


def test_latency_counts_each_event_once_and_only_for_generated_feeds(
    feeds: dict[str, Any],
) -> None:
    sql = first_arrivals_sql(feeds["orders"], "20261130T100000Z")
    assert "p.\"BATCH_ID\" < '20261130T100000Z'" in sql and "SELECT DISTINCT" in sql
    assert has_latency(feeds["orders"])
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and percentile([1.0, 9.0], 0.95) == 9.0


def test_summary_shows_the_demo_counts_only_when_measured() -> None:
    run = FinishedRun("orders", "r1", "success", "b1", {}, None, None, None, rows=5)
    run.latencies = [1.0, 3.0]
    again = FinishedRun("orders", "r2", "success", "b1", {}, None, None, None, reprocess=True)
    summary = reports.FeedSummary("orders", runs=[run, again], empty_runs=2)
    out = io.StringIO()
    reports.print_summary(Console(file=out, width=200), "t", [summary])
    assert "emitted" not in out.getvalue()
    row = next(line for line in out.getvalue().splitlines() if "orders" in line)
    # batches, failed, reprocessed, empty runs, rows
    assert [cell.strip() for cell in row.split("│")[2:7]] == ["1", "0", "1", "2", "5"]
    assert "nan" not in out.getvalue()
    empty = reports.FeedSummary("shipments")
    out = io.StringIO()
    reports.print_summary(Console(file=out, width=200), "t", [empty])
    assert "nan" not in out.getvalue() and out.getvalue().count(" - ") >= 3
    summary.raw_rows, summary.emitted_lines = 5, 6
    out = io.StringIO()
    reports.print_summary(Console(file=out, width=200), "t", [summary])
    assert "emitted" in out.getvalue() and "raw rows" in out.getvalue()
    assert json.loads(run.to_json())["latency_p50"] in (1.0, 3.0)


def test_children_stop_in_order_and_a_stubborn_one_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "STOP_GRACE", 1.0)
    monkeypatch.setattr(processes, "SIGNAL_AGAIN_AFTER", 0.3)
    children = processes.Children(tmp_path / "pids.json")
    ready = tmp_path / "ready"
    stubborn = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(sys.argv[1], 'w').close(); time.sleep(60)"
    )
    log = tmp_path / "out.log"
    children.start("scheduler", [sys.executable, "-c", stubborn, str(ready)], {}, log)
    while not ready.exists():
        time.sleep(0.05)
    children.start("api-server", [sys.executable, "-c", "import time; time.sleep(60)"], {}, log)
    pids = json.loads((tmp_path / "pids.json").read_text())
    assert set(pids["children"]) == {"scheduler", "api-server"} and len(pids["groups"]) == 2
    assert children.dead() == []
    server = subprocess.Popen([sys.executable, "-c", "pass"])  # a stack server that dies
    children.adopt("moto", server)
    server.wait()
    assert children.dead() == ["moto"]
    assert json.loads((tmp_path / "pids.json").read_text())["children"]["moto"] == server.pid
    assert children.stop_all() == ["scheduler"]
    assert all(p.poll() is not None for p in children.processes.values())
    with pytest.raises(processes.SupervisionError, match="exited"):
        children.check_alive()


def test_run_step_reports_a_failing_command(tmp_path: Path) -> None:
    import threading

    argv = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(processes.SupervisionError, match="exited with 3"):
        processes.run_step(argv, {}, tmp_path / "log", threading.Event(), "step")
    stopped = threading.Event()
    stopped.set()
    slow = [sys.executable, "-c", "import time; time.sleep(30)"]
    assert processes.run_step(slow, {}, tmp_path / "log", stopped, "step") is False


def test_workdir_rules() -> None:
    # Short on purpose: pytest's tmp_path under the repo's TMPDIR is too long a workdir.
    tmp_path = Path(__file__).resolve().parents[2] / ".scratch" / f"wd{os.getpid()}"
    tmp_path.mkdir(parents=True, exist_ok=True)
    try:
        _check_workdir_rules(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _check_workdir_rules(tmp_path: Path) -> None:
    check_workdir(tmp_path / "new")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(LocalRuntimeError, match="not empty"):
        check_workdir(tmp_path / "mine")
    (tmp_path / "mine" / ".streamline-up").write_text("")  # an earlier `up`'s workdir
    check_workdir(tmp_path / "mine")
    with pytest.raises(LocalRuntimeError, match="too long"):
        check_workdir(tmp_path / ("x" * 80))
    (tmp_path / "file").write_text("")
    with pytest.raises(LocalRuntimeError, match="not a folder"):
        check_workdir(tmp_path / "file")


def test_warmup_parses_each_dag_file_and_survives_a_broken_one(tmp_path: Path) -> None:
    from streamline.local.warmup import parse_dags_folder

    (tmp_path / "good.py").write_text("X = 1\n")
    (tmp_path / "broken.py").write_text("raise RuntimeError('bad spec')\n")
    (tmp_path / "notes.txt").write_text("not python")
    assert parse_dags_folder(str(tmp_path)) == 1
    assert parse_dags_folder(None) == 0 and parse_dags_folder(str(tmp_path / "none")) == 0


def test_demo_reprocesses_a_generated_feed_and_judges_its_rows(
    feeds: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    from types import SimpleNamespace

    from streamline.local import demo

    triggered: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        demo, "trigger_run", lambda api, dag_id, conf: triggered.append((dag_id, conf)) or "rp_1"
    )
    added = dataclasses.replace(feeds["customers"], feed="accounts")  # sorts first, not generated
    runtime: Any = SimpleNamespace(
        feeds=[added, feeds["customers"], feeds["orders"]],
        api_url="http://127.0.0.1:1",
        console=Console(file=io.StringIO()),
    )
    rerun = demo.Rerun(runtime)
    assert rerun.feed == "customers" and not rerun.done

    def run(feed: str, batch: str, rows: int, **kw: Any) -> FinishedRun:
        return FinishedRun(feed, f"r-{feed}-{batch}", "success", batch, {}, None, None, None,
                           rows=rows, **kw)  # fmt: skip

    rerun.on_run(run("accounts", "b0", 5))
    rerun.on_run(run("orders", "b1", 7))
    assert triggered == []
    rerun.on_run(run("customers", "b2", 9))
    assert triggered == [("customers", {"batch_id": "b2"})] and not rerun.done
    again = dataclasses.replace(run("customers", "b2", 10, reprocess=True), run_id="rp_1")
    rerun.on_run(again)
    assert rerun.done and rerun.problems == [
        "the reprocess of customers batch b2 changed its raw rows: 9 -> 10"
    ]
    # A reprocess that fails before its claim has no batch id: it is known by its run id.
    failed = demo.Rerun(runtime)
    failed.on_run(run("customers", "b3", 4))
    failed.on_run(FinishedRun("customers", "rp_1", "failed", None, {}, None, None, None,
                              claimed=False, reprocess=True))  # fmt: skip
    assert failed.done
    assert failed.problems == ["the reprocess of customers batch b3 failed"]


def test_sensing_tells_a_sensor_that_has_poked_from_one_still_starting(
    feeds: dict[str, Any],
) -> None:
    base = "/dags/customers/dagRuns"
    ti = f"{base}/r9/taskInstances/detect"
    api = FakeApi({
        base: {"dag_runs": [_run("r9", "running", "")]},
        ti: {"state": "running", "try_number": 1},
        f"{ti}/logs/1": {"content": [{"event": "::group::Pre Execute"}]},
    })  # fmt: skip
    monitor = Monitor(api, [feeds["customers"]])
    assert monitor.sensing("customers", "detect") == "running"
    api.answers[f"{ti}/logs/1"]["content"].append({"event": "Poking callable: <function>"})
    assert monitor.sensing("customers", "detect") == "poked"
    assert monitor.sensors("detect") == "poked"  # customers is a poll feed
    assert not monitor.healthy()  # no /monitor/health answer
    api.answers["/monitor/health"] = {"metadatabase": {"status": "healthy"}}
    assert monitor.healthy()
    api.answers[ti] = {"state": "success", "try_number": 1}
    assert monitor.sensing("customers", "detect") is None
    api.failing.add(base)
    assert monitor.sensing("customers", "detect") is None


def test_a_batch_id_the_api_fails_to_give_is_read_again(
    api: FakeApi, feeds: dict[str, Any]
) -> None:
    xcom = "/dags/customers/dagRuns/r1/taskInstances/claim/xcomEntries/batch_id"
    monitor = Monitor(api, [feeds["customers"]])
    api.failing.add(xcom)  # HTTP 500: the run is not taken without its batch id
    assert [r.run_id for r in monitor.poll()] == []
    api.failing.clear()
    assert next((r.run_id, r.batch_id) for r in monitor.poll()) == ("r1", "20261130T100000Z")
    gone = Monitor(api, [feeds["customers"]])
    del api.answers[xcom]  # HTTP 404: cleared since, reported without it
    assert next((r.run_id, r.batch_id) for r in gone.poll()) == ("r1", None)


def _migrated(path: Path, version: str = "d2f4e1b3c5a7") -> None:
    """A stand-in for a database `airflow db migrate` made: SQLite with its migration version."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (version,))
    conn.close()


def test_a_migrated_metadata_database_is_kept_and_copied_instead_of_migrating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from streamline.local import airflow_config

    monkeypatch.setenv("STREAMLINE_CACHE_DIR", str(tmp_path / "cache"))
    first = {"AIRFLOW_HOME": str(tmp_path / "one")}
    assert not airflow_config.migrated_database(first)  # nothing kept yet: migrate
    _migrated(tmp_path / "one" / "airflow.db")
    airflow_config.keep_migrated_database(first)

    url = f"sqlite:///{tmp_path / 'two' / 'meta.db'}"
    second = {"AIRFLOW_HOME": str(tmp_path / "x"), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
              "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs")}  # fmt: skip
    assert airflow_config.migrated_database(second)
    with sqlite3.connect(tmp_path / "two" / "meta.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("d2f4e1b3c5a7",)
        ]
    conn.close()
    # An existing database (or its journal) is never overwritten; another database migrates.
    assert not airflow_config.migrated_database(second)
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "airflow.db-wal").write_bytes(b"a journal")
    assert not airflow_config.migrated_database({"AIRFLOW_HOME": str(tmp_path / "three")})
    postgres = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://h/airflow"}
    assert not airflow_config.migrated_database(postgres)
    # Settings `db migrate` writes into the database key another copy.
    for other in ({"AIRFLOW__LOGGING__LOG_FILENAME_TEMPLATE": "{{ ti.task_id }}.log"},
                  {"AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "4"}):  # fmt: skip
        assert not airflow_config.migrated_database({"AIRFLOW_HOME": str(tmp_path / "4"), **other})


def test_a_migrated_database_that_is_not_sound_is_neither_kept_nor_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline.local import airflow_config

    monkeypatch.setenv("STREAMLINE_CACHE_DIR", str(tmp_path / "cache"))
    env = {"AIRFLOW_HOME": str(tmp_path / "one")}
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "airflow.db").write_bytes(b"")  # a migrate that never ran
    airflow_config.keep_migrated_database(env)
    assert not list((tmp_path / "cache").glob("**/*"))[1:]  # nothing kept (the folder at most)
    _migrated(tmp_path / "good.db")
    kept = airflow_config.database_cache() / f"{airflow_config._database_key(env)}.db"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes((tmp_path / "good.db").read_bytes()[:1000])  # cut short
    target = {"AIRFLOW_HOME": str(tmp_path / "two")}
    assert not airflow_config.migrated_database(target)  # migrate instead
    assert not kept.exists()  # and the broken copy is gone for the next start
    assert not list((tmp_path / "two").glob("*"))  # no partial file left


def test_new_botocore_sessions_start_with_the_warm_service_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    import botocore.session

    from streamline.local import warmup

    monkeypatch.setattr(
        botocore.session.Session,
        "_register_data_loader",
        botocore.session.Session._register_data_loader,
    )  # put back after
    warmup.share_botocore_loader(("s3",))
    warmup.share_botocore_loader(("s3",))  # idempotent
    one = boto3.session.Session(region_name="us-east-1")._session.get_component("data_loader")
    two = boto3.session.Session(region_name="us-east-1")._session.get_component("data_loader")
    assert one is not two and one.search_paths is not two.search_paths  # each its own paths
    assert len(two.search_paths) == len(one.search_paths)  # boto3 appends to its own only
    # The S3 model was read by the warm-up: a new session's client reads nothing from disk.
    session = boto3.session.Session(region_name="us-east-1")
    opened: list[str] = []
    reader = session._session.get_component("data_loader").file_loader
    monkeypatch.setattr(reader, "load_file", lambda path: opened.append(path))
    session.client("s3", aws_access_key_id="a", aws_secret_access_key="b")
    models = ("service-2", "endpoint-rule-set-1", "paginators-1")  # not the optional extras
    assert not [p for p in opened if p.endswith(models)], opened
    # Sessions reading models from another data path start from nothing.
    other = botocore.session.Session()
    other.set_config_variable("data_path", "/elsewhere")
    assert "/elsewhere" in other.get_component("data_loader").search_paths
    assert not [k for k in other.get_component("data_loader")._cache if "s3" in str(k)]
