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
