"""Schema contracts of a header feed through the real DAG (issue 11, part 4): freeze fails before
anything loads and loses nothing, discard_value loads the rows without the unexpected values and
notes them, discard_row and a shuffled header set files aside with their reasons, evolve adds the
column, fills it, and leaves `streamline plan` clean.

One feed, signups (tests/fixtures/specs/valid/signups.yaml), is added to the session's stack; each
test writes its spec with the contract it needs and the worker parses the DAG again, as the DAG
processor would after a spec edit. Headerless feeds keep positional columns: a field too many is
a quarantined row (tests/integration/test_rejects.py; tests/unit/test_contracts.py checks that
their claim reads no header).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Local

from streamline.ledger import ConnectionRunner, read_quarantine
from streamline.local.stack import create_warehouse_objects
from streamline.rendering import RenderSettings, quote_table
from streamline.schema_versions import plan_feeds
from streamline.validation import validate_paths

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]

FEED = "signups"
SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "valid" / "signups.yaml"
HEADER = "email,country,signed_up_at"
GOOD = [HEADER, "a@x.io,DE,2026-01-01 10:00:00", "b@x.io,FR,2026-01-01 10:00:01"]
COUPON = [
    "Email, Country ,SIGNED_UP_AT,Coupon",  # names compare trimmed and case-insensitive
    "c@x.io,DE,2026-01-01 11:00:00,SPRING",
    "d@x.io,IT,2026-01-01 11:00:01,",
]
SHUFFLED = ["country,email,signed_up_at", "DE,e@x.io,2026-01-01 12:00:00"]


def write_spec(local: Local, contract: str) -> None:
    """The signups spec with this contract (evolve also reaches the mart), run errors kept."""
    text = SPEC.read_text().replace(
        "    schema_contract: evolve\n    schema_contract_mart: true\n",
        f"    schema_contract: {contract}\n"
        + ("    schema_contract_mart: true\n" if contract == "evolve" else ""),
    )
    text += (
        "copy: {on_error: continue, max_rejected_ratio: 0.5}\n"
        "trigger: {timeout_seconds: 3}\n"
        "dag: {retries: 0}\n"
    )
    (local.project.root / "pipelines" / f"{FEED}.yaml").write_text(text)


@pytest.fixture(scope="module")
def signups(local: Local) -> Iterator[Local]:
    """The session's stack with the signups feed: its spec, its warehouse objects (plan and
    apply, as `streamline apply`), its worker."""
    write_spec(local, "freeze")
    result = validate_paths(local.project)
    assert result.ok, result.errors
    [feed] = [f for f in result.feeds if f.feed == FEED]
    create_warehouse_objects(local.stack, local.project, [feed])
    local.feeds[FEED] = feed
    try:
        yield local
    finally:
        if worker := local.workers.pop(FEED, None):
            worker.stop()
        local.feeds.pop(FEED)
        (local.project.root / "pipelines" / f"{FEED}.yaml").unlink()


@pytest.fixture
def lake(signups: Local) -> Local:
    """The stack with the signups feed, an empty lake and empty tables."""
    signups.reset()
    return signups


def drop(lake: Local, **files: list[str]) -> None:
    """Put files into landing/signups/ as a person would (one object each)."""
    for name, lines in files.items():
        lake.put(f"landing/{FEED}/{name}.csv", "".join(f"{line}\n" for line in lines).encode())


def raw_rows(lake: Local, *columns: str) -> list[tuple[object, ...]]:
    names = ", ".join(f'"{c}"' for c in ("EMAIL", *columns))
    return lake.query(f"SELECT {names} FROM {quote_table(lake.feeds[FEED].raw)} ORDER BY 1")


def quarantined(lake: Local, batch: str) -> list[tuple[object, ...]]:
    table = quote_table(lake.feeds[FEED].layout.quarantine)
    return lake.query(
        'SELECT "SOURCE_FILE", "SOURCE_ROW_NUMBER", "ERROR_CODE", "ERROR" FROM '
        f"{table} WHERE \"BATCH_ID\" = '{batch}' ORDER BY 1, 2"
    )


def columns_of(lake: Local, table: str) -> list[str]:
    return [row[0] for row in lake.query(f"DESCRIBE TABLE {table}")]


def test_freeze_fails_before_loading_and_keeps_the_files_then_discard_value_loads_them(
    lake: Local,
) -> None:
    write_spec(lake, "freeze")
    drop(lake, a=GOOD, b=[*COUPON, "f@x.io,DE,2026-01-01 11:00:02,SPRING,oops"])
    run = lake.run(FEED, reload=True)
    assert run["state"] == "failed" and run["tasks"]["claim"]["state"] == "failed", run
    batch = run["batch_id"]
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["failed_step"]) == ("failed", "claim")
    assert "schema_contract freeze" in row["error"]
    assert "b.csv: columns not in the spec: coupon" in row["error"]
    assert f"kept in s3://{lake.stack.bucket}/processing/{batch}/{FEED}/" in row["error"]
    assert lake.count(FEED, "raw") == 0
    # Nothing is lost: both files wait in the batch's folder; no later run takes them.
    folder = f"processing/{batch}/{FEED}/"
    assert sorted(lake.keys(folder)) == [f"{folder}a.csv", f"{folder}b.csv"]
    assert lake.keys(f"landing/{FEED}/") == []

    # The user changes the contract and reprocesses the batch, as the error says.
    write_spec(lake, "discard_value")
    again = lake.run(FEED, reprocess=batch, reload=True)
    assert again["state"] == "success", again
    assert raw_rows(lake, "COUNTRY") == [
        ("a@x.io", "DE"), ("b@x.io", "FR"), ("c@x.io", "DE"), ("d@x.io", "IT")
    ]  # fmt: skip
    # The row with a field past the header's last is rejected; the discarded column is noted.
    assert quarantined(lake, batch) == [
        (f"{folder}b.csv", 3, "too_many_fields",
         "more than 3 fields; expected 3 (a delimiter too many?)"),
        (f"{folder}b.csv", None, "columns_discarded",
         "schema_contract discard_value: the values of columns coupon (not in the spec) were "
         "not loaded; the file's rows were"),
    ]  # fmt: skip
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["runs"]) == ("published", 2)
    assert (row["rows_parsed"], row["rows_loaded"], row["rows_rejected"]) == (5, 4, 1)
    assert (row["files_loaded"], row["files_skipped"]) == (2, 0)
    # The person finds the note where `streamline quarantine` reads (the CLI's own test is
    # test_rejects.py; a CLI process here would cost its start-up).
    with lake.stack.connect() as conn:
        shown = read_quarantine(ConnectionRunner(conn), lake.feeds[FEED].layout.quarantine, batch)
    assert [r.error_code for r in shown] == ["too_many_fields", "columns_discarded"]


def test_discard_row_and_a_shuffled_header_set_files_aside_with_their_reasons(
    lake: Local,
) -> None:
    write_spec(lake, "discard_row")
    drop(lake, a=GOOD, b=COUPON, c=SHUFFLED)
    run = lake.run(FEED, reload=True)
    assert run["state"] == "success", run
    batch = run["batch_id"]
    assert raw_rows(lake) == [("a@x.io",), ("b@x.io",)]
    aside = f"quarantine/{batch}/{FEED}/"
    assert sorted(lake.keys(aside)) == [f"{aside}b.csv", f"{aside}c.csv"]
    folder = f"processing/{batch}/{FEED}/"
    rows = quarantined(lake, batch)
    assert [(r[0], r[2]) for r in rows] == [
        (f"{folder}b.csv", "file_set_aside"),
        (f"{folder}c.csv", "file_set_aside"),
    ]
    assert str(rows[0][3]).startswith(
        "schema_contract discard_row: columns not in the spec: coupon; the file's rows are not "
        "loaded (header: Email, Country, SIGNED_UP_AT, Coupon)"
    )
    assert str(rows[1][3]).startswith(
        "header check: a column of the spec is missing or out of order, so the file cannot be "
        "loaded by position: expected email, country, signed_up_at; found country, email, "
        "signed_up_at"
    )
    assert f"kept whole in {aside}c.csv" in str(rows[1][3])
    manifest = lake.read_json(f"processed/{batch}/{FEED}.manifest.json")
    assert {f["relative_key"]: f["outcome"] for f in manifest["files"]} == {
        "a.csv": "loaded", "b.csv": "quarantined", "c.csv": "quarantined"
    }  # fmt: skip
    row = lake.ledger(FEED)[batch]
    assert (row["status"], row["rows_loaded"], row["rows_rejected"]) == ("published", 2, 0)
    assert (row["files_loaded"], row["files_skipped"]) == (1, 2)


def test_evolve_adds_the_column_fills_it_for_later_batches_and_plan_is_clean(
    lake: Local,
) -> None:
    write_spec(lake, "evolve")
    spec = lake.feeds[FEED]
    raw, mart = quote_table(spec.raw), quote_table(spec.mart)
    drop(lake, a=GOOD, b=COUPON)
    run = lake.run(FEED, reload=True)
    assert run["state"] == "success", run
    for table in (raw, mart, quote_table(spec.layout.landing_table)):
        assert "COUPON" in columns_of(lake, table), table
    assert raw_rows(lake, "COUPON") == [
        ("a@x.io", None), ("b@x.io", None), ("c@x.io", "SPRING"), ("d@x.io", None)
    ]  # fmt: skip
    # A later file with the column, in another order of extra columns, and one without it.
    drop(lake, e=[f"{HEADER},source,coupon", "c@x.io,DE,2026-01-01 13:00:00,web,SUMMER"],
         f=[HEADER, "g@x.io,NL,2026-01-01 13:00:00"])  # fmt: skip
    later = lake.run(FEED)
    assert later["state"] == "success", later
    assert lake.query(f'SELECT "EMAIL", "COUPON", "SOURCE" FROM {mart} ORDER BY 1') == [
        ("a@x.io", None, None), ("b@x.io", None, None), ("c@x.io", "SUMMER", "web"),
        ("d@x.io", None, None), ("g@x.io", None, None),
    ]  # fmt: skip
    assert lake.count(FEED, "raw") == 6
    # The warehouse records what evolve added: `streamline plan` (its planning, in process: a
    # CLI process costs its start-up; test_spec_changes.py runs the command) has nothing to do.
    settings = RenderSettings(lake_url=f"s3://{lake.stack.bucket}")
    with lake.stack.connect() as conn:
        runner = ConnectionRunner(conn)
        [(_, _, plan)] = plan_feeds(lambda _: runner, lake.project, [spec], [spec], settings)
    assert plan.changes == [] and plan.up_to_date, plan.changes
    versions = quote_table(spec.layout.schema_versions)
    [(contract,)] = lake.query(
        f'SELECT "CONTRACT" FROM {versions} WHERE "FEED" = \'{FEED}\' '
        'ORDER BY "VERSION" DESC LIMIT 1'
    )
    assert json.loads(contract)["evolved"][raw] == ["COUPON", "SOURCE"]
    assert re.search(r'ADD COLUMN (IF NOT EXISTS )?"SOURCE" VARCHAR', lake.query(
        f"SELECT \"STATEMENTS\" FROM {versions} WHERE \"FEED\" = '{FEED}' "
        'ORDER BY "VERSION" DESC LIMIT 1'
    )[0][0])  # fmt: skip
