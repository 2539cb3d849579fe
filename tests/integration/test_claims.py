"""Claims racing each other through a real S3 endpoint (moto's server): no file in two batches.

Four claims of one feed at once, as with max_active_runs > 1, a manual reprocess during a run, or
two environments on one lake: S3 conditional writes on the claims register let one commit at a
time (streamline.lake).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest

from streamline import lake
from streamline.lake import Limits

pytestmark = pytest.mark.integration


def _client(endpoint: str) -> Any:
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t",
        aws_secret_access_key="t", config=Config(max_pool_connections=32),
    )  # fmt: skip


@pytest.mark.parametrize("trial", range(2))
def test_racing_claims_never_share_a_file(moto_server: str, trial: int) -> None:
    """Four claims at once over 300 files, twice: each file in exactly one batch."""
    bucket = f"race-{trial}"
    setup = _client(moto_server)
    setup.create_bucket(Bucket=bucket)
    names = [f"f{n:03d}" for n in range(300)]
    for name in names:
        setup.put_object(Bucket=bucket, Key=f"landing/orders/{name}", Body=b"x")
    barrier = threading.Barrier(4)
    claimed: dict[str, list[str]] = {}
    errors: list[Exception] = []

    def run(number: int) -> None:
        client = _client(moto_server)
        batch_id = f"20260101T000000.00000{number}Z"
        barrier.wait()
        try:
            manifest = lake.claim(client, bucket, "orders", "orders", batch_id, f"run-{number}",
                                  limits=Limits(max_files=120))  # fmt: skip
        except Exception as exc:
            errors.append(exc)
            return
        claimed[batch_id] = [e.relative_key for e in manifest.files] if manifest else []

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [name for files in claimed.values() for name in files]
    assert len(every) == len(set(every)), "a file was claimed by two batches"
    assert sorted(every) == names  # 120 + 120 + 60 + 0: all taken, each once
    landed = setup.list_objects_v2(Bucket=bucket, Prefix="landing/").get("KeyCount", 0)
    assert landed == 0
    for batch_id, files in claimed.items():
        moved = setup.list_objects_v2(Bucket=bucket, Prefix=f"processing/{batch_id}/orders/")
        assert moved.get("KeyCount", 0) == len(files)
