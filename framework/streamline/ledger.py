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
from typing import Any, Protocol

from streamline.layout import FINISHED_STATUSES, LEDGER_COLUMNS
from streamline.model import TableRef
from streamline.rendering import quote_identifier, quote_literal, quote_table

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


class ConnectionRunner:
    """A Runner over a DB-API connection (the Snowflake connector's), for code outside Airflow."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def run(self, sql: str, autocommit: bool = True, parameters: Any = None) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, parameters)

    def get_records(self, sql: str, parameters: Any = None) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())


def _value_sql(name: str) -> str:
    kind = _TYPES[name]
    if kind == "VARIANT":
        return f"PARSE_JSON(%({name})s)"
    if kind.startswith("TIMESTAMP"):
        return f"CAST(%({name})s AS TIMESTAMP_LTZ)"  # ISO 8601 text, or NULL
    return f"%({name})s"


def upsert_sql(table: TableRef, names: Sequence[str], *, count_run: bool = False) -> str:
    """A MERGE that sets names (bound as %(name)s) on the row of %(feed)s and %(batch_id)s.

    count_run: also count the run (RUNS + 1 when %(run_id)s differs from the row's).
    """
    unknown = [n for n in (*_KEY, *names) if n not in _TYPES]
    if unknown:
        raise ValueError(f"not ledger columns: {unknown}")
    q = quote_identifier
    source = ", ".join(f"{_value_sql(n)} AS {q(n)}" for n in (*_KEY, *names))
    sets = [f"{q(n)} = s.{q(n)}" for n in names]
    inserts = [*_KEY, *names]
    values = [f"s.{q(n)}" for n in inserts]
    if count_run:
        sets.append(
            f"{q('runs')} = CASE WHEN t.{q('run_id')} = s.{q('run_id')} THEN t.{q('runs')} "
            f"ELSE COALESCE(t.{q('runs')}, 0) + 1 END"
        )
        inserts.append("runs")
        values.append("1")
    sets.append(f"{q('updated_at')} = CURRENT_TIMESTAMP()")
    inserts.append("updated_at")
    values.append("CURRENT_TIMESTAMP()")
    return (
        f"MERGE INTO {quote_table(table)} AS t USING (SELECT {source}) AS s "
        f"ON t.{q('feed')} = s.{q('feed')} AND t.{q('batch_id')} = s.{q('batch_id')} "
        f"WHEN MATCHED THEN UPDATE SET {', '.join(sets)} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(q(n) for n in inserts)}) "
        f"VALUES ({', '.join(values)})"
    )


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
    """Upsert the batch's row with values (ledger column -> Python value)."""
    sql = upsert_sql(table, list(values), count_run=count_run)
    runner.run(sql, parameters=_bind({"feed": feed, "batch_id": batch_id, **values}))


def record_claim(
    runner: Runner,
    table: TableRef,
    feed: str,
    batch_id: str,
    *,
    dag_id: str,
    run_id: str,
    files: int,
    bytes_: int,
    empty_files: int,
    started: dt.datetime,
) -> None:
    """The claim step committed the batch: status claimed, later steps cleared (a reprocess)."""
    values: dict[str, Any] = dict.fromkeys(_CLEARED_ON_CLAIM)
    values.update(
        status="claimed",
        dag_id=dag_id,
        run_id=run_id,
        files=files,
        bytes=bytes_,
        empty_files=empty_files,
        claim_started_at=started,
        claimed_at=dt.datetime.now(dt.UTC),
    )
    record(runner, table, feed, batch_id, values, count_run=True)


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
    checks: dict[str, bool] | None
    claimed_at: dt.datetime | None
    loaded_at: dt.datetime | None
    transformed_at: dt.datetime | None
    published_at: dt.datetime | None
    failed_at: dt.datetime | None
    updated_at: dt.datetime | None

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
                     "files_deferred", "rows_parsed", "rows_loaded", "rows_rejected"):  # fmt: skip
            values[name] = None if values[name] is None else int(values[name])
        for name in ("claimed_at", "loaded_at", "transformed_at", "published_at", "failed_at",
                     "updated_at"):  # fmt: skip
            when = values[name]
            if isinstance(when, dt.datetime) and when.tzinfo is None:
                values[name] = when.replace(tzinfo=dt.UTC)
        found.append(LedgerRow(**values))
    return sorted(found, key=lambda r: (r.feed, r.batch_id), reverse=True)
