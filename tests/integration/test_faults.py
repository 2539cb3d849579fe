"""Faults injected into real DAG runs on the local stack; after recovery nothing is lost or doubled.

Every test lands events, runs the feed's DAG with a fault (a SIGKILL of the worker in the middle
of a step, or an S3 or warehouse error), lets the run retry or reprocesses the batch, and then
checks the invariants in `Local.assert_converged`: every event exactly once in raw, in one batch;
the mart is the latest row per key; landing/ and processing/ are empty and no batch is open; the
ledger says published for every batch, with the lake's file and row counts. Each test also checks
that its fault really fired.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from harness import Local, customer

from streamline.rendering import quote_table

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

FEED = "customers"
RAW = '"STREAMLINE"."RAW"."CUSTOMERS"'


def events(first: int, count: int, tier: str = "free") -> list[str]:
    return [
        customer(n, tier, f"10:00:{n % 60:02d}.{n // 60:03d}") for n in range(first, first + count)
    ]


def land_files(lake: Local, lines: list[str], per_file: int = 3) -> None:
    lake.land(FEED, *[lines[i : i + per_file] for i in range(0, len(lines), per_file)])


def open_batches(lake: Local) -> list[str]:
    return sorted(lake.read_json(lake.feeds[FEED].layout.lake.claims)["batches"])


def kill(
    fault_id: str, on: str, match: str, op: str | None = None, after: int = 0
) -> dict[str, Any]:
    fault = {"id": fault_id, "on": on, "match": match, "after": after, "action": "kill"}
    return {**fault, "op": op} if op else fault


def error(
    fault_id: str, on: str, match: str, times: int = 2, op: str | None = None
) -> dict[str, Any]:
    fault = {"id": fault_id, "on": on, "match": match, "times": times, "action": "raise"}
    return {**fault, "op": op} if op else fault


def test_a_worker_killed_during_the_claims_moves_loses_nothing(lake: Local) -> None:
    """The claim's process dies after two of its four copies: its batch is open with files in
    landing/ and in processing/; no later run takes them; a reprocess finishes the batch."""
    lines = events(1, 12)
    land_files(lake, lines)
    fault = kill("claim-moves", "s3", "^processing/", "CopyObject", 2)
    with lake.faults(fault) as fired:
        assert lake.run(FEED)["state"] == "killed"
    assert fired == ["claim-moves"]
    [batch_id] = open_batches(lake)
    # No callback ran and the load never began: the claims register alone holds the batch (the
    # status report shows it open, and stuck after batch.stuck_after_seconds).
    assert batch_id not in lake.ledger(FEED)
    assert lake.keys("landing/") and lake.run(FEED)["claimed"] is False
    recovered = lake.run(FEED, reprocess=batch_id)
    assert recovered["state"] == "success", recovered
    lake.assert_converged(FEED, lines)
    assert lake.ledger(FEED)[batch_id]["runs"] == 1  # the killed run recorded nothing


@pytest.mark.parametrize(
    ("point", "fault", "step"),
    [
        ("after claim", error("after-claim", "sql", rf"^DELETE FROM {RAW}"), "load"),
        ("during load", error("copy", "sql", r"^COPY INTO"), "load"),
        (
            "after load",
            error("after-load", "sql", r'^MERGE INTO "STREAMLINE"\."MART"'),
            "transform",
        ),
        ("during transform", error("tx", "sql", r"\"STATUS\" = 'transformed'"), "transform"),
        (
            "during checks",
            error("checks", "sql", r"'row_count' AS \"STREAMLINE_CHECK\""),
            "transform",
        ),
        ("during finalize", error("final", "s3", "^processed/", 99, "CopyObject"), "finalize"),
    ],
)
def test_an_error_in_a_step_fails_the_batch_and_a_reprocess_converges(
    lake: Local, point: str, fault: dict[str, Any], step: str
) -> None:
    lines = events(100, 6)
    land_files(lake, lines, per_file=2)
    if point == "during finalize":  # the first file moves, the others fail: part-way
        fault = {**fault, "after": 1}
    with lake.faults(fault) as fired:
        failed = lake.run(FEED)
    assert failed["state"] == "failed" and failed["tasks"][step]["state"] == "failed", point
    assert len(fired) >= 2 and set(fired) == {fault["id"]}  # the attempt and its retry
    batch_id = failed["batch_id"]
    row = lake.ledger(FEED)[batch_id]
    assert (row["status"], row["failed_step"]) == ("failed", step)
    assert "injected" in row["error"]
    if step == "load":  # the load's transaction rolled back: no rows of the batch
        assert lake.count(FEED, "raw") == 0
    if step == "transform":  # the MERGE rolled back with the ledger update
        assert lake.count(FEED, "mart") == 0
    recovered = lake.run(FEED, reprocess=batch_id)
    assert recovered["state"] == "success", recovered
    lake.assert_converged(FEED, lines)


def test_a_transient_s3_error_is_retried_within_the_run(lake: Local) -> None:
    lines = events(200, 9)
    land_files(lake, lines)
    fault = error("blip", "s3", "^processing/", times=1, op="CopyObject")
    with lake.faults(fault) as fired:
        run = lake.run(FEED)
    assert fired == ["blip"]
    assert run["state"] == "success", run
    lake.assert_converged(FEED, lines)
    row = lake.ledger(FEED)[run["batch_id"]]
    assert (row["runs"], row["error"], row["failed_step"]) == (1, None, None)


def test_a_poison_file_fails_its_batch_and_is_quarantined_by_a_reprocess(lake: Local) -> None:
    good = events(300, 6)
    land_files(lake, good)
    lake.put("landing/customers/poison.csv", b"cus_999999,x@example.com,X,DE,free,not a time,\n")
    failed = lake.run(FEED)
    assert failed["state"] == "failed" and failed["tasks"]["load"]["state"] == "failed"
    batch_id = failed["batch_id"]
    row = lake.ledger(FEED)[batch_id]
    assert row["status"] == "failed" and "poison.csv" in row["error"]
    assert "not a time" in row["error"]
    # `streamline status` names the failed batch and its error, and exits 1.
    status = lake.cli("status", FEED)
    assert status.returncode == 1, status.stdout
    assert f"batch {batch_id} failed at load" in status.stdout and "poison.csv" in status.stdout
    assert f"streamline reprocess customers {batch_id}" in status.stdout
    recovered = lake.run(
        FEED, reprocess=batch_id, quarantine={"poison.csv": "timestamp 'not a time' (ticket 42)"}
    )
    assert recovered["state"] == "success", recovered
    lake.assert_converged(FEED, good)
    assert lake.keys("quarantine/") == [f"quarantine/{batch_id}/customers/poison.csv"]
    manifest = lake.read_json(f"processed/{batch_id}/customers.manifest.json")
    poison = next(f for f in manifest["files"] if f["relative_key"] == "poison.csv")
    assert (poison["outcome"], poison["reason"]) == (
        "quarantined",
        "timestamp 'not a time' (ticket 42)",
    )
    status = lake.cli("status", FEED, "--json")
    assert status.returncode == 0, status.stdout
    report = json.loads(status.stdout)
    assert report["healthy"] and report["feeds"][0]["batches"][0]["status"] == "published"


def test_a_folder_marker_and_a_zero_byte_object_are_not_batches(lake: Local) -> None:
    lake.put("landing/customers/", b"")  # the S3 console's "Create folder"
    run = lake.run(FEED)
    assert run["claimed"] is False and run["tasks"]["detect"]["state"] == "skipped"
    assert lake.objects("landing/customers/", markers=True) == ["landing/customers/"]
    lake.put("landing/customers/2026/01/01/empty", b"")
    empty = lake.run(FEED)
    assert empty["state"] == "success" and empty["tasks"]["claim"]["state"] == "skipped"
    [row] = lake.ledger(FEED).values()
    assert (row["status"], row["empty_files"], row["files"]) == ("empty", 1, 0)
    assert lake.keys("landing/") == []
    assert lake.keys("quarantine/") == [f"quarantine/{row['batch_id']}/customers/2026/01/01/empty"]
    # Set aside, it does not wake the sensor again.
    assert lake.run(FEED)["claimed"] is False


@pytest.mark.slow  # about 2 min; tests/unit/test_lake.py runs the same backlog through the lake
def test_a_backlog_becomes_capped_batches_in_arrival_order(lake: Local) -> None:
    s3 = lake.stack.boto3_client("s3")
    lines = events(1000, 1000)

    def put(n: int) -> None:
        s3.put_object(Bucket=lake.stack.bucket, Key=f"landing/customers/f{n:04d}",
                      Body=(lines[n] + "\n").encode())  # fmt: skip

    with ThreadPoolExecutor(max_workers=16) as pool:  # 1,000 objects, one event each
        list(pool.map(put, range(len(lines))))
    sizes = []
    for _ in range(6):
        run = lake.run(FEED)
        if not run["claimed"]:
            break
        assert run["state"] == "success", run
        sizes.append(run["copy"]["files"])
    assert sizes == [200] * 5  # batch.max_files: 200 in the test specs
    lake.assert_converged(FEED, lines)
    batches = sorted(lake.ledger(FEED))
    first = lake.read_json(f"processed/{batches[0]}/customers.manifest.json")
    assert sorted(f["relative_key"] for f in first["files"]) == [f"f{n:04d}" for n in range(200)]


@pytest.mark.slow  # a second worker; tests/integration/test_claims.py races claims through S3
def test_racing_runs_and_runs_in_the_same_second_never_share_a_file(lake: Local) -> None:
    """Two DAG runs of one feed at once, as with max_active_runs > 1, a manual reprocess during
    the continuous run, or two environments on one lake; started 0.5 s apart, a file landing
    between them."""
    second = lake.extra_worker(FEED)
    try:
        lines = events(3000, 60)
        land_files(lake, lines[:57], per_file=1)
        lake.start(FEED)
        time.sleep(0.5)
        land_files(lake, lines[57:])
        second.send(None)
        runs = [lake.wait(FEED), second.receive()]
    finally:
        second.stop()
    assert all(r is not None and r["state"] == "success" for r in runs), runs
    claimed = [r for r in runs if r and r["claimed"]]
    assert len({r["batch_id"] for r in claimed}) == len(claimed)
    if lake.keys("landing/"):  # the second run claimed before the last file landed
        lake.run(FEED)
    lake.assert_converged(FEED, lines)


@pytest.mark.slow  # restarts the worker
def test_the_raw_table_is_untouched_by_a_killed_load(lake: Local) -> None:
    """A worker killed in the middle of its COPY: the load's transaction never commits."""
    lines = events(4000, 6)
    land_files(lake, lines)
    with lake.faults(kill("mid-copy", "sql", r'^UPDATE "STREAMLINE"\."RAW"\."STREAMLINE_BATCHES"')):
        assert lake.run(FEED)["state"] == "killed"
    assert lake.count(FEED, "raw") == 0
    assert lake.query(f"SELECT COUNT(*) FROM {quote_table(lake.feeds[FEED].raw)}") == [(0,)]
    [batch_id] = open_batches(lake)
    assert lake.run(FEED, reprocess=batch_id)["state"] == "success"
    lake.assert_converged(FEED, lines)
