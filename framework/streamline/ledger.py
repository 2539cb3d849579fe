"""The batch ledger: one row per feed and batch in the warehouse, the pipeline's COPY_HISTORY.

Its table (`streamline_batches` in each raw schema, columns in `streamline.layout.LEDGER_COLUMNS`)
is created by the rendered DDL. The SQL steps update their batch's row inside their own
transaction (templates/ledger.sql.j2); the Python steps (claim, finalize) and the failure
callbacks write it here, one MERGE per event keyed by feed and batch id, so a retried task updates
its row and never adds one. Values are bound parameters (the connector's pyformat style:
https://docs.snowflake.com/en/developer-guide/python-connector/python-connector-example#binding-data).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from streamline.layout import FINISHED_STATUSES, LEDGER_COLUMNS
from streamline.model import TableRef
from streamline.rendering import quote_identifier, quote_literal, quote_table

if TYPE_CHECKING:
    from streamline.lake import SetAsideFile

ERROR_CHARS = 4000
_TYPES = {c.name: c.type for c in LEDGER_COLUMNS}
_KEY = ("feed", "batch_id")
_CLEARED_ON_CLAIM = (
    "failed_step", "error", "files_loaded", "files_skipped", "files_deferred", "rows_parsed",
    "rows_loaded", "rows_rejected", "checks", "load_started_at", "loaded_at",
    "transform_started_at", "transformed_at", "checked_at", "published_at", "failed_at",
)  # fmt: skip
"""Columns a (re)claim resets: they describe the steps after the claim."""


class Runner(Protocol):
    """What the ledger needs of a connection: Airflow's DbApiHook.run and get_records."""

    def run(self, sql: str, autocommit: bool = ..., parameters: Any = ...) -> Any: ...

    def get_records(self, sql: str, parameters: Any = ...) -> Any: ...

    def close(self) -> None: ...


class ConnectionRunner:
    """A Runner over one open DB-API connection (the Snowflake connector's, autocommit)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def close(self) -> None:
        self.connection.close()

    def run(self, sql: str, autocommit: bool = True, parameters: Any = None) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, parameters)

    def get_records(self, sql: str, parameters: Any = None) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())


def _typed(name: str, value: str) -> str:
    """A value expression as the column's type: JSON text for VARIANT, ISO 8601 for times."""
    kind = _TYPES[name]
    if kind == "VARIANT":
        return f"PARSE_JSON({value})"
    if kind.startswith("TIMESTAMP"):
        return f"CAST({value} AS TIMESTAMP_LTZ)"
    return value


def upsert_sql(table: TableRef, values: Mapping[str, str], *, count_run: bool = False) -> list[str]:
    """Two statements that set the ledger row of values["feed"] and values["batch_id"]: an UPDATE
    of the row, then an INSERT of it where it is not there yet.

    values maps ledger columns (feed and batch_id first) to SQL value expressions: bound
    parameters (%(name)s) or literals quoted by rendering.quote_literal. count_run also counts
    the run: RUNS + 1 when run_id differs from the row's. (Not a MERGE: one row each time, and the
    pair costs a tenth of a MERGE in the local warehouse.) One DAG run at a time works on a batch
    (the claims register hands a batch over), so the pair does not race itself.

    A claim (values with run_id and claimed_at) is fenced: it does not overwrite a row another
    run claimed later. A run that stalled while a reprocess took its batch over and published it
    (a retried load re-records the claim from its XCom) leaves the reprocess's row alone.
    """
    unknown = [n for n in values if n not in _TYPES]
    if unknown or list(values)[:2] != list(_KEY):
        raise ValueError(f"ledger values must start with feed, batch_id; unknown: {unknown}")
    q = quote_identifier
    typed = {n: _typed(n, v) for n, v in values.items()}
    names = [n for n in values if n not in _KEY]
    sets = [f"{q(n)} = {typed[n]}" for n in names]
    columns, inserted = list(values), [typed[n] for n in values]
    if count_run:
        run = typed["run_id"]
        sets.append(
            f"{q('runs')} = CASE WHEN {q('run_id')} = {run} THEN {q('runs')} "
            f"ELSE COALESCE({q('runs')}, 0) + 1 END"
        )
        columns.append("runs")
        inserted.append("1")
    sets.append(f"{q('updated_at')} = CURRENT_TIMESTAMP()")
    columns.append("updated_at")
    inserted.append("CURRENT_TIMESTAMP()")
    where = f"{q('feed')} = {typed['feed']} AND {q('batch_id')} = {typed['batch_id']}"
    fence = ""
    if "run_id" in typed and "claimed_at" in typed:
        fence = (
            f"\n  AND ({q('claimed_at')} IS NULL OR {q('run_id')} = {typed['run_id']} "
            f"OR {q('claimed_at')} <= {typed['claimed_at']})"
        )
    table_sql = quote_table(table)
    update = f"UPDATE {table_sql} SET\n  " + ",\n  ".join(sets) + f"\nWHERE {where}{fence}"
    insert = (
        f"INSERT INTO {table_sql} ({', '.join(q(n) for n in columns)})\n"
        f"SELECT\n  " + ",\n  ".join(inserted) + "\n"
        f"WHERE NOT EXISTS (SELECT 1 FROM {table_sql} WHERE {where})"
    )
    return [update, insert]


def _bind(values: Mapping[str, Any]) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).isoformat()
        elif _TYPES.get(name) == "VARIANT" and value is not None:
            value = json.dumps(value, sort_keys=True)
        elif name == "error" and value is not None:
            value = str(value)[:ERROR_CHARS]
        bound[name] = value
    return bound


def record(
    runner: Runner,
    table: TableRef,
    feed: str,
    batch_id: str,
    values: Mapping[str, Any],
    *,
    count_run: bool = False,
) -> None:
    """Upsert the batch's row with values (ledger column -> Python value), bound as parameters."""
    bound = _bind({"feed": feed, "batch_id": batch_id, **values})
    for sql in upsert_sql(table, {name: f"%({name})s" for name in bound}, count_run=count_run):
        runner.run(sql, parameters=bound)


CLAIM_VALUES = ("dag_id", "run_id", "files", "bytes", "empty_files", "claim_started_at",
                "claimed_at", "schema_version")  # fmt: skip
"""What the claim step knows of its batch: it hands these to the load step (an XCom), whose first
statement records the batch as claimed, in the session the load opens anyway."""


def claim_values(
    *,
    dag_id: str,
    run_id: str,
    files: int,
    bytes_: int,
    empty_files: int,
    started: dt.datetime,
    claimed: dt.datetime,
    schema_version: int | None = None,
) -> dict[str, str]:
    """The claim's ledger values as quoted SQL literals, for the load step's first statement;
    schema_version is the feed's live schema version the claim checked (None: not checked)."""
    values: dict[str, Any] = {
        "dag_id": dag_id, "run_id": run_id, "files": files, "bytes": bytes_,
        "empty_files": empty_files, "claim_started_at": started, "claimed_at": claimed,
        "schema_version": schema_version,
    }  # fmt: skip
    return {k: quote_literal(v, runtime_value=True) for k, v in _bind(values).items()}


def claim_xcom(
    batch_id: str, folder: str, files: Sequence[str], ledger: Mapping[str, str]
) -> dict[str, Any]:
    """The claim's XCom for the SQL steps (layout.XCOM_CLAIM): the batch id; the files the load
    reads as SQL lists of string literals, relative to the batch folder (copy_files, for the
    COPY's FILES option) and to the stage (source_files, as METADATA$FILENAME gives them: the
    batch folder, then the file); and ledger, the claim's values (claim_values)."""
    return {
        "batch_id": batch_id,
        "copy_files": ", ".join(quote_literal(f, runtime_value=True) for f in files),
        "source_files": ", ".join(quote_literal(folder + f, runtime_value=True) for f in files),
        "ledger": dict(ledger),
    }


def claim_sql(table: TableRef, feed: str, batch: str, claimed: Mapping[str, str]) -> str:
    """The statements that record a batch as claimed: claimed maps CLAIM_VALUES to SQL
    expressions; the columns of later steps are cleared (a reprocess starts them again) and the
    run counted."""
    values = {"feed": quote_literal(feed), "batch_id": batch, "status": "'claimed'"}
    values.update({name: claimed[name] for name in CLAIM_VALUES})
    values.update(dict.fromkeys(_CLEARED_ON_CLAIM, "NULL"))
    return ";\n".join(upsert_sql(table, values, count_run=True))


@dataclass(frozen=True)
class LedgerRow:
    """One batch as the ledger has it."""

    feed: str
    batch_id: str
    status: str
    run_id: str | None
    runs: int | None
    failed_step: str | None
    error: str | None
    files: int | None
    bytes: int | None
    empty_files: int | None
    files_loaded: int | None
    files_skipped: int | None
    files_deferred: int | None
    rows_parsed: int | None
    rows_loaded: int | None
    rows_rejected: int | None
    checks: dict[str, Any] | None
    claimed_at: dt.datetime | None
    loaded_at: dt.datetime | None
    transformed_at: dt.datetime | None
    published_at: dt.datetime | None
    failed_at: dt.datetime | None
    updated_at: dt.datetime | None
    schema_version: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def to_json(self) -> dict[str, Any]:
        body = {}
        for name, value in self.__dict__.items():
            body[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return body


_ROW_COLUMNS = [f for f in LedgerRow.__dataclass_fields__]


def read_batches(
    runner: Runner, table: TableRef, feeds: Sequence[str], latest: int
) -> list[LedgerRow]:
    """Per feed, its latest batches plus every unfinished one (not published or empty)."""
    q = quote_identifier
    marks = ", ".join(f"%(feed_{i})s" for i in range(len(feeds)))
    finished = ", ".join(map(quote_literal, FINISHED_STATUSES))
    where = (
        f"{q('feed')} IN ({marks}) QUALIFY ROW_NUMBER() OVER (PARTITION BY {q('feed')} "
        f"ORDER BY {q('batch_id')} DESC) <= %(latest)s OR {q('status')} NOT IN ({finished})"
    )
    params: dict[str, Any] = {f"feed_{i}": feed for i, feed in enumerate(feeds)}
    params["latest"] = latest
    return _select(runner, table, where, params)


def read_batch(runner: Runner, table: TableRef, feed: str, batch_id: str) -> LedgerRow | None:
    """One batch's row, or None when the ledger has none."""
    q = quote_identifier
    where = f"{q('feed')} = %(feed)s AND {q('batch_id')} = %(batch_id)s"
    found = _select(runner, table, where, {"feed": feed, "batch_id": batch_id})
    return found[0] if found else None


@dataclass(frozen=True)
class Redone:
    """A feed's batches that more than one DAG run held (RUNS > 1: reprocessed, or finished by a
    reprocess after a failure): how many, the first and last batch id, and when the last of them
    was claimed again (a redone batch's CLAIMED_AT is its last run's claim)."""

    batches: int
    first_batch_id: str
    last_batch_id: str
    last_at: dt.datetime | None


def read_redone(runner: Runner, table: TableRef, feeds: Sequence[str]) -> dict[str, Redone]:
    """Per feed of feeds with any, its redone batches (see Redone), in one query."""
    q = quote_identifier
    marks = ", ".join(f"%(feed_{i})s" for i in range(len(feeds)))
    sql = (
        f"SELECT {q('feed')}, COUNT(*), MIN({q('batch_id')}), MAX({q('batch_id')}), "
        f"MAX({q('claimed_at')}) FROM {quote_table(table)} "
        f"WHERE {q('feed')} IN ({marks}) AND {q('runs')} > 1 GROUP BY {q('feed')}"
    )
    params = {f"feed_{i}": feed for i, feed in enumerate(feeds)}
    found = {}
    for feed, count, first, last, when in runner.get_records(sql, parameters=params) or []:
        if isinstance(when, dt.datetime) and when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        found[feed] = Redone(int(count), first, last, when)
    return found


def _select(runner: Runner, table: TableRef, where: str, params: dict[str, Any]) -> list[LedgerRow]:
    names = ", ".join(quote_identifier(n) for n in _ROW_COLUMNS)
    sql = f"SELECT {names} FROM {quote_table(table)} WHERE {where}"
    rows = runner.get_records(sql, parameters=params) or []
    found = []
    for row in rows:
        values = dict(zip(_ROW_COLUMNS, row, strict=True))
        if isinstance(values["checks"], str):
            values["checks"] = json.loads(values["checks"])
        for name in ("runs", "files", "bytes", "empty_files", "files_loaded", "files_skipped",
                     "files_deferred", "rows_parsed", "rows_loaded", "rows_rejected",
                     "schema_version"):  # fmt: skip
            values[name] = None if values[name] is None else int(values[name])
        for name in ("claimed_at", "loaded_at", "transformed_at", "published_at", "failed_at",
                     "updated_at"):  # fmt: skip
            when = values[name]
            if isinstance(when, dt.datetime) and when.tzinfo is None:
                values[name] = when.replace(tzinfo=dt.UTC)
        found.append(LedgerRow(**values))
    return sorted(found, key=lambda r: (r.feed, r.batch_id), reverse=True)


@dataclass(frozen=True)
class QuarantinedRow:
    """One row of a feed's quarantine table (see layout.QUARANTINE_COLUMNS)."""

    batch_id: str
    source_file: str
    source_row_number: int | None
    record: str | None
    error_code: str
    error: str
    column_name: str | None
    quarantined_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        body = dict(self.__dict__)
        if self.quarantined_at is not None:
            body["quarantined_at"] = self.quarantined_at.isoformat()
        return body


def record_set_aside(
    runner: Runner, table: TableRef, batch_id: str, files: Sequence[SetAsideFile]
) -> None:
    """Put one row per file set aside whole in the feed's quarantine table (table): for a file
    with `replace`, in place of the rows the table held for it (a retried finalize writes the
    same row again); otherwise only when the table holds none of the file's rows. The row's
    RECORD is NULL: the file is in quarantine/ in the lake."""
    q = quote_identifier
    table_sql = quote_table(table)
    this_file = f"{q('batch_id')} = %(batch_id)s AND {q('source_file')} = %(source_file)s"
    columns = ("batch_id", "source_file", "source_row_number", "error_code", "error",
               "column_name")  # fmt: skip
    for file in files:
        values = (batch_id, file.source_file, file.row, file.code, file.error[:ERROR_CHARS],
                  file.column)  # fmt: skip
        parameters = dict(zip(columns, values, strict=True))
        if file.replace:
            runner.run(f"DELETE FROM {table_sql} WHERE {this_file}", parameters=parameters)
        runner.run(
            f"INSERT INTO {table_sql} ({', '.join(map(q, columns))}, {q('quarantined_at')}) "
            f"SELECT {', '.join(f'%({c})s' for c in columns)}, CURRENT_TIMESTAMP() "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table_sql} WHERE {this_file})",
            parameters=parameters,
        )


def count_quarantine(
    runner: Runner, table: TableRef, batch_id: str | None = None, *, rejected_rows: bool = False
) -> int:
    """How many rows a feed's quarantine table holds (of one batch, when given); with
    rejected_rows, only those that stand for a row, not for a whole file set aside (FILE_CODES:
    the load's ROWS_REJECTED counts so)."""
    from streamline.layout import FILE_CODES

    q = quote_identifier
    conditions = [f"{q('batch_id')} = %(batch_id)s"] if batch_id else []
    if rejected_rows:
        codes = ", ".join(quote_literal(code) for code in FILE_CODES)
        conditions.append(f"{q('error_code')} NOT IN ({codes})")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT COUNT(*) FROM {quote_table(table)} {where}"
    [(count,)] = runner.get_records(sql, parameters={"batch_id": batch_id})
    return int(count)


def read_quarantine(
    runner: Runner, table: TableRef, batch_id: str | None = None, limit: int = 100
) -> list[QuarantinedRow]:
    """A feed's quarantined rows, newest batch first, then by file and row; at most limit."""
    from streamline.layout import QUARANTINE_COLUMNS

    q = quote_identifier
    names = [c.name for c in QUARANTINE_COLUMNS]
    where = f"WHERE {q('batch_id')} = %(batch_id)s" if batch_id else ""
    sql = (
        f"SELECT {', '.join(map(q, names))} FROM {quote_table(table)} {where} "
        f"ORDER BY {q('batch_id')} DESC, {q('source_file')}, {q('source_row_number')} "
        "LIMIT %(limit)s"
    )
    rows = runner.get_records(sql, parameters={"batch_id": batch_id, "limit": limit}) or []
    found = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        if values["source_row_number"] is not None:
            values["source_row_number"] = int(values["source_row_number"])
        found.append(QuarantinedRow(**values))
    return found
