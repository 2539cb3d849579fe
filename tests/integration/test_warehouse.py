"""The local warehouse runs production's SQL unchanged: the rendered DDL, load, transform and check
of both feeds go through the real Snowflake connector over HTTPS, with the lake in moto.

Every test renders the feeds into a database of its own, so tests share the servers, not data.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import itertools
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
import zstandard
from snowflake.connector.errors import ProgrammingError
from snowflake.connector.util_text import split_statements

from streamline.gates import CheckResult, GateFailed, checks_in, gated_fetch_all
from streamline.lake import copy_results
from streamline.ledger import claim_values, claim_xcom
from streamline.model import Feed
from streamline.project import find_project
from streamline.rendering import RenderSettings, render_feed
from streamline.validation import validate_paths
from streamline_edge import FakeClock, iter_events

pytestmark = pytest.mark.integration

BATCH = "20260101T000000Z"
COPY = 4  # the COPY among the load's statements: UPDATE + INSERT (the claim), BEGIN, DELETE, COPY
LATER = "20260101T000500Z"
TS = "%Y-%m-%d %H:%M:%S.%f"


@pytest.fixture(scope="module")
def spec_feeds() -> tuple[Any, list[Feed]]:
    project = find_project()
    result = validate_paths(project)
    return project, list(result.feeds)


class Pipeline:
    """Both feeds, rendered into a database and a lake bucket of their own, and a connection."""

    def __init__(self, spec: tuple[Any, list[Feed]], s3: Any, conn: Any) -> None:
        self.project, feeds = spec
        self.database = f"it_{uuid.uuid4().hex[:10]}"
        self.bucket = self.database.replace("_", "-")
        self.feeds = [self._isolated(feed) for feed in feeds]
        self.s3, self.conn = s3, conn
        self.files: dict[tuple[str, str], list[str]] = {}
        s3.create_bucket(Bucket=self.bucket)

    def _isolated(self, feed: Feed) -> Feed:
        raw = dataclasses.replace(feed.raw, database=self.database)
        mart = dataclasses.replace(feed.mart, database=self.database)
        return dataclasses.replace(feed, raw=raw, mart=mart)

    def feed(self, name: str, fmt: dict[str, Any] | None = None, **copy: Any) -> Feed:
        """The feed's spec with these copy options, and these source.format options (fmt)."""
        feed = next(f for f in self.feeds if f.feed == name)
        source = dataclasses.replace(
            feed.source, format=dataclasses.replace(feed.source.format, **(fmt or {}))
        )
        return dataclasses.replace(feed, source=source, copy=dataclasses.replace(feed.copy, **copy))

    def sql(
        self, name: str, batch: str = BATCH, fmt: dict[str, Any] | None = None, **copy: Any
    ) -> dict[str, str]:
        """Each step's SQL as a run executes it: the run-time expressions rendered as Airflow
        renders them, with the claim task's file list of the batch's files put so far."""
        settings = RenderSettings(lake_url=f"s3://{self.bucket}")
        feed = self.feed(name, fmt, **copy)
        rendered = render_feed(self.project, feed, self.feeds, batch_id=batch, settings=settings)
        now = datetime.now(UTC)
        claimed = claim_values(dag_id=name, run_id="manual__test", files=1, bytes_=1,
                               empty_files=0, started=now, claimed=now)  # fmt: skip
        folder = feed.layout.lake.folder("processing", batch)
        claim = claim_xcom(batch, folder, self.files.get((name, batch), []), claimed)
        ti = SimpleNamespace(start_date=now, xcom_pull=lambda task_ids, key: claim)
        return {step: jinja2.Template(sql).render(ti=ti) for step, sql in rendered.items()}

    def run(self, sql: str, conn: Any = None) -> list[list[tuple[Any, ...]]]:
        """Run each statement as the DAG's SQL steps do: split, one execute each, every result
        through the gated handler (a failed gate rolls back and raises)."""
        results = []
        for statement, _ in split_statements(StringIO(sql)):
            if statement:
                cursor = (conn or self.conn).cursor()
                cursor.execute(statement)
                results.append(gated_fetch_all(cursor) or [])
        return results

    def put(self, name: str, file: str, lines: Sequence[str] | bytes, batch: str = BATCH) -> str:
        """Put a file of the batch: its lines (UTF-8), or its bytes as they are."""
        key = f"processing/{batch}/{name}/2026/01/01/00/{file}"
        body = lines if isinstance(lines, bytes) else "".join(lines).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.files.setdefault((name, batch), []).append(f"2026/01/01/00/{file}")
        return key

    def rows(self, query: str) -> list[dict[str, Any]]:
        cursor = self.conn.cursor()
        cursor.execute(query.replace("{db}", f'"{self.database.upper()}"'))
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT COUNT(*) AS N FROM {{db}}.{table}")[0]["N"])

    def transform(self, name: str, batch: str = BATCH, **copy: Any) -> dict[str, CheckResult]:
        """Run the transform step; its checks (the gate's rows) by name."""
        results = self.run(self.sql(name, batch, **copy)["transform"])
        return {check.name: check for check in checks_in(results)}


@pytest.fixture
def pipeline(spec_feeds: tuple[Any, list[Feed]], s3: Any, warehouse: Any) -> Iterator[Pipeline]:
    conn = warehouse.connect()
    try:
        pipeline = Pipeline(spec_feeds, s3, conn)
        for name in ("customers", "orders"):
            pipeline.run(pipeline.sql(name)["ddl"])
        yield pipeline
    finally:
        conn.close()


def events(count: int, duplicate_rate: float = 0.0) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {"customers": [], "orders": []}
    stream = iter_events(seed=7, clock=FakeClock(), duplicate_rate=duplicate_rate)
    for event in itertools.islice(stream, count):
        lines[event.feed].append(event.line)
    return lines


def order(order_id: str, status: str, updated_at: str, amount: str = "10.50") -> str:
    return f"{order_id},cus_000001,{status},2,{amount},EUR,2026-01-01 00:00:00.000,{updated_at}\n"


CUSTOMER = "cus_000001,ada@example.com,Ada Lovelace,GB,pro,2026-01-01 00:00:00.000,2026-01-01 00:00:00.000\n"  # noqa: E501


def parse_order(line: str) -> dict[str, Any]:
    fields = next(csv.reader([line]))
    return {
        "ORDER_ID": fields[0],
        "CUSTOMER_ID": fields[1],
        "STATUS": fields[2],
        "QUANTITY": Decimal(fields[3]),
        "AMOUNT": Decimal(fields[4]),
        "CURRENCY": fields[5],
        "ORDERED_AT": datetime.strptime(fields[6], TS),
        "UPDATED_AT": datetime.strptime(fields[7], TS),
    }


def test_both_feeds_load_transform_and_check_like_production(pipeline: Pipeline) -> None:
    lines = events(500, duplicate_rate=0.1)
    orders = lines["orders"]
    assert len(orders) > 300 and len(set(orders)) < len(orders)  # duplicates are in the batch
    pipeline.put("customers", "c-1", lines["customers"])
    files = {
        pipeline.put("orders", "o-1", orders[:100]): orders[:100],
        pipeline.put("orders", "o-2", orders[100:250]): orders[100:250],
        pipeline.put("orders", "o-3.csv", orders[250:]): orders[250:],
    }
    for name in ("customers", "orders"):
        sql = pipeline.sql(name)
        copy = pipeline.run(sql["load"])[COPY]
        assert {row[1] for row in copy} == {"LOADED"}  # status per file
        checks = pipeline.transform(name)
        assert checks and all(check.passed for check in checks.values())
    assert sum(row[3] for row in copy) == len(orders)  # rows_loaded

    raw = pipeline.rows('SELECT * FROM {db}."RAW"."ORDERS"')
    assert len(raw) == len(orders)
    assert {r["BATCH_ID"] for r in raw} == {BATCH}
    assert {r["SOURCE_FILE"] for r in raw} == set(files)  # paths relative to the stage URL
    now = datetime.now(UTC)
    for key, file_lines in files.items():
        loaded = sorted(
            (r for r in raw if r["SOURCE_FILE"] == key), key=lambda r: r["SOURCE_ROW_NUMBER"]
        )
        assert [r["SOURCE_ROW_NUMBER"] for r in loaded] == list(range(1, len(file_lines) + 1))
        for row, line in zip(loaded, file_lines, strict=True):
            assert {k: row[k] for k in parse_order(line)} == parse_order(line)
            assert now - timedelta(minutes=5) < row["LOADED_AT"] <= now + timedelta(seconds=5)

    latest: dict[str, dict[str, Any]] = {}
    for values in map(parse_order, orders):
        current = latest.get(values["ORDER_ID"])
        if current is None or values["UPDATED_AT"] > current["UPDATED_AT"]:
            latest[values["ORDER_ID"]] = values
    mart = pipeline.rows('SELECT * FROM {db}."MART"."ORDERS"')
    assert len(mart) == len(latest) < len(orders)
    assert {r["ORDER_ID"]: {k: r[k] for k in parse_order(orders[0])} for r in mart} == latest
    assert {r["BATCH_ID"] for r in mart} == {BATCH}

    for _ in range(2):  # re-running the batch adds zero rows to raw and mart
        sql = pipeline.sql("orders")
        pipeline.run(sql["load"])
        assert all(check.passed for check in pipeline.transform("orders").values())
        assert pipeline.count('"RAW"."ORDERS"') == len(orders)
        assert pipeline.count('"MART"."ORDERS"') == len(latest)


def test_a_later_batch_replaces_a_mart_row_only_with_a_newer_one(pipeline: Pipeline) -> None:
    pipeline.put("customers", "c", [CUSTOMER])
    for step in ("load", "transform"):  # the orders' references need their customer
        pipeline.run(pipeline.sql("customers")[step])
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000")])
    pipeline.put("orders", "b", [order("ord_2", "placed", "2026-01-01 00:00:01.000")])
    for step in ("load", "transform"):
        pipeline.run(pipeline.sql("orders")[step])
    late = [
        order("ord_1", "cancelled", "2025-12-31 23:59:59.999"),  # older than the mart's row
        order("ord_2", "paid", "2026-01-01 00:00:02.000"),
        order("ord_2", "shipped", "2026-01-01 00:00:03.000"),
        order("ord_3", "placed", "2026-01-01 00:00:01.000"),
    ]
    pipeline.put("orders", "c", late, batch=LATER)
    for step in ("load", "transform"):
        pipeline.run(pipeline.sql("orders", LATER)[step])
    mart = {r["ORDER_ID"]: r for r in pipeline.rows('SELECT * FROM {db}."MART"."ORDERS"')}
    assert {k: (r["STATUS"], r["BATCH_ID"]) for k, r in mart.items()} == {
        "ord_1": ("placed", BATCH),
        "ord_2": ("shipped", LATER),
        "ord_3": ("placed", LATER),
    }


BAD_FILE = [
    order("ord_4", "placed", "2026-01-01 00:00:01.000"),
    order("ord_5", "placed", "2026-01-01 00:00:01.000", amount="N/A"),
    order("ord_6", "placed", "2026-01-01 00:00:01.000").replace(",EUR,", ",EURO,"),
]


def quarantined(pipeline: Pipeline) -> list[tuple[Any, ...]]:
    rows = pipeline.rows(
        'SELECT "SOURCE_FILE", "SOURCE_ROW_NUMBER", "RECORD", "ERROR_CODE", "ERROR", "COLUMN_NAME" '
        'FROM {db}."RAW"."ORDERS_QUARANTINE" ORDER BY 1, 2'
    )
    return [tuple(row.values()) for row in rows]


FOLDER = f"processing/{BATCH}/orders/2026/01/01/00/"
BAD_ROWS = [
    (FOLDER + "b", 2, BAD_FILE[1].rstrip("\n"), "not_a_value",
     "amount: 'N/A' is not a NUMBER(12,2)", "AMOUNT"),
    (FOLDER + "b", 3, BAD_FILE[2].rstrip("\n"), "too_long",
     "currency: 4 characters, longer than CHAR(3)", "CURRENCY"),
]  # fmt: skip


def test_a_bad_row_under_abort_statement_fails_the_load_and_changes_nothing(
    pipeline: Pipeline, warehouse: Any
) -> None:
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000")])
    pipeline.run(pipeline.sql("orders")["load"])
    before = pipeline.rows('SELECT * FROM {db}."RAW"."ORDERS"')
    pipeline.put("orders", "b", BAD_FILE)
    for _ in range(2):  # a second attempt must not meet the first one's transaction
        conn = warehouse.connect()
        with pytest.raises(GateFailed) as failure:
            pipeline.run(pipeline.sql("orders", on_error="abort_statement")["load"], conn)
        conn.close()
        assert str(failure.value) == (
            f"1 check failed: rejected_rows: 2 rows (first: {FOLDER}b, row 2: amount: 'N/A' "
            "is not a NUMBER(12,2))"
        )
        assert pipeline.rows('SELECT * FROM {db}."RAW"."ORDERS"') == before
        assert pipeline.count('"RAW"."ORDERS_QUARANTINE"') == 0
        assert pipeline.count('"RAW"."ORDERS_LANDING"') == 0


def test_on_error_continue_quarantines_bad_rows_and_skip_file_their_whole_file(
    pipeline: Pipeline,
) -> None:
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000")])
    pipeline.put("orders", "b", BAD_FILE)
    raw_ids = 'SELECT "ORDER_ID" FROM {db}."RAW"."ORDERS" ORDER BY 1'

    pipeline.run(pipeline.sql("orders", on_error="continue", max_rejected_ratio=0.5)["load"])
    assert [r["ORDER_ID"] for r in pipeline.rows(raw_ids)] == ["ord_1", "ord_4"]
    assert quarantined(pipeline) == BAD_ROWS

    pipeline.run(pipeline.sql("orders", on_error="skip_file", max_rejected_ratio=1)["load"])
    assert [r["ORDER_ID"] for r in pipeline.rows(raw_ids)] == ["ord_1"]
    skipped = (FOLDER + "b", 1, BAD_FILE[0].rstrip("\n"), "file_skipped",
               f"file skipped (on_error: skip_file): row 2 was rejected: {BAD_ROWS[0][4]}",
               None)  # fmt: skip
    assert quarantined(pipeline) == [skipped, *BAD_ROWS]


def test_a_row_neither_in_raw_nor_in_quarantine_fails_the_load(pipeline: Pipeline) -> None:
    """The rows_reconciled gate: every row read, file by file, is in raw or in quarantine."""
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000"),
                                 order("ord_2", "placed", "2026-01-01 00:00:01.000")])  # fmt: skip
    statements = [s for s, _ in split_statements(StringIO(pipeline.sql("orders")["load"])) if s]
    gate = next(i for i, s in enumerate(statements) if "'rows_reconciled'" in s)
    pipeline.run("\n".join(statements[:gate]))  # each statement keeps its semicolon
    pipeline.run(
        """DELETE FROM {db}."RAW"."ORDERS" WHERE "ORDER_ID" = 'ord_2'""".replace(
            "{db}", f'"{pipeline.database.upper()}"'
        )
    )  # fmt: skip  (a row lost on the way)
    with pytest.raises(GateFailed) as failure:
        pipeline.run(statements[gate])
    assert str(failure.value) == (
        f"1 check failed: rows_reconciled: 1 row ({FOLDER}a: 2 rows read, 1 in raw, 0 quarantined)"
    )


def test_more_rejected_rows_than_max_rejected_ratio_fail_the_load_under_continue(
    pipeline: Pipeline,
) -> None:
    pipeline.put("orders", "b", BAD_FILE)  # 2 of 3 rows rejected; the default allows 10%
    with pytest.raises(GateFailed) as failure:
        pipeline.run(pipeline.sql("orders", on_error="continue")["load"])
    assert str(failure.value).startswith(
        "1 check failed: rejected_rows: 2 rows (2 of 3 rows, at most 0.1 allowed "
        f"(copy.max_rejected_ratio); first: {FOLDER}b, row 2: "
    ), failure.value
    assert pipeline.count('"RAW"."ORDERS"') == 0


def test_a_string_longer_than_its_column_is_an_error_unless_truncated(pipeline: Pipeline) -> None:
    pipeline.put("orders", "a", [BAD_FILE[2]])  # currency EURO for CHAR(3)
    with pytest.raises(GateFailed, match=r"currency: 4 characters, longer than CHAR\(3\)"):
        pipeline.run(pipeline.sql("orders")["load"])
    pipeline.run(pipeline.sql("orders", truncate_columns=True)["load"])
    assert pipeline.rows('SELECT "CURRENCY" FROM {db}."RAW"."ORDERS"') == [{"CURRENCY": "EUR"}]


def test_size_limit_stops_after_the_file_that_reaches_it(pipeline: Pipeline) -> None:
    for name in ("a", "b", "c"):
        pipeline.put("orders", name, [order(f"ord_{name}", "placed", "2026-01-01 00:00:01.000")])
    copy = pipeline.run(pipeline.sql("orders", size_limit_bytes=1)["load"])[COPY]
    assert [row[0].rsplit("/", 1)[1] for row in copy] == ["a"]  # at least one file loads


def test_gzipped_files_load_and_force_false_skips_loaded_files(pipeline: Pipeline) -> None:
    line = order("ord_1", "placed", "2026-01-01 00:00:01.000")
    key = f"processing/{BATCH}/orders/2026/01/01/00/a.gz"
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key, Body=gzip.compress(line.encode()))
    pipeline.files[("orders", BATCH)] = ["2026/01/01/00/a.gz"]
    copy = pipeline.run(pipeline.sql("orders")["load"])[COPY]
    assert copy[0][1:4] == ("LOADED", 1, 1)
    unforced = pipeline.sql("orders")["load"].replace("FORCE = TRUE", "FORCE = FALSE")
    assert pipeline.run(unforced)[COPY] == [("Copy executed with 0 files processed.",)]
    assert pipeline.count('"RAW"."ORDERS"') == 0  # the load's DELETE ran; the COPY skipped


def test_a_failing_check_rolls_the_mart_back_and_names_each_check_with_its_rows(
    pipeline: Pipeline,
) -> None:
    pipeline.put("customers", "c", [CUSTOMER])
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000")])
    for name in ("customers", "orders"):
        pipeline.run(pipeline.sql(name)["load"])
        assert all(check.passed for check in pipeline.transform(name).values())
    mart = pipeline.rows('SELECT * FROM {db}."MART"."ORDERS"')
    bad = [order("ord_1", "lost", "2026-01-01 00:00:02.000", "-1.00"),
           order("ord_2", "lost", "2026-01-01 00:00:02.000")]  # fmt: skip
    pipeline.put("orders", "b", bad, batch=LATER)
    pipeline.run(pipeline.sql("orders", LATER)["load"])
    with pytest.raises(GateFailed) as failure:
        pipeline.transform("orders", LATER)
    assert str(failure.value) == (
        "2 checks failed: "
        f"accepted_values__status: 2 rows (first: processing/{LATER}/orders/2026/01/01/00/b, "
        "row 1: 'lost'); "
        f"range__amount: 1 row (first: processing/{LATER}/orders/2026/01/01/00/b, row 1: -1.00)"
    )
    assert pipeline.rows('SELECT * FROM {db}."MART"."ORDERS"') == mart  # unchanged
    ledger = pipeline.rows('SELECT "STATUS" FROM {db}."RAW"."STREAMLINE_BATCHES" '
                           f"WHERE \"BATCH_ID\" = '{LATER}'")  # fmt: skip
    assert ledger == [{"STATUS": "loaded"}]  # the transform's ledger update rolled back too


def test_a_warn_check_is_recorded_and_the_batch_publishes(
    pipeline: Pipeline, spec_feeds: tuple[Any, list[Feed]]
) -> None:
    pipeline.put("customers", "c", [CUSTOMER])
    pipeline.put("orders", "a", [order("ord_1", "lost", "2026-01-01 00:00:01.000")])
    pipeline.run(pipeline.sql("customers")["load"])
    pipeline.transform("customers")
    orders = pipeline.feed("orders")
    checks = tuple(
        dataclasses.replace(c, severity="warn") if c.type == "accepted_values" else c
        for c in orders.checks
    )
    pipeline.feeds = [dataclasses.replace(f, checks=checks) if f.feed == "orders" else f
                      for f in pipeline.feeds]  # fmt: skip
    pipeline.run(pipeline.sql("orders")["load"])
    results = pipeline.transform("orders")
    assert not results["accepted_values__status"].passed
    assert results["accepted_values__status"].severity == "warn"
    assert [r["STATUS"] for r in pipeline.rows('SELECT "STATUS" FROM {db}."MART"."ORDERS"')] == [
        "lost"
    ]


@pytest.mark.parametrize(
    ("line", "code", "error", "column"),
    [
        (order("ord_1", "placed", "2026-01-01 00:00:01.000").rstrip("\n") + ",\n",
         "too_many_fields", "more than 8 fields; expected 8 (a delimiter too many?)", None),
        (order("ord_1", "placed", "2026-01-01 00:00:01.000").rsplit(",", 1)[0] + "\n",
         "too_few_fields", "7 fields; expected 8", None),
        (order("ord_1", "placed", "yesterday"), "not_a_value",
         "updated_at: 'yesterday' is not a TIMESTAMP_NTZ(3)", "UPDATED_AT"),
        (order("", "placed", "2026-01-01 00:00:01.000"), "null_value",
         "order_id: NULL, but it is part of the key", "ORDER_ID"),
        (order("ord_1", "placed", "NULL"), "null_value",
         "updated_at: NULL, but it is the ordering column", "UPDATED_AT"),
        (order("ord_1", "", "2026-01-01 00:00:01.000"), "null_value",
         "status: NULL, but the column is not nullable", "STATUS"),
    ],
)  # fmt: skip
def test_a_rejected_row_is_quarantined_with_its_reason(
    pipeline: Pipeline, line: str, code: str, error: str, column: str | None
) -> None:
    """Snowflake ignores ERROR_ON_COLUMN_COUNT_MISMATCH in a COPY that transforms: the load
    counts fields itself, and finds the NULLs the mart could not take before any MERGE."""
    pipeline.put("orders", "a", [line])
    pipeline.run(pipeline.sql("orders", on_error="continue", max_rejected_ratio=1)["load"])
    assert quarantined(pipeline) == [(FOLDER + "a", 1, line.rstrip("\n"), code, error, column)]
    assert pipeline.count('"RAW"."ORDERS"') == 0


def test_the_record_of_a_row_with_fields_too_many_marks_those_it_does_not_keep(
    pipeline: Pipeline,
) -> None:
    line = order("ord_1", "placed", "2026-01-01 00:00:01.000").rstrip("\n")
    pipeline.put("orders", "a", [line + ",X\n", line + ",X,Y,Z\n"])
    pipeline.run(pipeline.sql("orders", on_error="continue", max_rejected_ratio=1)["load"])
    assert [(r[1], r[2], r[3]) for r in quarantined(pipeline)] == [
        (1, line + ",X", "too_many_fields"),
        (2, line + ",X,...", "too_many_fields"),
    ]


def test_a_quoted_newline_loads_as_part_of_its_field(pipeline: Pipeline) -> None:
    """RFC 4180 and Snowflake: a quoted field may hold the record delimiter
    (https://docs.snowflake.com/en/sql-reference/sql/create-file-format#type-csv)."""
    pipeline.put("orders", "a", ['"ord\n1"' + order("", "placed", "2026-01-01 00:00:01.000")[0:],
                                 order("ord_2", "placed", "2026-01-01 00:00:01.000")])  # fmt: skip
    pipeline.run(pipeline.sql("orders", on_error="abort_statement")["load"])
    rows = pipeline.rows(
        'SELECT "ORDER_ID", "SOURCE_ROW_NUMBER" FROM {db}."RAW"."ORDERS" ORDER BY 2'
    )
    assert [(r["ORDER_ID"], r["SOURCE_ROW_NUMBER"]) for r in rows] == [("ord\n1", 1), ("ord_2", 2)]


@pytest.mark.parametrize("on_error", ["continue", "skip_file", "abort_statement"])
def test_a_file_the_csv_parser_cannot_read_fails_alone(pipeline: Pipeline, on_error: str) -> None:
    """Bytes that are not UTF-8 in an ENCODING = UTF8 file: Snowflake's parser rejects the file;
    under ON_ERROR = SKIP_FILE (the landing COPY's for continue and skip_file) the COPY goes on
    with the others and reports it LOAD_FAILED; ABORT_STATEMENT fails the statement."""
    good = order("ord_1", "placed", "2026-01-01 00:00:01.000")
    pipeline.put("orders", "a", [good] * 9)
    pipeline.put("orders", "b", good.encode() + b"ord_2,cus_1,pl\xffaced,2,1.00,EUR,x,y\n")
    sql = pipeline.sql("orders", on_error=on_error, max_rejected_ratio=1)["load"]
    if on_error == "abort_statement":
        with pytest.raises(ProgrammingError, match=r"(?s)Invalid unicode.*File '.*/b', line 2"):
            pipeline.run(sql)
        assert pipeline.count('"RAW"."ORDERS"') == 0
        return
    results = pipeline.run(sql)
    copied = copy_results(results)
    assert [(r.file.rsplit("/", 1)[1], r.status) for r in copied] == [
        ("a", "LOADED"), ("b", "LOAD_FAILED")
    ]  # fmt: skip
    failed = copied[1]
    assert "Invalid unicode" in (failed.first_error or "") and failed.first_error_line == 2
    assert pipeline.count('"RAW"."ORDERS"') == 9 and quarantined(pipeline) == []


@pytest.mark.parametrize(
    ("encoding", "codec", "compression"),
    [("ISO-8859-1", "latin-1", "none"), ("WINDOWS1252", "cp1252", "gzip"),
     ("WINDOWS1252", "cp1252", "zstd"), ("UTF8", "utf-8", "zstd")],
)  # fmt: skip
def test_every_encoding_and_compression_the_schema_allows_loads(
    pipeline: Pipeline, encoding: str, codec: str, compression: str
) -> None:
    """https://docs.snowflake.com/en/sql-reference/sql/create-file-format: ENCODING and
    COMPRESSION (AUTO tells gzip and zstd by their first bytes)."""
    text = "café" if codec == "latin-1" else "café€"  # ISO-8859-1 has no euro sign
    line = order("ord_1", "placed", "2026-01-01 00:00:01.000").replace("placed", text)
    body = line.encode(codec)
    if compression == "gzip":
        body = gzip.compress(body)
    elif compression == "zstd":
        body = zstandard.ZstdCompressor().compress(body)
    pipeline.put("orders", "a", body)
    for spelled in (compression, "auto"):
        fmt = {"encoding": encoding, "compression": spelled}
        statements = pipeline.sql("orders", fmt=fmt, on_error="abort_statement")
        pipeline.run(statements["ddl"])
        pipeline.run(statements["load"])
        assert pipeline.rows('SELECT "STATUS" FROM {db}."RAW"."ORDERS"') == [{"STATUS": text}]
    pipeline.run(pipeline.sql("orders")["ddl"])  # the shipped file format again


def test_a_merge_into_a_missing_table_fails_as_in_snowflake(pipeline: Pipeline) -> None:
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000")])
    pipeline.run(pipeline.sql("orders")["load"])
    pipeline.run(f'DROP TABLE "{pipeline.database.upper()}"."MART"."ORDERS"')
    with pytest.raises(ProgrammingError) as failure:
        pipeline.run(pipeline.sql("orders")["transform"])
    assert failure.value.errno == 2003  # does not exist


def test_airflow_snowflake_hook_runs_the_steps(
    pipeline: Pipeline, warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    from streamline.local.warehouse import airflow_connection

    connection = airflow_connection(warehouse.port)
    monkeypatch.setenv("AIRFLOW_CONN_STREAMLINE_WAREHOUSE", json.dumps(connection))
    hook = SnowflakeHook(snowflake_conn_id="streamline_warehouse")
    pipeline.put("customers", "c", [CUSTOMER])
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000")])
    for name in ("customers", "orders"):
        sql = pipeline.sql(name)
        hook.run(sql["load"], autocommit=True, handler=gated_fetch_all)  # as the DAG's tasks
        results = hook.run(
            sql["transform"], autocommit=True, handler=gated_fetch_all, return_last=False
        )
        assert checks_in(results) and all(check.passed for check in checks_in(results))
    assert pipeline.count('"MART"."ORDERS"') == 1

    pipeline.put("orders", "b", BAD_FILE)
    started = time.monotonic()
    with pytest.raises(GateFailed, match="rejected_rows: 2 rows"):
        hook.run(pipeline.sql("orders")["load"], autocommit=True, handler=gated_fetch_all)
    assert time.monotonic() - started < 10
    assert pipeline.count('"RAW"."ORDERS"') == 1  # the gate rolled back


def test_install_refuses_another_fakesnow_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamline.local import compat

    monkeypatch.setattr(compat.importlib.metadata, "version", lambda name: "0.13.0")
    with pytest.raises(compat.CompatError, match=r"bridges fakesnow 0\.12\.1, but fakesnow 0\.13"):
        compat.install(s3_endpoint_url="http://127.0.0.1:9")


def test_the_load_reads_only_the_files_its_claim_named(pipeline: Pipeline) -> None:
    pipeline.put("orders", "a", [order("ord_1", "placed", "2026-01-01 00:00:01.000")])
    stray = f"processing/{BATCH}/orders/2026/01/01/00/stray"  # in the folder, not in the claim
    body = order("ord_2", "placed", "2026-01-01 00:00:01.000").encode()
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=stray, Body=body)
    copy = pipeline.run(pipeline.sql("orders")["load"])[COPY]
    assert [row[0].rsplit("/", 1)[1] for row in copy] == ["a"]
    assert pipeline.count('"RAW"."ORDERS"') == 1
    pipeline.files[("orders", BATCH)].append("2026/01/01/00/gone")  # named, but not there
    with pytest.raises(ProgrammingError, match="was not found"):
        pipeline.run(pipeline.sql("orders")["load"])
    pipeline.run("ROLLBACK")
