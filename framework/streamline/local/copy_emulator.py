"""Snowflake's COPY INTO <table> from an external s3:// stage, for the local warehouse.

fakesnow reads S3 through DuckDB's httpfs extension, which cannot be downloaded here, and its own
COPY rejects most of what StreamLine's load uses. `copy_into` takes its place for a COPY whose
stage URL is s3:// (anything else goes to fakesnow's): it lists and downloads the files with
boto3 (here about 4x faster than DuckDB reading through an fsspec filesystem), parses them with
DuckDB's read_csv and applies Snowflake's rules. Interface: `bind(s3, fakesnow_copy_into)` once,
then `copy_into(...)` with fakesnow's arguments; it returns the SQL whose rows are the COPY's
result, one per file (file, status, rows_parsed, rows_loaded, error_limit, errors_seen,
first_error, first_error_line, first_error_character, first_error_column_name).

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

import datetime
import gzip
import re
import tempfile
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import duckdb
import zstandard
from snowflake.connector.errors import ProgrammingError
from sqlglot import exp

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
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
_CODECS = {"UTF8": None, "UTF-8": None, "ISO-8859-1": "latin-1", "ISO88591": "latin-1",
           "WINDOWS1252": "cp1252"}  # fmt: skip
"""ENCODING values -> Python's codec; None: UTF-8, which DuckDB reads (and checks) itself."""


_CSV_ONLY = {
    "TYPE": {"CSV"},
    "COMPRESSION": {"AUTO", "GZIP", "ZSTD", "NONE"},
    "ENCODING": set(_CODECS),
    "ESCAPE_UNENCLOSED_FIELD": {"NONE"},
}
_NUMBERS = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "DOUBLE", "FLOAT"}
_NO_NULL = "\x01"  # read_csv's null marker: never in data, so empty and missing fields differ
_RESULT = [
    *((name, "VARCHAR") for name in ("file", "status")),
    *((name, "BIGINT") for name in ("rows_parsed", "rows_loaded", "error_limit", "errors_seen")),
    ("first_error", "VARCHAR"),
    *((name, "BIGINT") for name in ("first_error_line", "first_error_character")),
    ("first_error_column_name", "VARCHAR"),
]
_ABORT_HINT = (
    "If you would like to continue loading when an error is encountered, use other values such "
    "as 'SKIP_FILE' or 'CONTINUE' for the ON_ERROR option. For more information on loading "
    "options, please run 'info loading_data' in a SQL client."
)


@dataclass(frozen=True)
class _Copy:
    """A COPY's options, with its file format's."""

    format: dict[str, Any]
    on_error: str = "ABORT_STATEMENT"
    size_limit: int = 0
    truncate: bool = False
    force: bool = False
    files: tuple[str, ...] | None = None  # FILES = (...): names relative to the FROM location


class _Column(NamedTuple):
    name: str
    type: str  # DuckDB's
    nullable: bool
    length: int | None  # of a VARCHAR/CHAR


class _File(NamedTuple):
    url: str  # s3://bucket/key, as Snowflake reports it
    key: str
    size: int
    name: str  # relative to the stage URL: METADATA$FILENAME


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
        local = _download(files, Path(folder), copy.format)
        # DuckDB's parse errors fail a transaction; on a side connection they leave the caller's
        # usable, as Snowflake leaves a transaction after a failed statement.
        with duck_conn.cursor() as side:
            converted, unreadable = _convert_files(side, columns, copy, files, local, select)
        rows = _load(duck_conn, where, columns, copy, files, converted, unreadable)
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else _lit(str(v)) for v in row) + ")" for row in rows
    )
    casts = ", ".join(f"CAST({_q(name)} AS {kind}) AS {_q(name)}" for name, kind in _RESULT)
    names = ", ".join(_q(name) for name, _ in _RESULT)
    sql = f"SELECT {casts} FROM (VALUES {values}) AS t({names})"
    duck_conn.execute(sql)  # fakesnow returns this statement's rows and describes it
    return sql


def _copy_options(
    expr: exp.Copy, duck_conn: duckdb.DuckDBPyConnection, database: str | None, schema: str | None
) -> _Copy:
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
    return _Copy(file_format, **options)


def _columns(
    duck_conn: duckdb.DuckDBPyConnection, where: tuple[str, str, str], into: exp.Expr
) -> list[_Column]:
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
    columns = {row[0]: _Column(*row) for row in found}
    names = [c.name for c in into.expressions] if isinstance(into, exp.Schema) else list(columns)
    if unknown := [name for name in names if name not in columns]:
        msg = f"SQL compilation error:\ninvalid identifier '{unknown[0]}'"
        raise ProgrammingError(msg=msg, errno=904, sqlstate="42000")
    return [columns[name] for name in names]


def _files(
    duck_conn: duckdb.DuckDBPyConnection,
    where: tuple[str, str, str],
    copy: _Copy,
    base: str,
    url: str,
) -> list[_File]:
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
        _File(f"s3://{bucket}/{key}", key, size, key[relative_to:])
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
            f"SELECT FILE_NAME FROM {_q(where[0])}._fs_information_schema._fs_load_history "
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


def _download(files: Sequence[_File], folder: Path, fmt: dict[str, Any]) -> list[Path | str]:
    """Download the files in parallel, each ready for read_csv: a compressed one named for its
    compression (.gz, .zst; COMPRESSION AUTO tells by the first bytes, as Snowflake does), one
    in another ENCODING decompressed and transcoded to UTF-8. A file that is not in its ENCODING
    comes back as the error Snowflake would give instead of a path."""
    compression = str(fmt["COMPRESSION"]).upper()
    codec = _CODECS[str(fmt["ENCODING"]).upper()]

    def fetch(index: int, file: _File) -> Path | str:
        path = folder / f"{index:06d}.csv"
        _s3.download_file(urlparse(file.url).netloc, file.key, str(path))
        with path.open("rb") as handle:
            magic = handle.read(4)
        kind = compression
        if compression == "AUTO":
            kind = "GZIP" if magic[:2] == _GZIP else "ZSTD" if magic == _ZSTD else "NONE"
        if codec is None:
            suffix = {"GZIP": ".csv.gz", "ZSTD": ".csv.zst"}.get(kind)
            return path.rename(path.with_suffix(suffix)) if suffix else path
        data = path.read_bytes()
        if kind == "GZIP":
            data = gzip.decompress(data)
        elif kind == "ZSTD":
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        try:
            path.write_bytes(data.decode(codec).encode())
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            return f"Invalid {fmt['ENCODING']} character 0x{data[exc.start]:02X} on line {line}"
        return path

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fetch, range(len(files)), files))


_FORMAT_ELEMENTS = re.compile(
    r'"[^"]*"|YYYY|YY|MMMM|MON|MM|DD|DY|HH24|HH12|HH|AM|PM|MI|SS|FF\d?|TZH:TZM|TZHTZM|.',
    re.I | re.S,
)
_STRPTIME = {"YYYY": "%Y", "YY": "%y", "MMMM": "%B", "MON": "%b", "MM": "%m", "DD": "%d"}
_STRPTIME |= {"DY": "%a", "HH24": "%H", "HH12": "%I", "HH": "%H", "AM": "%p", "PM": "%p"}
_STRPTIME |= {"MI": "%M", "SS": "%S", "TZH:TZM": "%z", "TZHTZM": "%z", "FF": "%n"}
_STRPTIME |= {f"FF{n}": "%g" if n <= 3 else "%f" if n <= 6 else "%n" for n in range(1, 10)}


def _strptime(snowflake_format: str) -> str:
    """A Snowflake date/time format as DuckDB's strptime format."""
    out = []
    for element in _FORMAT_ELEMENTS.findall(snowflake_format):
        if element.startswith('"'):
            out.append(element[1:-1].replace("%", "%%"))
        else:
            out.append(_STRPTIME.get(element.upper(), element.replace("%", "%%")))
    return "".join(out)


_Check = tuple[str, str, str]  # SQL: condition on {v} (the converted value), errno, message


def _convert(source: str, typed: bool, column: _Column, copy: _Copy) -> tuple[str, list[_Check]]:
    """SQL converting a source to the column's type, and Snowflake's checks on it, in order."""
    kind, length, fmt = column.type, column.length, copy.format
    quoted = f"'''' || {source} || ''''"
    failed = f"{source} IS NOT NULL AND {{v}} IS NULL"
    checks: list[_Check] = []
    if typed:
        value = f"CAST({source} AS {kind})"
    elif kind == "VARCHAR":
        value = f"left({source}, {length})" if length and copy.truncate else source
        if length and not copy.truncate:
            message = f"'User character length limit ({length}) exceeded by string ' || {quoted}"
            checks.append((f"length({source}) > {length}", "100074", message))
    elif kind.startswith("DECIMAL") or kind in _NUMBERS:
        value = f"TRY_CAST({source} AS {kind})"
        number = f"TRY_CAST({source} AS DOUBLE) IS NOT NULL"  # a number, but out of range
        errno = f"CASE WHEN {number} THEN 100039 ELSE 100038 END"
        why = f"CASE WHEN {number} THEN ' is out of range' ELSE ' is not recognized' END"
        checks.append((failed, errno, f"'Numeric value ' || {quoted} || {why}"))
    elif kind == "BOOLEAN":
        value = (
            f"CASE WHEN lower({source}) IN ('true', 't', 'yes', 'y', 'on', '1') THEN TRUE "
            f"WHEN lower({source}) IN ('false', 'f', 'no', 'n', 'off', '0') THEN FALSE END"
        )
        checks.append((failed, "100037", f"'Boolean value ' || {quoted} || ' is not recognized'"))
    elif kind in {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"}:
        pattern = fmt["DATE_FORMAT" if kind == "DATE" else "TIMESTAMP_FORMAT"]
        value = f"TRY_CAST({source} AS {kind})"
        if str(pattern).upper() != "AUTO":
            value = f"TRY_CAST(TRY_STRPTIME({source}, {_lit(_strptime(pattern))}) AS {kind})"
        what, errno = ("Date", "100040") if kind == "DATE" else ("Timestamp", "100035")
        checks.append((failed, errno, f"'{what} ' || {quoted} || ' is not recognized'"))
    else:
        raise NotImplementedError(f"COPY from s3 into a column of DuckDB type {kind}")
    if not column.nullable:
        checks.append(("{v} IS NULL", "100072", "'NULL result in a non-nullable column'"))
    return value, checks


def _sources(select: list[exp.Expr], now: datetime.datetime) -> list[tuple[str, bool, int]]:
    """Each selected item as (SQL, typed, field number or 0)."""
    sources = []
    for item in select:
        name = item.name.upper() if isinstance(item, exp.Column) else ""
        if isinstance(item, exp.Parameter) and item.this.is_int and int(item.this.name) > 0:
            sources.append((f"f{item.this.name}", False, int(item.this.name)))
        elif isinstance(item, exp.Literal):
            sources.append((_lit(item.name), False, 0))
        elif name == "METADATA$FILENAME":
            sources.append(("_name", False, 0))
        elif name == "METADATA$FILE_ROW_NUMBER":
            sources.append(("_row", True, 0))
        elif isinstance(item, exp.CurrentTimestamp):  # the statement's start, on every row
            sources.append((f"TIMESTAMPTZ {_lit(now.isoformat())}", True, 0))
        else:
            raise NotImplementedError(f"COPY transformation {item.sql(dialect='snowflake')}")
    return sources


class _Scan(NamedTuple):
    """One file for read_csv: its position in the COPY's files, the file, where it was downloaded,
    and whether to read it on one thread (DuckDB's parallel reader refuses quoted newlines
    beside null_padding)."""

    position: int
    file: _File
    path: Path
    serial: bool = False


def _convert_files(
    side: duckdb.DuckDBPyConnection,
    columns: list[_Column],
    copy: _Copy,
    files: Sequence[_File],
    local: Sequence[Path | str],
    select: list[exp.Expr] | None,
) -> tuple[Any, dict[int, tuple[str, int | None]]]:
    """Every row of the files the CSV parser can read, converted (an Arrow table, or None), and
    the files it cannot read: index -> (error, line). Under ABORT_STATEMENT an unreadable file
    fails the statement, naming it.

    One query reads all files; when DuckDB refuses it, each file is read alone to find those it
    cannot read (and read again on one thread where quoted newlines need it).
    """
    unreadable: dict[int, tuple[str, int | None]] = {}
    scans = []
    for index, (file, path) in enumerate(zip(files, local, strict=True)):
        if isinstance(path, str):
            unreadable[index] = (path, _line_of(path))
        else:
            scans.append(_Scan(index, file, path))

    def run(batch: list[_Scan]) -> Any:
        return side.sql(_conversion_sql(columns, copy, batch, select)).to_arrow_table()

    try:
        converted = run(scans) if scans else None
    except duckdb.Error:
        readable = []
        for scan in scans:
            for serial in (False, True):
                try:
                    run([scan._replace(serial=serial)])
                except duckdb.Error as exc:
                    if serial or "parallel=false" not in str(exc):
                        unreadable[scan.position] = _parse_error(exc)
                        break
                else:
                    readable.append(scan._replace(serial=serial))
                    break
        converted = run(readable) if readable else None
    if unreadable and copy.on_error == "ABORT_STATEMENT":
        index, (error, line) = min(unreadable.items())
        where = f", line {line}" if line else ""
        raise ProgrammingError(
            msg=f"{error}\n  File '{files[index].name}'{where}\n  {_ABORT_HINT}",
            errno=100000,
            sqlstate="22000",
        )
    return converted, unreadable


def _line_of(error: str) -> int | None:
    found = re.search(r"[Ll]ine:? (\d+)", error)
    return int(found.group(1)) if found else None


def _parse_error(exc: duckdb.Error) -> tuple[str, int | None]:
    """DuckDB's CSV error as (message, line): its explanation, without the reader's settings."""
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [
        line for line in lines[1:]
        if not line.startswith(("Original Line", "Possible Solution", "file =", "delimiter"))
        and " = " not in line
    ]  # fmt: skip
    return (reasons[0] if reasons else lines[0]), _line_of(text)


def _conversion_sql(
    columns: list[_Column],
    copy: _Copy,
    scans: Sequence[_Scan],
    select: list[exp.Expr] | None,
) -> str:
    """One query over the files: each row's file, row number, converted values and first error."""
    fmt = copy.format
    plain: list[exp.Expr] = [
        exp.Parameter(this=exp.Literal.number(n + 1)) for n in range(len(columns))
    ]
    sources = _sources(select or plain, datetime.datetime.now(datetime.UTC))
    if len(sources) != len(columns):
        msg = (
            "SQL compilation error:\nInsert value list does not match column list expecting "
            f"{len(columns)} but got {len(sources)}"
        )
        raise ProgrammingError(msg=msg, errno=2020, sqlstate="21S01")
    fields = max(n for _, _, n in [*sources, ("", False, 1)])
    # Snowflake: "When querying staged data files, the ERROR_ON_COLUMN_COUNT_MISMATCH option is
    # ignored", so only a COPY without a transformation checks how many fields a row has.
    count = select is None and bool(fmt["ERROR_ON_COLUMN_COUNT_MISMATCH"])
    enclosed_by = str(fmt["FIELD_OPTIONALLY_ENCLOSED_BY"])
    quote = _lit("" if enclosed_by.upper() == "NONE" else enclosed_by)
    read = (
        "columns = {"
        + ", ".join(f"'c{n}': 'VARCHAR'" for n in range(1, fields + count + 1))
        + f"}}, header = false, skip = {int(fmt['SKIP_HEADER'])}, "
        f"delim = {_lit(fmt['FIELD_DELIMITER'])}, quote = {quote}, escape = {quote}, "
        f"nullstr = [{_lit(_NO_NULL)}], null_padding = true, strict_mode = false, "
        "auto_detect = false, compression = 'auto'"
    )
    null_if = fmt["NULL_IF"] if isinstance(fmt["NULL_IF"], list) else [fmt["NULL_IF"]]
    nulls = ", ".join(_lit(str(v)) for v in [*null_if, *([""] * bool(fmt["EMPTY_FIELD_AS_NULL"]))])
    fields_sql = []
    for n in range(1, fields + 1):
        raw = f"trim(c{n})" if fmt["TRIM_SPACE"] else f"c{n}"
        fields_sql.append(
            f"CASE WHEN {raw} IN ({nulls or 'NULL'}) THEN NULL ELSE {raw} END AS f{n}"
        )
    if count:  # missing fields are NULL, empty ones ''
        present = " + ".join(f"(c{n} IS NOT NULL)::INT" for n in range(1, fields + 2))
        fields_sql.append(f"{present} AS _count")
    # One scan per file: row_number() OVER () numbers a single read_csv's rows in file order, and
    # per-file scans run in parallel where one scan of all files would number them on one thread.
    reads = " UNION ALL ".join(
        f"SELECT {scan.position} AS _file, {_lit(scan.file.name)} AS _name, "
        f"row_number() OVER () AS _row, * FROM read_csv({_lit(str(scan.path))}, {read}"
        f"{', parallel = false' if scan.serial else ''})"
        for scan in scans
    )
    converted = [
        _convert(sql, typed, column, copy)
        for (sql, typed, _), column in zip(sources, columns, strict=True)
    ]
    values = ", ".join(f"{value} AS v{i}" for i, (value, _) in enumerate(converted))
    errors = []  # SQL: when, column number, errno, message, character
    if count:
        message = (
            "'Number of columns in file (' || _count || ') does not match that of the "
            f"corresponding table ({len(columns)}), use file format option "
            "error_on_column_count_mismatch=false to ignore this error'"
        )
        column = f"least(_count + 1, {len(columns)})"
        errors.append((f"_count <> {len(columns)}", column, "100080", message, "NULL"))
    for i, ((_, _, field), (_, checks)) in enumerate(zip(sources, converted, strict=True)):
        # Where the field starts in its line, from the lengths of the fields before it.
        start = " + ".join(["1", *(f"coalesce(length(f{n}), 0) + 1" for n in range(1, field))])
        for when, errno, message in checks:
            errors.append((when.format(v=f"v{i}"), str(i + 1), errno, message, start))
    error = "NULL"
    if errors:
        whens = " ".join(
            f"WHEN {when} THEN struct_pack(col := {col}, errno := {errno}, msg := {message}, "
            f"chr := {start})"
            for when, col, errno, message, start in errors
        )
        error = f"CASE {whens} END"
    return (
        f"SELECT _file, _row, {', '.join(f'v{i}' for i in range(len(columns)))}, {error} AS _err "
        f"FROM (SELECT *, {values} FROM (SELECT _file, _row, _name, {', '.join(fields_sql)} "
        f"FROM ({reads})))"
    )


def _load(
    duck_conn: duckdb.DuckDBPyConnection,
    where: tuple[str, str, str],
    columns: list[_Column],
    copy: _Copy,
    files: Sequence[_File],
    converted: Any,
    unreadable: dict[int, tuple[str, int | None]],
) -> list[tuple[Any, ...]]:
    """Insert the converted rows ON_ERROR keeps; the COPY's result rows, one per file."""
    stats = []
    if converted is not None:
        with duck_conn.cursor() as side:
            side.register("converted", converted)
            stats = side.execute(
                "SELECT _file, count(*), count(_err), arg_min(struct_insert(_err, row := _row), "
                "_row) FILTER (WHERE _err IS NOT NULL) FROM converted GROUP BY _file"
            ).fetchall()
    by_file = {index: (parsed, errors, err) for index, parsed, errors, err in stats}
    rows, keep = [], []
    for index, file in enumerate(files):
        parsed, errors, err = by_file.get(index, (0, 0, None))
        first: tuple[Any, ...] = (None,) * 4
        if index in unreadable:  # the parser could not read it: the whole file fails
            error, line = unreadable[index]
            rows.append((file.url, "LOAD_FAILED", 0, 0, 1, 1, error, line, None, None))
            continue
        if err:
            line = err["row"] + int(copy.format["SKIP_HEADER"])
            column = f'"{where[2]}"["{columns[err["col"] - 1].name}":{err["col"]}]'
            first = (err["msg"], line, err["chr"], column)
            if copy.on_error == "ABORT_STATEMENT":
                errno = int(err["errno"])
                state = {100038: "22018", 100039: "22003", 100035: "22007", 100040: "22007"}
                raise ProgrammingError(
                    msg=f"{err['msg']}\n  File '{file.name}', line {line}, character "
                    f"{err['chr']}\n  Row {err['row']}, column {column}\n  {_ABORT_HINT}",
                    errno=errno,
                    sqlstate=state.get(errno, "22000"),
                )
        loaded = parsed - errors if copy.on_error == "CONTINUE" else 0 if errors else parsed
        status = "PARTIALLY_LOADED" if errors and loaded else "LOAD_FAILED" if errors else "LOADED"
        keep += [index] * bool(loaded)
        limit = parsed if copy.on_error == "CONTINUE" else 1
        rows.append((file.url, status, parsed, loaded, limit, errors, *first))
    table = ".".join(map(_q, where))
    name = f"converted_{uuid.uuid4().hex}"
    # fakesnow's stage lookup leaves a result unread, and DuckDB refuses register() until it ends.
    duck_conn.complete()
    kept = ", ".join(map(str, keep or [-1]))
    where_kept = "_err IS NULL" if copy.on_error == "CONTINUE" else f"_file IN ({kept})"
    if converted is not None:
        duck_conn.register(name, converted)
        try:
            duck_conn.execute(
                f"INSERT INTO {table} ({', '.join(_q(c.name) for c in columns)}) "
                f"SELECT {', '.join(f'v{i}' for i in range(len(columns)))} FROM {name} "
                f"WHERE {where_kept}"
            )
        finally:
            duck_conn.unregister(name)
    now = datetime.datetime.now(datetime.UTC)
    duck_conn.executemany(
        f"INSERT INTO {_q(where[0])}._fs_information_schema._fs_load_history "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (where[1], url, where[2], now, status, loaded, parsed, *first, errors, limit)
            for url, status, parsed, loaded, limit, errors, *first in rows
        ],
    )
    return rows
