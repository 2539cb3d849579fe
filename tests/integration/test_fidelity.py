"""The fidelity probes (streamline.local.fidelity) on the local warehouse: each passes, or fails
for the reason its `gap` gives (docs/local-runtime.md lists those)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamline.local.fidelity import PROBES, Probe, run_probe

pytestmark = [pytest.mark.integration]

BUCKET = "fidelity"


@pytest.fixture
def cursor(warehouse: Any, s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    conn = warehouse.connect()
    try:
        yield conn.cursor()
    finally:
        conn.close()


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_probe(probe: Probe, cursor: Any, s3: Any) -> None:
    result = run_probe(probe, cursor, lambda key, body: s3.put_object(
        Bucket=BUCKET, Key=key, Body=body), BUCKET)  # fmt: skip
    if probe.gap:
        assert not result.passed, f"{probe.name} passes now: remove its gap ({probe.gap})"
        pytest.xfail(probe.gap)
    assert result.passed, f"{probe.name}: {result.got}; Snowflake: {probe.doc}"


def _probe(name: str) -> Callable[[Callable[..., Any], Any], bool]:
    """A check: whether the probe passes on a connection from connect."""

    def check(connect: Callable[..., Any], s3: Any) -> bool:
        conn = connect()
        try:
            probe = next(p for p in PROBES if p.name == name)
            put = lambda key, body: s3.put_object(Bucket=BUCKET, Key=key, Body=body)  # noqa: E731
            return run_probe(probe, conn.cursor(), put, BUCKET).passed
        finally:
            conn.close()

    return check


def _copy_without_current_database(connect: Callable[..., Any], s3: Any) -> bool:
    """A transforming COPY from a fully qualified stage in a session with no current database
    (Airflow's hook logs in so; connect_options name none) loads."""
    s3.put_object(Bucket=BUCKET, Key="patch3/a.csv", Body=b"a\n")
    setup = connect()  # CREATE DATABASE makes it the session's current one: set up apart
    for sql in ("CREATE DATABASE IF NOT EXISTS P3", "CREATE OR REPLACE SCHEMA P3.S",
                "CREATE TABLE P3.S.T (x VARCHAR)",
                f"CREATE STAGE P3.S.ST URL = 's3://{BUCKET}/patch3/'"):  # fmt: skip
        setup.cursor().execute(sql)
    setup.close()
    conn = connect()
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(
                "COPY INTO P3.S.T FROM (SELECT $1 FROM @P3.S.ST) FILE_FORMAT = (TYPE = CSV)"
            )
        except Exception:
            return False
        cursor.execute("SELECT x FROM P3.S.T")
        return cursor.fetchall() == [("a",)]
    finally:
        conn.close()


def _constraint_error_is_a_sql_error(connect: Callable[..., Any], s3: Any) -> bool:
    """NULL into a NOT NULL column fails with Snowflake's SQL error (fakesnow's raw DuckDB error
    is an HTTP 500, which the connector retries until network_timeout)."""
    conn = connect(network_timeout=5)
    try:
        cursor = conn.cursor()
        cursor.execute("CREATE DATABASE IF NOT EXISTS P5")
        cursor.execute("CREATE SCHEMA IF NOT EXISTS P5.S")
        cursor.execute("CREATE OR REPLACE TABLE P5.S.N (x VARCHAR NOT NULL)")
        try:
            cursor.execute("INSERT INTO P5.S.N VALUES (NULL)")
        except Exception as exc:
            return "NULL result in a non-nullable column" in str(exc)
        return False
    finally:
        conn.close()


def _closing_a_session_rolls_back(connect: Callable[..., Any], s3: Any) -> bool:
    """A session closed inside a transaction holds nothing after: another session deletes the
    same rows at once (Snowflake rolls a closing session's transaction back)."""
    setup = connect()
    for sql in (
        "CREATE DATABASE IF NOT EXISTS P6",
        "CREATE SCHEMA IF NOT EXISTS P6.S",
        "CREATE OR REPLACE TABLE P6.S.T (x NUMBER)",
        "INSERT INTO P6.S.T VALUES (1)",
    ):
        setup.cursor().execute(sql)
    setup.close()
    first = connect()
    first.cursor().execute("BEGIN")
    first.cursor().execute("DELETE FROM P6.S.T")
    first.close()
    second = connect()
    try:
        cursor = second.cursor()
        cursor.execute("BEGIN")
        cursor.execute("DELETE FROM P6.S.T")
        cursor.execute("COMMIT")
        return True
    except Exception:
        return False
    finally:
        second.close()


def _describe_gives_declared_types(connect: Callable[..., Any], s3: Any) -> bool:
    """streamline plan reads a table's columns with DESCRIBE TABLE, from a session without a
    current database; Snowflake reports the types as declared and as ALTERed."""
    setup = connect()
    for sql in (
        "CREATE DATABASE IF NOT EXISTS P9",
        "CREATE SCHEMA IF NOT EXISTS P9.S",
        'CREATE OR REPLACE TABLE P9.S.T ("A" TIMESTAMP_NTZ(3), "B" TIMESTAMP_LTZ(3), '
        '"C" VARCHAR(5))',
        'ALTER TABLE P9.S.T ALTER COLUMN "C" SET DATA TYPE VARCHAR(9)',
        'CREATE TABLE IF NOT EXISTS P9.S.T ("C" VARCHAR(1))',  # exists: changes nothing
    ):
        setup.cursor().execute(sql)
    setup.close()
    reader = connect()
    try:
        rows = reader.cursor().execute("DESCRIBE TABLE P9.S.T").fetchall()
    except Exception:  # fakesnow alone: no current database, no information schema found
        return False
    finally:
        reader.close()
    types = {row[0]: row[1] for row in rows}
    return types == {"A": "TIMESTAMP_NTZ(3)", "B": "TIMESTAMP_LTZ(3)", "C": "VARCHAR(9)"}


# Each compat patch, and a check that passes with it and fails without it.
NEEDED_BY: dict[int, Callable[[Callable[..., Any], Any], bool]] = {
    1: _probe("copy_quoted_newline"),
    2: _probe("copy_char_too_long"),
    3: _copy_without_current_database,
    4: _probe("merge_duplicate_source_keys"),
    5: _constraint_error_is_a_sql_error,
    6: _closing_a_session_rolls_back,
    7: _probe("null_timestamp"),
    8: _probe("try_to_timestamp_auto"),
    9: _describe_gives_declared_types,
}


@pytest.mark.parametrize("patch", sorted(NEEDED_BY))
def test_each_compat_patch_is_needed(
    patch: int, warehouse: Any, moto_server: str, s3: Any, tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from streamline.local.compat import WITHOUT_ENV
    from streamline.local.stack import start_warehouse
    from streamline.local.warehouse import connect as connect_to

    s3.create_bucket(Bucket=BUCKET)
    check = NEEDED_BY[patch]
    assert check(warehouse.connect, s3), f"fails with every patch in place: {check}"
    monkeypatch.setenv(WITHOUT_ENV, str(patch))
    process, port, bundle = start_warehouse(tmp_path, moto_server)
    try:

        def connect(**overrides: Any) -> Any:
            return connect_to(port, bundle, **overrides)

        needed = not check(connect, s3)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert needed, f"patch {patch} is no longer needed: remove it from compat.py"
