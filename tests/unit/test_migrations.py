"""Issue 11, first piece: desired vs live columns, classified as Snowflake's ALTER COLUMN
allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamline import ledger
from streamline.migrations import (
    ColumnState,
    SqlType,
    canonical_type,
    column_changes,
    desired_tables,
    live_columns,
)
from streamline.project import find_project
from streamline.rendering import render_feed
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
T = '"DB"."RAW"."T"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VARCHAR", SqlType("TEXT", 16_777_216)),
        ("string", SqlType("TEXT", 16_777_216)),
        ("CHAR", SqlType("TEXT", 1)),
        ("CHAR(2)", SqlType("TEXT", 2)),
        ("TEXT(30)", SqlType("TEXT", 30)),
        ("INT", SqlType("NUMBER", 38, 0)),
        ("DEC(12, 2)", SqlType("NUMBER", 12, 2)),
        ("NUMBER", SqlType("NUMBER", 38, 0)),
        ("DOUBLE PRECISION", SqlType("FLOAT")),
        ("DATETIME", SqlType("TIMESTAMP_NTZ", 9)),
        ("TIMESTAMP_NTZ(3)", SqlType("TIMESTAMP_NTZ", 3)),
        ("TIMESTAMPLTZ(6)", SqlType("TIMESTAMP_LTZ", 6)),
        ("BOOLEAN", SqlType("BOOLEAN")),
    ],
)
def test_synonyms_and_default_sizes_fold_to_one_spelling(text: str, expected: SqlType) -> None:
    assert canonical_type(text) == expected


def _col(name: str, type_: str, nullable: bool = True) -> ColumnState:
    return ColumnState(name, canonical_type(type_), nullable)


def test_safe_changes_come_with_their_ddl() -> None:
    live = [_col("A", "VARCHAR(16)"), _col("B", "NUMBER(12,2)", False)]
    desired = [
        _col("A", "VARCHAR(32)"),
        _col("B", "NUMBER(20,2)"),
        _col("C", "VARCHAR(8)"),
    ]
    changes = column_changes(T, desired, live)
    assert [(c.column, c.kind, c.ddl) for c in changes] == [
        ("A", "widen", f'ALTER TABLE {T} ALTER COLUMN "A" SET DATA TYPE VARCHAR(32);'),
        ("B", "widen", f'ALTER TABLE {T} ALTER COLUMN "B" SET DATA TYPE NUMBER(20,2);'),
        ("B", "drop NOT NULL", f'ALTER TABLE {T} ALTER COLUMN "B" DROP NOT NULL;'),
        ("C", "add column", f'ALTER TABLE {T} ADD COLUMN IF NOT EXISTS "C" VARCHAR(8);'),
    ]
    assert all(c.safe for c in changes)


def test_changes_that_lose_data_are_refused_with_the_manual_path() -> None:
    live = [
        _col("A", "VARCHAR(32)"),
        _col("B", "NUMBER(12,2)"),
        _col("C", "VARCHAR(8)"),
        _col("D", "NUMBER(10,0)"),
        _col("OLD", "VARCHAR(8)"),
    ]
    desired = [
        _col("A", "VARCHAR(16)"),  # narrower
        _col("B", "NUMBER(12,4)"),  # another scale
        _col("C", "NUMBER(8,0)"),  # another type
        _col("D", "NUMBER(10,0)", False),  # NOT NULL on rows that may hold NULL
        _col("NEW", "VARCHAR(8)", False),  # a NOT NULL column for rows that have none
    ]
    changes = column_changes(T, desired, live)
    assert [(c.column, c.kind, c.safe) for c in changes] == [
        ("A", "narrow", False),
        ("B", "change scale", False),
        ("C", "change type", False),
        ("D", "set NOT NULL", False),
        ("NEW", "add NOT NULL column", False),
        ("OLD", "drop column", False),
    ]
    assert all(c.hint for c in changes)
    assert "processed/" in changes[0].hint  # type: ignore[operator]


def test_the_shipped_ddl_reads_back_as_its_tables() -> None:
    project = find_project(ROOT)
    feeds = validate_paths(project).feeds
    orders = next(f for f in feeds if f.feed == "orders")
    ddl = render_feed(project, orders, feeds, steps=["ddl"])["ddl"]
    tables = desired_tables(ddl)
    raw = tables['"STREAMLINE"."RAW"."ORDERS"']
    names = [c.name for c in raw]
    assert names[: len(orders.columns)] == [c.name.upper() for c in orders.columns]
    assert "BATCH_ID" in names
    assert not next(c for c in raw if c.name == "BATCH_ID").nullable
    mart = tables['"STREAMLINE"."MART"."ORDERS"']
    assert next(c for c in mart if c.name == "ORDER_ID").type == SqlType("TEXT", 20)


def test_describe_table_reads_as_live_columns_and_applied_ddl_leaves_nothing_to_do(
    warehouse: ledger.ConnectionRunner,
) -> None:
    """On the in-process warehouse (fakesnow); its DESCRIBE TABLE loses TIMESTAMP precision and
    CHAR lengths, so this round trip uses text, number and boolean columns only."""
    runner = warehouse
    runner.run('CREATE TABLE "DB"."RAW"."T" ("A" VARCHAR(16), "B" NUMBER(12,2) NOT NULL)')
    desired = [_col("A", "VARCHAR(32)"), _col("B", "NUMBER(20,2)"), _col("C", "BOOLEAN")]

    def live() -> list[ColumnState]:
        return live_columns(runner.get_records('DESCRIBE TABLE "DB"."RAW"."T"'))

    assert live() == [_col("A", "VARCHAR(16)"), _col("B", "NUMBER(12,2)", False)]
    changes = column_changes(T, desired, live())
    for change in changes:
        assert change.ddl
        runner.run(change.ddl.rstrip(";"))
    assert column_changes(T, desired, live()) == []
