"""Fidelity probes: Snowflake behaviours the pipeline depends on, checked on the local warehouse.

Each probe is a few statements (and, for a COPY, the files of its stage) with the result
Snowflake's documentation gives, cited by `doc`. `run_probes` runs them on a warehouse connection
(the local one, or Snowflake itself) and compares; `streamline fidelity` prints the figure (probes
passing / total) and `tests/integration/test_fidelity.py` runs every probe in `make test`. A probe
the local warehouse cannot pass names the reason in `gap`; docs/local-runtime.md lists them.

Statements may use {stage} (the probe's own stage, an external stage on s3://<bucket>/probes/
<name>/, in the probe's own schema, which is the session's current one).
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import zstandard

DOCS = "https://docs.snowflake.com/en"
ORDER_BY = f"{DOCS}/sql-reference/constructs/order-by"
COPY = f"{DOCS}/sql-reference/sql/copy-into-table"
FILE_FORMAT = f"{DOCS}/sql-reference/sql/create-file-format"
MERGE = f"{DOCS}/sql-reference/sql/merge"


@dataclass(frozen=True)
class Probe:
    """One documented behaviour: run statements in order; the last one's rows (the columns named
    by `columns`, all when empty) must equal `expected`, or its error contain `error`."""

    name: str
    doc: str
    statements: tuple[str, ...]
    expected: tuple[tuple[Any, ...], ...] = ()
    error: str | None = None
    columns: tuple[int, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict)
    gap: str | None = None
    """Why the local warehouse does not behave so (the probe is expected to fail locally)."""


@dataclass(frozen=True)
class ProbeResult:
    """A probe's outcome: passed (the warehouse behaved as documented) and what it returned."""

    probe: Probe
    passed: bool
    got: str


_T = "CREATE TABLE t (v NUMBER)"
_T_ROWS = "INSERT INTO t VALUES (1), (NULL), (2)"
_CSV = "FILE_FORMAT = (TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"')"
_XY = "CREATE TABLE t (x VARCHAR(3), y NUMBER)"


def _copy(options: str = "", table: str = "t") -> str:
    return f"COPY INTO {table} FROM {{stage}} {_CSV} {options}".strip()


PROBES: tuple[Probe, ...] = (
    Probe("null_order_asc", ORDER_BY, (_T, _T_ROWS, "SELECT v FROM t ORDER BY v"),
          ((1,), (2,), (None,))),
    Probe("null_order_desc", ORDER_BY, (_T, _T_ROWS, "SELECT v FROM t ORDER BY v DESC"),
          ((None,), (2,), (1,))),
    Probe("null_order_window", ORDER_BY,
          (_T, _T_ROWS, "SELECT v FROM t QUALIFY ROW_NUMBER() OVER (ORDER BY v DESC) = 1"),
          ((None,),)),
    Probe("merge_duplicate_source_keys", f"{MERGE}#duplicate-join-behavior",
          ("CREATE TABLE t (k NUMBER, v NUMBER)", "INSERT INTO t VALUES (1, 0)",
           "MERGE INTO t USING (SELECT 1 AS k, 1 AS v UNION ALL SELECT 1, 2) AS s ON t.k = s.k "
           "WHEN MATCHED THEN UPDATE SET v = s.v"),
          error="Duplicate row detected during DML action"),
    Probe("identifier_case", f"{DOCS}/sql-reference/identifiers-syntax",
          ("CREATE TABLE lower_case (v NUMBER)", 'SELECT COUNT(*) FROM "LOWER_CASE"'), ((0,),)),
    Probe("null_timestamp", f"{DOCS}/sql-reference/data-types-datetime",
          ("SELECT CAST(NULL AS TIMESTAMP_NTZ), CAST('2026-01-01 10:00:00' AS TIMESTAMP_NTZ)",),
          ((None, dt.datetime(2026, 1, 1, 10, 0)),)),
    Probe("try_cast_number", f"{DOCS}/sql-reference/functions/try_cast",
          ("SELECT TRY_CAST('N/A' AS NUMBER(12,2)), TRY_CAST('12.345' AS NUMBER(12,2))",),
          ((None, Decimal("12.35")),)),
    Probe("try_to_timestamp_format", f"{DOCS}/sql-reference/functions/to_timestamp",
          ("SELECT TRY_TO_TIMESTAMP_NTZ('2026-01-01 10:00:00.123', 'YYYY-MM-DD HH24:MI:SS.FF3'), "
           "TRY_TO_TIMESTAMP_NTZ('yesterday', 'YYYY-MM-DD HH24:MI:SS.FF3')",),
          ((dt.datetime(2026, 1, 1, 10, 0, 0, 123000), None),)),
    Probe("try_to_timestamp_auto", f"{DOCS}/sql-reference/functions/to_timestamp",
          ("SELECT TRY_TO_TIMESTAMP_NTZ(v), TRY_TO_TIMESTAMP_NTZ(w) FROM "
           "(SELECT '2026-01-01 10:00:00.123' AS v, 'yesterday' AS w)",),
          ((dt.datetime(2026, 1, 1, 10, 0, 0, 123000), None),)),
    Probe("copy_quoted_newline", FILE_FORMAT, (_XY, _copy(), "SELECT x, y FROM t"),
          (("a\nb", 1),), files={"a.csv": b'"a\nb",1\n'}),
    Probe("copy_quoted_quote", FILE_FORMAT, (_XY, _copy(), "SELECT x FROM t"),
          (('a"b',),), files={"a.csv": b'"a""b",1\n'}),
    Probe("copy_encoding_iso_8859_1", FILE_FORMAT,
          ("CREATE TABLE t (x VARCHAR, y NUMBER)",
           "COPY INTO t FROM {stage} FILE_FORMAT = (TYPE = CSV ENCODING = 'ISO-8859-1')",
           "SELECT x FROM t"),
          (("café",),), files={"a.csv": "café,1\n".encode("latin-1")}),
    Probe("copy_encoding_windows1252", FILE_FORMAT,
          ("CREATE TABLE t (x VARCHAR, y NUMBER)",
           "COPY INTO t FROM {stage} FILE_FORMAT = (TYPE = CSV ENCODING = 'WINDOWS1252')",
           "SELECT x FROM t"),
          (("5€",),), files={"a.csv": "5€,1\n".encode("cp1252")}),
    Probe("copy_compression_auto_gzip", FILE_FORMAT, (_XY, _copy(), "SELECT x, y FROM t"),
          (("a", 1),), files={"a.csv.gz": gzip.compress(b"a,1\n")}),
    Probe("copy_compression_auto_zstd", FILE_FORMAT, (_XY, _copy(), "SELECT x, y FROM t"),
          (("a", 1),), files={"a.csv.zst": zstandard.ZstdCompressor().compress(b"a,1\n")}),
    Probe("copy_null_if", FILE_FORMAT,
          (_XY, "COPY INTO t FROM {stage} FILE_FORMAT = (TYPE = CSV NULL_IF = ('NULL') "
                "EMPTY_FIELD_AS_NULL = TRUE)", "SELECT x, y FROM t ORDER BY y"),
          ((None, 1), (None, 2)), files={"a.csv": b"NULL,1\n,2\n"}),
    Probe("copy_timestamp_format", FILE_FORMAT,
          ("CREATE TABLE t (x TIMESTAMP_NTZ, y NUMBER)",
           "COPY INTO t FROM {stage} FILE_FORMAT = (TYPE = CSV "
           "TIMESTAMP_FORMAT = 'DD/MM/YYYY HH24:MI')", "SELECT x FROM t"),
          ((dt.datetime(2026, 1, 31, 10, 5),),), files={"a.csv": b"31/01/2026 10:05,1\n"}),
    Probe("copy_on_error_abort_statement", f"{COPY}#copy-options-copyoptions",
          (_XY, _copy("ON_ERROR = ABORT_STATEMENT")),
          error="Numeric value 'x' is not recognized", files={"a.csv": b"a,1\nb,x\n"}),
    Probe("copy_on_error_continue", f"{COPY}#copy-options-copyoptions",
          (_XY, _copy("ON_ERROR = CONTINUE")), (("PARTIALLY_LOADED", 2, 1),), columns=(1, 2, 3),
          files={"a.csv": b"a,1\nb,x\n"}),
    Probe("copy_on_error_skip_file", f"{COPY}#copy-options-copyoptions",
          (_XY, _copy("ON_ERROR = SKIP_FILE")), (("LOAD_FAILED", 0),), columns=(1, 3),
          files={"a.csv": b"a,1\nb,x\n"}),
    Probe("copy_column_count_mismatch_plain", FILE_FORMAT, (_XY, _copy()),
          error="Number of columns in file (3) does not match that of the corresponding table (2)",
          files={"a.csv": b"a,1,extra\n"}),
    Probe("copy_column_count_mismatch_transforming", f"{DOCS}/user-guide/data-load-transform",
          (_XY, f"COPY INTO t FROM (SELECT $1, $2 FROM {{stage}}) {_CSV}", "SELECT x, y FROM t"),
          (("a", 1),), files={"a.csv": b"a,1,extra\n"}),
    Probe("copy_varchar_too_long", f"{COPY}#copy-options-copyoptions", (_XY, _copy()),
          error="User character length limit (3) exceeded by string 'abcd'",
          files={"a.csv": b"abcd,1\n"}),
    Probe("copy_char_too_long", f"{COPY}#copy-options-copyoptions",
          ("CREATE TABLE t (x CHAR(3), y NUMBER)", _copy()),
          error="User character length limit (3) exceeded by string 'abcd'",
          files={"a.csv": b"abcd,1\n"}),
    Probe("copy_truncatecolumns", f"{COPY}#copy-options-copyoptions",
          (_XY, _copy("TRUNCATECOLUMNS = TRUE"), "SELECT x FROM t"), (("abc",),),
          files={"a.csv": b"abcd,1\n"}),
    Probe("copy_size_limit", f"{COPY}#copy-options-copyoptions",
          (_XY, _copy("SIZE_LIMIT = 1"), "SELECT x FROM t"), (("a",),),
          files={"1.csv": b"a,1\n", "2.csv": b"b,2\n"}),
    Probe("copy_rolls_back", f"{DOCS}/sql-reference/transactions",
          (_XY, "BEGIN", _copy(), "ROLLBACK", "SELECT COUNT(*) FROM t"), ((0,),),
          files={"a.csv": b"a,1\n"}),
    Probe("merge_source_null_ordering", ORDER_BY,
          ("CREATE TABLE t (k NUMBER, v NUMBER)",
           "MERGE INTO t USING (SELECT k, v FROM (SELECT 1 AS k, 1 AS v UNION ALL SELECT 1, NULL) "
           "QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC) = 1) AS s ON t.k = s.k "
           "WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)", "SELECT k, v FROM t"),
          ((1, None),)),
    Probe("copy_missing_positional_field_is_null", f"{DOCS}/user-guide/data-load-transform",
          ("CREATE TABLE t (x VARCHAR, y NUMBER, z VARCHAR)",
           f"COPY INTO t FROM (SELECT $1, $2, $3 FROM {{stage}}) {_CSV}", "SELECT x, y, z FROM t"),
          (("a", 1, None),), files={"a.csv": b"a,1\n"}),
    Probe("copy_metadata_columns", f"{DOCS}/user-guide/querying-metadata",
          ("CREATE TABLE t (x VARCHAR, f VARCHAR, r NUMBER)",
           f"COPY INTO t FROM (SELECT $1, METADATA$FILENAME, METADATA$FILE_ROW_NUMBER "
           f"FROM {{stage}}) {_CSV}", "SELECT x, f, r FROM t ORDER BY r"),
          (("a", "a.csv", 1), ("b", "a.csv", 2)), files={"a.csv": b"a\nb\n"}),
    Probe("copy_files_names_a_missing_file", f"{COPY}#optional-parameters",
          (_XY, _copy("FILES = ('a.csv', 'missing.csv')")), error="was not found",
          files={"a.csv": b"a,1\n"}),
    Probe("copy_load_history_skips_loaded_files",
          f"{DOCS}/user-guide/data-load-considerations-load",
          (_XY, _copy(), _copy(), "SELECT COUNT(*) FROM t"), ((1,),), files={"a.csv": b"a,1\n"}),
    Probe("copy_force_reloads", f"{COPY}#copy-options-copyoptions",
          (_XY, _copy(), _copy("FORCE = TRUE"), "SELECT COUNT(*) FROM t"), ((2,),),
          files={"a.csv": b"a,1\n"}),
    Probe("copy_date_format", FILE_FORMAT,
          ("CREATE TABLE t (x DATE, y NUMBER)",
           "COPY INTO t FROM {stage} FILE_FORMAT = (TYPE = CSV DATE_FORMAT = 'DD.MM.YYYY')",
           "SELECT x FROM t"),
          ((dt.date(2026, 1, 31),),), files={"a.csv": b"31.01.2026,1\n"}),
    Probe("copy_null_if_markers", FILE_FORMAT,
          (_XY, "COPY INTO t FROM {stage} FILE_FORMAT = (TYPE = CSV NULL_IF = ('NULL', 'n/a') "
                "EMPTY_FIELD_AS_NULL = FALSE)", "SELECT x, y FROM t ORDER BY y"),
          ((None, 1), (None, 2), ("", 3)), files={"a.csv": b"NULL,1\nn/a,2\n,3\n"}),
    Probe("copy_unclosed_quote", FILE_FORMAT,
          (_XY, _copy("ON_ERROR = SKIP_FILE")), (("LOAD_FAILED",),), columns=(1,),
          files={"a.csv": b'"a,1\nb,2\n'}),
)  # fmt: skip


def _normalise(
    rows: Sequence[Sequence[Any]], columns: tuple[int, ...]
) -> tuple[tuple[Any, ...], ...]:
    """The rows (only the columns named, when some are), whole-number Decimals as ints."""
    picked = [tuple(row[i] for i in columns) if columns else tuple(row) for row in rows]
    return tuple(tuple(_plain(v) for v in row) for row in picked)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def run_probe(
    probe: Probe,
    cursor: Any,
    put: Callable[[str, bytes], None],
    bucket: str,
) -> ProbeResult:
    """Run one probe in its own schema of database PROBES (created if need be) through cursor
    (a connector cursor on any warehouse); put(key, body) writes an object of the bucket."""
    schema = f"PROBES.P_{probe.name.upper()}"
    prefix = f"probes/{probe.name}/"
    for name, body in probe.files.items():
        put(prefix + name, body)
    stage = f"{schema}.ST"
    setup = [
        "CREATE DATABASE IF NOT EXISTS PROBES",
        f"DROP SCHEMA IF EXISTS {schema} CASCADE",  # fakesnow does not replace a full schema
        f"CREATE SCHEMA {schema}",
        f"USE SCHEMA {schema}",
        f"CREATE OR REPLACE STAGE {stage} URL = 's3://{bucket}/{prefix}'",
    ]
    for statement in setup:
        cursor.execute(statement)
    last = probe.statements[-1].format(stage=f"@{stage}")
    try:
        for statement in probe.statements[:-1]:
            cursor.execute(statement.format(stage=f"@{stage}"))
        cursor.execute(last)
        rows = _normalise(cursor.fetchall(), probe.columns)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        passed = probe.error is not None and probe.error in str(exc)
        return ProbeResult(probe, passed, f"error: {message}")
    if probe.error is not None:
        return ProbeResult(probe, False, f"no error; rows {rows}")
    return ProbeResult(probe, rows == _normalise(probe.expected, ()), f"rows {rows}")


def run_probes(
    connect: Callable[[], Any], put: Callable[[str, bytes], None], bucket: str
) -> list[ProbeResult]:
    """Every probe, in order, on a connection from connect()."""
    conn = connect()
    try:
        cursor = conn.cursor()
        return [run_probe(probe, cursor, put, bucket) for probe in PROBES]
    finally:
        conn.close()
