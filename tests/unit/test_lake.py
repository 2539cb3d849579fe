"""Claiming and finalizing batches in the lake (moto in-process: no server, no network)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from streamline import lake
from streamline.batches import batch_id_for, check_batch_id
from streamline.errors import BatchError

BUCKET = "lake"
BATCH = "20260101T000000Z"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3: Any, key: str, body: bytes = b"a,b\n1,2\n") -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def keys(s3: Any, prefix: str = "") -> list[str]:
    return [o["key"] for o in lake.list_keys(s3, BUCKET, prefix)]


def test_claim_moves_landing_files_and_writes_a_manifest(s3: Any) -> None:
    put(s3, "landing/orders/2026/01/01/00/f1")
    put(s3, "landing/orders/2026/01/01/00/f2", b"x" * 10)
    put(s3, "landing/orders_eu/other")  # a sibling prefix is not ours
    manifest = lake.claim(s3, BUCKET, "orders", "orders", BATCH)
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
    assert all(len(f["etag"]) == 32 for f in body["files"])


def test_claim_with_nothing_landed_makes_no_batch(s3: Any) -> None:
    assert lake.claim(s3, BUCKET, "orders", "orders", BATCH) is None
    assert keys(s3) == []


def test_a_retried_claim_reuses_the_batch_and_ignores_new_arrivals(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    first = lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    put(s3, "landing/orders/f2")  # lands after the claim: belongs to the next batch
    again = lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    assert again == first
    assert keys(s3, "landing/") == ["landing/orders/f2"]


def test_an_interrupted_claim_is_finished_by_the_retry(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(s3, "landing/orders/f1")
    put(s3, "landing/orders/f2")
    real_move = lake._move
    calls = {"n": 0}

    def flaky(client: Any, bucket: str, sources: tuple[str, ...], target: str) -> None:
        calls["n"] += 1
        if sources[0].endswith("f2"):
            raise ConnectionError("network blip")
        real_move(client, bucket, sources, target)

    monkeypatch.setattr(lake, "_move", flaky)
    with pytest.raises(ConnectionError):
        lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    monkeypatch.setattr(lake, "_move", real_move)
    manifest = lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    assert manifest is not None and len(manifest.files) == 2
    assert keys(s3, "landing/") == []
    assert len(keys(s3, f"processing/{BATCH}/orders/")) == 2


def test_finalize_moves_files_and_manifest_to_processed(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    lake.finalize(s3, BUCKET, "orders", BATCH)
    assert keys(s3, "processing/") == []
    assert keys(s3, "processed/") == [
        f"processed/{BATCH}/orders.manifest.json",
        f"processed/{BATCH}/orders/f1",
    ]
    # Finalizing again (a retried task) changes nothing.
    lake.finalize(s3, BUCKET, "orders", BATCH)
    assert len(keys(s3, "processed/")) == 2


def test_reprocessing_a_finished_batch_moves_it_back(s3: Any) -> None:
    put(s3, "landing/orders/f1")
    lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    lake.finalize(s3, BUCKET, "orders", BATCH)
    manifest = lake.claim(s3, BUCKET, "orders", "orders", BATCH)
    assert manifest is not None and [e.relative_key for e in manifest.files] == ["f1"]
    assert keys(s3, "processed/") == []
    assert keys(s3, f"processing/{BATCH}/") == [
        f"processing/{BATCH}/orders.manifest.json",
        f"processing/{BATCH}/orders/f1",
    ]


def test_finalize_without_a_batch_fails_clearly(s3: Any) -> None:
    with pytest.raises(BatchError, match="no manifest"):
        lake.finalize(s3, BUCKET, "orders", BATCH)


class FakeTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.xcom.get(key)


class FakeDagRun:
    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        self.conf = conf or {}
        self.run_after = dt.datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=dt.UTC)
        self.logical_date = None


def test_task_callables_share_the_batch_id_through_xcom(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_LAKE_TEST",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}),
    )
    put(s3, "landing/orders/f1")
    ti = FakeTaskInstance()
    context = {"ti": ti, "dag_run": FakeDagRun(), "params": {"batch_id": None}}
    claimed = lake.claim_batch("orders", BUCKET, "orders", "lake_test", **context)
    assert claimed == {"batch_id": "20260304T050607Z", "files": 1, "bytes": 8}
    assert ti.xcom["batch_id"] == "20260304T050607Z"
    done = lake.finalize_batch("orders", BUCKET, "orders", "lake_test", **context)
    assert done["files"] == 1
    assert keys(s3, "processed/20260304T050607Z/orders/") == [
        "processed/20260304T050607Z/orders/f1"
    ]


def test_claim_task_skips_when_nothing_landed(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv(
        "AIRFLOW_CONN_LAKE_TEST",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}),
    )
    context = {"ti": FakeTaskInstance(), "dag_run": FakeDagRun(), "params": {}}
    with pytest.raises(AirflowSkipException):
        lake.claim_batch("orders", BUCKET, "orders", "lake_test", **context)


def test_batch_ids() -> None:
    when = dt.datetime(2026, 1, 1, 1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert batch_id_for(when) == "20251231T230203Z"
    assert batch_id_for(when, {"batch_id": "20200101T000000Z"}) == "20200101T000000Z"
    for bad in ["20200101", "20201301T000000Z", "x'; drop", "20200101T000000z"]:
        with pytest.raises(BatchError):
            check_batch_id(bad)
    with pytest.raises(BatchError):
        batch_id_for(dt.datetime(2026, 1, 1))
    with pytest.raises(BatchError):
        batch_id_for(when, {"batch_id": "../../etc"})
