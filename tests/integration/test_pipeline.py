"""The generated DAGs on the real local stack: moto, the TLS fakesnow warehouse, real Airflow.

Each DAG run is a `streamline.local.worker` process running `dag.test()`: the real operators, hooks
and connectors. The specs are the shipped ones, with a short sensor timeout and no retries so that
empty and failing runs end quickly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamline.generation import generate
from streamline.local.demo import prepare_airflow
from streamline.local.stack import Stack, create_warehouse_objects, embedded_stack, provision
from streamline.model import Feed
from streamline.project import Project, find_project
from streamline.rendering import RenderSettings, quote_table
from streamline.validation import validate_paths

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Local:
    stack: Stack
    project: Project
    feeds: dict[str, Feed]
    dags: Path
    env: dict[str, str]
    workdir: Path

    def run(self, feed: str, *, reprocess: str | None = None) -> dict[str, Any]:
        """One DAG run of feed, now; its summary."""
        return self.wait(self.start(feed, reprocess=reprocess), feed)

    def start(self, feed: str, *, reprocess: str | None = None) -> subprocess.Popen[bytes]:
        results = self.workdir / f"results-{feed}.jsonl"
        results.unlink(missing_ok=True)
        spec = self.feeds[feed]
        command = [
            sys.executable, "-m", "streamline.local.worker",
            "--dags-folder", str(self.dags), "--dag-id", spec.dag.dag_id,
            "--bucket", self.stack.bucket, "--prefix", spec.source.prefix,
            "--results", str(results),
        ]  # fmt: skip
        command += ["--reprocess", reprocess] if reprocess else ["--once"]
        log = (self.workdir / f"worker-{feed}.log").open("ab")
        return subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def wait(self, process: subprocess.Popen[bytes], feed: str) -> dict[str, Any]:
        process.wait(timeout=180)
        lines = (self.workdir / f"results-{feed}.jsonl").read_text().splitlines()
        summary: dict[str, Any] = json.loads(lines[-1])
        return summary

    def land(self, feed: str, *files: list[str]) -> None:
        """Put each list of CSV lines through the feed's Firehose stream (one object each)."""
        firehose = self.stack.boto3_client("firehose")
        for lines in files:
            records = [{"Data": (line + "\n").encode()} for line in lines]
            firehose.put_record_batch(DeliveryStreamName=self.stack.streams[feed], Records=records)

    def keys(self, prefix: str) -> list[str]:
        s3 = self.stack.boto3_client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.stack.bucket, Prefix=prefix
        )
        return [
            o["Key"]
            for page in pages
            for o in page.get("Contents", [])
            if not o["Key"].endswith("/")
        ]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.stack.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall())

    def seed_customers(self, *ids: int) -> None:
        """Put customers straight into the customers mart, so orders' reference check passes."""
        columns = '"CUSTOMER_ID", "CREATED_AT", "UPDATED_AT", "BATCH_ID", "MERGED_AT"'
        values = ", ".join(
            f"('cus_{i:06d}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'seed', "
            "CURRENT_TIMESTAMP())"
            for i in ids
        )
        mart = quote_table(self.feeds["customers"].mart)
        self.query(f"INSERT INTO {mart} ({columns}) VALUES {values}")

    def count(self, feed: str, table: str, where: str = "") -> int:
        ref = getattr(self.feeds[feed], table)
        return int(self.query(f"SELECT COUNT(*) FROM {quote_table(ref)} {where}")[0][0])


def _fast_project(folder: Path) -> Project:
    """The repo's project with specs tuned for tests: short sensor timeout, no retries."""
    for name in ("schemas", "templates", "pipelines"):
        shutil.copytree(ROOT / name, folder / name)
    for spec in (folder / "pipelines").glob("*.yaml"):
        text = spec.read_text()
        text = text.replace("timeout_seconds: 120", "timeout_seconds: 3").replace(
            "retries: 2", "retries: 0"
        )
        spec.write_text(text)
    return find_project(folder)


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    workdir = tmp_path_factory.mktemp("local")
    project = _fast_project(workdir / "project")
    result = validate_paths(project)
    assert result.ok, result.errors
    with embedded_stack(workdir / "stack") as stack:
        provision(stack, project, result.feeds)
        dags = workdir / "dags"
        generate(project, result.feeds, dags, RenderSettings(lake_url=f"s3://{stack.bucket}"),
                 stack.sqs_url_prefix)  # fmt: skip
        env = {**os.environ, **stack.airflow_env(dags, project)}
        env.update(AIRFLOW_HOME=str(workdir / "airflow"), AWS_ENDPOINT_URL=stack.aws_endpoint)
        prepare_airflow(env, workdir / "airflow-setup.log")
        yield Local(stack, project, {f.feed: f for f in result.feeds}, dags, env, workdir)


@pytest.fixture
def lake(local: Local) -> Local:
    """The local stack with an empty lake and empty tables."""
    s3 = local.stack.boto3_client("s3")
    for key in local.keys("landing/") + local.keys("processing/") + local.keys("processed/"):
        s3.delete_object(Bucket=local.stack.bucket, Key=key)
    with local.stack.connect() as conn:
        for feed in local.feeds.values():
            conn.cursor().execute(f"DELETE FROM {quote_table(feed.raw)}")
            conn.cursor().execute(f"DELETE FROM {quote_table(feed.mart)}")
    return local


def order(order_id: int, status: str, updated: str, customer: int = 1) -> str:
    return (
        f"ord_{order_id:010d},cus_{customer:06d},{status},2,19.90,EUR,"
        f"2026-01-01 10:00:00.000,2026-01-01 {updated}"
    )


def customer(customer_id: int, tier: str, updated: str) -> str:
    return (
        f"cus_{customer_id:06d},c{customer_id}@example.com,Customer {customer_id},DE,{tier},"
        f"2026-01-01 09:00:00.000,2026-01-01 {updated}"
    )


def test_a_landed_batch_loads_raw_rows_with_batch_id_and_source_file(lake: Local) -> None:
    lake.seed_customers(1)
    lake.land("orders", [order(1, "placed", "10:00:00.000"), order(2, "placed", "10:00:01.000")],
              [order(3, "placed", "10:00:02.000")])  # fmt: skip
    run = lake.run("orders")
    assert run["state"] == "success", run
    batch = run["batch_id"]
    raw = quote_table(lake.feeds["orders"].raw)
    rows = lake.query(f'SELECT "BATCH_ID", "SOURCE_FILE", "SOURCE_ROW_NUMBER" FROM {raw}')
    assert len(rows) == 3
    assert {r[0] for r in rows} == {batch}
    assert all(r[1].startswith(f"processing/{batch}/orders/") for r in rows)
    assert sorted(r[2] for r in rows) == [1, 1, 2]
    assert lake.count("orders", "mart") == 3
    # Files and manifest ended in processed/<BATCH_ID>/, nothing left behind.
    assert lake.keys("landing/") == [] and lake.keys("processing/") == []
    processed = lake.keys(f"processed/{batch}/")
    assert f"processed/{batch}/orders.manifest.json" in processed
    assert len([k for k in processed if k.startswith(f"processed/{batch}/orders/")]) == 2
    assert run["copy"]["rows_loaded"] == 3 and run["copy"]["errors_seen"] == 0


def test_duplicates_collapse_in_the_mart_latest_wins(lake: Local) -> None:
    lake.seed_customers(1)
    lake.land("orders", [order(7, "placed", "10:00:00.000"), order(7, "shipped", "10:05:00.000")],
              [order(7, "paid", "10:01:00.000"), order(7, "shipped", "10:05:00.000")])  # fmt: skip
    run = lake.run("orders")
    assert run["state"] == "success", run
    assert lake.count("orders", "raw") == 4
    mart = lake.query(f'SELECT "ORDER_ID", "STATUS" FROM {quote_table(lake.feeds["orders"].mart)}')
    assert mart == [("ord_0000000007", "shipped")]
    # A later batch with an older event does not win over the mart's newer row.
    lake.land("orders", [order(7, "placed", "09:00:00.000")])
    assert lake.run("orders")["state"] == "success"
    assert lake.query(f'SELECT "STATUS" FROM {quote_table(lake.feeds["orders"].mart)}') == [
        ("shipped",)
    ]


def test_re_running_a_batch_adds_zero_rows(lake: Local) -> None:
    lake.land(
        "customers", [customer(1, "free", "10:00:00.000"), customer(2, "pro", "10:00:00.000")]
    )
    first = lake.run("customers")
    assert first["state"] == "success", first
    before = (lake.count("customers", "raw"), lake.count("customers", "mart"))
    again = lake.run("customers", reprocess=first["batch_id"])
    assert again["state"] == "success", again
    assert again["claimed"] and again["copy"]["rows_loaded"] == 2, again
    assert (lake.count("customers", "raw"), lake.count("customers", "mart")) == before == (2, 2)
    assert lake.keys("processing/") == []
    assert f"processed/{first['batch_id']}/customers.manifest.json" in lake.keys("processed/")


def test_a_run_with_no_new_files_ends_cleanly_without_a_batch(lake: Local) -> None:
    run = lake.run("orders")
    assert run["state"] == "success", run
    assert run["claimed"] is False
    assert run["tasks"]["detect"]["state"] == "skipped"
    assert lake.keys("processing/") == [] and lake.keys("processed/") == []
    assert lake.count("orders", "raw") == 0


def test_a_failed_transform_leaves_the_batch_in_processing_and_a_rerun_converges(
    lake: Local,
) -> None:
    lake.seed_customers(1)
    lake.land("orders", [order(11, "placed", "10:00:00.000"), order(12, "paid", "10:00:00.000")])
    lake.query(f"DROP TABLE {quote_table(lake.feeds['orders'].mart)}")  # the transform will fail
    try:
        failed = lake.run("orders")
    finally:
        create_warehouse_objects(lake.stack, lake.project, list(lake.feeds.values()))
    assert failed["state"] == "failed"
    assert failed["tasks"]["load"]["state"] == "success"
    assert failed["tasks"]["transform"]["state"] == "failed"
    batch = failed["batch_id"]
    assert f"processing/{batch}/orders.manifest.json" in lake.keys("processing/")
    assert len(lake.keys(f"processing/{batch}/orders/")) == 1
    fixed = lake.run("orders", reprocess=batch)
    assert fixed["state"] == "success", fixed
    assert fixed["claimed"] and fixed["copy"]["rows_loaded"] == 2, fixed
    assert lake.count("orders", "raw") == 2 and lake.count("orders", "mart") == 2
    assert lake.keys("processing/") == []
    assert len(lake.keys(f"processed/{batch}/orders/")) == 1


def test_two_feeds_run_at_the_same_time_without_touching_each_other(lake: Local) -> None:
    # Orders' reference check must not depend on which feed finishes first.
    lake.seed_customers(5)
    lake.land("customers", [customer(6, "plus", "10:00:00.000")])
    lake.land(
        "orders",
        [order(21, "placed", "10:00:00.000", customer=5)],
        [order(22, "placed", "10:00:00.000", customer=5)],
    )
    started = time.monotonic()
    customers, orders = lake.start("customers"), lake.start("orders")
    runs = {"customers": lake.wait(customers, "customers"), "orders": lake.wait(orders, "orders")}
    assert all(r["state"] == "success" for r in runs.values()), runs
    assert time.monotonic() - started < 120
    assert lake.count("customers", "raw") == 1 and lake.count("orders", "raw") == 2
    for feed, run in runs.items():
        other = "orders" if feed == "customers" else "customers"
        keys = lake.keys(f"processed/{run['batch_id']}/{feed}/")
        assert keys and not any(f"/{other}/" in k for k in keys)
