"""Fixtures shared by unit tests: an in-process warehouse holding the batch ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamline import ledger
from streamline.layout import LEDGER_COLUMNS
from streamline.model import TableRef
from streamline.rendering import quote_identifier, quote_table

LEDGER = TableRef("db", "raw", "streamline_batches")


@pytest.fixture
def warehouse() -> Iterator[ledger.ConnectionRunner]:
    """fakesnow in-process (no server) with an empty ledger table db.raw.streamline_batches."""
    import fakesnow
    import snowflake.connector

    with fakesnow.patch():
        conn = snowflake.connector.connect(database="DB", schema="RAW")
        conn.cursor().execute("CREATE SCHEMA IF NOT EXISTS DB.RAW")
        columns = ", ".join(
            f"{quote_identifier(c.name)} {c.type}{'' if c.nullable else ' NOT NULL'}"
            for c in LEDGER_COLUMNS
        )
        conn.cursor().execute(f"CREATE TABLE {quote_table(LEDGER)} ({columns})")
        yield ledger.ConnectionRunner(conn)
