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

A feed's `Contract` is what its rendered DDL says (tables, file format, stage) plus its key; its
fingerprint is what a DAG run checks against the warehouse's schema version before it loads.
`plan_feed` compares a contract with what the warehouse holds (`Live`, read by
streamline.schema_versions) and returns a `FeedPlan`. This module is pure: no connection.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamline.model import FIXED_TYPES, FLOAT_TYPES, INTEGER_TYPES, TEXT_TYPES
from streamline.rendering import quote_identifier, schema_fingerprint

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
    path of a refused change; path is where in the spec the change comes from (JSON path parts,
    filled in by plan_feed)."""

    table: str
    column: str
    kind: str
    detail: str
    ddl: str | None = None
    hint: str | None = None
    path: tuple[str | int, ...] = ()

    @property
    def safe(self) -> bool:
        return self.ddl is not None


def desired_tables(ddl: str) -> dict[str, list[ColumnState]]:
    """{table: columns} of every CREATE TABLE in rendered DDL (table as it appears quoted)."""
    # Imported here: sqlglot takes 0.35 s to import alone (about 0.8 s measured inside a claim
    # task), and every DAG run's claim imports this module (schema_versions.check_version)
    # without parsing any DDL.
    import sqlglot
    from sqlglot import exp

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
                    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "
                    f"{quote_identifier(column.name.lower())} "
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
                f"{column.name} is in {table} but not in the spec (dropped or renamed?)",
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
    narrower = (new.size or 0) < (old.size or 0) and new.scale == old.scale
    kind = "narrow" if new.base == old.base and narrower else "change type"
    if new.base == old.base and not narrower:
        kind = (
            "change precision"
            if new.base != "NUMBER" or new.scale == old.scale
            else ("change scale")
        )
    return Change(
        table, column.name, kind, detail,
        hint=f"Snowflake widens text and number precision only: {rebuild}",
    )  # fmt: skip


# --- a feed's contract and its plan ---------------------------------------------------------

_STATEMENT_RE = re.compile(
    r"^CREATE (?:(DATABASE) IF NOT EXISTS|(SCHEMA) IF NOT EXISTS|OR REPLACE (FILE FORMAT)|"
    r"OR REPLACE (STAGE)|(?:TRANSIENT )?(TABLE) IF NOT EXISTS) (\S+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    """One statement of a feed's rendered DDL: kind (database, schema, file format, stage,
    table), the object's quoted name, and its text (comments dropped, lines stripped, no `;`)."""

    kind: str
    name: str
    sql: str


def ddl_statements(ddl: str) -> list[Statement]:
    """The statements of rendered DDL, split as the Snowflake connector's execute_string splits
    them (so a `;` inside a literal stays in its statement).

    Raises ValueError for a statement that is not one of the DDL template's CREATE forms."""
    from snowflake.connector.util_text import split_statements

    found = []
    for text, _ in split_statements(io.StringIO(ddl), remove_comments=True):
        sql = "\n".join(line.strip() for line in text.strip().rstrip(";").splitlines()).strip()
        if not sql:
            continue
        match = _STATEMENT_RE.match(sql)
        if not match:
            raise ValueError(f"not a StreamLine DDL statement: {sql.splitlines()[0]!r}")
        kind = next(g for g in match.groups()[:5] if g).lower()
        found.append(Statement(kind, match[6], sql))
    return found


@dataclass(frozen=True)
class Contract:
    """What a feed's warehouse objects should be: the statements of its rendered DDL, the columns
    of its tables, its key and where its raw and mart tables are (quoted names)."""

    feed: str
    statements: tuple[Statement, ...]
    tables: dict[str, list[ColumnState]]
    key: tuple[str, ...]
    raw: str
    mart: str
    fingerprint: str
    spec_tables: tuple[str, ...] = ()
    """The tables whose columns are the spec's (raw, mart, landing): their changes are reported
    at the spec's columns; the others' (ledger, quarantine, ...) are StreamLine's own."""

    def to_json(self) -> dict[str, Any]:
        """The record `streamline apply` keeps of it (the schema versions' CONTRACT)."""
        return {
            "fingerprint": self.fingerprint,
            "key": list(self.key),
            "raw": self.raw,
            "mart": self.mart,
            "objects": {s.name: s.sql for s in self.statements if s.kind in OBJECT_KINDS},
            "tables": {
                name: [[c.name, c.type.sql(), c.nullable] for c in columns]
                for name, columns in self.tables.items()
            },
        }


OBJECT_KINDS = ("file format", "stage")
"""Objects replaced whole when their options change (they hold no data)."""


def contract_of(
    feed: str, ddl: str, key: Sequence[str], raw: str, mart: str, landing: str | None = None
) -> Contract:
    """A feed's contract from its rendered DDL."""
    statements = tuple(ddl_statements(ddl))
    return Contract(
        feed=feed,
        statements=statements,
        tables=desired_tables(ddl),
        key=tuple(k.upper() for k in key),
        raw=raw,
        mart=mart,
        fingerprint=fingerprint(ddl, key),
        spec_tables=tuple(t for t in (raw, mart, landing) if t),
    )


fingerprint = schema_fingerprint
"""rendering.schema_fingerprint: what DAG runs check, computed from the rendered DDL."""


@dataclass(frozen=True)
class Recorded:
    """A feed's latest schema version in the warehouse."""

    version: int
    fingerprint: str
    contract: dict[str, Any]
    applied_at: Any = None
    applied_by: str | None = None

    def describe(self) -> str:
        when = f", applied {self.applied_at:%Y-%m-%d %H:%M:%S %Z}" if self.applied_at else ""
        who = f" by {self.applied_by}" if self.applied_by else ""
        return f"{self.version} ({self.fingerprint}{when}{who})".replace(" )", ")")


@dataclass(frozen=True)
class Live:
    """What the warehouse holds of a feed: its latest schema version (None: never applied), the
    columns of each of the contract's tables and of the raw and mart tables the version records
    (None: no such table), and which of its file format and stage exist."""

    recorded: Recorded | None
    tables: dict[str, list[ColumnState] | None]
    objects: dict[str, bool]
    stage_urls: dict[str, str] = field(default_factory=dict)
    """The URL each stage reads, as SHOW STAGES gives it (compared with the spec's lake)."""


@dataclass(frozen=True)
class FeedPlan:
    """What it takes to bring one feed's warehouse objects to its contract."""

    feed: str
    fingerprint: str
    recorded: Recorded | None
    changes: list[Change] = field(default_factory=list)

    @property
    def refused(self) -> list[Change]:
        return [c for c in self.changes if not c.safe]

    @property
    def statements(self) -> list[str]:
        """The DDL of the safe changes, in the order they run."""
        return [c.ddl for c in self.changes if c.ddl]

    @property
    def up_to_date(self) -> bool:
        """Nothing to run and the warehouse records this very version."""
        return (
            not self.changes
            and self.recorded is not None
            and (self.recorded.fingerprint == self.fingerprint)
        )

    @property
    def next_version(self) -> int:
        return (self.recorded.version if self.recorded else 0) + 1


def plan_feed(
    contract: Contract, live: Live, column_paths: dict[str, tuple[str | int, ...]]
) -> FeedPlan:
    """Compare a feed's contract with the warehouse. column_paths maps a spec column's name
    (upper case) to its JSON path in the spec, where its changes are reported; other changes are
    reported at the spec's key, table or feed name."""
    recorded = live.recorded.contract if live.recorded else None
    changes: list[Change] = []
    if recorded is not None and recorded.get("key") != list(contract.key):
        old = ", ".join(recorded.get("key") or []) or "none"
        changes.append(Change(
            contract.mart, "", "change key",
            f"key {old} -> {', '.join(contract.key)}: the mart's rows were merged on the old key",
            hint="empty the mart by hand (or create it anew under another name), then rebuild "
            "it from processed/ with `streamline reprocess FEED --from FIRST_BATCH`",
            path=("key",),
        ))  # fmt: skip
    for part, name in (("raw", contract.raw), ("mart", contract.mart)):
        old_name = str(recorded.get(part) or "") if recorded is not None else ""
        # Refused while the old table is there (it holds the data, and the ledger's batches
        # point at it): once it is moved by hand (or dropped), the new place is planned as usual.
        if old_name and old_name != name and live.tables.get(old_name) is not None:
            also = " (it exists too)" if live.tables.get(name) is not None else ""
            changes.append(Change(
                name, "", "move table", f"{part} table {old_name} -> {name}{also}",
                hint=f"move it by hand, `ALTER TABLE {old_name} RENAME TO {name}` (see "
                "https://docs.snowflake.com/en/sql-reference/sql/alter-table), then plan again; "
                f"or, to start anew, drop {old_name}, apply (which creates {name} empty) and "
                "rebuild it from processed/ with `streamline reprocess FEED --from FIRST_BATCH`",
                path=(part, "table"),
            ))  # fmt: skip
    # A moved table's other changes wait for the move; every other table is planned as usual.
    moved = {c.table for c in changes if c.kind == "move table"}
    objects = (recorded or {}).get("objects", {})
    replaced_format = False
    # Tables first, the file format and stage last: an apply that stops half way leaves the
    # objects a DAG run made from the older spec reads (its files, its columns) as they were.
    object_changes: list[Change] = []
    for statement in contract.statements:
        if statement.kind in OBJECT_KINDS:
            exists = live.objects.get(statement.name, False)
            before = objects.get(statement.name)
            url = live.stage_urls.get(statement.name)
            wanted = _stage_url(statement.sql) if statement.kind == "stage" else None
            elsewhere = url is not None and wanted is not None and url != wanted
            if (
                exists
                and before == statement.sql
                and not elsewhere
                and not (statement.kind == "stage" and replaced_format)
            ):
                continue
            if not exists:
                kind, detail = f"create {statement.kind}", f"{statement.kind} {statement.name}"
            elif elsewhere:  # the warehouse's own stage reads another lake than the spec's
                kind = "stage options"
                detail = f"{statement.name}: URL {url} -> {wanted} (the lake it reads)"
            elif before is None:
                kind = f"replace {statement.kind}"
                detail = f"{statement.name}: options not on record, made again from the spec"
            elif before != statement.sql:
                kind, detail = f"{statement.kind} options", _option_diff(before, statement.sql)
            else:
                kind = f"replace {statement.kind}"
                detail = f"{statement.name}: its file format is made again"
            replaced_format = replaced_format or statement.kind == "file format"
            object_changes.append(Change(statement.name, "", kind, detail, statement.sql + ";"))
        elif statement.kind == "table":
            if statement.name in moved:
                continue
            columns = live.tables.get(statement.name)
            if columns is None:
                changes.append(Change(
                    statement.name, "", "create table", f"table {statement.name}",
                    statement.sql + ";",
                ))  # fmt: skip
                continue
            own = statement.name not in contract.spec_tables
            evolved = evolved_columns(recorded, statement.name)
            for change in column_changes(statement.name, contract.tables[statement.name], columns):
                if change.kind == "drop column" and change.column.upper() in evolved:
                    continue  # added by the feed's schema_contract evolve (streamline.contracts)
                if own:  # a StreamLine upgrade changed one of its own tables
                    change = Change(
                        change.table, change.column, change.kind, change.detail, change.ddl,
                        change.hint and f"{change.hint} (a table of StreamLine's own, changed by "
                        "an upgrade: see its release notes)", ("feed",),
                    )  # fmt: skip
                else:
                    change = _with_path(
                        change, column_paths.get(change.column.upper(), ("columns",))
                    )
                changes.append(change)
    changes += object_changes
    if any(c.kind.startswith("create") for c in changes):
        setup = [s for s in contract.statements if s.kind in ("database", "schema")]
        changes[:0] = [
            Change(s.name, "", f"ensure {s.kind}", f"{s.kind} {s.name}", s.sql + ";") for s in setup
        ]
    changes = [
        _with_hint(c, c.hint.replace("reprocess FEED", f"reprocess {contract.feed}"))
        if c.hint
        else c
        for c in changes
    ]
    return FeedPlan(contract.feed, contract.fingerprint, live.recorded, changes)


def _with_hint(change: Change, hint: str) -> Change:
    return Change(
        change.table, change.column, change.kind, change.detail, change.ddl, hint, change.path
    )


def evolved_columns(recorded: dict[str, Any] | None, table: str) -> set[str]:
    """The columns (upper case) a schema version records as evolved into a table (quoted name):
    added by a header feed's schema_contract evolve (streamline.contracts), not by the spec."""
    evolved = (recorded or {}).get("evolved") or {}
    return {str(name).upper() for name in evolved.get(table, [])}


def contract_record(contract: Contract, recorded: Recorded | None) -> dict[str, Any]:
    """The contract as a new schema version records it: Contract.to_json, plus the evolved
    columns of the version before that the spec's tables do not have (a column the spec now
    names is the spec's again)."""
    body = contract.to_json()
    kept: dict[str, list[str]] = {}
    before = (recorded.contract if recorded else {}).get("evolved") or {}
    for table, names in before.items():
        spec = {c.name.upper() for c in contract.tables.get(table, [])}
        if left := [str(n).upper() for n in names if str(n).upper() not in spec]:
            kept[table] = left
    if kept:
        body["evolved"] = kept
    return body


def _stage_url(sql: str) -> str | None:
    """The URL literal of a CREATE STAGE statement, unquoted."""
    found = re.search(r"^URL = '((?:[^']|'')*)'", sql, re.MULTILINE)
    return found[1].replace("''", "'") if found else None


def _with_path(change: Change, path: tuple[str | int, ...]) -> Change:
    return Change(
        change.table, change.column, change.kind, change.detail, change.ddl, change.hint, path
    )


def _option_diff(before: str, after: str) -> str:
    """The option lines that differ, e.g. `FIELD_DELIMITER = ',' -> FIELD_DELIMITER = '|'`."""
    old, new = before.splitlines()[1:], after.splitlines()[1:]
    gone = [line for line in old if line not in new]
    came = [line for line in new if line not in old]
    pairs = [f"{a.rstrip(',;')} -> {b.rstrip(',;')}" for a, b in zip(gone, came, strict=False)]
    pairs += [f"- {a.rstrip(',;')}" for a in gone[len(came) :]]
    pairs += [f"+ {b.rstrip(',;')}" for b in came[len(gone) :]]
    return "; ".join(pairs) or "options reordered"
