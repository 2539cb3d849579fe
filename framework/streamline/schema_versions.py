"""A feed's schema version in the warehouse: read what is there, apply a plan, check a DAG run.

`streamline plan` reads each feed's objects (`read_live`: DESCRIBE TABLE, SHOW FILE FORMATS,
SHOW STAGES, and the feed's latest row of the schema versions table) and compares them with the
feed's contract (streamline.migrations). `streamline apply` runs a plan's DDL and records the
new version (`apply_plan`). Each DAG run's claim calls `check_version` before it takes files: a
DAG rendered for another version fails there, and the files wait in landing/.

Snowflake behaviour relied on:
- DESCRIBE TABLE lists columns with their type and null? flag:
  https://docs.snowflake.com/en/sql-reference/sql/desc-table
- SHOW FILE FORMATS / SHOW STAGES ... LIKE '<name>' IN SCHEMA <db>.<schema> list objects by name
  (LIKE is case-insensitive; the names are matched exactly here):
  https://docs.snowflake.com/en/sql-reference/sql/show-file-formats
  https://docs.snowflake.com/en/sql-reference/sql/show-stages
- Each DDL statement commits on its own: https://docs.snowflake.com/en/sql-reference/transactions
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from streamline.errors import StreamlineError
from streamline.ledger import Runner
from streamline.migrations import (
    OBJECT_KINDS,
    ColumnState,
    Contract,
    FeedPlan,
    Live,
    Recorded,
    contract_of,
    contract_record,
    live_columns,
    plan_feed,
)
from streamline.model import Feed, TableRef
from streamline.project import Project
from streamline.rendering import (
    RenderSettings,
    quote_identifier,
    quote_table,
    render_feed,
    schema_fingerprint,
)

DOES_NOT_EXIST = 2003
"""Snowflake's error number for an object that does not exist (or is not authorized)."""


class SchemaVersionError(StreamlineError):
    """A DAG run's spec is not the schema version the warehouse holds."""


def feed_contract(
    project: Project, feed: Feed, feeds: Sequence[Feed], settings: RenderSettings | None = None
) -> Contract:
    """The feed's contract: its DDL rendered with these deployment settings."""
    ddl = render_feed(project, feed, feeds, settings=settings, steps=["ddl"])["ddl"]
    return contract_of(
        feed.feed,
        ddl,
        feed.key,
        quote_table(feed.raw),
        quote_table(feed.mart),
        quote_table(feed.layout.landing_table),
    )


def spec_fingerprint(project: Project, feed: Feed, feeds: Sequence[Feed]) -> str:
    """The fingerprint the feed's DAG checks: of its DDL alone, without reading it as a contract."""
    ddl = render_feed(project, feed, feeds, steps=["ddl"])["ddl"]
    return schema_fingerprint(ddl, feed.key)


def column_paths(feed: Feed) -> dict[str, tuple[str | int, ...]]:
    """Where each spec column is in the spec, by its name in upper case (as tables hold it)."""
    return {c.name.upper(): ("columns", i) for i, c in enumerate(feed.columns)}


def _missing(exc: Exception) -> bool:
    return getattr(exc, "errno", None) == DOES_NOT_EXIST


def read_recorded(runner: Runner, table: TableRef, feed: str) -> Recorded | None:
    """The feed's latest schema version; None when it has none (or there is no table yet)."""
    q = quote_identifier
    sql = (
        f"SELECT {q('version')}, {q('fingerprint')}, {q('contract')}, {q('applied_at')}, "
        f"{q('applied_by')} FROM {quote_table(table)} WHERE {q('feed')} = %(feed)s "
        f"ORDER BY {q('version')} DESC LIMIT 1"
    )
    try:
        rows = runner.get_records(sql, parameters={"feed": feed}) or []
    except Exception as exc:
        if _missing(exc):
            return None
        raise
    if not rows:
        return None
    version, fingerprint, contract, applied_at, applied_by = rows[0]
    return Recorded(int(version), str(fingerprint), json.loads(contract), applied_at, applied_by)


def _parts(name: str) -> list[str]:
    """ "DB"."SCHEMA"."NAME" -> [DB, SCHEMA, NAME] (quote_table's names: no dots or quotes)."""
    return [part.strip('"') for part in name.split(".")]


def _describe(runner: Runner, name: str) -> list[ColumnState] | None:
    try:
        rows = runner.get_records(f"DESCRIBE TABLE {name}") or []
    except Exception as exc:
        if _missing(exc):
            return None
        raise
    return live_columns(rows) or None  # a table has a column at least


def _shown(runner: Runner, kind: str, name: str) -> tuple[Any, ...] | None:
    """The object's SHOW row (name, database, schema, ..., url for a stage), None if missing."""
    database, schema, object_name = _parts(name)
    plural = {"file format": "FILE FORMATS", "stage": "STAGES"}[kind]
    sql = (
        f"SHOW {plural} LIKE '{object_name}' IN SCHEMA "
        f"{quote_identifier(database.lower())}.{quote_identifier(schema.lower())}"
    )
    try:
        rows = runner.get_records(sql) or []
    except Exception as exc:
        if _missing(exc):  # no such database or schema
            return None
        raise
    return next((tuple(row) for row in rows if str(row[1]).upper() == object_name), None)


def read_live(
    runner: Runner, contract: Contract, table: TableRef, elsewhere: Sequence[TableRef] = ()
) -> Live:
    """What the warehouse holds of the contract's objects, and the feed's latest version: in
    table, else in the first of elsewhere that has one (the versions tables of the other schemas
    the project's feeds use: a feed whose raw table moved took its versions table's place with
    it, and is found where it was)."""
    recorded = read_recorded(runner, table, contract.feed)
    for other in elsewhere:
        if recorded is not None:
            break
        if other != table:
            recorded = read_recorded(runner, other, contract.feed)
    names = list(contract.tables)
    if recorded is not None:
        names += [n for n in (recorded.contract.get("raw"), recorded.contract.get("mart")) if n]
    tables = {name: _describe(runner, name) for name in dict.fromkeys(names)}
    shown = {
        s.name: (s.kind, _shown(runner, s.kind, s.name))
        for s in contract.statements
        if s.kind in OBJECT_KINDS
    }
    objects = {name: row is not None for name, (_, row) in shown.items()}
    # SHOW STAGES: created_on, name, database_name, schema_name, url, ...
    urls = {
        name: str(row[4])
        for name, (kind, row) in shown.items()
        if kind == "stage" and row is not None and len(row) > 4 and row[4]
    }
    return Live(recorded, tables, objects, urls)


class ApplyError(StreamlineError):
    """A statement of an apply failed; the ones before it ran (each is safe to run again)."""


def apply_plan(runner: Runner, plan: FeedPlan, contract: Contract, table: TableRef) -> int:
    """Run the plan's DDL, one statement at a time, then record the contract as the feed's next
    schema version (unless nothing ran and the warehouse already records it: a stage made again
    for another lake is a new version too). Returns the feed's version.

    Every statement is safe to run again (CREATE ... IF NOT EXISTS, CREATE OR REPLACE of objects
    that hold no data, ALTERs planned from what is there), so an apply that stopped half way is
    finished by planning and applying again. Raises ValueError for a plan with refused changes,
    ApplyError (naming the statement, and how many ran before it) when a statement fails.
    """
    if plan.refused:
        raise ValueError(f"feed {plan.feed}: the plan has refused changes")
    statements = plan.statements
    for number, sql in enumerate(statements, 1):
        try:
            runner.run(sql.rstrip().rstrip(";"))
        except Exception as exc:
            raise ApplyError(
                f"feed {plan.feed}: statement {number} of {len(statements)} failed: "
                f"{sql.splitlines()[0]} ...: {exc}. The {number - 1} before it ran, and no new "
                "schema version is recorded: run apply again once the cause is fixed (every "
                "statement is safe to run again; plan shows what is left)"
            ) from exc
    if (
        not statements
        and plan.recorded is not None
        and (plan.recorded.fingerprint == plan.fingerprint)
    ):
        return plan.recorded.version
    # Columns a header feed's schema_contract evolve added stay on record.
    record_version(
        runner, table, plan.feed, plan.fingerprint, contract_record(contract, plan.recorded),
        plan.statements,
    )  # fmt: skip
    recorded = read_recorded(runner, table, plan.feed)
    return recorded.version if recorded is not None else plan.next_version


def record_version(
    runner: Runner,
    table: TableRef,
    feed: str,
    fingerprint: str,
    contract: dict[str, Any],
    statements: Sequence[str],
) -> None:
    """Record the feed's next schema version (its latest + 1, or 1): the fingerprint DAG runs
    check, the objects it stands for (JSON), the DDL run, when and by whom (CURRENT_USER)."""
    q = quote_identifier
    target = quote_table(table)
    names = ("feed", "version", "fingerprint", "contract", "statements", "applied_at", "applied_by")
    runner.run(
        f"INSERT INTO {target} ({', '.join(q(n) for n in names)}) "
        f"SELECT %(feed)s, COALESCE(MAX({q('version')}), 0) + 1, %(fingerprint)s, %(contract)s, "
        f"%(statements)s, CURRENT_TIMESTAMP(), CURRENT_USER() FROM {target} "
        f"WHERE {q('feed')} = %(feed)s",
        parameters={
            "feed": feed,
            "fingerprint": fingerprint,
            "contract": json.dumps(contract, sort_keys=True),
            "statements": "\n".join(statements) or None,
        },
    )


def check_version(runner: Runner, table: TableRef, feed: str, fingerprint: str) -> int:
    """The feed's live schema version, when its fingerprint is the one the DAG was rendered for.

    Raises SchemaVersionError naming both versions and the commands that bring the warehouse to
    the spec."""
    recorded = read_recorded(runner, table, feed)
    fix = (
        f"run `streamline plan {feed}` to see the changes and `streamline apply {feed}` (or "
        "`streamline deploy --migrate`) to make them; this run's files wait in landing/ and "
        "the next run (or a retry) takes them"
    )
    if recorded is None:
        raise SchemaVersionError(
            f"feed {feed}: the warehouse records no schema version for it "
            f"({quote_table(table)}), and this DAG was rendered for schema {fingerprint}: {fix}"
        )
    if recorded.fingerprint != fingerprint:
        raise SchemaVersionError(
            f"feed {feed}: this DAG was rendered for schema {fingerprint}, but the warehouse "
            f"holds schema version {recorded.describe()}: {fix}"
        )
    return recorded.version


def plan_json(plan: FeedPlan) -> dict[str, Any]:
    """A plan as `streamline plan --json` prints it."""
    return {
        "feed": plan.feed,
        "fingerprint": plan.fingerprint,
        "live_version": plan.recorded.version if plan.recorded else None,
        "live_fingerprint": plan.recorded.fingerprint if plan.recorded else None,
        "up_to_date": plan.up_to_date,
        "changes": [
            {
                "kind": c.kind,
                "table": c.table,
                "column": c.column or None,
                "detail": c.detail,
                "safe": c.safe,
                "ddl": c.ddl,
                "hint": c.hint,
            }
            for c in plan.changes
        ],
    }


def plan_feeds(
    runner_for: Callable[[str], Runner],
    project: Project,
    feeds: Sequence[Feed],
    selected: Sequence[Feed],
    settings: RenderSettings | None = None,
) -> list[tuple[Feed, Contract, FeedPlan]]:
    """Plan each selected feed against the warehouse its DAG uses (runner_for(conn_id): a Runner
    for a Snowflake connection id; each is read once per feed)."""
    planned = []
    tables = list(dict.fromkeys(f.layout.schema_versions for f in feeds))
    for feed in selected:
        contract = feed_contract(project, feed, feeds, settings)
        runner = runner_for(feed.dag.snowflake_conn_id)
        live = read_live(runner, contract, feed.layout.schema_versions, tables)
        planned.append((feed, contract, plan_feed(contract, live, column_paths(feed))))
    return planned


def apply_feeds(
    runner_for: Callable[[str], Runner],
    planned: Sequence[tuple[Feed, Contract, FeedPlan]],
) -> dict[str, int]:
    """Apply plans (none of them with refused changes): {feed: its schema version now}."""
    if refused := [plan.feed for _, _, plan in planned if plan.refused]:
        raise ValueError(f"plans with refused changes: {', '.join(refused)}")
    return {
        feed.feed: apply_plan(
            runner_for(feed.dag.snowflake_conn_id), plan, contract, feed.layout.schema_versions
        )
        for feed, contract, plan in planned
    }
