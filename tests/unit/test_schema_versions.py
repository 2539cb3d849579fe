"""Issue 11: `streamline plan` and `apply` against the in-process warehouse (fakesnow with
StreamLine's compat patches, as the local stack runs it), through the CLI and the connection the
DAGs use (an Airflow connection, here from the environment)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamline.cli import main
from streamline.ledger import ConnectionRunner
from streamline.model import TableRef
from streamline.project import find_project
from streamline.schema_versions import (
    SchemaVersionError,
    check_version,
    feed_contract,
    read_recorded,
)
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = TableRef("streamline", "raw", "streamline_schema_versions")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    for folder in ("schemas", "templates", "pipelines", "infra/mwaa"):
        shutil.copytree(ROOT / folder, root / folder)
    monkeypatch.chdir(root)
    for name in ("STREAMLINE_PROJECT_DIR", "STREAMLINE_DAG_BUCKET", "STREAMLINE_DAG_PREFIX",
                 "STREAMLINE_SQS_URL_PREFIX"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMLINE_SQL_DIR", str(tmp_path / "sql"))
    return root


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectionRunner]:
    """The warehouse the CLI reaches through Airflow's connection streamline_snowflake."""
    import fakesnow
    import snowflake.connector

    from streamline.local import compat

    compat.install(s3_endpoint_url="http://127.0.0.1:9")  # no S3 is read here
    connection = {
        "conn_type": "snowflake",
        "login": "streamline",
        "password": "unused",
        "extra": {"account": "local"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_STREAMLINE_SNOWFLAKE", json.dumps(connection))
    monkeypatch.delenv("STREAMLINE_LAKE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET", "lake")  # the DAGs' lake
    with fakesnow.patch():
        yield ConnectionRunner(snowflake.connector.connect())


def _edit(root: Path, old: str, new: str, name: str = "customers.yaml") -> None:
    path = root / "pipelines" / name
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _plan(root: Path, capsys: pytest.CaptureFixture[str], *feeds: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), "plan", *feeds])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _columns(runner: ConnectionRunner, table: str) -> dict[str, tuple[str, str]]:
    return {
        str(r[0]): (str(r[1]), str(r[3])) for r in runner.get_records(f"DESCRIBE TABLE {table}")
    }


DAG_BUCKET = "mwaa-dags"  # the dag_bucket fixture's bucket (conftest.py)
RAW = '"STREAMLINE"."RAW"."CUSTOMERS"'
MART = '"STREAMLINE"."MART"."CUSTOMERS"'


def test_apply_creates_every_object_once_and_plan_then_has_nothing_to_do(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _plan(project, capsys)
    assert code == 2, out
    assert "create table" in out and "CREATE TABLE IF NOT EXISTS" in out
    assert "URL = 's3://lake/'" in out  # the stage reads the DAGs' lake
    assert main(["--project", str(project), "apply"]) == 0
    assert "customers: schema version 1" in capsys.readouterr().out
    code, out, _ = _plan(project, capsys)
    assert code == 0, out
    assert "customers: up to date at schema version 1" in out
    # Applying again changes nothing and records no new version.
    assert main(["--project", str(project), "apply"]) == 0
    assert read_recorded(runner, VERSIONS, "customers").version == 1  # type: ignore[union-attr]
    assert _columns(runner, RAW)["CREATED_AT"][0] == "TIMESTAMP_NTZ(3)"


def test_plan_needs_to_know_the_lake_its_stages_read(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET")
    assert main(["--project", str(project), "plan"]) == 2
    assert "--lake-url" in capsys.readouterr().err
    code = main(["--project", str(project), "plan", "--lake-url", "s3://other", "--json"])
    assert code == 2
    stage = next(
        c["ddl"] for p in json.loads(capsys.readouterr().out) for c in p["changes"]
        if c["kind"] == "create stage"
    )  # fmt: skip
    assert "URL = 's3://other/'" in stage


def test_safe_edits_are_planned_with_their_ddl_applied_and_checked_by_dag_runs(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project), "apply"]) == 0
    found = find_project(project)
    feeds = validate_paths(found).feeds
    before = feed_contract(found, feeds[0], feeds).fingerprint
    _edit(project, "    type: VARCHAR(254)\n", "    type: VARCHAR(320)\n")  # email: widen
    _edit(project, "  - name: created_at\n    type: TIMESTAMP_NTZ(3)\n    nullable: false\n",
          "  - name: created_at\n    type: TIMESTAMP_NTZ(3)\n")  # fmt: skip
    _edit(project, '    delimiter: ","\n', '    delimiter: "|"\n')
    _edit(project, "\nkey:", "  - name: loyalty_points\n    type: NUMBER(10,0)\n\nkey:")
    capsys.readouterr()
    code, out, err = _plan(project, capsys, "customers")
    assert code == 2, (out, err)
    assert "customers (pipelines/customers.yaml): schema version 1" in out
    for expected in (
        "file format options: FIELD_DELIMITER = ',' -> FIELD_DELIMITER = '|'",
        "replace stage",
        f'ALTER TABLE {RAW} ADD COLUMN IF NOT EXISTS "LOYALTY_POINTS" NUMBER(10,0);',
        f'ALTER TABLE {RAW} ALTER COLUMN "EMAIL" SET DATA TYPE VARCHAR(320);',
        f'ALTER TABLE {MART} ALTER COLUMN "CREATED_AT" DROP NOT NULL;',
    ):
        assert expected in out
    assert "REFUSED" not in out and not err
    # A DAG rendered from the old spec, or from the new one before apply, is refused.
    with pytest.raises(SchemaVersionError, match="streamline apply customers"):
        check_version(runner, VERSIONS, "customers", "0" * 16)
    assert main(["--project", str(project), "apply", "customers"]) == 0
    assert "customers: schema version 2" in capsys.readouterr().out
    assert _plan(project, capsys, "customers")[0] == 0
    columns = _columns(runner, RAW)
    assert columns["EMAIL"][0] == "VARCHAR(320)" and columns["LOYALTY_POINTS"][0] == "NUMBER(10,0)"
    assert _columns(runner, MART)["CREATED_AT"][1] == "Y"
    landing = _columns(runner, '"STREAMLINE"."RAW"."CUSTOMERS_LANDING"')
    assert landing["LOYALTY_POINTS"][0] == "VARCHAR(16777216)"
    feeds = validate_paths(found).feeds
    after = feed_contract(found, feeds[0], feeds).fingerprint
    assert check_version(runner, VERSIONS, "customers", after) == 2
    with pytest.raises(SchemaVersionError, match=f"rendered for schema {before}.*version 2"):
        check_version(runner, VERSIONS, "customers", before)


@pytest.mark.parametrize(
    ("old", "new", "where", "kind"),
    [
        ("    type: VARCHAR(254)\n", "    type: VARCHAR(100)\n", "$.columns[1]", "narrow"),
        ("  - name: full_name\n    type: VARCHAR(200)\n",
         "  - name: full_name\n    type: NUMBER(10,0)\n", "$.columns[2]", "change type"),
        ("  - name: full_name\n    type: VARCHAR(200)\n", "", "$.columns", "drop column"),
        ("  - name: email\n    type: VARCHAR(254)\n",
         "  - name: email\n    type: VARCHAR(254)\n    nullable: false\n", "$.columns[1]",
         "set NOT NULL"),
        ("key: [customer_id]", "key: [customer_id, email]", "$.key", "change key"),
        ("mart:\n  database: streamline\n  schema: mart\n  table: customers",
         "mart:\n  database: streamline\n  schema: mart\n  table: customers_v2", "$.mart.table",
         "move table"),
    ],
)  # fmt: skip
def test_refused_edits_are_spec_errors_and_apply_changes_nothing(
    project: Path,
    runner: ConnectionRunner,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    where: str,
    kind: str,
) -> None:
    assert main(["--project", str(project), "apply"]) == 0
    before = {t: _columns(runner, t) for t in (RAW, MART)}
    _edit(project, old, new)
    capsys.readouterr()
    code, out, err = _plan(project, capsys)
    assert code == 1, (out, err)
    line = next(line for line in err.splitlines() if f"{kind} refused" in line)
    assert line.startswith("pipelines/customers.yaml:") and f": {where}: " in line, line
    assert "hint: " in err
    assert main(["--project", str(project), "apply"]) == 1
    assert "nothing was applied" in capsys.readouterr().err
    assert {t: _columns(runner, t) for t in (RAW, MART)} == before
    assert read_recorded(runner, VERSIONS, "customers").version == 1  # type: ignore[union-attr]
    assert read_recorded(runner, VERSIONS, "orders").version == 1  # type: ignore[union-attr]


def test_a_table_moved_by_hand_is_planned_at_its_new_place(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project), "apply"]) == 0
    _edit(project, "  schema: mart\n  table: customers", "  schema: mart\n  table: customers_v2")
    runner.run(f'ALTER TABLE {MART} RENAME TO "STREAMLINE"."MART"."CUSTOMERS_V2"')
    capsys.readouterr()
    code, out, err = _plan(project, capsys, "customers")
    assert code == 2 and not err, (out, err)
    assert "no DDL: the new version is recorded" in out
    assert main(["--project", str(project), "apply", "customers"]) == 0
    assert _plan(project, capsys, "customers")[0] == 0


def test_plan_json_lists_each_change(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project), "apply"]) == 0
    _edit(project, "\nkey:", "  - name: note\n    type: VARCHAR(10)\n\nkey:")
    capsys.readouterr()
    assert main(["--project", str(project), "plan", "--json", "customers"]) == 2
    [plan] = json.loads(capsys.readouterr().out)
    assert plan["live_version"] == 1 and not plan["up_to_date"]
    adds = [c for c in plan["changes"] if c["kind"] == "add column"]
    assert {c["table"] for c in adds} == {RAW, MART, '"STREAMLINE"."RAW"."CUSTOMERS_LANDING"'}
    assert all(c["safe"] and c["ddl"].startswith("ALTER TABLE") for c in adds)


def _deploy(root: Path, *flags: str) -> int:
    out = root.parent / "mwaa"
    command = ["--project", str(root), "deploy", "--out", str(out), "--bucket", DAG_BUCKET]
    return main([*command, *flags])


def test_deploy_migrate_applies_the_plan_before_it_uploads(
    project: Path,
    runner: ConnectionRunner,
    dag_bucket: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _deploy(project, "--migrate") == 0
    out = capsys.readouterr().out
    assert "customers: schema version 1" in out and "uploaded" in out
    assert read_recorded(runner, VERSIONS, "orders").version == 1  # type: ignore[union-attr]
    # A refused change stops the deploy before anything is applied or uploaded.
    _edit(project, "    type: VARCHAR(254)\n", "    type: VARCHAR(100)\n")  # narrow
    _edit(project, "\nkey:", "  - name: note\n    type: VARCHAR(10)\n\nkey:")  # safe
    before = dag_bucket.list_object_versions(Bucket=DAG_BUCKET).get("Versions", [])
    assert _deploy(project, "--migrate") == 1
    assert "nothing was applied and nothing uploaded" in capsys.readouterr().err
    assert dag_bucket.list_object_versions(Bucket=DAG_BUCKET).get("Versions", []) == before
    assert "NOTE" not in _columns(runner, RAW)
    assert _deploy(project, "--migrate", "--build-only") == 2


def test_each_dag_claim_checks_the_fingerprint_of_its_spec(project: Path, tmp_path: Path) -> None:
    """The DAG made from a spec (the loader's and generate's path) checks the fingerprint that
    plan and apply record for that spec, in the table apply writes."""
    from ruamel.yaml import YAML

    from streamline.generation import generate

    found = find_project(project)
    feeds = validate_paths(found).feeds
    generate(found, feeds, tmp_path / "dags")
    for feed in feeds:
        text = (tmp_path / "dags" / "streamline_configs" / f"{feed.feed}.yaml").read_text()
        config = YAML(typ="safe").load(text)[feed.dag.dag_id]
        check = config["tasks"]["claim"]["op_kwargs"]["schema_version"]
        assert check == {
            "fingerprint": feed_contract(found, feed, feeds).fingerprint,
            "database": "streamline",
            "schema": "raw",
            "table": "streamline_schema_versions",
        }


def test_apply_runs_through_the_connection_it_is_given(
    project: Path,
    runner: ConnectionRunner,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In production the DDL runs as the role that owns the objects, not the DAGs' loader."""
    monkeypatch.delenv("AIRFLOW_CONN_STREAMLINE_SNOWFLAKE")
    assert main(["--project", str(project), "apply"]) == 2  # the DAGs' connection is not defined
    assert "streamline_snowflake" in capsys.readouterr().err
    admin = {"conn_type": "snowflake", "login": "admin", "extra": {"account": "local"}}
    monkeypatch.setenv("AIRFLOW_CONN_STREAMLINE_ADMIN", json.dumps(admin))
    assert (
        main(["--project", str(project), "apply", "--snowflake-conn-id", "streamline_admin"]) == 0
    )
    assert read_recorded(runner, VERSIONS, "customers").version == 1  # type: ignore[union-attr]


def test_status_names_a_feed_whose_runs_wait_for_apply(
    project: Path, runner: ConnectionRunner, s3: Any
) -> None:
    from streamline.status import SCHEMA, collect_status

    found = find_project(project)
    feeds = validate_paths(found).feeds
    prints = {f.feed: feed_contract(found, f, feeds).fingerprint for f in feeds}

    def status() -> dict[str, Any]:
        report = collect_status(feeds, lambda _: s3, lambda _: runner, "lake", fingerprints=prints)
        return {f.feed: f for f in report.feeds}

    assert main(["--project", str(project), "apply"]) == 0
    assert all(f.healthy and f.schema_version == 1 for f in status().values())
    _edit(project, "\nkey:", "  - name: note\n    type: VARCHAR(10)\n\nkey:")
    feeds = validate_paths(found).feeds
    prints["customers"] = feed_contract(found, feeds[0], feeds).fingerprint
    customers = status()["customers"]
    [problem] = customers.problems
    assert problem.kind == SCHEMA and "schema version 1" in problem.message
    assert problem.hint == "streamline plan customers, then streamline apply customers"
    assert status()["orders"].healthy


def test_a_stage_pointed_at_another_lake_is_seen_and_put_back(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project), "apply"]) == 0
    assert main(["--project", str(project), "apply", "--lake-url", "s3://wrong", "customers"]) == 0
    assert "customers: schema version 2" in capsys.readouterr().out  # a version of its own
    code, out, _ = _plan(project, capsys, "customers")
    assert code == 2
    assert "URL s3://wrong/ -> s3://lake/ (the lake it reads)" in out
    assert main(["--project", str(project), "apply", "customers"]) == 0
    stage = runner.get_records("SHOW STAGES LIKE 'CUSTOMERS_STAGE' IN SCHEMA STREAMLINE.RAW")
    assert stage[0][4] == "s3://lake/"
    assert _plan(project, capsys, "customers")[0] == 0


def test_a_raw_table_moved_to_another_schema_is_refused(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its versions table moves with it (beside the ledger): its record is found where it was."""
    assert main(["--project", str(project), "apply"]) == 0
    _edit(project, "raw:\n  database: streamline\n  schema: raw\n",
          "raw:\n  database: streamline\n  schema: raw2\n")  # fmt: skip
    capsys.readouterr()
    code, out, err = _plan(project, capsys, "customers")
    assert code == 1, (out, err)
    assert "$.raw.table: move table refused: raw table " in err
    assert RAW in err and '"STREAMLINE"."RAW2"."CUSTOMERS"' in err


def test_an_apply_that_fails_half_way_says_what_ran_and_finishes_when_run_again(
    project: Path,
    runner: ConnectionRunner,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamline.ledger import ConnectionRunner as Runner

    assert main(["--project", str(project), "apply"]) == 0
    _edit(project, '    delimiter: ","\n', '    delimiter: "|"\n')
    _edit(project, "\nkey:", "  - name: note\n    type: VARCHAR(10)\n\nkey:")
    run = Runner.run
    seen: list[str] = []

    def flaky(self: Runner, sql: str, *args: Any, **kwargs: Any) -> None:
        seen.append(sql)
        if sql.startswith("ALTER TABLE") and sum(s.startswith("ALTER") for s in seen) == 2:
            raise RuntimeError("connection dropped")
        run(self, sql, *args, **kwargs)

    monkeypatch.setattr(Runner, "run", flaky)
    capsys.readouterr()
    assert main(["--project", str(project), "apply", "customers"]) == 1
    err = capsys.readouterr().err
    assert "statement 2 of 5 failed" in err and "The 1 before it ran" in err, err
    # The tables come first: the file format a DAG run of the older spec reads is unchanged.
    formats = runner.get_records(
        "SHOW FILE FORMATS LIKE 'CUSTOMERS_CSV_FORMAT' IN SCHEMA STREAMLINE.RAW"
    )
    assert '"FIELD_DELIMITER": ","' in formats[0][7]
    assert read_recorded(runner, VERSIONS, "customers").version == 1  # type: ignore[union-attr]
    monkeypatch.setattr(Runner, "run", run)
    assert main(["--project", str(project), "apply", "customers"]) == 0
    assert _plan(project, capsys, "customers")[0] == 0
    rows = runner.get_records(
        'SELECT "VERSION" FROM "STREAMLINE"."RAW"."STREAMLINE_SCHEMA_VERSIONS" '
        "WHERE \"FEED\" = 'customers' ORDER BY 1"
    )
    assert [r[0] for r in rows] == [1, 2]


def test_a_renamed_column_is_refused_once_per_table_naming_it(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project), "apply"]) == 0
    _edit(project, "  - name: full_name\n", "  - name: display_name\n")
    capsys.readouterr()
    code, _, err = _plan(project, capsys, "customers")
    assert code == 1
    drops = [line for line in err.splitlines() if "drop column refused" in line]
    assert len(drops) == 3 and len({line.split(" is in ")[1] for line in drops}) == 3


def test_an_evolve_recorded_after_an_apply_keeps_what_the_apply_recorded(
    project: Path, runner: ConnectionRunner
) -> None:
    """A claim read version 1, then an apply recorded version 2, then the claim's evolve
    records: the new version keeps version 2's fingerprint and contract, plus the columns."""
    from streamline.contracts import record_evolved

    assert main(["--project", str(project), "apply"]) == 0
    first = read_recorded(runner, VERSIONS, "customers")
    assert first is not None
    _edit(project, "\nkey:", "  - name: note\n    type: VARCHAR(10)\n\nkey:")
    assert main(["--project", str(project), "apply", "customers"]) == 0
    applied = read_recorded(runner, VERSIONS, "customers")
    assert applied is not None and applied.version == 2
    record_evolved(runner, VERSIONS, "customers", first, {RAW: ["COUPON"]}, [])
    latest = read_recorded(runner, VERSIONS, "customers")
    assert latest is not None and latest.version == 3
    assert latest.fingerprint == applied.fingerprint
    assert latest.contract["tables"] == applied.contract["tables"]
    assert latest.contract["evolved"] == {RAW: ["COUPON"]}


def test_a_move_and_a_key_change_do_not_hide_the_other_refusals(
    project: Path, runner: ConnectionRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--project", str(project), "apply"]) == 0
    _edit(project, "key: [customer_id]", "key: [customer_id, email]")
    _edit(project, "  schema: mart\n  table: customers", "  schema: mart\n  table: customers_v2")
    _edit(project, "    type: VARCHAR(254)\n", "    type: VARCHAR(100)\n")
    capsys.readouterr()
    code, _, err = _plan(project, capsys, "customers")
    assert code == 1
    assert "change key refused" in err and "move table refused" in err
    narrow = [line for line in err.splitlines() if "narrow refused" in line]
    assert (
        narrow
        == [
            f"pipelines/customers.yaml:20:5: $.columns[1]: narrow refused in {table}: "
            "EMAIL: VARCHAR(254) -> VARCHAR(100)"
            for table in (RAW, '"STREAMLINE"."RAW"."CUSTOMERS_LANDING"')
        ][:1]
    )  # the mart waits for its move; landing text columns have no length
    assert "streamline reprocess customers --from FIRST_BATCH" in err
