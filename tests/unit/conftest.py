"""Fixtures shared by unit tests: an in-process warehouse holding the batch ledger, and an
in-process S3 (moto) with the lake bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streamline import ledger
from streamline.layout import LEDGER_COLUMNS
from streamline.model import TableRef
from streamline.rendering import quote_identifier, quote_table

LEDGER = TableRef("db", "raw", "streamline_batches")
LAKE_BUCKET = "lake"
DAG_BUCKET = "mwaa-dags"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in-process (no server): an S3 client with an empty bucket LAKE_BUCKET."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=LAKE_BUCKET)
        yield client


@pytest.fixture
def dag_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An MWAA environment's bucket, DAG_BUCKET: versioned, in moto in process (no network), with
    no AWS profile or endpoint of the caller's in the way."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(
            Bucket=DAG_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        client.put_bucket_versioning(
            Bucket=DAG_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        yield client


@pytest.fixture
def warehouse() -> Iterator[ledger.ConnectionRunner]:
    """fakesnow in-process (no server) with an empty ledger table db.raw.streamline_batches."""
    import fakesnow
    import snowflake.connector

    with fakesnow.patch():
        conn = snowflake.connector.connect(database="DB", schema="RAW")
        conn.cursor().execute("CREATE SCHEMA IF NOT EXISTS DB.RAW")
        columns = ", ".join(
            f"{quote_identifier(c.name)} {c.type}{'' if c.nullable else ' NOT NULL'}"
            for c in LEDGER_COLUMNS
        )
        conn.cursor().execute(f"CREATE TABLE {quote_table(LEDGER)} ({columns})")
        yield ledger.ConnectionRunner(conn)
