"""Rendered SQL: golden files per feed and step, sqlglot parsing, and the quoting helpers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import jinja2
import pytest
import sqlglot
from sqlglot import exp

from streamline.layout import LOAD_GATES, RUNTIME_BATCH_ID, RUNTIME_COPY_FILES, RUNTIME_SOURCE_FILES
from streamline.ledger import claim_values, claim_xcom
from streamline.model import Feed, TableRef
from streamline.project import Project, find_project
from streamline.rendering import (
    STEPS,
    RenderSettings,
    TemplateProblem,
    quote_identifier,
    quote_literal,
    quote_table,
    render_feed,
)
from streamline.validation import validate_paths

BATCH = "20260101T000000.000000Z"


class FakeTaskInstance:
    """What the rendered SQL reads of Airflow's `ti` when a run renders it."""

    start_date = dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=dt.UTC)

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        assert task_ids == "claim"
        when = self.start_date
        claimed = claim_values(
            dag_id="orders", run_id="manual__x", files=2, bytes_=10, empty_files=0,
            started=when, claimed=when,
        )  # fmt: skip
        assert key == "claim"
        return claim_xcom(BATCH, f"processing/{BATCH}/orders/", ["f1", "sub/f2"], claimed)


def as_run(sql: str) -> str:
    """The SQL as a run executes it: Airflow renders its template expressions with the task's ti."""
    return jinja2.Template(sql, keep_trailing_newline=True).render(ti=FakeTaskInstance())


@pytest.fixture(scope="module")
def project() -> Project:
    return find_project()


@pytest.fixture(scope="module")
def feeds(project: Project) -> list[Feed]:
    result = validate_paths(project)
    assert result.ok, result.errors
    return result.feeds


def _feed(feeds: list[Feed], name: str) -> Feed:
    return next(f for f in feeds if f.feed == name)


def _with_transform(project: Project, feed: Feed, folder: Path, text: str) -> tuple[Project, Feed]:
    """A copy of the project's templates with transforms/custom.sql.j2, and feed using it."""
    templates = folder / "templates"
    shutil.copytree(project.templates_dir, templates)
    (templates / "transforms" / "custom.sql.j2").write_text(text)
    custom = dataclasses.replace(
        feed, transform=dataclasses.replace(feed.transform, template="custom")
    )
    return dataclasses.replace(project, templates_dir=templates), custom


@pytest.mark.parametrize("name", ["customers", "orders"])
@pytest.mark.parametrize("step", STEPS)
def test_golden_sql(project: Project, feeds: list[Feed], golden, name: str, step: str) -> None:  # type: ignore[no-untyped-def]
    sql = render_feed(project, _feed(feeds, name), feeds, steps=[step])[step]
    golden(f"{name}/{step}.sql", sql)


EXPECTED_STATEMENTS = {
    "ddl": ["Create"] * 11,
    # The claim record; then: landing rows out, COPY, raw and quarantine rows out, quarantine,
    # raw, the rejected_rows and rows_reconciled gates, landing rows out, the ledger.
    "load": [
        "Update",
        "Insert",
        "Transaction",
        "Delete",
        "Copy",
        "Delete",
        "Delete",
        "Insert",
        "Insert",
        "Select",
        "Select",
        "Update",
        "Delete",
        "Commit",
    ],
    # The MERGE, the checks' gate, the ledger.
    "transform": ["Transaction", "Merge", "Union", "Update", "Commit"],
}


@pytest.mark.parametrize("name", ["customers", "orders"])
def test_every_statement_parses_as_snowflake(
    project: Project, feeds: list[Feed], name: str
) -> None:
    for step, sql in render_feed(project, _feed(feeds, name), feeds).items():
        statements = [s for s in sqlglot.parse(as_run(sql), read="snowflake") if s is not None]
        kinds = [type(s).__name__ for s in statements]
        assert kinds == EXPECTED_STATEMENTS[step], (step, kinds)
        # A statement sqlglot could not understand would come back as an opaque Command.
        assert not any(s.find(exp.Command) for s in statements), step


def test_batch_id_is_substituted_everywhere(project: Project, feeds: list[Feed]) -> None:
    rendered = render_feed(project, _feed(feeds, "orders"), feeds, batch_id=BATCH)
    assert RUNTIME_BATCH_ID not in "".join(rendered.values())
    load = rendered["load"]
    assert f'DELETE FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = \'{BATCH}\'' in load
    assert f"/processing/{BATCH}/orders/" in load
    assert "METADATA$FILENAME" in load and "FORCE = TRUE" in load
    assert f"WHERE \"BATCH_ID\" = '{BATCH}'" in rendered["transform"]


def test_runtime_expression_stays_literal(project: Project, feeds: list[Feed]) -> None:
    load = render_feed(project, _feed(feeds, "orders"), feeds, steps=["load"])["load"]
    assert f"'{RUNTIME_BATCH_ID}'" in load
    assert f"/processing/{RUNTIME_BATCH_ID}/orders/" in load
    assert f"FILES = ({RUNTIME_COPY_FILES})" in load
    # The batch's quarantine rows of the files it reads again are replaced, no others.
    assert f'"SOURCE_FILE" IN ({RUNTIME_SOURCE_FILES});' in load


def test_the_load_gates_carry_the_names_validation_reserves(
    project: Project, feeds: list[Feed]
) -> None:
    load = render_feed(project, _feed(feeds, "orders"), feeds, steps=["load"])["load"]
    for name in LOAD_GATES:
        assert f"'{name}' AS \"STREAMLINE_CHECK\"" in load


def test_the_load_reads_exactly_the_claimed_files(project: Project, feeds: list[Feed]) -> None:
    load = as_run(render_feed(project, _feed(feeds, "orders"), feeds, steps=["load"])["load"])
    copy = next(s for s in sqlglot.parse(load, read="snowflake") if isinstance(s, exp.Copy))
    files = next(p for p in copy.args["params"] if p.this.name == "FILES")
    assert [e.name for e in files.expression.expressions] == ["f1", "sub/f2"]


@pytest.mark.parametrize(("step", "status"), [("load", "loaded"), ("transform", "transformed")])
def test_sql_steps_update_the_ledger_inside_their_transaction(
    project: Project, feeds: list[Feed], step: str, status: str
) -> None:
    sql = as_run(render_feed(project, _feed(feeds, "orders"), feeds, steps=[step])[step])
    statements = [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]
    update = next(s for s in reversed(statements) if isinstance(s, exp.Update))
    begin = next(i for i, s in enumerate(statements) if isinstance(s, exp.Transaction))
    assert statements.index(update) > begin and isinstance(statements[-1], exp.Commit)
    assert update.this.name == "STREAMLINE_BATCHES"
    sets = {e.this.name: e.expression.sql("snowflake") for e in update.expressions}
    assert sets["STATUS"] == f"'{status}'"
    assert sets["FAILED_STEP"] == "NULL"
    where = update.args["where"].sql("snowflake")
    assert "\"FEED\" = 'orders'" in where and f"\"BATCH_ID\" = '{BATCH}'" in where


def test_a_transform_template_may_not_manage_the_transaction(
    project: Project, feeds: list[Feed], tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(project.templates_dir, templates)
    (templates / "transforms" / "own_tx.sql.j2").write_text(
        "BEGIN;\nDELETE FROM {{ feed.mart | table }};\nCOMMIT;\n"
    )
    feed = _feed(feeds, "orders")
    own = dataclasses.replace(
        feed, transform=dataclasses.replace(feed.transform, template="own_tx")
    )
    with pytest.raises(TemplateProblem, match="BEGIN statement") as info:
        render_feed(dataclasses.replace(project, templates_dir=templates), own, feeds)
    assert info.value.field == "template"


def test_load_is_one_transaction_that_replaces_the_batch(
    project: Project, feeds: list[Feed]
) -> None:
    load = render_feed(project, _feed(feeds, "orders"), feeds, batch_id=BATCH, steps=["load"])[
        "load"
    ]
    statements = [s for s in sqlglot.parse(as_run(load), read="snowflake") if s is not None]
    # The claimed batch, recorded on its own (autocommit), then the transaction.
    assert [type(s) for s in statements[:2]] == [exp.Update, exp.Insert]
    assert statements[0].this.name == "STREAMLINE_BATCHES"
    assert isinstance(statements[2], exp.Transaction)
    assert isinstance(statements[3], exp.Delete)
    assert isinstance(statements[-1], exp.Commit)


def test_bad_batch_id_is_refused(project: Project, feeds: list[Feed]) -> None:
    from streamline.errors import BatchError

    with pytest.raises(BatchError):
        render_feed(project, _feed(feeds, "orders"), feeds, batch_id="2026'; DROP TABLE x; --")


def test_storage_integration_and_lake_url(project: Project, feeds: list[Feed]) -> None:
    settings = RenderSettings(lake_url="s3://acme-lake/streamline", storage_integration="lake_int")
    ddl = render_feed(project, _feed(feeds, "orders"), feeds, settings=settings, steps=["ddl"])[
        "ddl"
    ]
    assert "URL = 's3://acme-lake/streamline/'" in ddl
    # The feed's own integration, whose IAM role reads only its folders (infra/iam_snowflake.tf).
    assert 'STORAGE_INTEGRATION = "LAKE_INT_ORDERS"' in ddl
    assert "CREATE OR REPLACE STAGE" in ddl  # a stage made before takes the feed's own too
    customers = render_feed(
        project, _feed(feeds, "customers"), feeds, settings=settings, steps=["ddl"]
    )["ddl"]
    assert 'STORAGE_INTEGRATION = "LAKE_INT_CUSTOMERS"' in customers
    with pytest.raises(ValueError):
        render_feed(
            project,
            _feed(feeds, "orders"),
            feeds,
            settings=RenderSettings(lake_url="s3://x' or 1=1"),
            steps=["ddl"],
        )


def test_unknown_transform_template_is_a_template_problem(
    project: Project, feeds: list[Feed]
) -> None:
    feed = _feed(feeds, "orders")
    broken = dataclasses.replace(
        feed, transform=dataclasses.replace(feed.transform, template="nope")
    )
    with pytest.raises(TemplateProblem) as info:
        render_feed(project, broken, feeds, steps=["transform"])
    assert info.value.field == "template"
    assert "merge_latest" in (info.value.hint or "")


def test_append_template_renders_and_parses(project: Project, feeds: list[Feed]) -> None:
    feed = _feed(feeds, "orders")
    append = dataclasses.replace(
        feed, transform=dataclasses.replace(feed.transform, template="append")
    )
    sql = render_feed(project, append, feeds, steps=["transform"])["transform"]
    kinds = [type(s).__name__ for s in sqlglot.parse(as_run(sql), read="snowflake") if s]
    assert kinds == ["Transaction", "Delete", "Insert", "Union", "Update", "Commit"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("it's", "'it\\'s'"),
        ("back\\slash", "'back\\\\slash'"),
        ("tab\there", "'tab\\there'"),
        (3, "3"),
        (0.5, "0.5"),
        (True, "TRUE"),
        (None, "NULL"),
    ],
)
def test_quote_literal(value: object, expected: str) -> None:
    assert quote_literal(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["'; DROP TABLE t; --", "x' OR '1'='1", "a\\' OR 1=1 --"])
def test_quoted_literals_stay_one_string(value: str) -> None:
    tree = sqlglot.parse_one(f"SELECT {quote_literal(value)}", read="snowflake")
    literals = list(tree.find_all(exp.Literal))
    assert len(literals) == 1 and literals[0].is_string


def test_literal_refuses_template_markers() -> None:
    with pytest.raises(ValueError):
        quote_literal("{{ var.value.secret }}")


def test_quote_identifier() -> None:
    assert quote_identifier("orders") == '"ORDERS"'
    assert quote_identifier("_x9") == '"_X9"'
    assert quote_table(TableRef("db", "sch", "t")) == '"DB"."SCH"."T"'
    for bad in ['orders"; drop', "Orders", "9x", "a-b", ""]:
        with pytest.raises(ValueError):
            quote_identifier(bad)


def test_undefined_param_through_a_filter_is_a_template_problem(
    project: Project, feeds: list[Feed], tmp_path: Path
) -> None:
    custom, filtered = _with_transform(
        project,
        _feed(feeds, "orders"),
        tmp_path,
        "SELECT {{ params.missing_column | ident }} FROM {{ feed.raw | table }};\n",
    )
    with pytest.raises(TemplateProblem) as info:
        render_feed(custom, filtered, feeds, steps=["transform"])
    assert info.value.field == "params"
