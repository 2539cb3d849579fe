"""Bridges between fakesnow 0.12.1 and StreamLine's rendered SQL, installed in the warehouse server.

The local warehouse runs the exact SQL production Snowflake runs; templates and rendered SQL are
never changed for it. Where fakesnow falls short, one patch here closes the gap, as narrowly as it
can, and names it:

1. COPY INTO from an external s3:// stage: fakesnow cannot read S3 here (DuckDB's httpfs
   extension cannot be downloaded) and rejects most of the COPY the load runs; the COPY emulator
   (streamline.local.copy_emulator, its own module with its own interface) runs it instead.
2. CHAR(n): fakesnow records lengths of VARCHAR only, so COPY could not enforce CHAR's.
3. COPY ... FROM (SELECT ... FROM @db.schema.stage) in a session without a current database:
   fakesnow takes the stage for a table missing its database and refuses the statement.
4. MERGE in a session without a current database (Airflow's hook logs in with none): fakesnow
   stages the rows in a temporary table through its DDL path, which asserts there is one (and,
   with autocommit off, commits the open transaction, which a MERGE does not do). The same patch
   raises Snowflake's "Duplicate row detected during DML action" when two source rows match one
   target row for an UPDATE or DELETE, where fakesnow updates the row once per source row.
5. Errors fakesnow does not expect (its assertions, DuckDB's constraint errors) become HTTP 500s,
   which the connector retries until network_timeout (unlimited unless set, and Airflow's hook
   cannot set it); they become SQL errors instead.
6. Sessions never close: fakesnow's login returns no master token, without which the connector
   skips logging out, and a logout leaves the session's DuckDB transaction open, so a failed
   load's DELETE holds its rows and the retry conflicts. Snowflake rolls back a closing
   session's open transaction.
7. NULL timestamps reach the connector as 1970-01-01: fakesnow's Arrow timestamp structs have no
   null mask.
8. TRY_TO_TIMESTAMP_NTZ/_LTZ/_TZ(column) without a format (a spec's timestamp_format AUTO):
   fakesnow passes the call to DuckDB, which has no such function. It becomes TRY_CAST to
   TIMESTAMP (TIMESTAMPTZ for LTZ and TZ), DuckDB's own detection of ISO-like text, which is
   what Snowflake's AUTO reads too (the ISO and RFC forms are the ones StreamLine's feeds send).
   https://docs.snowflake.com/en/sql-reference/functions/to_timestamp
9. DESCRIBE TABLE gives the types a table was declared with, as Snowflake does (`streamline plan`
   compares them with the spec): fakesnow reports every TIMESTAMP_NTZ as (9), TIMESTAMP_LTZ as
   TIMESTAMP_TZ, and does not record a VARCHAR's new length after ALTER COLUMN ... SET DATA TYPE;
   and a CREATE TABLE IF NOT EXISTS of a table that exists overwrote its VARCHAR lengths with
   the statement's. Declared timestamp and time types are kept in a table of their own. And
   DESCRIBE TABLE db.schema.table in a session without a current database (Airflow's hook logs
   in with none) found no columns, and ALTER TABLE ... RENAME TO lost the types it keeps.
   https://docs.snowflake.com/en/sql-reference/sql/desc-table

Each patch is proved needed by tests/integration/test_fidelity.py, which starts a warehouse
without it (STREAMLINE_COMPAT_WITHOUT=N) and sees the behaviour it restores fail.

Everything else the templates use (CREATE OR REPLACE STAGE with URL and STORAGE_INTEGRATION, whose
integration fakesnow accepts and ignores, file formats, TIMESTAMP_LTZ, MERGE with WHEN MATCHED AND,
QUALIFY, the check's scalar subqueries, BEGIN/COMMIT/ROLLBACK) works in fakesnow 0.12.1 as shipped.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from string import Template
from types import ModuleType
from typing import Any

import boto3
import duckdb
from snowflake.connector.errors import Error as SnowflakeError
from snowflake.connector.errors import ProgrammingError
from sqlglot import exp

from streamline.local import copy_emulator
from streamline.migrations import canonical_type

PINNED_FAKESNOW = "0.12.1"


class CompatError(RuntimeError):
    """The installed fakesnow is not the version these bridges were written and tested for."""


_installed = False
WITHOUT_ENV = "STREAMLINE_COMPAT_WITHOUT"


def install(*, s3_endpoint_url: str, region: str = "us-east-1") -> None:
    """Patch fakesnow in this process to run StreamLine's SQL; stages read from this S3 endpoint."""
    found = importlib.metadata.version("fakesnow")
    if found != PINNED_FAKESNOW:
        raise CompatError(
            f"streamline.local.compat bridges fakesnow {PINNED_FAKESNOW}, but fakesnow {found} "
            "is installed: run `uv sync` for the pinned version, or re-check every bridge in "
            f"{__file__} (and its tests) against {found} before moving the pin"
        )
    global _installed
    # moto takes any key. Never boto3's default chain: without keys it probes EC2 metadata.
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint_url,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
    )
    # fakesnow calls all of these through module attributes, so replacing them there suffices.
    cursor: Any = importlib.import_module("fakesnow.cursor")
    if _installed:
        copy_emulator.bind(s3)
        return
    _installed = True
    transforms: Any = importlib.import_module("fakesnow.transforms")
    checks: Any = importlib.import_module("fakesnow.checks")
    arrow: Any = importlib.import_module("fakesnow.arrow")
    fake_cursor = cursor.FakeSnowflakeCursor
    # The tests that prove each patch needed start a warehouse without it (tests/integration/
    # test_fidelity.py): STREAMLINE_COMPAT_WITHOUT lists the patches to leave out, e.g. "2,7".
    without = {int(n) for n in os.environ.get(WITHOUT_ENV, "").split(",") if n.strip()}
    copy_emulator.bind(s3, cursor.copy_into)
    if 1 not in without:
        cursor.copy_into = copy_emulator.copy_into
    if 2 not in without:
        transforms.extract_text_length = _with_char_lengths(transforms.extract_text_length)
    if 3 not in without:
        checks.is_unqualified_table_expression = _copy_checks_its_table_only(
            checks.is_unqualified_table_expression
        )
    if 4 not in without:
        fake_cursor._execute = _merge_stages_rows_as_dml(fake_cursor._execute)
    if 5 not in without:
        fake_cursor.execute = _as_sql_errors(fake_cursor.execute)
    if 6 not in without:
        # The module, not the in-process context manager fakesnow.server() of the same name.
        _close_sessions(importlib.import_module("fakesnow.server"))
    if 7 not in without:
        arrow.timestamp_to_sf_struct = _timestamps_keep_nulls(arrow.timestamp_to_sf_struct)
    if 8 not in without:
        transforms.to_timestamp = _auto_timestamp_format(transforms.to_timestamp)
    if 9 not in without:
        info_schema: Any = importlib.import_module("fakesnow.info_schema")
        describe: Any = importlib.import_module("fakesnow.transforms.transforms")
        info_schema.fs_global_creation_sql = _with_declared_types_table(
            info_schema.fs_global_creation_sql
        )
        describe.SQL_DESCRIBE_TABLE = _DESCRIBE_DECLARED
        server = sys.modules.get("fakesnow.server")  # its instance, made when it was imported
        if server is not None and getattr(server, "shared_fs", None) is not None:
            server.shared_fs.duck_conn.execute(_DECLARED_TABLE)
        transforms.identifier = _noting_declared_types(transforms.identifier)
        fake_cursor._execute = _recording_declared_types(fake_cursor._execute)


# --- 2 to 8 ----------------------------------------------------------------------------------


def _with_char_lengths(extract: Callable[[exp.Expr], exp.Expr]) -> Callable[[exp.Expr], exp.Expr]:
    def extract_with_chars(expression: exp.Expr) -> exp.Expr:
        expression = extract(expression)
        if isinstance(expression, exp.Create) and isinstance(expression.this, exp.Schema):
            lengths = list(expression.args.get("text_lengths") or [])
            for column in expression.this.expressions:
                kind = column.args.get("kind")
                if isinstance(kind, exp.DataType) and kind.this == exp.DataType.Type.CHAR:
                    size = kind.find(exp.DataTypeParam)  # CHAR alone is CHAR(1)
                    lengths.append((column.name, int(size.name) if size else 1))
            if lengths:
                expression.args["text_lengths"] = lengths
        return expression

    return extract_with_chars


def _copy_checks_its_table_only(
    check: Callable[[exp.Expr], tuple[bool, bool]],
) -> Callable[[exp.Expr], tuple[bool, bool]]:
    def check_copy(expression: exp.Expr) -> tuple[bool, bool]:
        if not isinstance(expression, exp.Copy):
            return check(expression)
        table = expression.this.this if isinstance(expression.this, exp.Schema) else expression.this
        return not table.catalog, not table.db

    return check_copy


def _merge_stages_rows_as_dml(execute_one: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(execute_one)
    def run(self: Any, transformed: exp.Expr, params: Any = None) -> None:
        table = transformed.find(exp.Table)
        if (
            isinstance(transformed, exp.Create)
            and transformed.find(exp.TemporaryProperty)
            and table is not None
            and table.name.upper() == "MERGE_CANDIDATES"  # the first statement of a MERGE
        ):
            try:
                self._duck_conn.execute(transformed.sql(dialect="duckdb"), params)
                duplicates = _duplicate_matches(transformed)
                found = self._duck_conn.execute(duplicates.sql(dialect="duckdb"), params)
                if found.fetchone() is not None:
                    raise ProgrammingError(
                        msg="Duplicate row detected during DML action", errno=100090,
                        sqlstate="42P18",
                    )  # fmt: skip
            except duckdb.CatalogException as exc:  # as fakesnow reports it: no such table
                msg = str(exc).split("\n")[0]
                raise ProgrammingError(msg=msg, errno=2003, sqlstate="42S02") from exc
            return
        execute_one(self, transformed, params)

    return run


def _duplicate_matches(candidates: exp.Create) -> exp.Select:
    """A query with a row when two source rows of a MERGE match one target row for an UPDATE or
    DELETE (fakesnow's merge_candidates query, grouped by the target's rowid), which Snowflake
    refuses by default (ERROR_ON_NONDETERMINISTIC_MERGE):
    https://docs.snowflake.com/en/sql-reference/sql/merge#duplicate-join-behavior"""
    select = candidates.expression.copy()
    target = select.args["from_"].this
    rowid = exp.column("rowid", table=target.alias_or_name)
    op = next(e for e in select.expressions if e.alias_or_name.upper() == "MERGE_OP")
    select.set("expressions", [exp.alias_(rowid, "_target"), op])
    return (
        exp.select("_target")
        .from_(select.subquery("candidates"))
        .where("_target IS NOT NULL")
        .group_by("_target")
        .having("COUNT(*) > 1")
        .limit(1)
    )


def _as_sql_errors(execute: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(execute)
    def run(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return execute(self, command, *args, **kwargs)
        except SnowflakeError:
            raise
        except duckdb.ConstraintException as exc:
            if "NOT NULL" not in str(exc):
                raise _internal_error(exc) from exc
            msg = f"NULL result in a non-nullable column ({exc})"
            raise ProgrammingError(msg=msg, errno=100072, sqlstate="22000") from exc
        except Exception as exc:
            raise _internal_error(exc) from exc

    return run


def _internal_error(exc: Exception) -> ProgrammingError:
    msg = f"SQL execution internal error: {type(exc).__name__}: {exc}"
    logging.getLogger("fakesnow.server").error(msg, exc_info=exc)  # where fakesnow logs a 500
    return ProgrammingError(msg=msg, errno=603, sqlstate="XX000")  # Snowflake's internal error


def _close_sessions(server: ModuleType) -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    login: Callable[[Request], Awaitable[Response]] = server.login_request
    session: Callable[[Request], Awaitable[Response]] = server.session

    async def login_with_master_token(request: Request) -> Response:
        response = await login(request)
        body = json.loads(bytes(response.body))
        if body.get("success"):
            body["data"]["masterToken"] = body["data"]["token"]
        return JSONResponse(body, status_code=response.status_code)

    async def close_session(request: Request) -> Response:
        token = request.headers.get("Authorization", "")[17:-1]  # as fakesnow.server.to_token
        conn = server.sessions.get(token) if request.query_params.get("delete") else None
        response = await session(request)
        if conn is not None and token not in server.sessions:
            conn.close()  # closing its DuckDB connection rolls back the open transaction
        return response

    endpoints = {"/session/v1/login-request": login_with_master_token, "/session": close_session}
    routes = server.app.router.routes
    for index, route in enumerate(routes):
        if isinstance(route, Route) and route.path in endpoints:
            routes[index] = Route(route.path, endpoints[route.path], methods=["POST"])


def _timestamps_keep_nulls(to_struct: Callable[[Any], Any]) -> Callable[[Any], Any]:
    import pyarrow as pa

    def convert(timestamps: Any) -> Any:
        struct = to_struct(timestamps)
        if not timestamps.null_count:
            return struct
        if isinstance(timestamps, pa.ChunkedArray):
            timestamps = timestamps.combine_chunks()
        fields = [struct.type.field(i) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(
            struct.flatten(), fields=fields, mask=timestamps.is_null()
        )

    return convert


_AUTO_TIMESTAMP = {
    "TRY_TO_TIMESTAMP": "TIMESTAMP",
    "TRY_TO_TIMESTAMP_NTZ": "TIMESTAMP",
    "TRY_TO_TIMESTAMP_LTZ": "TIMESTAMPTZ",
    "TRY_TO_TIMESTAMP_TZ": "TIMESTAMPTZ",
}


def _auto_timestamp_format(
    to_timestamp: Callable[[exp.Expr], exp.Expr],
) -> Callable[[exp.Expr], exp.Expr]:
    def convert(expression: exp.Expr) -> exp.Expr:
        if (
            isinstance(expression, exp.Anonymous)
            and expression.name.upper() in _AUTO_TIMESTAMP
            and len(expression.expressions) == 1
        ):
            target = exp.DataType.build(_AUTO_TIMESTAMP[expression.name.upper()])
            return exp.TryCast(this=expression.expressions[0].copy(), to=target)
        return to_timestamp(expression)

    return convert


# --- 9 ---------------------------------------------------------------------------------------

_DECLARED = "_fs_global._fs_information_schema._streamline_declared_types"
_COLUMNS_EXT = "_fs_global._fs_information_schema._fs_columns_ext"
_DECLARED_KINDS = {
    exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.TIMESTAMPLTZ,
    exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.DATETIME, exp.DataType.Type.TIME,
}  # fmt: skip
_DESCRIBE_DECLARED = Template(
    """
SELECT
    c.column_name AS "name",
    COALESCE(d.declared, CASE
         WHEN data_type = 'NUMBER'
           THEN 'NUMBER(' || numeric_precision || ',' || numeric_scale || ')'
         WHEN data_type = 'TEXT'
           THEN 'VARCHAR(' || coalesce(character_maximum_length,16777216)  || ')'
         WHEN data_type = 'TIMESTAMP_NTZ' THEN 'TIMESTAMP_NTZ(9)'
         WHEN data_type = 'TIMESTAMP_TZ' THEN 'TIMESTAMP_TZ(9)'
         WHEN data_type = 'TIME' THEN 'TIME(9)'
         WHEN data_type = 'BINARY' THEN 'BINARY(8388608)'
        ELSE data_type END) AS "type",
    'COLUMN' AS "kind",
    CASE WHEN is_nullable = 'YES' THEN 'Y' ELSE 'N' END AS "null?",
    column_default AS "default",
    'N' AS "primary key",
    'N' AS "unique key",
    NULL::VARCHAR AS "check",
    NULL::VARCHAR AS "expression",
    NULL::VARCHAR AS "comment",
    NULL::VARCHAR AS "policy name",
    NULL::JSON AS "privacy domain",
FROM ${catalog}._fs_information_schema._fs_columns c
LEFT JOIN """
    + _DECLARED
    + """ d
  ON d.catalog = c.table_catalog AND d.schema = c.table_schema
 AND d.name = c.table_name AND d.column_name = c.column_name
WHERE c.table_catalog = '${catalog}' AND c.table_schema = '${schema}'
  AND c.table_name = '${table}'
ORDER BY ordinal_position
"""
)
"""fakesnow's SQL_DESCRIBE_TABLE (0.12.1), with the declared type first where one is kept."""


_DECLARED_TABLE = f"""CREATE TABLE IF NOT EXISTS {_DECLARED} (
    catalog VARCHAR, schema VARCHAR, name VARCHAR, column_name VARCHAR, declared VARCHAR,
    PRIMARY KEY (catalog, schema, name, column_name)
)"""


def _with_declared_types_table(creation_sql: Callable[[], str]) -> Callable[[], str]:
    def create() -> str:
        return creation_sql().rstrip().rstrip(";") + ";\n" + _DECLARED_TABLE

    return create


def _declared_name(node: exp.Expr) -> str:
    identifier = node.this if isinstance(node.this, exp.Identifier) else None
    if identifier is not None and identifier.quoted:
        return identifier.name
    return node.name.upper()


def _noting_declared_types(identifier: Callable[..., exp.Expr]) -> Callable[..., exp.Expr]:
    """fakesnow's first transform, which sees the statement as written: note the declared type
    of each timestamp or time column a CREATE TABLE or ALTER TABLE names."""

    def note(expression: exp.Expr, *args: Any, **kwargs: Any) -> exp.Expr:
        if isinstance(expression, (exp.Create, exp.Alter)) and "declared_types" not in (
            expression.args
        ):
            declared = []
            for node in expression.find_all(exp.ColumnDef, exp.AlterColumn):
                kind = node.args.get("kind") or node.args.get("dtype")
                if isinstance(kind, exp.DataType):
                    text = None
                    if kind.this in _DECLARED_KINDS:  # as Snowflake spells it: TIMESTAMP_NTZ(3)
                        text = canonical_type(kind.sql("snowflake")).sql()
                    lengths = kind.this in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT)
                    declared.append((_declared_name(node), text, lengths and node, kind))
            expression.args["declared_types"] = declared
        return identifier(expression, *args, **kwargs)

    return note


def _recording_declared_types(execute_one: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(execute_one)
    def run(self: Any, transformed: exp.Expr, params: Any = None) -> None:
        declared = transformed.args.get("declared_types")
        table = transformed.find(exp.Table) if declared is not None else None
        if table is None or declared is None:
            return execute_one(self, transformed, params)
        catalog = table.catalog or self._conn.database
        schema = table.db or self._conn.schema
        names = (catalog, schema, table.name)
        if isinstance(transformed, exp.Create) and transformed.args.get("exists"):
            found = self._duck_conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_catalog = ? "
                "AND table_schema = ? AND table_name = ?",
                list(names),
            ).fetchall()
            if found:  # IF NOT EXISTS of a table that exists: nothing about it changes
                transformed.args.pop("text_lengths", None)
                return execute_one(self, transformed, params)
        execute_one(self, transformed, params)
        renamed = transformed.find(exp.AlterRename) if isinstance(transformed, exp.Alter) else None
        if renamed is not None and isinstance(renamed.this, exp.Table):  # the table's own
            new = renamed.this
            moved = [new.catalog or catalog, new.db or schema, new.name, *names]
            for kept, prefix in ((_DECLARED, ""), (_COLUMNS_EXT, "ext_table_")):
                self._duck_conn.execute(
                    f"UPDATE {kept} SET {prefix}catalog = ?, {prefix}schema = ?, "
                    f"{prefix}name = ? WHERE {prefix}catalog = ? AND {prefix}schema = ? "
                    f"AND {prefix}name = ?",
                    moved,
                )
            return None
        for column, text, sized, kind in declared:
            if sized and isinstance(transformed, exp.Alter):  # SET DATA TYPE VARCHAR(n)
                size = kind.find(exp.DataTypeParam)
                length = int(size.name) if size else 16_777_216
                self._duck_conn.execute(
                    f"INSERT INTO {_COLUMNS_EXT} VALUES "
                    "(?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET ext_character_maximum_length "
                    "= excluded.ext_character_maximum_length, ext_character_octet_length = "
                    "excluded.ext_character_octet_length",
                    [*names, column, length, min(length * 4, 16_777_216)],
                )
            if text is not None:
                self._duck_conn.execute(
                    f"INSERT INTO {_DECLARED} VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT DO UPDATE SET declared = excluded.declared",
                    [*names, column, text],
                )
        return None

    return run
