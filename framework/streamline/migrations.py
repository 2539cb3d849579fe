"""Compare a feed's tables as its spec renders them with the tables in the warehouse (issue 11).

The rendered DDL (templates/ddl.sql.j2) is the one statement of what a feed's tables should be;
`desired_tables` reads their columns from it with sqlglot. The warehouse's tables come from
`DESCRIBE TABLE` (`live_columns`). `column_changes` classifies each difference the way
Snowflake's ALTER TABLE ... ALTER COLUMN allows it:
https://docs.snowflake.com/en/sql-reference/sql/alter-table-column

- safe, with the DDL that makes it: add a nullable column; widen a text column; raise a number's
  precision (same scale); drop NOT NULL;
- refused, with the manual path: drop or rename a column, narrow or change a type, add a column
  that is NOT NULL, set NOT NULL.

This module is the comparison only: reading the warehouse and applying the DDL are the plan and
apply commands' (not built yet).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from streamline.model import FIXED_TYPES, FLOAT_TYPES, INTEGER_TYPES, TEXT_TYPES
from streamline.rendering import quote_identifier

TEXT_MAX = 16_777_216
"""A text column's length when none is given (Snowflake's VARCHAR maximum)."""
BINARY_MAX = 8_388_608
_TEXT = TEXT_TYPES | {"NVARCHAR2", "CHAR VARYING", "NCHAR VARYING"}
"""The spec's character types and the other synonyms Snowflake accepts."""
_ONE_CHARACTER = {"CHAR", "CHARACTER", "NCHAR"}
_TIMESTAMPS = {
    "TIMESTAMP_NTZ": "TIMESTAMP_NTZ", "TIMESTAMPNTZ": "TIMESTAMP_NTZ",
    "DATETIME": "TIMESTAMP_NTZ", "TIMESTAMP": "TIMESTAMP_NTZ",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP_NTZ",
    "TIMESTAMP_LTZ": "TIMESTAMP_LTZ", "TIMESTAMPLTZ": "TIMESTAMP_LTZ",
    "TIMESTAMP WITH LOCAL TIME ZONE": "TIMESTAMP_LTZ",
    "TIMESTAMP_TZ": "TIMESTAMP_TZ", "TIMESTAMPTZ": "TIMESTAMP_TZ",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_TZ",
}  # fmt: skip
"""Timestamp synonyms; TIMESTAMP is TIMESTAMP_NTZ under the default TIMESTAMP_TYPE_MAPPING."""
_TYPE_RE = re.compile(r"^\s*([A-Z_]+(?: [A-Z_]+)*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


@dataclass(frozen=True)
class SqlType:
    """A Snowflake type in one canonical spelling: base and its size (length, precision)."""

    base: str
    size: int | None = None
    scale: int | None = None

    def sql(self) -> str:
        if self.base == "TEXT":
            return f"VARCHAR({self.size})"
        if self.base == "NUMBER":
            return f"NUMBER({self.size},{self.scale})"
        return f"{self.base}({self.size})" if self.size is not None else self.base


def canonical_type(text: str) -> SqlType:
    """A type as Snowflake stores it: synonyms folded, default sizes filled in.
    https://docs.snowflake.com/en/sql-reference/intro-summary-data-types

    Raises ValueError for text that is not a type.
    """
    found = _TYPE_RE.match(text.upper())
    if not found:
        raise ValueError(f"not a Snowflake type: {text!r}")
    name, first, second = found[1], found[2], found[3]
    size = int(first) if first is not None else None
    if name in _TEXT:
        default = 1 if name in _ONE_CHARACTER else TEXT_MAX
        return SqlType("TEXT", size if size is not None else default)
    if name in FIXED_TYPES:
        return SqlType("NUMBER", size if size is not None else 38, int(second or 0))
    if name in INTEGER_TYPES:
        return SqlType("NUMBER", 38, 0)
    if name in FLOAT_TYPES:
        return SqlType("FLOAT")
    if name in _TIMESTAMPS:
        return SqlType(_TIMESTAMPS[name], size if size is not None else 9)
    if name == "TIME":
        return SqlType("TIME", size if size is not None else 9)
    if name in ("BINARY", "VARBINARY"):
        return SqlType("BINARY", size if size is not None else BINARY_MAX)
    return SqlType(name, size)


@dataclass(frozen=True)
class ColumnState:
    """One column of a table: its name (as stored), type and whether it takes NULL."""

    name: str
    type: SqlType
    nullable: bool


@dataclass(frozen=True)
class Change:
    """One difference between a table's desired and live columns.

    ddl is the statement that makes a safe change, None for a refused one; hint says the manual
    path of a refused change."""

    table: str
    column: str
    kind: str
    detail: str
    ddl: str | None = None
    hint: str | None = None

    @property
    def safe(self) -> bool:
        return self.ddl is not None


def desired_tables(ddl: str) -> dict[str, list[ColumnState]]:
    """{table: columns} of every CREATE TABLE in rendered DDL (table as it appears quoted)."""
    tables: dict[str, list[ColumnState]] = {}
    for statement in sqlglot.parse(ddl, read="snowflake"):
        if not isinstance(statement, exp.Create) or statement.kind != "TABLE":
            continue
        schema = statement.this
        name = schema.this.sql("snowflake")
        columns = []
        for column in schema.expressions:
            if not isinstance(column, exp.ColumnDef):
                continue
            not_null = any(
                isinstance(c.kind, exp.NotNullColumnConstraint)
                and not c.kind.args.get("allow_null")
                for c in column.constraints
            )
            kind = column.args["kind"].sql("snowflake")
            columns.append(ColumnState(column.name, canonical_type(kind), not not_null))
        tables[name] = columns
    return tables


def live_columns(rows: Iterable[Sequence[object]]) -> list[ColumnState]:
    """Columns from DESCRIBE TABLE's rows: (name, type, kind, null?, ...).
    https://docs.snowflake.com/en/sql-reference/sql/desc-table"""
    return [
        ColumnState(str(row[0]), canonical_type(str(row[1])), str(row[3]).upper() == "Y")
        for row in rows
        if str(row[2]).upper() == "COLUMN"
    ]


def column_changes(
    table: str, desired: Sequence[ColumnState], live: Sequence[ColumnState]
) -> list[Change]:
    """What it takes to bring the live columns to the desired ones, in the desired order."""
    changes: list[Change] = []
    have = {column.name.upper(): column for column in live}
    want = {column.name.upper() for column in desired}
    rebuild = (
        "rebuild the table from processed/ (streamline reprocess over the batches) after "
        "changing it by hand"
    )
    for column in desired:
        quoted = f"{table} ALTER COLUMN {quote_identifier(column.name.lower())}"
        current = have.get(column.name.upper())
        if current is None:
            if column.nullable:
                changes.append(Change(
                    table, column.name, "add column", f"add {column.name} {column.type.sql()}",
                    f"ALTER TABLE {table} ADD COLUMN {quote_identifier(column.name.lower())} "
                    f"{column.type.sql()};",
                ))  # fmt: skip
            else:
                changes.append(Change(
                    table, column.name, "add NOT NULL column",
                    f"{column.name} would be NOT NULL, and the rows already there have none",
                    hint="add it nullable, backfill it, then make it NOT NULL by hand",
                ))  # fmt: skip
            continue
        if column.type != current.type:
            changes.append(_type_change(table, quoted, column, current, rebuild))
        if column.nullable and not current.nullable:
            changes.append(Change(
                table, column.name, "drop NOT NULL", f"{column.name} takes NULL",
                f"ALTER TABLE {quoted} DROP NOT NULL;",
            ))  # fmt: skip
        elif current.nullable and not column.nullable:
            changes.append(Change(
                table, column.name, "set NOT NULL",
                f"{column.name} would be NOT NULL; rows already there may hold NULL",
                hint="check that no row holds NULL, then ALTER COLUMN ... SET NOT NULL by hand",
            ))  # fmt: skip
    for column in live:
        if column.name.upper() not in want:
            changes.append(Change(
                table, column.name, "drop column",
                f"{column.name} is in the table but not in the spec (dropped or renamed?)",
                hint=f"a dropped or renamed column loses data: change the table by hand and "
                f"{rebuild.split(' after ')[0]}",
            ))  # fmt: skip
    return changes


def _type_change(
    table: str, quoted: str, column: ColumnState, current: ColumnState, rebuild: str
) -> Change:
    new, old = column.type, current.type
    detail = f"{column.name}: {old.sql()} -> {new.sql()}"
    widens = new.base == old.base and (
        (new.base == "TEXT" and (new.size or 0) > (old.size or 0))
        or (new.base == "NUMBER" and new.scale == old.scale and (new.size or 0) > (old.size or 0))
    )
    if widens:
        return Change(
            table, column.name, "widen", detail, f"ALTER TABLE {quoted} SET DATA TYPE {new.sql()};"
        )
    kind = "narrow" if new.base == old.base else "change type"
    return Change(
        table, column.name, kind, detail,
        hint=f"Snowflake widens text and number precision only: {rebuild}",
    )  # fmt: skip
