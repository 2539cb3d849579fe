"""The fidelity probes (streamline.local.fidelity) on the local warehouse: each passes, or fails
for the reason its `gap` gives (docs/local-runtime.md lists those)."""

from __future__ import annotations

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


# Each compat patch, and a probe that fails without it (patches 3, 5 and 6 are proved by the
# warehouse and pipeline tests: a session without a current database, a DuckDB constraint error,
# a closing session's open transaction).
NEEDED_BY = {1: "copy_quoted_newline", 2: "copy_char_too_long",
             4: "merge_duplicate_source_keys", 7: "null_timestamp"}  # fmt: skip


@pytest.mark.parametrize("patch", sorted(NEEDED_BY))
def test_each_compat_patch_is_needed(
    patch: int, moto_server: str, s3: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import snowflake.connector

    from streamline.local.compat import WITHOUT_ENV
    from streamline.local.stack import start_warehouse
    from streamline.local.warehouse import connect_options

    monkeypatch.setenv(WITHOUT_ENV, str(patch))
    process, port, bundle = start_warehouse(tmp_path, moto_server)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        conn = snowflake.connector.connect(**connect_options(port))
        s3.create_bucket(Bucket=BUCKET)
        probe = next(p for p in PROBES if p.name == NEEDED_BY[patch])
        put = lambda key, body: s3.put_object(Bucket=BUCKET, Key=key, Body=body)  # noqa: E731
        result = run_probe(probe, conn.cursor(), put, BUCKET)
        conn.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not result.passed, f"patch {patch} is not needed for {probe.name}: {result.got}"
