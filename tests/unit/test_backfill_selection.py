"""`streamline reprocess` over several batches: which batches (from the lake, in batch order),
what is refused, and one DAG run at a time through a fake Airflow REST API."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from streamline import cli, lake
from streamline.backfill import (
    GONE,
    HELD,
    NOT_RUN,
    NOT_TAKEN_OVER,
    TIMED_OUT,
    AirflowRuns,
    BatchRun,
    run_batches,
    select_batches,
)
from streamline.errors import UsageError
from streamline.lake import LakeBatch, list_batches
from streamline.layout import LakeLayout
from streamline.ledger import LedgerRow

B1, B2, B3 = "20260101T000000.000000Z", "20260101T000001.500000Z", "20260102T000000.000000Z"
B4 = "20260103T000000.000000Z"
SHORT = "20260101T000001Z"
"""An id of the earlier one-second form: 20260101T000001.000000Z, so before B2, though 'Z' sorts
after '.' as text."""


def held(*ids: str, open_: dict[str, str | None] | None = None) -> dict[str, LakeBatch]:
    """The lake's batches: ids finished, open_ (batch id -> holding run) open."""
    found = {b: LakeBatch(b, True) for b in ids}
    found.update({b: LakeBatch(b, False, run) for b, run in (open_ or {}).items()})
    return found


def ids(selection: Any) -> list[str]:
    return [b.batch_id for b in selection.batches]


def test_a_range_is_inclusive_either_end_optional_and_in_batch_time_order() -> None:
    lake_ = held(B3, B2, SHORT, B1)
    assert ids(select_batches("orders", lake_, start=B1, end=B2)) == [B1, SHORT, B2]
    assert ids(select_batches("orders", lake_, start=B2)) == [B2, B3]
    assert ids(select_batches("orders", lake_, end=SHORT)) == [B1, SHORT]
    # A bound need not be a batch: any time in batch id form.
    assert ids(select_batches("orders", lake_, start="20260101T000000.000001Z")) == [
        SHORT,
        B2,
        B3,
    ]


def test_batch_ids_run_in_batch_order_once_each() -> None:
    lake_ = held(B1, B2, B3)
    assert ids(select_batches("orders", lake_, batch_ids=[B3, B1, B3])) == [B1, B3]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"batch_ids": [B1, "20250101T000000Z", "20240101T000000Z"]},
         "no batch 20240101T000000Z, 20250101T000000Z of orders in s3://lake: not open"),
        ({"start": "20270101T000000Z"},
         "no batch of orders in s3://lake from 20270101T000000Z to the last"),
        ({"start": B1, "end": "20260101T000000.000001Z"},  # between batches
         f"no batch of orders in s3://lake from {B1[:-1]}"),
        ({"start": B3, "end": B1}, f"--from {B3} is after --to {B1}"),
        ({"batch_ids": [B1], "start": B1}, "give BATCH_IDs or a range (--from/--to), not both"),
        ({}, "name the batches"),
    ],
)  # fmt: skip
def test_refusals_name_what_is_wrong(request_: dict[str, Any], message: str) -> None:
    lake_ = held(B1, B3)
    if "end" in request_ and request_.get("start") == B1:
        lake_ = held(B2, B3)  # nothing between B1 and a microsecond later
    with pytest.raises(UsageError) as raised:
        select_batches("orders", lake_, where="s3://lake", **request_)
    assert message in str(raised.value)


def test_an_open_batch_of_a_running_dag_run_is_never_raced() -> None:
    lake_ = held(B1, open_={B2: "scheduled__1", B3: "rp_failed"})
    states = {"scheduled__1": "running", "rp_failed": "failed"}
    selection = select_batches("orders", lake_, start=B1, run_state=states.get)
    # In a range: left out, and said so; an open batch whose run ended is reprocessed.
    assert ids(selection) == [B1, B3]
    assert [(b.batch_id, state) for b, state in selection.left_out] == [(B2, "running")]
    # Named by id: refused, before anything runs.
    message = f"batch {B2} is held by DAG run scheduled__1, which is running: a reprocess now"
    with pytest.raises(UsageError, match=re.escape(message)):
        select_batches("orders", lake_, batch_ids=[B1, B2], run_state=states.get)
    with pytest.raises(UsageError, match=r"every batch of orders from \S+ to \S+ is held by a"):
        select_batches("orders", lake_, start=B2, end=B2, run_state=states.get)


def test_the_lake_lists_published_open_and_leftover_batches_of_its_feed_only(s3: Any) -> None:
    layout = LakeLayout("orders")
    for batch in (B1, B2, B3):
        s3.put_object(Bucket="lake", Key=layout.manifest("processed", batch), Body=b"{}")
        s3.put_object(Bucket="lake", Key=f"{layout.folder('processed', batch)}f.csv", Body=b"x")
    s3.put_object(Bucket="lake", Key="processed/20260101T000003.000000Z/customers.manifest.json",
                  Body=b"{}")  # fmt: skip
    s3.put_object(Bucket="lake", Key=layout.manifest("processing", SHORT), Body=b"{}")  # leftover
    s3.put_object(Bucket="lake", Key="landing/orders/f1", Body=b"x\n")
    open_id = "20260101T000002.000000Z"
    lake.register_batch(s3, "lake", "orders", layout, open_id, "scheduled__1")
    found = list_batches(s3, "lake", layout)
    assert found == {
        B1: LakeBatch(B1, True), B2: LakeBatch(B2, True), B3: LakeBatch(B3, True),
        SHORT: LakeBatch(SHORT, False), open_id: LakeBatch(open_id, False, "scheduled__1"),
    }  # fmt: skip
    # A range lists processed/ only from its first second to its last (S3's StartAfter).
    bounded = list_batches(s3, "lake", layout, B2, B2)
    assert sorted(b for b, v in bounded.items() if v.finished) == [B2]


class FakeRuns:
    """Runs that end as told (failing: batches that fail), logging start, running and end."""

    def __init__(self, *failing: str) -> None:
        self.failing = failing
        self.log: list[tuple[str, str]] = []

    def start(self, batch_id: str) -> str | BatchRun:
        self.log.append(("start", batch_id))
        return f"rp_{len([e for e in self.log if e[0] == 'start'])}"

    def finish(
        self, batch_id: str, run_id: str, on_running: Callable[[], None] = lambda: None
    ) -> BatchRun:
        self.log.append(("running", batch_id))
        on_running()
        self.log.append(("end", batch_id))
        ok = batch_id not in self.failing
        return BatchRun(batch_id, run_id, "success", "published" if ok else "failed", ok)


def test_run_batches_stops_at_the_first_failure_unless_told_to_keep_going() -> None:
    runs = FakeRuns(B2)
    stopped = run_batches("orders", "orders", [B1, B2, B3], runs)
    assert [(r.batch_id, r.run_id, r.outcome) for r in stopped.runs] == [
        (B1, "rp_1", "published"), (B2, "rp_2", "failed"), (B3, None, NOT_RUN)
    ]  # fmt: skip
    assert stopped.stopped_at == B2 and not stopped.published
    # One run at a time: each triggered once the one before has ended.
    assert runs.log == [("start", B1), ("running", B1), ("end", B1),
                        ("start", B2), ("running", B2), ("end", B2)]  # fmt: skip
    going = run_batches("orders", "orders", [B1, B2, B3], FakeRuns(B2), keep_going=True)
    assert [r.outcome for r in going.runs] == ["published", "failed", "published"]
    assert going.stopped_at is None and not going.published


def test_the_next_run_waits_queued_behind_the_running_one() -> None:
    """For a DAG of one active run: the feed's own next run cannot take the slot in between."""
    runs = FakeRuns(B2)
    result = run_batches("orders", "orders", [B1, B2, B3, B4], runs, queue_next=True)
    assert runs.log == [
        ("start", B1), ("running", B1), ("start", B2), ("end", B1),
        ("running", B2), ("start", B3), ("end", B2),
        ("running", B3), ("end", B3),  # queued behind the failure: it runs, and is reported
    ]  # fmt: skip
    assert [r.outcome for r in result.runs] == ["published", "failed", "published", NOT_RUN]
    assert result.stopped_at == B2


class FakeApi:
    """Airflow's REST API as reprocess calls it: a run is first running, then ends in the state
    `ends` gives its batch (success by default)."""

    def __init__(self, ends: dict[str, str] | None = None) -> None:
        self.ends = ends or {}
        self.confs: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if method == "GET" and path == "/dags/orders":
            return {"is_paused": False}
        if method == "POST":
            assert body is not None
            self.confs.append(body["conf"])
            return {"dag_run_id": f"rp_{len(self.confs)}"}
        run_id = path.rsplit("/", 1)[1]
        if run_id not in self.seen:
            self.seen.add(run_id)
            return {"state": "running"}
        batch_id = self.confs[int(run_id[3:]) - 1]["batch_id"]
        return {"state": self.ends.get(batch_id, "success")}


def row(batch_id: str, run_id: str, status: str = "published", **values: Any) -> LedgerRow:
    fields = dict.fromkeys(LedgerRow.__dataclass_fields__)
    fields.update(feed="orders", batch_id=batch_id, run_id=run_id, status=status, runs=2,
                  rows_loaded=10, files_loaded=1)  # fmt: skip
    fields.update(values)
    return LedgerRow(**fields)


def airflow_runs(api: FakeApi, read_row: Any, owner: Any = None, **options: Any) -> AirflowRuns:
    finished = owner or (lambda batch_id: ("", None))
    return AirflowRuns(api, "orders", finished, read_row, poll=0, **options)


def test_one_batch_is_triggered_waited_for_and_judged_by_its_ledger_row() -> None:
    api, states = FakeApi({B2: "failed"}), []
    rows = {B1: row(B1, "rp_1"), B3: row(B3, "scheduled__1"),
            B2: row(B2, "rp_2", "failed", failed_step="load",
                    error="invalid identifier 'COUPON'")}  # fmt: skip
    runs = airflow_runs(api, rows.get, on_state=lambda run_id, state: states.append(state))
    run = runs.finish(B1, str(runs.start(B1)))
    assert (run.run_id, run.outcome, run.ok, run.rows_loaded) == ("rp_1", "published", True, 10)
    assert api.confs == [{"batch_id": B1}] and states == ["running", "success"]
    failed = runs.finish(B2, str(runs.start(B2)))
    assert (failed.outcome, failed.ok) == ("failed", False)
    assert failed.detail == "failed at load: invalid identifier 'COUPON'"
    # The run ended without taking the batch over: the ledger still has the run before it.
    stale = runs.finish(B3, str(runs.start(B3)))
    assert (stale.outcome, stale.ok, stale.row) == (NOT_TAKEN_OVER, False, None)
    assert "the ledger has no record of run rp_3" in (stale.detail or "")


def test_a_batch_held_gone_or_slow_is_not_published() -> None:
    api = FakeApi({B3: "running"})

    def never(batch_id: str) -> LedgerRow:
        raise AssertionError("no ledger read")

    held_ = airflow_runs(api, never, lambda b: ("manual__1", "running")).start(B1)
    assert isinstance(held_, BatchRun)
    assert (held_.outcome, held_.run_id, api.confs) == (HELD, None, [])
    assert held_.detail == (
        "held by DAG run manual__1, which is running: reprocess it once that run ends"
    )
    gone = airflow_runs(api, never, lambda b: (None, None)).start(B2)
    assert isinstance(gone, BatchRun) and gone.outcome == GONE and api.confs == []
    runs = airflow_runs(api, never, timeout=0.05)
    runs.poll = 0.01
    slow = runs.finish(B3, str(runs.start(B3)))
    assert (slow.outcome, slow.run_id, slow.state) == (TIMED_OUT, "rp_1", "running")


# --- the command ---------------------------------------------------------------------------

TARGET = ("--airflow-url", "http://127.0.0.1:9", "--bucket", "lake")  # never called, unless said


@pytest.fixture
def published(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Three published orders batches in the in-process lake; the CLI reads it (no warehouse)."""
    layout = LakeLayout("orders")
    for batch in (B1, B2, B3):
        s3.put_object(Bucket="lake", Key=layout.manifest("processed", batch), Body=b"{}")

    def no_warehouse(conn_id: str) -> Any:
        raise AssertionError("the selection needs no warehouse")

    monkeypatch.setattr(cli, "_hooks", lambda: (lambda conn_id: s3, no_warehouse))
    return s3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", B1, "--to", B2, "--quarantine", "f.csv=bad"],
         "--quarantine sets files of one batch aside: give one BATCH_ID, not a range"),
        ([B1, B2, "--quarantine", "f.csv=bad"], "give one BATCH_ID, not several batches"),
        (["--from", B1, "--no-wait"], "--no-wait triggers one batch's run; a range (--from/--to)"),
        ([B1, "--from", B1], "give BATCH_IDs or a range (--from/--to), not both"),
        (["--from", "yesterday"], "batch id 'yesterday' is not of the form"),
    ],
)  # fmt: skip
def test_the_command_refuses_before_reading_anything(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(cli, "_hooks", lambda: pytest.fail("read the lake before the usage"))
    assert cli.main(["reprocess", "orders", *args, *TARGET]) == 2
    assert message in capsys.readouterr().err


def test_a_range_without_a_target_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_hooks", lambda: pytest.fail("read the lake before the usage"))
    assert cli.main(["reprocess", "orders", "--from", B1, "--dry-run"]) == 2
    assert "say where Airflow runs" in capsys.readouterr().err


def test_dry_run_lists_the_batches_in_order_and_runs_nothing(
    published: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeApi()
    monkeypatch.setattr(cli, "_airflow_api", lambda args, stack: api)
    assert cli.main(["reprocess", "orders", "--from", B2, "--dry-run", *TARGET]) == 0
    assert api.confs == []  # no run triggered
    printed = capsys.readouterr().out
    assert "would reprocess 2 batches of orders, one DAG run at a time, in this order:" in printed
    assert printed.index(B2) < printed.index(B3) and B1 not in printed
    assert cli.main(["reprocess", "orders", "--to", "20251231T000000Z", "--dry-run", *TARGET]) == 2
    assert "no batch of orders in s3://lake from the first to 20251231T000000Z" in (
        capsys.readouterr().err
    )


def test_a_range_runs_each_batch_in_turn_and_ends_with_a_table(
    published: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = FakeApi({B1: "failed"})
    rows = {B1: ("rp_1", "failed"), B2: ("rp_2", "published"), B3: ("rp_3", "published")}
    monkeypatch.setattr(cli, "_airflow_api", lambda args, stack: api)
    monkeypatch.setattr(cli, "_ledger_row", lambda feed, b: row(
        b, *rows[b], failed_step="transform", error="MERGE: invalid identifier"))  # fmt: skip
    monkeypatch.setattr(cli.out, "width", 200)
    assert cli.main(["reprocess", "orders", B3, B2, B1, *TARGET]) == 1
    printed = capsys.readouterr()
    # orders is a poll feed (one active run): B2's run was queued while B1's ran, so it runs
    # too; B3's is never triggered.
    assert [c["batch_id"] for c in api.confs] == [B1, B2]
    assert "one DAG run at a time (the next one queued behind it)" in printed.out
    assert f"[1/3] batch {B1}: failed, 10 rows loaded from 1 files; failed at transform" in (
        printed.out
    )
    assert f"[2/3] triggered DAG run rp_2 of orders for batch {B2}" in printed.out
    assert f"[2/3] batch {B2}: published, 10 rows loaded from 1 files" in printed.out
    table = printed.out[printed.out.index("outcome") :]
    assert [line.split()[:3] for line in table.splitlines()[1:4]] == [
        [B1, "rp_1", "failed"], [B2, "rp_2", "published"], [B3, "-", "not"]
    ]  # fmt: skip
    assert "1 of 3 batches of orders published" in printed.out
    assert f"{B1}: failed at transform: MERGE: invalid identifier" in printed.out
    assert f"stopped at batch {B1}; not run: 1 batches, {B3} to {B3}" in printed.out
    assert "`streamline status orders` shows the batches" in printed.err

    api = FakeApi()
    rows[B1] = ("rp_1", "published")
    assert cli.main(["reprocess", "orders", "--from", B1, "--keep-going", *TARGET]) == 0
    assert [c["batch_id"] for c in api.confs] == [B1, B2, B3]
    assert "3 of 3 batches of orders published" in capsys.readouterr().out
