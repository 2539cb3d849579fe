"""Snowflake's COPY INTO <table> from an external s3:// stage, for the local warehouse.

fakesnow reads S3 through DuckDB's httpfs extension, which cannot be downloaded here, and its own
COPY rejects most of what StreamLine's load uses. `copy_into` takes its place for a COPY whose
stage URL is s3:// (anything else goes to fakesnow's): it lists and downloads the files with
boto3 (here about 4x faster than DuckDB reading through an fsspec filesystem), parses them with
DuckDB's read_csv and applies Snowflake's rules (streamline.local.copy_files: the files, their
compression and encoding; streamline.local.copy_conversion: conversions, checks, rows).
Interface: `bind(s3, fakesnow_copy_into)` once, then `copy_into(...)` with fakesnow's arguments;
it returns the SQL whose rows are the COPY's result, one per file (file, status, rows_parsed,
rows_loaded, error_limit, errors_seen, first_error, first_error_line, first_error_character,
first_error_column_name).

What it implements, as Snowflake documents it
(https://docs.snowflake.com/en/sql-reference/sql/copy-into-table):
- FROM @stage[/path] or a transforming FROM (SELECT $n, literals, METADATA$FILENAME,
  METADATA$FILE_ROW_NUMBER, CURRENT_TIMESTAMP() FROM @stage/path); FILES = (...) (a missing
  file is an error); FORCE (without it, files this table loaded before are skipped: the load
  history); SIZE_LIMIT (stops after the file that reaches it, at least one file); ON_ERROR
  ABORT_STATEMENT, CONTINUE, SKIP_FILE; TRUNCATECOLUMNS / ENFORCE_LENGTH.
- File format options (https://docs.snowflake.com/en/sql-reference/sql/create-file-format):
  TYPE = CSV, FIELD_DELIMITER, FIELD_OPTIONALLY_ENCLOSED_BY, SKIP_HEADER, NULL_IF,
  EMPTY_FIELD_AS_NULL, COMPRESSION (AUTO, GZIP, ZSTD, NONE), ENCODING (UTF8, ISO-8859-1,
  WINDOWS1252), TIMESTAMP_FORMAT, DATE_FORMAT, ERROR_ON_COLUMN_COUNT_MISMATCH (only without a
  transformation, as Snowflake ignores it in a transforming COPY), TRIM_SPACE.
- Snowflake's conversion errors (numbers, booleans, dates, timestamps, string length, NULL in a
  NOT NULL column) with their messages and error numbers; the first error's line, character and
  column per file; a file the CSV parser cannot read is LOAD_FAILED under SKIP_FILE and
  CONTINUE, and fails the statement under ABORT_STATEMENT.

What it does not: other file types, ESCAPE / ESCAPE_UNENCLOSED_FIELD, MATCH_BY_COLUMN_NAME,
PATTERN, VALIDATION_MODE, bind parameters, transformations beyond those listed (each raises
NotImplementedError naming it), and Snowflake's 64-day expiry of the load history.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
from snowflake.connector.errors import ProgrammingError
from sqlglot import exp

from streamline.local.copy_conversion import convert_files, load
from streamline.local.copy_files import (
    CODECS,
    Column,
    CopyOptions,
    StageFile,
    download,
    literal,
    quote_name,
)

_s3: Any = None  # boto3 S3 client for the lake, set by bind
_fakesnow_copy_into: Callable[..., str] | None = None


def bind(s3: Any, fakesnow_copy_into: Callable[..., str] | None = None) -> None:
    """Read stages through this S3 client; hand COPYs from other stages to fakesnow's own (given
    once: later calls only change the client)."""
    global _s3, _fakesnow_copy_into
    _s3 = s3
    if fakesnow_copy_into is not None:
        _fakesnow_copy_into = fakesnow_copy_into


# Snowflake's CSV defaults. ESCAPE_UNENCLOSED_FIELD's is really '\\', which DuckDB cannot read;
# fakesnow records NONE as the default too.
_CSV_DEFAULTS: dict[str, Any] = {
    "TYPE": "CSV",
    "FIELD_DELIMITER": ",",
    "FIELD_OPTIONALLY_ENCLOSED_BY": "NONE",
    "SKIP_HEADER": 0,
    "NULL_IF": ["\\N"],
    "EMPTY_FIELD_AS_NULL": True,
    "COMPRESSION": "AUTO",
    "TIMESTAMP_FORMAT": "AUTO",
    "DATE_FORMAT": "AUTO",
    "ENCODING": "UTF8",
    "ERROR_ON_COLUMN_COUNT_MISMATCH": True,
    "TRIM_SPACE": False,
    "ESCAPE_UNENCLOSED_FIELD": "NONE",
    "COMMENT": "",
}
_CSV_ONLY = {
    "TYPE": {"CSV"},
    "COMPRESSION": {"AUTO", "GZIP", "ZSTD", "NONE"},
    "ENCODING": set(CODECS),
    "ESCAPE_UNENCLOSED_FIELD": {"NONE"},
}
_RESULT = [
    *((name, "VARCHAR") for name in ("file", "status")),
    *((name, "BIGINT") for name in ("rows_parsed", "rows_loaded", "error_limit", "errors_seen")),
    ("first_error", "VARCHAR"),
    *((name, "BIGINT") for name in ("first_error_line", "first_error_character")),
    ("first_error_column_name", "VARCHAR"),
]


def copy_into(
    duck_conn: duckdb.DuckDBPyConnection,
    database: str | None,
    schema: str | None,
    expr: exp.Copy,
    table_stages: Any,
    params: Any = None,
) -> str:
    """fakesnow's copy_into, except that a COPY from an s3:// stage runs as Snowflake runs it."""
    from fakesnow import copy_into as fakesnow_copy

    assert _fakesnow_copy_into is not None
    source = fakesnow_copy._from_source(expr)
    table = fakesnow_copy._extract_table(expr.this)

    def stage_url(var: str) -> str:
        args = (duck_conn, database, schema, table_stages, table)
        return fakesnow_copy.stage_url_from_var(var, *args)

    stage = source[1:].split("/")[0] if source.startswith("@") else ""
    if not (base := stage_url(stage) if stage else "").startswith("s3://"):
        return _fakesnow_copy_into(duck_conn, database, schema, expr, table_stages, params)
    if expr.find(exp.Placeholder):
        raise NotImplementedError("COPY from an s3 stage with bind parameters")
    copy = _copy_options(expr, duck_conn, database, schema)
    where = (table.catalog or database or "", table.db or schema or "", table.name)
    columns = _columns(duck_conn, where, expr.this)
    files = _files(duck_conn, where, copy, base, stage_url(source[1:]))
    if not files:
        sql = "SELECT 'Copy executed with 0 files processed.' AS status"
        duck_conn.execute(sql)
        return sql
    subquery = expr.args["files"][0]
    select = subquery.this.expressions if isinstance(subquery, exp.Subquery) else None
    with tempfile.TemporaryDirectory(prefix="streamline-copy-") as folder:
        local = download(_s3, files, Path(folder), copy.format)
        # DuckDB's parse errors fail a transaction; on a side connection they leave the caller's
        # usable, as Snowflake leaves a transaction after a failed statement.
        with duck_conn.cursor() as side:
            converted, unreadable = convert_files(side, columns, copy, files, local, select)
        rows = load(duck_conn, where, columns, copy, files, converted, unreadable)
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else literal(str(v)) for v in row) + ")" for row in rows
    )
    casts = ", ".join(
        f"CAST({quote_name(name)} AS {kind}) AS {quote_name(name)}" for name, kind in _RESULT
    )
    names = ", ".join(quote_name(name) for name, _ in _RESULT)
    sql = f"SELECT {casts} FROM (VALUES {values}) AS t({names})"
    duck_conn.execute(sql)  # fakesnow returns this statement's rows and describes it
    return sql


def _copy_options(
    expr: exp.Copy, duck_conn: duckdb.DuckDBPyConnection, database: str | None, schema: str | None
) -> CopyOptions:
    from fakesnow.transforms.file_format import lookup_file_format
    from fakesnow.transforms.options import parse_options

    options: dict[str, Any] = {}
    file_format: dict[str, Any] = {}
    for param in expr.args.get("params", []):
        name, value = param.this.name.upper(), param.expression
        text = str(value.this if isinstance(value, exp.Boolean) else value and value.name).upper()
        if name == "FILE_FORMAT":
            file_format = parse_options(param.expressions)
            if format_name := file_format.pop("FORMAT_NAME", None):
                named = lookup_file_format(duck_conn, str(format_name), database, schema)
                file_format = {**named, **file_format}
        elif name == "ON_ERROR" and text in {"ABORT_STATEMENT", "CONTINUE", "SKIP_FILE"}:
            options["on_error"] = text
        elif name == "SIZE_LIMIT":
            options["size_limit"] = int(text)
        elif name in {"TRUNCATECOLUMNS", "ENFORCE_LENGTH"}:
            options["truncate"] = (text == "TRUE") != (name == "ENFORCE_LENGTH")
        elif name == "FORCE":
            options["force"] = text == "TRUE"
        elif name == "FILES" and isinstance(value, exp.Tuple | exp.Paren | exp.Literal):
            names = value.expressions if isinstance(value, exp.Tuple) else [value.unnest()]
            options["files"] = tuple(item.name for item in names)
        else:
            raise NotImplementedError(f"COPY option {param.sql(dialect='snowflake')}")
    file_format = {**_CSV_DEFAULTS, **file_format}
    for name, value in file_format.items():
        allowed = _CSV_ONLY.get(name)
        if name not in _CSV_DEFAULTS or (allowed and str(value).upper() not in allowed):
            raise NotImplementedError(f"FILE_FORMAT option {name} = {value} in COPY from s3")
    return CopyOptions(file_format, **options)


def _columns(
    duck_conn: duckdb.DuckDBPyConnection, where: tuple[str, str, str], into: exp.Expr
) -> list[Column]:
    """The COPY's target columns (all the table's, in order, when it names none)."""
    found = duck_conn.execute(
        "SELECT column_name, data_type, is_nullable, ext_character_maximum_length "
        "FROM duckdb_columns() LEFT JOIN _fs_global._fs_information_schema._fs_columns_ext "
        "ON (ext_table_catalog, ext_table_schema, ext_table_name, ext_column_name) "
        "= (database_name, schema_name, table_name, column_name) "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        list(where),
    ).fetchall()
    if not found:
        msg = f"SQL compilation error:\nTable '{where[2]}' does not exist or not authorized."
        raise ProgrammingError(msg=msg, errno=2003, sqlstate="42S02")
    columns = {row[0]: Column(*row) for row in found}
    names = [c.name for c in into.expressions] if isinstance(into, exp.Schema) else list(columns)
    if unknown := [name for name in names if name not in columns]:
        msg = f"SQL compilation error:\ninvalid identifier '{unknown[0]}'"
        raise ProgrammingError(msg=msg, errno=904, sqlstate="42000")
    return [columns[name] for name in names]


def _files(
    duck_conn: duckdb.DuckDBPyConnection,
    where: tuple[str, str, str],
    copy: CopyOptions,
    base: str,
    url: str,
) -> list[StageFile]:
    """The objects under the URL, less those loaded before (unless FORCE), up to SIZE_LIMIT."""
    bucket, prefix = urlparse(url).netloc, urlparse(url).path.lstrip("/")
    relative_to = len(urlparse(base).path.lstrip("/"))
    try:
        pages = _s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = sorted((o["Key"], o["Size"]) for page in pages for o in page.get("Contents", []))
    except Exception as exc:
        msg = f"Failure using stage area. Cause: [{exc}]"
        raise ProgrammingError(msg=msg, errno=91016, sqlstate="22000") from exc
    files = [
        StageFile(f"s3://{bucket}/{key}", key, size, key[relative_to:])
        for key, size in objects
        if not key.endswith("/")
    ]
    if copy.files is not None:  # FILES: exactly these, named relative to the FROM location
        by_name = {file.key[len(prefix) :]: file for file in files}
        if missing := [name for name in copy.files if name not in by_name]:
            msg = f"Remote file 's3://{bucket}/{prefix}{missing[0]}' was not found."
            raise ProgrammingError(msg=msg, errno=91016, sqlstate="22000")
        files = [by_name[name] for name in dict.fromkeys(copy.files)]
    if not copy.force:  # Snowflake skips files this table has loaded (for 64 days)
        history = duck_conn.execute(
            f"SELECT FILE_NAME FROM {quote_name(where[0])}._fs_information_schema._fs_load_history "
            "WHERE SCHEMA_NAME = ? AND TABLE_NAME = ? AND STATUS <> 'LOAD_FAILED'",
            list(where[1:]),
        ).fetchall()
        loaded = {url for (url,) in history}
        files = [file for file in files if file.url not in loaded]
    total = 0
    for index, file in enumerate(files):  # SIZE_LIMIT: load until reached, at least one file
        if copy.size_limit and index and total >= copy.size_limit:
            return files[:index]
        total += file.size
    return files
