"""Issue 11: a spec edit reaches the warehouse through `streamline plan` and `apply` while
batches keep landing: a DAG made from the edited spec claims nothing until the warehouse holds
its schema version (the files wait in landing/), apply makes the change, and the next run loads
every waiting file, the new column filled; a refused edit changes nothing. On the local stack,
with the `streamline` command pointed at it as at a deployment (tests/integration/harness.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import customer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

FEED = "profiles"
NEW_COLUMN = "  - name: loyalty_points\n    type: NUMBER(10,0)\n\nkey:"


def _describe(lake: Any, table: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in lake.query(f"DESCRIBE TABLE {table}")}


def test_a_spec_edit_reaches_the_warehouse_through_plan_and_apply(lake: Any) -> None:
    spec: Path = lake.project.pipelines_dir / f"{FEED}.yaml"
    original = spec.read_text()
    raw = '"STREAMLINE"."RAW"."PROFILES"'
    try:
        lake.land(FEED, [customer(1, "free", "10:00:00.000"), customer(2, "plus", "10:00:00.000")])
        first = lake.run(FEED)
        assert first["state"] == "success", first

        # The spec gains a column and widens another; the edge sends the new field from now on,
        # and the DAG made from the edited spec (reload: parsed again, as after a deploy) runs
        # before anyone applied the change.
        edited = original.replace("\nkey:", "\n" + NEW_COLUMN, 1).replace(
            "    type: VARCHAR(254)\n", "    type: VARCHAR(320)\n", 1
        )
        spec.write_text(edited)
        lake.land(FEED, [customer(3, "pro", "11:00:00.000") + ",42"])
        lake.land(FEED, [customer(2, "pro", "11:00:00.000") + ",7"])
        stale = lake.run(FEED, reload=True)
        assert stale["state"] == "failed" and not stale["claimed"], stale
        assert stale["batch_id"] is None  # nothing was claimed ...
        assert len(lake.objects(f"landing/{FEED}/")) == 2  # ... the files wait in landing/
        log = (lake.workdir / f"worker-{FEED}.log").read_text(errors="replace")
        assert f"streamline apply {FEED}" in log and "schema version 1" in log

        plan = lake.cli("plan", FEED)
        assert plan.returncode == 2, plan.stderr
        added = f'ALTER TABLE {raw} ADD COLUMN IF NOT EXISTS "LOYALTY_POINTS" NUMBER(10,0);'
        assert added in plan.stdout
        assert f'ALTER TABLE {raw} ALTER COLUMN "EMAIL" SET DATA TYPE VARCHAR(320);' in plan.stdout
        applied = lake.cli("apply", FEED)
        assert applied.returncode == 0, applied.stderr
        assert f"{FEED}: schema version 2" in applied.stdout
        assert lake.cli("plan", FEED).returncode == 0

        loaded = lake.run(FEED)
        assert loaded["state"] == "success", loaded
        assert not lake.objects(f"landing/{FEED}/")
        rows = lake.query(f'SELECT "CUSTOMER_ID", "LOYALTY_POINTS", "BATCH_ID" FROM {raw}')
        assert sorted(((r[0], r[1]) for r in rows), key=str) == [
            ("cus_000001", None), ("cus_000002", 7), ("cus_000002", None), ("cus_000003", 42),
        ]  # fmt: skip
        mart = lake.query(
            'SELECT "CUSTOMER_ID", "LOYALTY_POINTS" FROM "STREAMLINE"."MART"."PROFILES"'
        )
        assert sorted(mart, key=str) == [
            ("cus_000001", None), ("cus_000002", 7), ("cus_000003", 42),
        ]  # fmt: skip
        ledger = lake.ledger(FEED)
        assert ledger[first["batch_id"]]["schema_version"] == 1
        assert ledger[loaded["batch_id"]]["schema_version"] == 2

        # A file format change: the edge switches to '|'; its files wait for the apply.
        piped = edited.replace('    delimiter: ","\n', '    delimiter: "|"\n', 1)
        spec.write_text(piped)
        lake.land(FEED, [(customer(4, "free", "12:00:00.000") + ",5").replace(",", "|")])
        assert lake.run(FEED, reload=True)["claimed"] is False
        plan = lake.cli("plan", FEED)
        assert "FIELD_DELIMITER = ',' -> FIELD_DELIMITER = '|'" in plan.stdout, plan.stdout
        assert lake.cli("apply", FEED).returncode == 0
        assert lake.run(FEED)["state"] == "success"
        assert lake.query(
            f'SELECT "LOYALTY_POINTS" FROM {raw} WHERE "CUSTOMER_ID" = \'cus_000004\''
        ) == [(5,)]
        assert lake.count(FEED, "raw") == 5

        # A refused edit: apply (which plans first) says where and why, and changes nothing.
        before = _describe(lake, raw)
        spec.write_text(piped.replace("    type: VARCHAR(320)\n", "    type: VARCHAR(100)\n"))
        refused = lake.cli("apply", FEED)
        assert refused.returncode == 1, refused.stdout
        assert f"pipelines/{FEED}.yaml:" in refused.stderr and "narrow refused" in refused.stderr
        assert _describe(lake, raw) == before
        spec.write_text(piped)
        assert lake.cli("plan", FEED).returncode == 0
    finally:
        spec.write_text(original)
        lake.worker(FEED).stop()  # the next run of profiles parses the original spec
