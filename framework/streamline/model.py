"""The typed, frozen model of a validated feed spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamline.layout import Layout


@dataclass(frozen=True)
class TableRef:
    database: str
    schema: str
    table: str

    @property
    def dotted(self) -> str:
        return f"{self.database}.{self.schema}.{self.table}"


DEFAULT_SCHEMA_CONTRACT = "freeze"
"""A header feed's schema_contract when its spec names none: nothing changes silently."""


@dataclass(frozen=True)
class CsvFormat:
    header: bool
    delimiter: str
    quote: str
    compression: str
    null_markers: tuple[str, ...]
    timestamp_format: str
    date_format: str
    encoding: str
    schema_contract: str | None = None
    """What a file with columns the spec lacks does (streamline.contracts): evolve, freeze,
    discard_row or discard_value; freeze when a header feed's spec names none; None without a
    header row (columns are positional)."""
    schema_contract_mart: bool = False
    """With evolve: the evolved columns reach the mart too."""


@dataclass(frozen=True)
class Source:
    prefix: str
    format: CsvFormat


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    description: str


@dataclass(frozen=True)
class Reference:
    column: str
    feed: str
    to: str
    max_orphan_ratio: float
    severity: str = "error"

    @property
    def name(self) -> str:
        """The reference's name in gate results and the ledger's CHECKS."""
        return reference_name(self.column)


def reference_name(column: str) -> str:
    """The name of the reference check on a column: references__<column>."""
    return f"references__{column}"


@dataclass(frozen=True)
class CopyOptions:
    on_error: str
    size_limit_bytes: int | None
    truncate_columns: bool
    error_on_column_count_mismatch: bool
    trim_space: bool
    max_rejected_ratio: float = 0.1


@dataclass(frozen=True)
class Transform:
    template: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Check:
    type: str
    columns: tuple[str, ...] = ()
    column: str | None = None
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    severity: str = "error"
    label: str | None = None
    """The spec's `name`, when it gives one."""

    @property
    def name(self) -> str:
        """The check's name in gate results and the ledger's CHECKS: the spec's, else derived
        from its type and columns (validation refuses two checks of one feed with one name)."""
        if self.label:
            return self.label
        if self.type in ("not_null", "unique"):
            return f"{self.type}__{'__'.join(self.columns)}"
        if self.column:
            return f"{self.type}__{self.column}"
        return self.type


@dataclass(frozen=True)
class Trigger:
    mode: str
    poll_interval_seconds: float
    timeout_seconds: int
    queue: str | None
    """The spec's queue name; Layout.queue gives the name in use (default streamline-<feed>)."""


@dataclass(frozen=True)
class BatchSettings:
    """How landed files become batches, and when one needs attention (`batch` in a spec)."""

    max_files: int
    max_bytes: int
    stuck_after_seconds: int
    landing_stale_after_seconds: int


@dataclass(frozen=True)
class DagSettings:
    dag_id: str
    owner: str
    tags: tuple[str, ...]
    retries: int
    retry_delay_seconds: int
    task_timeout_seconds: int
    run_timeout_seconds: int
    max_active_runs: int
    aws_conn_id: str
    snowflake_conn_id: str


@dataclass(frozen=True)
class Feed:
    """One validated feed: everything rendering and DAG building need, nothing more."""

    feed: str
    description: str
    source: Source
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    ordering: str
    references: tuple[Reference, ...]
    raw: TableRef
    mart: TableRef
    copy: CopyOptions
    batch: BatchSettings
    transform: Transform
    checks: tuple[Check, ...]
    trigger: Trigger
    dag: DagSettings
    spec_file: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def layout(self) -> Layout:
        """Every name derived from this feed: lake keys, warehouse objects, AWS resources."""
        from streamline.layout import Layout

        return Layout.of(self)

    def column(self, name: str) -> Column:
        """The column called name (KeyError when absent)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def build_feed(data: dict[str, Any], spec_file: str) -> Feed:
    """Build the model from schema-valid data whose defaults are already applied."""
    source = data["source"]
    fmt = source["format"]
    trigger = data["trigger"]
    dag = data["dag"]
    return Feed(
        feed=data["feed"],
        description=data["description"],
        source=Source(
            prefix=source["prefix"],
            format=CsvFormat(
                header=fmt["header"],
                delimiter=fmt["delimiter"],
                quote=fmt["quote"],
                compression=fmt["compression"],
                null_markers=tuple(fmt["null_markers"]),
                timestamp_format=fmt["timestamp_format"],
                date_format=fmt["date_format"],
                encoding=fmt["encoding"],
                schema_contract=(
                    fmt.get("schema_contract", DEFAULT_SCHEMA_CONTRACT) if fmt["header"] else None
                ),
                schema_contract_mart=fmt.get("schema_contract_mart", False),
            ),
        ),
        columns=tuple(
            Column(
                name=c["name"],
                type=normalize_type(c["type"]),
                nullable=c["nullable"] and c["name"] not in data["key"],
                description=c["description"],
            )
            for c in data["columns"]
        ),
        key=tuple(data["key"]),
        ordering=data["ordering"],
        references=tuple(Reference(**r) for r in data["references"]),
        raw=TableRef(**data["raw"]),
        mart=TableRef(**data["mart"]),
        copy=CopyOptions(**data["copy"]),
        batch=BatchSettings(**data["batch"]),
        transform=Transform(
            template=data["transform"]["template"], params=data["transform"]["params"]
        ),
        checks=tuple(build_check(c) for c in data["checks"]),
        trigger=Trigger(
            mode=trigger["mode"],
            poll_interval_seconds=trigger["poll_interval_seconds"],
            timeout_seconds=trigger["timeout_seconds"],
            queue=trigger.get("queue"),
        ),
        dag=DagSettings(
            dag_id=dag.get("dag_id") or data["feed"],
            owner=dag["owner"],
            tags=tuple(dag["tags"]),
            retries=dag["retries"],
            retry_delay_seconds=dag["retry_delay_seconds"],
            task_timeout_seconds=dag["task_timeout_seconds"],
            run_timeout_seconds=dag["run_timeout_seconds"],
            max_active_runs=dag["max_active_runs"],
            aws_conn_id=dag["aws_conn_id"],
            snowflake_conn_id=dag["snowflake_conn_id"],
        ),
        spec_file=spec_file,
    )


def build_check(data: dict[str, Any]) -> Check:
    """A Check from a spec's check (schema-valid)."""
    return Check(
        type=data["type"],
        columns=tuple(data.get("columns", ())),
        column=data.get("column"),
        values=tuple(data.get("values", ())),
        min=data.get("min"),
        max=data.get("max"),
        severity=data.get("severity", "error"),
        label=data.get("name"),
    )


TEXT_TYPES = frozenset({"VARCHAR", "CHAR", "CHARACTER", "NCHAR", "STRING", "TEXT", "NVARCHAR"})
"""Snowflake's character types (synonyms of VARCHAR, and CHAR's, whose length defaults to 1)."""
FIXED_TYPES = frozenset({"NUMBER", "DECIMAL", "NUMERIC", "DEC"})
"""Snowflake's fixed-point number types (precision and scale; NUMBER(38,0) by default)."""
INTEGER_TYPES = frozenset({"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"})
"""Synonyms of NUMBER(38,0)."""
FLOAT_TYPES = frozenset({"FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"})
"""Snowflake's floating-point types, all one 64-bit FLOAT:
https://docs.snowflake.com/en/sql-reference/data-types-numeric"""


def type_parts(type_text: str) -> tuple[str, list[int]]:
    """A valid Snowflake type's name and numeric parameters: NUMBER(12,2) -> (NUMBER, [12, 2])."""
    name, _, args = type_text.partition("(")
    return name.strip(), [int(a) for a in args.rstrip(")").split(",")] if args else []


def normalize_type(type_text: str) -> str:
    """Canonical spelling of a Snowflake type: no spaces inside the parentheses."""
    head, paren, rest = type_text.partition("(")
    return head.strip() + (paren + rest.replace(" ", "") if paren else "")
