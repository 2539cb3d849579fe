"""Rejected rows and failing checks through the real DAG (issue 8), with the exact raw, mart and
quarantine content: bad rows under on_error continue (the shipped specs), a reprocess after the
bad rows are fixed upstream, and a failing check that leaves the mart as it was.

tests/integration/test_warehouse.py runs the same SQL statement by statement for each on_error
mode and each reason; here the DAG's tasks move the files and write the ledger around it.
"""

from __future__ import annotations

import json

import pytest
from harness import Local, order

from streamline.rendering import quote_table

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

FEED = "orders"
GOOD = [order(n, "placed", "10:00:00.000") for n in range(1, 81)]
NULL_ORDERING = "ord_0000000005,cus_000001,cancelled,2,19.90,EUR,2026-01-01 10:00:00.000,"
UPDATE = order(5, "shipped", "11:00:00.000")  # the valid update beside the NULL-ordering row
BAD = [  # (line, ERROR_CODE, ERROR, COLUMN_NAME); 8 of the batch's 89 rows, under the 10% allowed
    (order(81, "placed", "10:00:00.000") + ",", "too_many_fields",
     "more than 8 fields; expected 8 (a delimiter too many?)", None),
    (order(82, "placed", "10:00:00.000").rsplit(",", 1)[0], "too_few_fields",
     "7 fields; expected 8", None),
    (order(83, "placed", "yesterday"), "not_a_value",
     "updated_at: '2026-01-01 yesterday' is not a TIMESTAMP_NTZ(3)", "UPDATED_AT"),
    (order(84, "placed", "10:00:00.000").replace("19.90", "N/A"), "not_a_value",
     "amount: 'N/A' is not a NUMBER(12,2)", "AMOUNT"),
    (order(85, "placed", "10:00:00.000").replace(",EUR,", ",EURO,"), "too_long",
     "currency: 4 characters, longer than CHAR(3)", "CURRENCY"),
    (order(86, "placed", "10:00:00.000").replace("ord_0000000086", ""), "null_value",
     "order_id: NULL, but it is part of the key", "ORDER_ID"),
    (NULL_ORDERING, "null_value", "updated_at: NULL, but it is the ordering column", "UPDATED_AT"),
    (order(87, "", "10:00:00.000"), "null_value",
     "status: NULL, but the column is not nullable", "STATUS"),
]  # fmt: skip
FIXED = [  # the same rows as the source system sends them after its fix
    *[order(n, "placed", "10:00:00.000") for n in range(81, 89)],
    order(5, "cancelled", "10:30:00.000"),
]
COLUMNS = '"ORDER_ID", "STATUS", "UPDATED_AT"'


def mart(lake: Local) -> list[tuple[object, ...]]:
    table = quote_table(lake.feeds[FEED].mart)
    return lake.query(f"SELECT {COLUMNS} FROM {table} ORDER BY 1")


def quarantined(lake: Local, batch_id: str) -> list[tuple[object, ...]]:
    table = quote_table(lake.feeds[FEED].layout.quarantine)
    return lake.query(
        'SELECT "SOURCE_FILE", "SOURCE_ROW_NUMBER", "RECORD", "ERROR_CODE", "ERROR", '
        f'"COLUMN_NAME" FROM {table} WHERE "BATCH_ID" = \'{batch_id}\' ORDER BY 2'
    )


def test_bad_rows_are_quarantined_the_rest_publish_and_a_fix_upstream_replaces_them(
    lake: Local,
) -> None:
    lake.seed_customers(1)
    lake.land(FEED, GOOD)
    lake.land(FEED, [UPDATE, *[line for line, *_ in BAD]])
    run = lake.run(FEED)
    assert run["state"] == "success", run
    batch = run["batch_id"]
    [bad_file] = {row[0] for row in quarantined(lake, batch)}
    lines = [UPDATE, *[line for line, *_ in BAD]]
    assert quarantined(lake, batch) == [
        (bad_file, lines.index(line) + 1, line, code, error, column)
        for line, code, error, column in BAD
    ]
    raw = quote_table(lake.feeds[FEED].raw)
    assert lake.query(f"SELECT COUNT(*) FROM {raw} WHERE \"SOURCE_FILE\" = '{bad_file}'") == [(1,)]
    assert lake.count(FEED, "raw") == 81
    published = mart(lake)
    assert len(published) == 80
    assert published[4][:2] == ("ord_0000000005", "shipped")  # the NULL ordering did not win
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["rows_parsed"], row["rows_loaded"], row["rows_rejected"]) == (
        "published", 89, 81, 8
    )  # fmt: skip
    rejected = json.loads(row["checks"])["rejected_rows"]
    assert (rejected["passed"], rejected["failing_rows"]) == (True, 8)
    assert rejected["detail"] == f"first: {bad_file}, row 2: {BAD[0][2]}"
    # The user's view: every rejected row with its file, line and reason; exit 1.
    shown = lake.cli("quarantine", FEED, "--batch", batch, "--json")
    assert shown.returncode == 1 and shown.stdout.startswith("["), shown.stderr
    assert [(r["source_row_number"], r["error_code"], r["column_name"])
            for r in json.loads(shown.stdout)] == [
        (lines.index(line) + 1, code, column) for line, code, _, column in BAD
    ]  # fmt: skip

    # Fixed upstream: the corrected file replaces the bad one, and the batch runs again.
    key = bad_file.replace("processing/", "processed/", 1)
    lake.put(key, "".join(line + "\n" for line in [UPDATE, *FIXED]).encode())
    again = lake.run(FEED, reprocess=batch)
    assert again["state"] == "success", again
    assert quarantined(lake, batch) == []
    assert lake.count(FEED, "raw") == 90
    fixed = mart(lake)
    assert len(fixed) == 88 and fixed[4][:2] == ("ord_0000000005", "shipped")
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["runs"], row["rows_loaded"], row["rows_rejected"]) == (
        "published", 2, 90, 0
    )  # fmt: skip


def test_a_failing_check_leaves_the_mart_as_it_was_and_keeps_the_batch_files(lake: Local) -> None:
    lake.seed_customers(1)
    lake.land(FEED, [order(1, "placed", "10:00:00.000"), order(2, "placed", "10:00:00.000")])
    assert lake.run(FEED)["state"] == "success"
    before = mart(lake)
    lake.land(FEED, [order(1, "paid", "11:00:00.000")])
    lake.land(FEED, [order(2, "lost in space", "11:00:00.000")])
    failed = lake.run(FEED)
    assert failed["state"] == "failed", failed
    assert failed["tasks"]["transform"]["state"] == "failed"
    assert failed["tasks"]["finalize"]["state"] != "success"
    batch = failed["batch_id"]
    assert mart(lake) == before  # nothing published, not even the good update
    assert len(lake.keys(f"processing/{batch}/{FEED}/")) == 2  # kept for a reprocess
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["failed_step"]) == ("failed", "transform")
    bad_key = next(
        key for key in lake.keys(f"processing/{batch}/{FEED}/")
        if "lost in space" in lake.read_text(key)
    )  # fmt: skip
    assert row["error"] == (
        "AirflowFailException: 1 check failed: accepted_values__status: 1 row (first: "
        f"{bad_key}, row 1: 'lost in space')"
    )
    check = json.loads(row["checks"])["accepted_values__status"]
    assert (check["passed"], check["severity"], check["failing_rows"]) == (False, "error", 1)

    # The person on call sets the bad file aside; the rest of the batch publishes.
    bad_file = bad_key.removeprefix(f"processing/{batch}/{FEED}/")
    fixed = lake.run(FEED, reprocess=batch, quarantine={bad_file: "status unknown (ticket 9)"})
    assert fixed["state"] == "success", fixed
    assert mart(lake)[0][:2] == ("ord_0000000001", "paid")
    assert mart(lake)[1] == before[1]
    assert lake.keys("quarantine/") == [f"quarantine/{batch}/{FEED}/{bad_file}"]
    assert quarantined(lake, batch) == [
        (f"processing/{batch}/{FEED}/{bad_file}", None, None, "file_set_aside",
         f"status unknown (ticket 9); the file is kept whole in quarantine/{batch}/{FEED}/"
         f"{bad_file}", None)
    ]  # fmt: skip
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["files_loaded"], row["files_skipped"]) == ("published", 1, 1)


def test_skip_file_sets_the_whole_file_aside_row_by_row(lake: Local) -> None:
    feed = "orders_skip"  # the orders spec with on_error skip_file (harness.fast_project)
    lake.seed_customers(1)
    lake.land(feed, [order(n, "placed", "10:00:00.000") for n in (1, 2, 3)])
    bad = [order(4, "placed", "10:00:00.000"), order(5, "placed", "10:00:00.000").replace(
        "19.90", "N/A"), order(6, "placed", "10:00:00.000")]  # fmt: skip
    lake.land(feed, bad)
    run = lake.run(feed)
    assert run["state"] == "success", run
    batch = run["batch_id"]
    [bad_key] = lake.keys(f"quarantine/{batch}/{feed}/")
    source = bad_key.replace("quarantine/", "processing/", 1)
    table = quote_table(lake.feeds[feed].layout.quarantine)
    rows = lake.query(
        f'SELECT "SOURCE_FILE", "SOURCE_ROW_NUMBER", "RECORD", "ERROR_CODE", "ERROR" FROM {table} '
        'ORDER BY 2'
    )  # fmt: skip
    reason = "amount: 'N/A' is not a NUMBER(12,2)"
    assert rows == [
        (
            source,
            1,
            bad[0],
            "file_skipped",
            f"file skipped (on_error: skip_file): row 2 was rejected: {reason}",
        ),
        (source, 2, bad[1], "not_a_value", reason),
        (
            source,
            3,
            bad[2],
            "file_skipped",
            f"file skipped (on_error: skip_file): row 2 was rejected: {reason}",
        ),
    ]  # fmt: skip  (no file_set_aside row beside them: the rows say it)
    raw = quote_table(lake.feeds[feed].raw)
    assert lake.query(f'SELECT "ORDER_ID" FROM {raw} ORDER BY 1') == [
        (f"ord_{n:010d}",) for n in (1, 2, 3)
    ]
    assert lake.count(feed, "mart") == 3
    assert len(lake.keys(f"processed/{batch}/{feed}/")) == 1
    manifest = lake.read_json(f"processed/{batch}/{feed}.manifest.json")
    [aside] = [f for f in manifest["files"] if f["outcome"] == "quarantined"]
    assert (
        aside["reason"]
        == f"COPY LOAD_FAILED: file skipped (on_error: skip_file): row 2 was rejected: {reason}"
    )
    row = lake.ledger(feed)[batch]
    assert (row["status"], row["files_loaded"], row["files_skipped"], row["rows_loaded"],
            row["rows_rejected"]) == ("published", 1, 1, 3, 3)  # fmt: skip
