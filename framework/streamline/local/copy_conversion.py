"""Snowflake's conversions and checks for the COPY emulator (streamline.local.copy_emulator): each
field converted to its column's type with Snowflake's error messages and numbers
(https://docs.snowflake.com/en/sql-reference/sql/copy-into-table, ON_ERROR), the files read with
DuckDB's read_csv in one query, and the rows loaded with their per-file results."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
from snowflake.connector.errors import ProgrammingError
from sqlglot import exp

from streamline.local.copy_files import (
    Column,
    CopyOptions,
    StageFile,
    line_of,
    literal,
    parse_error,
    quote_name,
    strptime_format,
)

_NUMBERS = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "DOUBLE", "FLOAT"}
NO_NULL = "\x01"  # read_csv's null marker: never in data, so empty and missing fields differ
_ABORT_HINT = (
    "If you would like to continue loading when an error is encountered, use other values such "
    "as 'SKIP_FILE' or 'CONTINUE' for the ON_ERROR option. For more information on loading "
    "options, please run 'info loading_data' in a SQL client."
)


_Check = tuple[str, str, str]  # SQL: condition on {v} (the converted value), errno, message


def _convert(
    source: str, typed: bool, column: Column, copy: CopyOptions
) -> tuple[str, list[_Check]]:
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
            value = (
                f"TRY_CAST(TRY_STRPTIME({source}, {literal(strptime_format(pattern))}) AS {kind})"
            )
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
            sources.append((literal(item.name), False, 0))
        elif name == "METADATA$FILENAME":
            sources.append(("_name", False, 0))
        elif name == "METADATA$FILE_ROW_NUMBER":
            sources.append(("_row", True, 0))
        elif isinstance(item, exp.CurrentTimestamp):  # the statement's start, on every row
            sources.append((f"TIMESTAMPTZ {literal(now.isoformat())}", True, 0))
        else:
            raise NotImplementedError(f"COPY transformation {item.sql(dialect='snowflake')}")
    return sources


class Scan(NamedTuple):
    """One file for read_csv: its position in the COPY's files, the file, where it was downloaded,
    and whether to read it on one thread (DuckDB's parallel reader refuses quoted newlines
    beside null_padding)."""

    position: int
    file: StageFile
    path: Path
    serial: bool = False


def convert_files(
    side: duckdb.DuckDBPyConnection,
    columns: list[Column],
    copy: CopyOptions,
    files: Sequence[StageFile],
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
            unreadable[index] = (path, line_of(path))
        else:
            scans.append(Scan(index, file, path))

    def run(batch: list[Scan]) -> Any:
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
                        unreadable[scan.position] = parse_error(exc)
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


def _conversion_sql(
    columns: list[Column],
    copy: CopyOptions,
    scans: Sequence[Scan],
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
    quote = literal("" if enclosed_by.upper() == "NONE" else enclosed_by)
    read = (
        "columns = {"
        + ", ".join(f"'c{n}': 'VARCHAR'" for n in range(1, fields + count + 1))
        + f"}}, header = false, skip = {int(fmt['SKIP_HEADER'])}, "
        f"delim = {literal(fmt['FIELD_DELIMITER'])}, quote = {quote}, escape = {quote}, "
        f"nullstr = [{literal(NO_NULL)}], null_padding = true, strict_mode = false, "
        "auto_detect = false, compression = 'auto'"
    )
    null_if = fmt["NULL_IF"] if isinstance(fmt["NULL_IF"], list) else [fmt["NULL_IF"]]
    empty = [""] * bool(fmt["EMPTY_FIELD_AS_NULL"])
    nulls = ", ".join(literal(str(v)) for v in [*null_if, *empty])
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
        f"SELECT {scan.position} AS _file, {literal(scan.file.name)} AS _name, "
        f"row_number() OVER () AS _row, * FROM read_csv({literal(str(scan.path))}, {read}"
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


def load(
    duck_conn: duckdb.DuckDBPyConnection,
    where: tuple[str, str, str],
    columns: list[Column],
    copy: CopyOptions,
    files: Sequence[StageFile],
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
    table = ".".join(map(quote_name, where))
    name = f"converted_{uuid.uuid4().hex}"
    # fakesnow's stage lookup leaves a result unread, and DuckDB refuses register() until it ends.
    duck_conn.complete()
    kept = ", ".join(map(str, keep or [-1]))
    where_kept = "_err IS NULL" if copy.on_error == "CONTINUE" else f"_file IN ({kept})"
    if converted is not None:
        duck_conn.register(name, converted)
        try:
            duck_conn.execute(
                f"INSERT INTO {table} ({', '.join(quote_name(c.name) for c in columns)}) "
                f"SELECT {', '.join(f'v{i}' for i in range(len(columns)))} FROM {name} "
                f"WHERE {where_kept}"
            )
        finally:
            duck_conn.unregister(name)
    now = datetime.datetime.now(datetime.UTC)
    duck_conn.executemany(
        f"INSERT INTO {quote_name(where[0])}._fs_information_schema._fs_load_history "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (where[1], url, where[2], now, status, loaded, parsed, *first, errors, limit)
            for url, status, parsed, loaded, limit, errors, *first in rows
        ],
    )
    return rows
