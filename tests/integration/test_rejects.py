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
    assert rejected["detail"] == (
        "8 of 89 rows, at most 0.1 allowed (copy.max_rejected_ratio); "
        f"first: {bad_file}, row 2: {BAD[0][2]}"
    )
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
    lake.land(FEED, [order(1, "paid", "11:00:00.000"),
                     *[order(n, "placed", "11:00:00.000") for n in range(10, 20)]])  # fmt: skip
    # The bad file also has a row the load rejects (1 of the batch's 13 rows: under the ratio).
    lake.land(FEED, [order(2, "lost in space", "11:00:00.000"),
                     order(3, "placed", "11:00:00.000").replace("19.90", "N/A")])  # fmt: skip
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
    # The set-aside file's rejected row went with it: its rows are the file's now.
    assert (row["rows_parsed"], row["rows_loaded"], row["rows_rejected"]) == (11, 11, 0)


FINALIZE_PUBLISHES = {"id": "finalize-publishes", "on": "sql", "action": "raise", "times": 1,
                      "match": r'(?s)UPDATE.*STREAMLINE_BATCHES.*"PUBLISHED_AT"'}  # fmt: skip


def test_skip_file_sets_whole_files_aside_row_by_row_and_a_reprocess_keeps_them(
    lake: Local,
) -> None:
    feed = "orders_skip"  # the orders spec with on_error skip_file (harness.fast_project)
    lake.seed_customers(1)
    lake.land(feed, [order(n, "placed", "10:00:00.000") for n in range(1, 7)])
    bad = [order(7, "placed", "10:00:00.000"), order(8, "placed", "10:00:00.000").replace(
        "19.90", "N/A"), order(9, "placed", "10:00:00.000")]  # fmt: skip
    lake.land(feed, bad)
    only_bad = order(10, "placed", "yesterday")  # a file whose only row is rejected
    lake.land(feed, [only_bad])
    run = lake.run(feed)
    assert run["state"] == "success", run
    batch = run["batch_id"]
    aside = lake.keys(f"quarantine/{batch}/{feed}/")
    source = {
        lake.read_text(key).split(",", 1)[0]: key.replace("quarantine/", "processing/", 1)
        for key in aside
    }  # first order id -> the file, as the load read it
    table = quote_table(lake.feeds[feed].layout.quarantine)
    select = (
        'SELECT "SOURCE_FILE", "SOURCE_ROW_NUMBER", "RECORD", "ERROR_CODE", "ERROR" '
        f"FROM {table} WHERE \"BATCH_ID\" = '{batch}' ORDER BY 1, 2"
    )
    amount = "amount: 'N/A' is not a NUMBER(12,2)"
    skipped = f"file skipped (on_error: skip_file): row 2 was rejected: {amount}"
    b, c = source["ord_0000000007"], source["ord_0000000010"]
    expected = sorted(
        [
            (b, 1, bad[0], "file_skipped", skipped),
            (b, 2, bad[1], "not_a_value", amount),
            (b, 3, bad[2], "file_skipped", skipped),
            (
                c,
                1,
                only_bad,
                "not_a_value",
                "updated_at: '2026-01-01 yesterday' is not a TIMESTAMP_NTZ(3)",
            ),
        ]
    )  # fmt: skip  (no file-level row beside them: the rows say it)
    assert lake.query(select) == expected
    raw = quote_table(lake.feeds[feed].raw)
    assert lake.query(f'SELECT "ORDER_ID" FROM {raw} ORDER BY 1') == [
        (f"ord_{n:010d}",) for n in range(1, 7)
    ]
    assert lake.count(feed, "mart") == 6
    assert len(lake.keys(f"processed/{batch}/{feed}/")) == 1
    manifest = lake.read_json(f"processed/{batch}/{feed}.manifest.json")
    reasons = sorted(f["reason"] for f in manifest["files"] if f["outcome"] == "quarantined")
    assert reasons == [
        "COPY LOAD_FAILED: file skipped (on_error: skip_file): row 1 was rejected: updated_at: "
        "'2026-01-01 yesterday' is not a TIMESTAMP_NTZ(3)",
        f"COPY LOAD_FAILED: {skipped}",
    ]
    counts = ("status", "files_loaded", "files_skipped", "rows_loaded", "rows_rejected")
    row = lake.ledger(feed)[batch]
    assert tuple(row[c] for c in counts) == ("published", 1, 2, 6, 4)

    # A reprocess (its finalize retried once) reads the loaded file again and keeps the files
    # set aside aside: their quarantine rows stay as they were, and are counted.
    with lake.faults(FINALIZE_PUBLISHES) as fired:
        again = lake.run(feed, reprocess=batch)
    assert again["state"] == "success" and fired == ["finalize-publishes"], again
    assert lake.query(select) == expected
    assert lake.count(feed, "raw") == 6 and lake.count(feed, "mart") == 6
    row = lake.ledger(feed)[batch]
    assert tuple(row[c] for c in counts) == ("published", 1, 2, 6, 4) and row["runs"] == 2
    assert row["rows_parsed"] == 10  # the rows read again and those of the files kept aside


def test_setting_aside_every_file_of_a_loaded_batch_takes_its_rows_out_of_raw(
    lake: Local,
) -> None:
    """The check failed after the load put the batch's rows in raw; the person on call sets its
    only file aside. The batch is then empty: none of its rows stay in raw, where the corrected
    file, landed again, would put them a second time."""
    lake.seed_customers(1)
    lake.land(FEED, [order(1, "lost in space", "10:00:00.000"),
                     *[order(n, "placed", "10:00:00.000") for n in range(20, 30)],
                     order(30, "placed", "10:00:00.000").replace("19.90", "N/A")])  # fmt: skip
    failed = lake.run(FEED)
    assert failed["state"] == "failed" and failed["tasks"]["transform"]["state"] == "failed"
    batch = failed["batch_id"]
    assert lake.count(FEED, "raw") == 11  # loaded; the mart never saw it
    assert [row[3] for row in quarantined(lake, batch)] == ["not_a_value"]
    [key] = lake.keys(f"processing/{batch}/{FEED}/")
    name = key.removeprefix(f"processing/{batch}/{FEED}/")
    emptied = lake.run(FEED, reprocess=batch, quarantine={name: "status unknown (ticket 11)"})
    assert emptied["state"] == "success" and emptied["tasks"]["load"]["state"] == "skipped"
    assert lake.count(FEED, "raw") == 0 and lake.count(FEED, "mart") == 0
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["rows_parsed"], row["rows_loaded"], row["rows_rejected"]) == (
        "empty", 0, 0, 0
    )  # fmt: skip
    assert [row[3] for row in quarantined(lake, batch)] == ["file_set_aside"]
    lake.land(FEED, [order(1, "placed", "10:00:00.000")])  # corrected upstream
    assert lake.run(FEED)["state"] == "success"
    raw = quote_table(lake.feeds[FEED].raw)
    assert lake.query(f'SELECT "ORDER_ID", "STATUS" FROM {raw}') == [("ord_0000000001", "placed")]
    assert mart(lake)[0][:2] == ("ord_0000000001", "placed")
    assert lake.keys("landing/") == [] and lake.objects("processing/") == []


def test_a_file_the_csv_parser_cannot_read_is_set_aside_with_its_error(lake: Local) -> None:
    """Under on_error continue the other files publish; the unreadable one goes to quarantine/
    and gets one quarantine row with the parser's error and line (RECORD empty)."""
    lake.seed_customers(1)
    lake.land(FEED, [order(n, "placed", "10:00:00.000") for n in (1, 2)])
    firehose = lake.stack.boto3_client("firehose")
    broken = order(3, "placed", "10:00:00.000").encode() + b"\nord_4,cus_000001,pl\xffced\n"
    firehose.put_record_batch(DeliveryStreamName=lake.stack.streams[FEED],
                              Records=[{"Data": broken}])  # fmt: skip
    run = lake.run(FEED)
    assert run["state"] == "success", run
    batch = run["batch_id"]
    [aside] = lake.keys(f"quarantine/{batch}/{FEED}/")
    [row] = quarantined(lake, batch)
    assert row[0] == aside.replace("quarantine/", "processing/", 1)
    assert (row[1], row[2], row[3], row[5]) == (2, None, "file_unreadable", None)
    assert row[4].startswith("the CSV parser could not read the file: Invalid unicode")
    assert row[4].endswith(f"; the file is kept whole in {aside}")
    assert [r[0] for r in mart(lake)] == ["ord_0000000001", "ord_0000000002"]
    ledger = lake.ledger(FEED)[batch]
    assert (ledger["files_loaded"], ledger["files_skipped"], ledger["rows_rejected"]) == (1, 1, 0)
