"""The generated DAGs on the real local stack: moto, the TLS fakesnow warehouse, real Airflow.

Each DAG run is a `dag.test()` in a `streamline.local.worker --serve` process: the real operators,
hooks and connectors. The specs are the shipped ones, with a short sensor timeout and one quick
retry (harness.fast_project).
"""

from __future__ import annotations

import json
import time

import pytest
from harness import Local, customer, order

from streamline.local.stack import create_warehouse_objects
from streamline.rendering import quote_table

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]


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
    processed = lake.objects(f"processed/{batch}/")
    assert f"processed/{batch}/orders.manifest.json" in processed
    assert len([k for k in processed if k.startswith(f"processed/{batch}/orders/")]) == 2
    assert run["copy"]["rows_loaded"] == 3 and run["copy"]["errors_seen"] == 0
    row = lake.ledger("orders")[batch]
    assert row["status"] == "published" and row["runs"] == 1 and row["error"] is None
    assert (row["files"], row["files_loaded"], row["rows_parsed"], row["rows_loaded"]) == (
        2,
        2,
        3,
        3,
    )
    assert row["rows_rejected"] == 0 and row["files_skipped"] == row["files_deferred"] == 0
    checks = json.loads(row["checks"])
    assert {name: (c["passed"], c["severity"]) for name, c in checks.items()} == {
        "rejected_rows": (True, "error"),
        "rows_reconciled": (True, "error"),
        "row_count": (True, "error"),
        "not_null__order_id__customer_id__status__ordered_at__updated_at": (True, "error"),
        "unique__order_id": (True, "error"),
        "accepted_values__status": (True, "error"),
        "range__amount": (True, "error"),
        "references__customer_id": (True, "warn"),
    }
    assert checks["row_count"]["detail"] == "the batch has 3 rows in raw; expected at least 1"
    steps = ["claim_started_at", "claimed_at", "load_started_at", "loaded_at",
             "transform_started_at", "transformed_at", "checked_at", "published_at"]  # fmt: skip
    times = [row[name] for name in steps]
    assert all(times) and times == sorted(times), dict(zip(steps, times, strict=True))
    _assert_lineage(lake, batch, processed)


def _assert_lineage(lake: Local, batch: str, processed: list[str]) -> None:
    """The batch's OpenLineage events (docs/lineage.md), as the file transport got them: its S3
    objects -> raw (and quarantine) -> mart, each step's COMPLETE event with the batch facet."""
    events = lake.lineage(batch)
    assert sorted(events) == ["claim", "finalize", "load", "transform"], sorted(events)
    feed = lake.feeds["orders"]
    folder = f"processed/{batch}/orders/"
    names = sorted(k.removeprefix(folder) for k in processed if k.startswith(folder))
    assert len(names) == 2

    def objects(zone: str) -> list[tuple[str, str]]:
        return [(f"s3://{lake.stack.bucket}", f"{zone}{name}") for name in names]

    def datasets(step: str, side: str) -> list[tuple[str, str]]:
        return sorted((d["namespace"], d["name"]) for d in events[step][side])

    processing = objects(f"processing/{batch}/orders/")
    assert datasets("claim", "inputs") == objects("landing/orders/")
    assert datasets("claim", "outputs") == datasets("load", "inputs") == processing
    (warehouse,) = {d["namespace"] for d in events["load"]["outputs"]}
    assert warehouse.startswith("snowflake://")
    raw = (warehouse, "STREAMLINE.RAW.ORDERS")
    assert raw == (warehouse, feed.raw.dotted.upper())
    assert datasets("load", "outputs") == [raw, (warehouse, "STREAMLINE.RAW.ORDERS_QUARANTINE")]
    assert datasets("transform", "inputs") == [raw]
    assert datasets("transform", "outputs") == [(warehouse, "STREAMLINE.MART.ORDERS")]
    assert datasets("finalize", "inputs") == processing
    assert datasets("finalize", "outputs") == objects(folder)
    for step, event in events.items():
        assert event["job"]["name"] == f"{feed.dag.dag_id}.{step}"
        facet = event["run"]["facets"]["streamline_batch"]
        assert (facet["feed"], facet["batch_id"]) == ("orders", batch), step
    assert "testing" not in json.dumps(events)  # the lake connection's secret key


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
    assert lake.objects("processing/") == []
    assert f"processed/{first['batch_id']}/customers.manifest.json" in lake.objects("processed/")
    row = lake.ledger("customers")[first["batch_id"]]
    assert row["status"] == "published" and row["runs"] == 2 and row["rows_loaded"] == 2


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
    assert f"processing/{batch}/orders.manifest.json" in lake.objects("processing/")
    row = lake.ledger("orders")[batch]
    assert (row["status"], row["failed_step"]) == ("failed", "transform")
    assert "ORDERS" in row["error"] and row["rows_loaded"] == 2
    assert len(lake.keys(f"processing/{batch}/orders/")) == 1
    fixed = lake.run("orders", reprocess=batch)
    assert fixed["state"] == "success", fixed
    assert fixed["claimed"] and fixed["copy"]["rows_loaded"] == 2, fixed
    assert lake.count("orders", "raw") == 2 and lake.count("orders", "mart") == 2
    assert lake.objects("processing/") == []
    assert len(lake.keys(f"processed/{batch}/orders/")) == 1
    row = lake.ledger("orders")[batch]
    assert (row["status"], row["failed_step"], row["error"], row["runs"]) == (
        "published",
        None,
        None,
        2,
    )


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
    lake.start("customers")
    lake.start("orders")
    runs = {"customers": lake.wait("customers"), "orders": lake.wait("orders")}
    assert all(r["state"] == "success" for r in runs.values()), runs
    assert time.monotonic() - started < 120
    assert lake.count("customers", "raw") == 1 and lake.count("orders", "raw") == 2
    for feed, run in runs.items():
        other = "orders" if feed == "customers" else "customers"
        keys = lake.keys(f"processed/{run['batch_id']}/{feed}/")
        assert keys and not any(f"/{other}/" in k for k in keys)
