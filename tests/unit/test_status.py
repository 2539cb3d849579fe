"""`streamline status` from a ledger (fakesnow in-process) and a lake (moto in-process)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from rich.console import Console

from streamline import cli, lake, ledger
from streamline.lake import SetAsideFile
from streamline.model import Feed, TableRef
from streamline.project import find_project
from streamline.reporting import print_status
from streamline.status import collect_status
from streamline.validation import validate_paths

TABLE = TableRef("db", "raw", "streamline_batches")  # the warehouse fixture's (conftest.py)


@pytest.fixture(scope="module")
def orders() -> Feed:
    result = validate_paths(find_project())
    feed = next(f for f in result.feeds if f.feed == "orders")
    # The ledger of the fakesnow fixture lives in db.raw.
    return dataclasses.replace(feed, raw=dataclasses.replace(feed.raw, database="db"))


def status(orders: Feed, s3: Any, runner: Any, later: float = 0) -> Any:
    """The report as of now, or later seconds from now."""
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=later)
    return collect_status([orders], lambda f: s3, lambda f: runner, "lake", now=now)


def text(report: Any) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    print_status(report, console)
    return console.export_text()


def test_published_batches_and_an_empty_landing_are_healthy(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    assert orders.layout.ledger == TABLE
    ledger.record(warehouse, TABLE, "orders", "20260101T000000.000000Z",
                  {"status": "published", "files": 2, "rows_loaded": 10})  # fmt: skip
    report = status(orders, s3, warehouse)
    assert report.healthy
    [feed] = report.feeds
    assert [(b.batch_id, b.status, b.rows_loaded) for b in feed.batches] == [
        ("20260101T000000.000000Z", "published", 10)
    ]
    assert "all feeds healthy" in text(report)
    body = json.loads(json.dumps(report.to_json()))
    assert body["healthy"] and body["feeds"][0]["batches"][0]["rows_loaded"] == 10


def test_a_failed_batch_is_named_with_its_error_and_how_to_recover(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    ledger.record(warehouse, TABLE, "orders", "20260101T000000.000000Z",
                  {"status": "failed", "failed_step": "load",
                   "error": "Numeric value 'x' is not recognized"})  # fmt: skip
    report = status(orders, s3, warehouse)
    assert not report.healthy
    [problem] = report.feeds[0].problems
    assert problem.kind == "failed" and problem.batch_id == "20260101T000000.000000Z"
    assert "failed at load: Numeric value 'x' is not recognized" in problem.message
    assert problem.hint == (
        "fix the cause, then: streamline reprocess orders 20260101T000000.000000Z (a file that "
        "cannot load: add --quarantine FILE=REASON to set it aside)"
    )
    assert "streamline reprocess orders 20260101T000000.000000Z" in text(report)
    # The hint reaches the Airflow the status was read from: as printed, it runs.
    now = dt.datetime.now(dt.UTC)
    local = collect_status([orders], lambda f: s3, lambda f: warehouse, "lake", now=now,
                           target="--local --workdir /tmp/up")  # fmt: skip
    [problem] = local.feeds[0].problems
    assert "streamline reprocess orders 20260101T000000.000000Z --local --workdir /tmp/up (" in (
        problem.hint or ""
    )


def test_an_unfinished_batch_is_stuck_after_the_threshold(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    ledger.record(warehouse, TABLE, "orders", "20260101T000000.000000Z", {"status": "loaded"})
    assert status(orders, s3, warehouse).healthy  # just now: still running
    later = orders.batch.stuck_after_seconds + 60
    [problem] = status(orders, s3, warehouse, later).feeds[0].problems
    assert problem.kind == "stuck" and "is loaded and has not moved for" in problem.message


def test_an_open_batch_missing_from_the_ledger_is_stuck_after_the_threshold(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    s3.put_object(Bucket="lake", Key="landing/orders/f1", Body=b"x\n")
    lake.register_batch(s3, "lake", "orders", orders.layout.lake, "20260101T000000.000000Z", "r1")
    report = status(orders, s3, warehouse)
    assert report.healthy and [b.files for b in report.feeds[0].open_batches] == [1]
    assert report.feeds[0].backlog.files == 0  # owned by the open batch, not waiting
    later = orders.batch.stuck_after_seconds + 60
    [problem] = status(orders, s3, warehouse, later).feeds[0].problems
    assert problem.kind == "stuck" and "not in the ledger" in problem.message


def test_a_batch_in_processing_outside_the_register_is_stuck_after_the_threshold(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    """Left by a version before the claims register, or moved there by hand."""
    old, bare = "20251231T235959Z", "20251231T235958Z"
    s3.put_object(Bucket="lake", Key=f"processing/{old}/orders.manifest.json", Body=b"{}")
    s3.put_object(Bucket="lake", Key=f"processing/{old}/orders/f1", Body=b"x\n")
    s3.put_object(Bucket="lake", Key=f"processing/{bare}/orders/f2", Body=b"x\n")
    s3.put_object(Bucket="lake", Key=f"processing/{old}/customers/f3", Body=b"x\n")  # not ours
    s3.put_object(Bucket="lake", Key="landing/orders/f4", Body=b"x\n")
    lake.register_batch(s3, "lake", "orders", orders.layout.lake, "20260101T000000.000000Z", "r1")
    lake.claim(s3, "lake", "orders", "orders", "20260101T000000.000000Z", "r1")  # open: not left
    assert status(orders, s3, warehouse).healthy  # just written: maybe a claim under way
    later = orders.batch.stuck_after_seconds + 60
    problems = status(orders, s3, warehouse, later).feeds[0].problems
    left = {p.batch_id: p for p in problems if "claims register" in p.message}
    assert sorted(left) == [bare, old]
    assert "2 objects in s3://lake/processing/20251231T235959Z/" in left[old].message
    assert left[old].hint == f"to finish it: streamline reprocess orders {old}"
    assert left[bare].hint == (
        "it has no manifest: move its files back to s3://lake/landing/orders/ to load them in "
        "a new batch"
    )


def test_data_waiting_too_long_in_landing_is_reported(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    s3.put_object(Bucket="lake", Key="landing/orders/f1", Body=b"x\n")
    s3.put_object(Bucket="lake", Key="landing/orders/", Body=b"")  # a folder: not data
    s3.put_object(Bucket="lake", Key="landing/orders/empty", Body=b"")
    report = status(orders, s3, warehouse)
    backlog = report.feeds[0].backlog
    assert (backlog.files, backlog.bytes, backlog.empty_files) == (1, 2, 1)
    assert report.healthy
    later = orders.batch.landing_stale_after_seconds + 60
    [problem] = status(orders, s3, warehouse, later).feeds[0].problems
    assert problem.kind == "stale" and "1 files have waited" in problem.message


@pytest.fixture
def cli_lake(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI's connections, by conn id: the in-process lake; no warehouse."""

    def no_warehouse(conn_id: str) -> Any:
        raise AssertionError("the refusals need no warehouse")

    monkeypatch.setattr(cli, "_hooks", lambda: (lambda conn_id: s3, no_warehouse))
    return s3


def test_reprocess_refuses_a_batch_the_lake_does_not_hold_before_any_run(
    cli_lake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = ("--airflow-url", "http://127.0.0.1:9", "--bucket", "lake")  # never called
    assert cli.main(["reprocess", "orders", "20200101T000000Z", *unreachable]) == 2
    assert "no batch 20200101T000000Z of orders in s3://lake" in capsys.readouterr().err


def test_reprocess_without_a_target_says_so_before_reading_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_hooks", lambda: pytest.fail("read the lake before the usage"))
    assert cli.main(["reprocess", "orders", "20200101T000000Z"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("say where Airflow runs: --local, --airflow-url or --mwaa-environment")


def test_reprocess_refuses_a_quarantine_file_the_batch_does_not_have(
    orders: Feed, cli_lake: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = "20260101T000000.000000Z"
    cli_lake.put_object(Bucket="lake", Key="landing/orders/bad.csv", Body=b"x\n")
    lake.claim(cli_lake, "lake", "orders", "orders", batch, "r1")
    args = ["reprocess", "orders", batch, "--quarantine", "poison.csv=bad export"]
    assert cli.main([*args, "--airflow-url", "http://127.0.0.1:9", "--bucket", "lake"]) == 2
    assert (
        f"--quarantine 'poison.csv' is not a file of batch {batch}; its files: bad.csv"
        in capsys.readouterr().err
    )


def test_status_without_a_connection_says_what_to_define(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_STREAMLINE_SNOWFLAKE", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
    assert cli.main(["status", "orders"]) == 2
    err = capsys.readouterr().err
    assert "streamline_snowflake" in err and "add --local" in err and "internal error" not in err


def test_an_unreadable_claims_register_is_reported_for_its_feed_alone(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    customers = dataclasses.replace(orders, feed="customers", source=dataclasses.replace(
        orders.source, prefix="customers"))  # fmt: skip
    s3.put_object(Bucket="lake", Key=orders.layout.lake.claims, Body=b"{not json")
    now = dt.datetime.now(dt.UTC)
    report = collect_status([orders, customers], lambda f: s3, lambda f: warehouse, "lake", now=now)
    broken, fine = report.feeds
    assert [p.kind for p in broken.problems] == ["unreadable"] and fine.healthy
    assert "claims register s3://lake/claims/orders.json is unreadable" in text(report)


def test_quarantine_prints_each_rejected_row_with_its_reason(
    orders: Feed, warehouse: ledger.ConnectionRunner, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from streamline.layout import QUARANTINE_COLUMNS
    from streamline.rendering import quote_identifier, quote_table

    feed = dataclasses.replace(orders, raw=dataclasses.replace(orders.raw, database="db"))
    table = feed.layout.quarantine  # db.raw.orders_quarantine, beside the fixture's ledger
    columns = ", ".join(f"{quote_identifier(c.name)} {c.type}" for c in QUARANTINE_COLUMNS)
    warehouse.run(f"CREATE TABLE {quote_table(table)} ({columns})")
    for batch, row in (("20260101T000000.000000Z", 2), ("20260102T000000.000000Z", 1)):
        warehouse.run(
            f"INSERT INTO {quote_table(table)} VALUES (%(b)s, 'processing/b/orders/f.csv', "
            "%(r)s, 'ord_1,x', 'too_few_fields', '2 fields; expected 8', NULL, "
            "CURRENT_TIMESTAMP())",
            parameters={"b": batch, "r": row},
        )
    rows = ledger.read_quarantine(warehouse, table)
    assert [(r.batch_id, r.source_row_number) for r in rows] == [
        ("20260102T000000.000000Z", 1), ("20260101T000000.000000Z", 2)
    ]  # fmt: skip
    [only] = ledger.read_quarantine(warehouse, table, "20260101T000000.000000Z")
    assert (only.error_code, only.error, only.record) == (
        "too_few_fields", "2 fields; expected 8", "ord_1,x"
    )  # fmt: skip

    # A file set aside whole: one row, replaced when finalize runs again.
    aside = SetAsideFile("processing/b/orders/g.csv", None, "file_set_aside", "bad export", None)
    for _ in range(2):
        ledger.record_set_aside(warehouse, table, "20260101T000000.000000Z", [aside])
    rows = ledger.read_quarantine(warehouse, table, "20260101T000000.000000Z")
    assert [(r.source_file, r.source_row_number, r.record, r.error_code) for r in rows] == [
        ("processing/b/orders/f.csv", 2, "ord_1,x", "too_few_fields"),
        ("processing/b/orders/g.csv", None, None, "file_set_aside"),
    ]

    class Hook:  # what the CLI gets: an Airflow hook, which opens a connection per query
        def get_records(self, sql: str, parameters: Any = None) -> Any:
            return warehouse.get_records(sql, parameters)

    monkeypatch.setattr(cli, "_hooks", lambda: (None, lambda conn_id: Hook()))
    monkeypatch.setattr(cli, "_select", lambda feeds, names: [feed])
    assert cli.main(["quarantine", "orders", "--batch", "20260101T000000.000000Z", "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["error"] == "2 fields; expected 8" and printed[0]["source_row_number"] == 2
    assert printed[1]["source_row_number"] is None and printed[1]["record"] is None
    assert cli.main(["quarantine", "orders", "--batch", "20260101T000000.000000Z"]) == 1
    text = capsys.readouterr().out
    assert "g.csv" in text and "file_set_aside" in text and "None" not in text
    assert cli.main(["quarantine", "orders", "--limit", "2"]) == 1
    assert "orders: 2 of 3 quarantined rows shown (raise --limit for more)" in (
        capsys.readouterr().out
    )


def test_status_shows_the_batches_a_backfill_redid(
    orders: Feed, s3: Any, warehouse: ledger.ConnectionRunner
) -> None:
    batches = ("20260101T000000.000000Z", "20260101T000001.000000Z", "20260102T000000.000000Z")
    for batch in batches:
        ledger.record(warehouse, TABLE, "orders", batch, {"status": "published", "run_id": "r1",
                      "claimed_at": "2026-01-02T00:00:00+00:00"}, count_run=True)  # fmt: skip
    for batch in batches[:2]:  # a reprocess of each takes it over: RUNS + 1
        ledger.record(warehouse, TABLE, "orders", batch, {"status": "published", "run_id": "rp_1",
                      "claimed_at": "2026-01-03T10:00:00+00:00"}, count_run=True)  # fmt: skip
    report = status(orders, s3, warehouse)
    redone = report.feeds[0].redone
    assert redone is not None
    assert (redone.batches, redone.first_batch_id, redone.last_batch_id) == (2, *batches[:2])
    line = f"redone (runs > 1): 2 batches, {batches[0]} to {batches[1]}; the last claimed again"
    assert f"{line} 2026-01-03 10:00:00" in text(report)
    body = json.loads(json.dumps(report.to_json()))["feeds"][0]
    assert body["redone"]["batches"] == 2 and [b["runs"] for b in body["batches"]] == [1, 2, 2]
    # A feed with no batch redone says nothing of it.
    ledger.record(warehouse, TABLE, "customers", batches[0], {"status": "published"})
    customers = dataclasses.replace(orders, feed="customers", source=dataclasses.replace(
        orders.source, prefix="customers"))  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    quiet = collect_status([customers], lambda f: s3, lambda f: warehouse, "lake", now=now)
    assert quiet.feeds[0].redone is None and "redone" not in text(quiet)
