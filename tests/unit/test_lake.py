"""Claiming and finalizing batches in the lake, with faults injected (moto in-process, no network).

Each test ends by checking the invariant the pipeline lives by: every landed object is in exactly
one place, and in at most one batch.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from streamline import lake
from streamline.batches import batch_id_for, batch_time, check_batch_id, format_batch_id
from streamline.errors import BatchError
from streamline.lake import CopyResult, Limits
from streamline.layout import LakeLayout

BUCKET = "lake"
BATCH = "20260101T000000.000000Z"
LATER = "20260101T000001.000000Z"
LAYOUT = LakeLayout("orders")


def put(s3: Any, key: str, body: bytes = b"a,b\n1,2\n") -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def keys(s3: Any, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def data_keys(s3: Any, prefix: str = "") -> list[str]:
    """Objects that are data: not manifests, registers or folder markers."""
    return [
        k
        for k in keys(s3, prefix)
        if not k.endswith(("/", ".manifest.json")) and not k.startswith("claims/")
    ]


def register(s3: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        s3.get_object(Bucket=BUCKET, Key=LAYOUT.claims)["Body"].read()
    )
    return body


def assert_each_object_once(s3: Any, names: list[str]) -> None:
    """Every landed object sits in exactly one place in the lake (by its file name)."""
    found = Counter(k.rsplit("/", 1)[-1] for k in data_keys(s3))
    assert {n: found[n] for n in names} == dict.fromkeys(names, 1), found


def loaded(*names: str) -> list[CopyResult]:
    return [
        CopyResult(f"s3://{BUCKET}/processing/{BATCH}/orders/{n}", "LOADED", 1, 1, 0) for n in names
    ]


def failing_copies(
    monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...], error: Exception
) -> Callable[[], None]:
    """Make every copy of an object whose key ends in one of names raise error; the function
    returned puts the real copy back (the cause fixed)."""
    real_copy = lake.copy_object

    def copy(*args: Any) -> None:  # s3, bucket, source, target, size, etag
        if args[2].endswith(names):
            raise type(error)(*error.args)  # a new one each time: copies run in threads
        real_copy(*args)

    monkeypatch.setattr(lake, "copy_object", copy)
    return lambda: monkeypatch.setattr(lake, "copy_object", real_copy)


def test_claim_moves_landing_files_and_writes_a_manifest(s3: Any) -> None:
    put(s3, "landing/orders/2026/01/01/00/f1")
    put(s3, "landing/orders/2026/01/01/00/f2", b"x" * 10)
    put(s3, "landing/orders_eu/other")  # a sibling prefix is not ours
    manifest = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    assert manifest is not None and len(manifest.files) == 2
    assert keys(s3, "landing/") == ["landing/orders_eu/other"]
    assert keys(s3, f"processing/{BATCH}/orders/") == [
        f"processing/{BATCH}/orders/2026/01/01/00/f1",
        f"processing/{BATCH}/orders/2026/01/01/00/f2",
    ]
    body = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"processing/{BATCH}/orders.manifest.json")["Body"].read()
    )
    assert body["file_count"] == 2 and body["total_bytes"] == 8 + 10
    assert body["run_id"] == "run-1"
    assert all(len(f["etag"]) == 32 and f["outcome"] == "claimed" for f in body["files"])
    assert list(register(s3)["batches"]) == [BATCH]


def test_claim_with_nothing_landed_makes_no_batch(s3: Any) -> None:
    assert lake.claim(s3, BUCKET, "orders", "orders", BATCH) is None
    assert keys(s3) == []


def test_a_folder_marker_is_neither_data_nor_a_batch(s3: Any) -> None:
    put(s3, "landing/orders/", b"")  # what the S3 console's "Create folder" makes
    assert not lake.has_claimable(s3, BUCKET, LAYOUT)
    assert lake.claim(s3, BUCKET, "orders", "orders", BATCH) is None
    assert keys(s3) == ["landing/orders/"]  # left alone


def test_zero_byte_objects_are_set_aside_and_recorded(s3: Any) -> None:
    put(s3, "landing/orders/empty", b"")
    put(s3, "landing/orders/f1")
    assert lake.has_claimable(s3, BUCKET, LAYOUT)
    manifest = lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    assert manifest is not None
    assert [e.relative_key for e in manifest.load_files] == ["f1"]
    assert [(e.relative_key, e.reason) for e in manifest.empty_files] == [
        ("empty", lake.EMPTY_OBJECT)
    ]
    assert keys(s3, "quarantine/") == [f"quarantine/{BATCH}/orders/empty"]
    assert not lake.has_claimable(s3, BUCKET, LAYOUT)  # they do not wake the sensor again
    done = lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"))
    assert [(e.relative_key, e.outcome) for e in done.files] == [
        ("f1", "loaded"),
        ("empty", "quarantined"),
    ]
    assert keys(s3, "quarantine/") == [f"quarantine/{BATCH}/orders/empty"]


def test_a_retried_claim_reuses_the_batch_and_ignores_new_arrivals(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    first = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    put(s3, "landing/orders/f2")  # lands after the claim: belongs to the next batch
    again = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    assert again is not None and first is not None
    assert again.files == first.files and again.reclaimed  # the same batch, registered again
    assert keys(s3, "landing/") == ["landing/orders/f2"]


def test_another_run_with_the_same_batch_id_is_refused(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    with pytest.raises(BatchError, match="belongs to DAG run run-1"):
        lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-2")
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"))
    put(s3, "landing/orders/f2")
    with pytest.raises(BatchError, match="was used before, by DAG run run-1"):
        lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-2")
    assert keys(s3, "landing/") == ["landing/orders/f2"]  # nothing taken


def test_runs_in_the_same_second_get_their_own_batches(s3: Any) -> None:
    start = dt.datetime(2026, 1, 1, 10, 0, 0, 100000, tzinfo=dt.UTC)
    first_id, second_id = (format_batch_id(start + dt.timedelta(seconds=s)) for s in (0, 0.5))
    assert first_id != second_id and first_id[:15] == second_id[:15]
    put(s3, "landing/orders/f1")
    first = lake.claim(s3, BUCKET, "orders", "orders", first_id, "run-1")
    put(s3, "landing/orders/f2")  # lands between the two runs
    second = lake.claim(s3, BUCKET, "orders", "orders", second_id, "run-2")
    assert first is not None and second is not None
    assert [e.relative_key for e in first.files] == ["f1"]
    assert [e.relative_key for e in second.files] == ["f2"]
    assert keys(s3, "landing/") == []


def test_an_interrupted_claim_is_finished_by_the_retry(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        put(s3, f"landing/orders/f{n}")
    fixed = failing_copies(monkeypatch, ("f1", "f3"), ConnectionError("network blip"))
    with pytest.raises(BatchError, match="2 of 5 objects failed") as info:
        lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    assert "landing/orders/f1" in str(info.value) and "network blip" in str(info.value)
    # One failed move did not stop the others.
    assert keys(s3, "landing/") == ["landing/orders/f1", "landing/orders/f3"]
    fixed()
    manifest = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    assert manifest is not None and len(manifest.files) == 5
    assert keys(s3, "landing/") == []
    assert len(keys(s3, f"processing/{BATCH}/orders/")) == 5


def test_a_stuck_claim_is_never_taken_over_and_a_reprocess_completes_it(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One object whose copy always fails (over the single-copy limit, or long throttling)."""
    names = [f"f{n:03d}" for n in range(40)]
    for name in names:
        put(s3, f"landing/orders/{name}")
    fixed = failing_copies(
        monkeypatch, ("f017",), OSError("SlowDown: please reduce your request rate")
    )
    for _attempt in range(2):  # the task's retries
        with pytest.raises(BatchError, match="1 of 40 objects failed"):
            lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    assert keys(s3, "landing/") == ["landing/orders/f017"]
    # Later runs do not claim the stuck batch's file, and a new file still gets its own batch.
    assert not lake.has_claimable(s3, BUCKET, LAYOUT)
    assert lake.claim(s3, BUCKET, "orders", "orders", LATER, "run-2") is None
    put(s3, "landing/orders/new")
    later = lake.claim(s3, BUCKET, "orders", "orders", LATER, "run-2")
    assert later is not None and [e.relative_key for e in later.files] == ["new"]
    # The cause is fixed; a reprocess run takes the batch over and completes it.
    fixed()
    resumed = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-3", reprocess=True)
    assert resumed is not None and len(resumed.files) == 40 and resumed.run_id == "run-3"
    assert keys(s3, "landing/") == []
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded(*names))
    assert len(data_keys(s3, f"processed/{BATCH}/")) == 40
    assert_each_object_once(s3, [*names, "new"])


def test_a_file_can_be_quarantined_by_a_reprocess(s3: Any) -> None:
    put(s3, "landing/orders/good")
    put(s3, "landing/orders/poison")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    manifest = lake.register_batch(
        s3, BUCKET, "orders", LAYOUT, BATCH, "run-2", reprocess=True,
        quarantine={"poison": "unreadable: truncated gzip"},
    )  # fmt: skip
    assert manifest is not None
    lake.move_batch(s3, BUCKET, LAYOUT, manifest, finished=False)
    assert [e.relative_key for e in manifest.load_files] == ["good"]
    assert keys(s3, "quarantine/") == [f"quarantine/{BATCH}/orders/poison"]
    done = lake.finalize(s3, BUCKET, "orders", BATCH, loaded("good"))
    assert {e.relative_key: (e.outcome, e.reason) for e in done.files} == {
        "good": ("loaded", None),
        "poison": ("quarantined", "unreadable: truncated gzip"),
    }
    with pytest.raises(BatchError, match="no file 'nope'"):
        lake.register_batch(
            s3, BUCKET, "orders", LAYOUT, BATCH, "run-3", reprocess=True, quarantine={"nope": "x"}
        )


def test_a_claim_paused_while_a_reprocess_published_its_batch_fails_and_moves_nothing(
    s3: Any,
) -> None:
    """The original run registered its batch and then stalled before its moves; an operator's
    reprocess took the batch over and published it. When the original run wakes, its moves must
    not pull the loaded files back out of processed/: it fails, and the lake stays as published."""
    names = ["f1", "f2", "f3"]
    for name in names:
        put(s3, f"landing/orders/{name}")
    stalled = lake.register_batch(s3, BUCKET, "orders", LAYOUT, BATCH, "run-1")
    assert stalled is not None and not stalled.reclaimed
    taken = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-2", reprocess=True)
    assert taken is not None and taken.reclaimed
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded(*names), run_id="run-2")
    published = sorted(keys(s3, "processed/"))
    with pytest.raises(BatchError, match="gone"):
        lake.move_batch(s3, BUCKET, LAYOUT, stalled, finished=False)
    assert sorted(keys(s3, "processed/")) == published
    assert keys(s3, "processing/") == [] and register(s3)["batches"] == {}
    assert_each_object_once(s3, names)


@pytest.mark.parametrize(
    ("run_id", "reprocess"),
    [("run-2", True), ("run-1", False)],
    ids=["a reprocess takes the batch over", "the run cleared from its claim"],
)
def test_a_batch_claimed_again_after_a_finalize_failed_part_way_takes_its_files_back(
    s3: Any, monkeypatch: pytest.MonkeyPatch, run_id: str, reprocess: bool
) -> None:
    """A finalize whose retries ran out left some files in processed/ and the batch open. A
    claim that registers the batch again (a reprocess, or the same DAG run cleared from its
    claim) gathers them back, and the batch publishes whole."""
    names = [f"f{n}" for n in range(4)]
    for name in names:
        put(s3, f"landing/orders/{name}")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    fixed = failing_copies(monkeypatch, ("f3",), OSError("down"))
    with pytest.raises(BatchError):
        lake.finalize(s3, BUCKET, "orders", BATCH, loaded(*names), run_id="run-1")
    assert len(data_keys(s3, "processed/")) == 3 and BATCH in register(s3)["batches"]
    fixed()
    again = lake.claim(s3, BUCKET, "orders", "orders", BATCH, run_id, reprocess=reprocess)
    assert again is not None and again.reclaimed
    assert len(data_keys(s3, f"processing/{BATCH}/")) == 4 and data_keys(s3, "processed/") == []
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded(*names), run_id=run_id)
    assert len(data_keys(s3, f"processed/{BATCH}/")) == 4
    assert_each_object_once(s3, names)


def test_a_run_whose_batch_a_reprocess_published_cannot_finalize_it(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-2", reprocess=True)
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"), run_id="run-2")
    with pytest.raises(BatchError, match="published by DAG run run-2"):
        lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"), run_id="run-1")
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"), run_id="run-2")  # its own retry


def test_files_skip_file_set_aside_go_to_quarantine_with_their_reason(s3: Any) -> None:
    for name in ("ok", "bad"):
        put(s3, f"landing/orders/{name}")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    folder = f"processing/{BATCH}/orders/"
    xcom = [
        [["Statement executed successfully."]],
        [
            [f"s3://{BUCKET}/{folder}ok", "LOADED", 2, 2, 2, 0, None, None, None, None],
            [f"s3://{BUCKET}/{folder}bad", "LOADED", 3, 3, 3, 0, None, None, None, None],
        ],
        [["skipped_file", folder + "bad", "file skipped (on_error: skip_file): row 2 ..."]],
    ]
    skipped = lake.skipped_files(xcom)
    assert skipped == {folder + "bad": "file skipped (on_error: skip_file): row 2 ..."}
    results = lake.set_skipped_aside(lake.copy_results(xcom), skipped)
    done = lake.finalize(s3, BUCKET, "orders", BATCH, results)
    outcomes = {e.relative_key: (e.outcome, e.reason) for e in done.files}
    assert outcomes == {
        "ok": ("loaded", None),
        "bad": ("quarantined", "COPY LOAD_FAILED: file skipped (on_error: skip_file): row 2 ..."),
    }
    assert keys(s3, "quarantine/") == [f"quarantine/{BATCH}/orders/bad"]


def test_files_set_aside_whole_are_listed_for_the_quarantine_table(s3: Any) -> None:
    for name in ("ok", "unreadable", "skipped", "aside"):
        put(s3, f"landing/orders/{name}")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")  # its load failed
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-2", reprocess=True,
               quarantine={"aside": "bad export (ticket 7)"})  # fmt: skip
    folder = f"processing/{BATCH}/orders/"
    results = [
        CopyResult(f"s3://{BUCKET}/{folder}ok", "LOADED", 1, 1, 0),
        CopyResult(f"s3://{BUCKET}/{folder}unreadable", "LOAD_FAILED", 4, 0, 1,
                   "Found character 'x' instead of field delimiter ','", 3,
                   '"ORDERS_LANDING"["STATUS":3]'),
        CopyResult(f"s3://{BUCKET}/{folder}skipped", "LOADED", 2, 2, 0),
    ]  # fmt: skip
    skipped = {folder + "skipped": "file skipped (on_error: skip_file): row 2 was rejected: ..."}
    results = lake.set_skipped_aside(results, skipped)
    done = lake.finalize(s3, BUCKET, "orders", BATCH, results, run_id="run-2")
    kept = f"; the file is kept whole in quarantine/{BATCH}/orders/"
    assert lake.files_set_aside(done, results, skipped) == [
        lake.SetAsideFile(folder + "aside", None, "file_set_aside",
                          f"bad export (ticket 7){kept}aside", None),
        lake.SetAsideFile(folder + "unreadable", 3, "file_unreadable",
                          "the CSV parser could not read the file: Found character 'x' instead "
                          f"of field delimiter ','{kept}unreadable",
                          '"ORDERS_LANDING"["STATUS":3]'),
    ]  # fmt: skip
    assert keys(s3, "quarantine/") == [
        f"quarantine/{BATCH}/orders/{name}" for name in ("aside", "skipped", "unreadable")
    ]


def test_a_batch_whose_files_do_not_reconcile_is_not_finalized(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files in the manifest = loaded + set aside + deferred, or nothing moves."""
    put(s3, "landing/orders/f1")
    put(s3, "landing/orders/f2")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    decide = lake.decide_outcomes

    def forgets_f2(manifest: Any, layout: Any, results: Any) -> Any:
        decided = decide(manifest, layout, results)
        files = [replace(e, outcome=lake.CLAIMED) if e.relative_key == "f2" else e
                 for e in decided.files]  # fmt: skip
        return replace(decided, files=tuple(files))

    monkeypatch.setattr(lake, "decide_outcomes", forgets_f2)
    with pytest.raises(BatchError, match="does not reconcile: 1 of its 2 files have no outcome"):
        lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1", "f2"))
    assert sorted(data_keys(s3, "processing/")) == [
        f"processing/{BATCH}/orders/f1", f"processing/{BATCH}/orders/f2"
    ]  # fmt: skip


def test_finalize_moves_files_and_manifest_to_processed(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"))
    assert keys(s3, "processing/") == []
    assert keys(s3, "processed/") == [
        f"processed/{BATCH}/orders.manifest.json",
        f"processed/{BATCH}/orders/f1",
    ]
    assert register(s3)["batches"] == {}
    # Finalizing again (a retried task) changes nothing.
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"))
    assert len(keys(s3, "processed/")) == 2


def test_an_interrupted_finalize_is_finished_by_the_retry(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"f{n}" for n in range(6)]
    for name in names:
        put(s3, f"landing/orders/{name}")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    fixed = failing_copies(monkeypatch, ("f4",), OSError("down"))
    with pytest.raises(BatchError):
        lake.finalize(s3, BUCKET, "orders", BATCH, loaded(*names))
    assert BATCH in register(s3)["batches"]  # still open
    fixed()
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded(*names))
    assert len(data_keys(s3, f"processed/{BATCH}/")) == 6
    assert_each_object_once(s3, names)


def test_files_the_copy_skipped_are_quarantined_or_returned_never_processed(s3: Any) -> None:
    for name in ("ok", "bad", "late"):
        put(s3, f"landing/orders/{name}")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    folder = f"s3://{BUCKET}/processing/{BATCH}/orders/"
    results = [
        CopyResult(folder + "ok", "LOADED", 1, 1, 0),
        CopyResult(folder + "bad", "LOAD_FAILED", 1, 0, 1, "Numeric value 'x' is not recognized",
                   1, '"ORDERS"["AMOUNT":5]'),
    ]  # fmt: skip
    done = lake.finalize(s3, BUCKET, "orders", BATCH, results)  # "late": past SIZE_LIMIT
    outcomes = {e.relative_key: e.outcome for e in done.files}
    assert outcomes == {"ok": "loaded", "bad": "quarantined", "late": "deferred"}
    bad = next(e for e in done.files if e.relative_key == "bad")
    assert "Numeric value 'x' is not recognized (line 1)" in (bad.reason or "")
    assert '"ORDERS"["AMOUNT":5]' in (bad.reason or "")
    assert data_keys(s3, "processed/") == [f"processed/{BATCH}/orders/ok"]
    assert keys(s3, "quarantine/") == [f"quarantine/{BATCH}/orders/bad"]
    assert keys(s3, "landing/") == ["landing/orders/late"]
    # The returned file is claimable again, by the next batch.
    assert lake.has_claimable(s3, BUCKET, LAYOUT)
    later = lake.claim(s3, BUCKET, "orders", "orders", LATER)
    assert later is not None and [e.relative_key for e in later.files] == ["late"]
    assert_each_object_once(s3, ["ok", "bad", "late"])


def test_reprocessing_a_finished_batch_moves_its_loaded_files_back(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    put(s3, "landing/orders/f2")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"))  # f2: deferred, back in landing
    manifest = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-2", reprocess=True)
    assert manifest is not None and [e.relative_key for e in manifest.files] == ["f1"]
    assert data_keys(s3, "processed/") == []
    assert data_keys(s3, f"processing/{BATCH}/") == [f"processing/{BATCH}/orders/f1"]
    assert keys(s3, "landing/") == ["landing/orders/f2"]


def test_a_cleared_run_reprocesses_its_own_finished_batch(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"))
    again = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")  # same run, cleared
    assert again is not None and [e.relative_key for e in again.files] == ["f1"]


def test_reprocessing_an_unknown_batch_fails_clearly(s3: Any) -> None:
    with pytest.raises(BatchError, match="no batch"):
        lake.claim(s3, BUCKET, "orders", "orders", BATCH, reprocess=True)
    assert lake.batch_manifest(s3, BUCKET, LAYOUT, BATCH) is None


def test_a_batch_claimed_before_the_register_can_be_finalized_and_reprocessed(s3: Any) -> None:
    """Manifests of earlier versions: no outcomes, no run id, no register entry."""
    old = "20251231T235959Z"
    legacy = {
        "feed": "orders", "batch_id": old, "prefix": "orders", "file_count": 1,
        "total_bytes": 8, "files": [
            {"landing_key": "landing/orders/f1", "relative_key": "f1", "size": 8, "etag": "x"}
        ],
    }  # fmt: skip
    put(s3, f"processing/{old}/orders.manifest.json", json.dumps(legacy).encode())
    put(s3, f"processing/{old}/orders/f1")
    assert lake.batch_manifest(s3, BUCKET, LAYOUT, old) is not None
    done = lake.finalize(s3, BUCKET, "orders", old)
    assert [e.outcome for e in done.files] == ["loaded"]
    again = lake.claim(s3, BUCKET, "orders", "orders", old, "run-9", reprocess=True)
    assert again is not None and data_keys(s3, f"processing/{old}/") == [
        f"processing/{old}/orders/f1"
    ]


def test_finalize_without_a_batch_fails_clearly(s3: Any) -> None:
    with pytest.raises(BatchError, match="no manifest"):
        lake.finalize(s3, BUCKET, "orders", BATCH)


def test_select_batch_takes_arrival_order_and_a_large_file_alone() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    objects = [
        lake.LandedObject("landing/o/b", 5, "e", t0 + dt.timedelta(seconds=1)),
        lake.LandedObject("landing/o/a", 5, "e", t0 + dt.timedelta(seconds=2)),
        lake.LandedObject("landing/o/huge", 500, "e", t0),
        lake.LandedObject("landing/o/owned", 5, "e", t0),
    ]
    picked = lake.select_batch(objects, {"landing/o/owned"}, Limits(max_files=5, max_bytes=100))
    assert [o.key for o in picked] == ["landing/o/huge"]  # first to arrive, alone: over the cap
    rest = lake.select_batch(objects[:2], set(), Limits(max_files=5, max_bytes=100))
    assert [o.key for o in rest] == ["landing/o/b", "landing/o/a"]


def test_large_objects_move_with_a_multipart_copy(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lake, "MULTIPART_COPY_THRESHOLD", 5 * 1024**2)
    monkeypatch.setattr(lake, "MULTIPART_CHUNK_BYTES", 5 * 1024**2)
    big = bytes(range(256)) * (12 * 1024**2 // 256)  # 12 MiB: three parts
    put(s3, "landing/orders/big", big)
    calls = Counter[str]()
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.update([model.name]))
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    assert calls["UploadPartCopy"] == 3 and calls["CopyObject"] == 0
    body = s3.get_object(Bucket=BUCKET, Key=f"processing/{BATCH}/orders/big")["Body"].read()
    assert body == big


def test_copy_results_are_read_from_the_load_steps_xcom() -> None:
    xcom = [
        [["Statement executed successfully."]],
        [[3]],
        [
            ["s3://l/processing/B/o/f1", "LOADED", 2, 2, 2, 0, None, None, None, None],
            ["s3://l/processing/B/o/f2", "LOAD_FAILED", 1, 0, 1, 1, "bad", 1, 3, '"T"["A":1]'],
        ],
        [[1, 0]],
    ]
    results = lake.copy_results({"__classname__": "builtins.list", "__data__": xcom})
    assert [(r.file, r.status, r.rows_parsed, r.errors_seen) for r in results] == [
        ("s3://l/processing/B/o/f1", "LOADED", 2, 0),
        ("s3://l/processing/B/o/f2", "LOAD_FAILED", 1, 1),
    ]
    assert results[1].first_error_column_name == '"T"["A":1]'


def test_batch_ids() -> None:
    when = dt.datetime(2026, 1, 1, 1, 2, 3, 456789, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert batch_id_for(when) == "20251231T230203.456789Z"
    assert batch_time("20251231T230203.456789Z") == when
    assert batch_id_for(when, {"batch_id": "20200101T000000Z"}) == "20200101T000000Z"  # old form
    assert sorted([batch_id_for(when + dt.timedelta(microseconds=n)) for n in (9, 1, 5)]) == [
        batch_id_for(when + dt.timedelta(microseconds=n)) for n in (1, 5, 9)
    ]
    for bad in ["20200101", "20201301T000000Z", "x'; drop", "20200101T000000z",
                "20200101T000000.12Z", "20200101T000000.000000Z\n"]:  # fmt: skip
        with pytest.raises(BatchError):
            check_batch_id(bad)
    with pytest.raises(BatchError):
        batch_id_for(dt.datetime(2026, 1, 1))
    with pytest.raises(BatchError):
        batch_id_for(when, {"batch_id": "../../etc"})


def test_a_backlog_of_250_objects_becomes_five_batches_of_50(s3: Any) -> None:
    names = [f"f{n:04d}" for n in range(250)]
    for name in names:
        put(s3, f"landing/orders/{name}", b"x\n")
    batches = []
    for number in range(6):
        batch_id = f"20260101T0000{number:02d}.000000Z"
        manifest = lake.claim(s3, BUCKET, "orders", "orders", batch_id, f"run-{number}",
                              limits=Limits(max_files=50))  # fmt: skip
        if manifest is None:
            break
        files = [e.relative_key for e in manifest.files]
        batches.append(files)
        done = [CopyResult(f"s3://{BUCKET}/processing/{batch_id}/orders/{n}", "LOADED", 1, 1, 0)
                for n in files]  # fmt: skip
        lake.finalize(s3, BUCKET, "orders", batch_id, done)
    assert [len(b) for b in batches] == [50] * 5
    assert [n for b in batches for n in b] == names  # arrival order, each once
    assert keys(s3, "landing/") == [] and keys(s3, "processing/") == []
    assert_each_object_once(s3, names)


def body(s3: Any, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


def test_a_landing_key_written_again_is_a_new_object_for_a_later_batch(s3: Any) -> None:
    """A producer that reuses a key (a daily export.csv): the open batch keeps its own version,
    a reprocess of the finished batch takes its own file back, and the new object waits for a
    batch of its own."""
    put(s3, "landing/orders/export.csv", b"v1\n")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    put(s3, "landing/orders/export.csv", b"v2\n")  # while the batch is open (say, failed)
    again = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "rp-1", reprocess=True)
    assert again is not None
    assert body(s3, f"processing/{BATCH}/orders/export.csv") == b"v1\n"
    assert body(s3, "landing/orders/export.csv") == b"v2\n"
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("export.csv"), "rp-1")
    # Reprocessing the finished batch takes v1 back from processed/, not v2 from landing/.
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "rp-2", reprocess=True)
    assert body(s3, f"processing/{BATCH}/orders/export.csv") == b"v1\n"
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("export.csv"), "rp-2")
    assert body(s3, f"processed/{BATCH}/orders/export.csv") == b"v1\n"
    later = lake.claim(s3, BUCKET, "orders", "orders", LATER, "run-2")
    assert later is not None and [e.relative_key for e in later.files] == ["export.csv"]
    assert body(s3, f"processing/{LATER}/orders/export.csv") == b"v2\n"


def test_a_run_whose_batch_a_reprocess_took_over_cannot_finalize_or_release_it(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "rp-1", reprocess=True)
    with pytest.raises(BatchError, match="taken over by DAG run rp-1"):
        lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"), "run-1")
    lake.release(s3, BUCKET, LAYOUT, BATCH, "run-1")  # a late release of the old run
    assert BATCH in register(s3)["batches"]
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"), "rp-1")
    assert register(s3)["batches"] == {} and data_keys(s3) == [f"processed/{BATCH}/orders/f1"]


def test_a_stale_register_read_cannot_be_written_after_the_register_came_back(s3: Any) -> None:
    """ABA: a claim that read the register, stalled while another batch was claimed and
    finished (the register's batches are as they were), must not write its stale read."""
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    lake.finalize(s3, BUCKET, "orders", BATCH, loaded("f1"), "run-1")
    stale = lake.read_register(s3, BUCKET, LAYOUT)
    put(s3, "landing/orders/f2")
    lake.claim(s3, BUCKET, "orders", "orders", LATER, "run-2")
    lake.finalize(
        s3, BUCKET, "orders", LATER,
        [CopyResult(f"s3://{BUCKET}/processing/{LATER}/orders/f2", "LOADED", 1, 1, 0)], "run-2",
    )  # fmt: skip
    assert lake.read_register(s3, BUCKET, LAYOUT).batches == stale.batches == {}
    assert not lake._write_register(s3, BUCKET, LAYOUT, stale)


@pytest.mark.parametrize("text", ["{not json", '{"batches": {"x": {}}}', '{"batches": []}'])
def test_an_unreadable_claims_register_is_named_with_how_to_recover(s3: Any, text: str) -> None:
    put(s3, LAYOUT.claims, text.encode())
    put(s3, "landing/orders/f1")
    with pytest.raises(BatchError, match=r"claims register s3://lake/claims/orders.json is unre"):
        lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")


def test_a_reprocess_keeps_the_files_set_aside_and_their_reasons(s3: Any) -> None:
    put(s3, "landing/orders/good")
    put(s3, "landing/orders/poison")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    failed = CopyResult(f"s3://{BUCKET}/processing/{BATCH}/orders/poison", "LOAD_FAILED", 1, 0, 1,
                        "Timestamp 'x' is not recognized")  # fmt: skip
    lake.finalize(s3, BUCKET, "orders", BATCH, [*loaded("good"), failed], "run-1")
    again = lake.claim(s3, BUCKET, "orders", "orders", BATCH, "rp-1", reprocess=True)
    assert again is not None
    assert [e.relative_key for e in again.load_files] == ["good"]
    done = lake.finalize(s3, BUCKET, "orders", BATCH, loaded("good"), "rp-1")
    outcomes = {e.relative_key: (e.outcome, e.reason) for e in done.files}
    assert outcomes["good"] == ("loaded", None)
    assert outcomes["poison"][0] == "quarantined" and "not recognized" in str(outcomes["poison"][1])
    assert data_keys(s3) == [f"processed/{BATCH}/orders/good", f"quarantine/{BATCH}/orders/poison"]


def test_the_claims_deletes_are_conditional_on_the_claimed_version(s3: Any) -> None:
    """moto ignores the ETag of a DeleteObjects entry, so the test checks that the request
    asks for it: on S3 a key written again between the copy and the delete is kept."""
    put(s3, "landing/orders/export.csv", b"v1\n")
    etag = s3.head_object(Bucket=BUCKET, Key="landing/orders/export.csv")["ETag"]
    sent: list[Any] = []
    s3.meta.events.register(
        "before-call.s3.DeleteObjects", lambda params, **_: sent.append(params["body"])
    )
    lake.claim(s3, BUCKET, "orders", "orders", BATCH, "run-1")
    [request] = sent
    text = request.decode() if isinstance(request, bytes) else str(request)
    assert "<Key>landing/orders/export.csv</Key>" in text
    assert f"<ETag>{etag}</ETag>".replace('"', "&quot;") in text or f"<ETag>{etag}</ETag>" in text
