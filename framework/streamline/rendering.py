"""Render a feed's SQL from the Jinja templates: pure functions, model in, SQL text out.

Two template layers are kept apart. Spec values are filled in here; the batch id stays the
Airflow expression RUNTIME_BATCH_ID unless a batch id is given, and the batch's file list and the
step's start time always stay Airflow expressions, so the output is exactly what a run executes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from streamline.batches import check_batch_id
from streamline.layout import (
    COLUMNS_DISCARDED,
    FILE_CODES,
    LANDING_COLUMNS,
    LEDGER_COLUMNS,
    MART_LINEAGE,
    PROCESSING,
    QUARANTINE_COLUMNS,
    RAW_LINEAGE,
    RUNTIME_BATCH_ID,
    RUNTIME_CLAIM,
    RUNTIME_COPY_FILES,
    RUNTIME_SOURCE_FILES,
    SCHEMA_VERSION_COLUMNS,
    claim_expression,
)
from streamline.model import TEXT_TYPES, CsvFormat, Feed, TableRef, type_parts
from streamline.project import Project

STEPS = ("ddl", "load", "transform")
"""Rendered steps; load and transform (with the checks) are DAG tasks, ddl is run when
provisioning."""

_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*\Z")
_TRANSACTION_RE = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION)\b", re.IGNORECASE | re.MULTILINE
)
STEP_STARTED = "{{ ti.start_date.isoformat() }}"
"""Airflow expression for when the running task started (UTC, ISO 8601), kept in rendered SQL."""
_LAKE_URL_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")


class TemplateProblem(Exception):
    """A template is missing or uses a value the spec does not provide."""

    def __init__(self, field: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class RenderSettings:
    """Deployment values the DDL needs: where the lake is and how Snowflake may read it.

    storage_integration is the base name of the storage integrations: each feed's stage uses its
    own, <base>_<feed> (Layout.storage_integration), made by `streamline infra-sql`.
    """

    lake_url: str = "s3://streamline-lake"
    storage_integration: str | None = None

    def check(self) -> None:
        """Raise ValueError unless the lake URL and storage integration can enter SQL."""
        if not _LAKE_URL_RE.match(self.lake_url):
            raise ValueError(f"lake URL {self.lake_url!r} is not of the form s3://bucket[/prefix]")
        if self.storage_integration is not None:
            quote_identifier(self.storage_integration.lower())

    @classmethod
    def from_env(cls) -> RenderSettings:
        """Settings from STREAMLINE_LAKE_URL and STREAMLINE_STORAGE_INTEGRATION, with defaults."""
        return cls(
            lake_url=os.environ.get("STREAMLINE_LAKE_URL", cls.lake_url),
            storage_integration=os.environ.get("STREAMLINE_STORAGE_INTEGRATION") or None,
        )


def quote_identifier(name: str) -> str:
    """The one way an identifier enters SQL: validated, upper-cased and double-quoted."""
    if not _IDENTIFIER_RE.match(name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return f'"{name.upper()}"'


def quote_table(table: TableRef) -> str:
    """Fully qualified, quoted table name."""
    return ".".join(quote_identifier(p) for p in (table.database, table.schema, table.table))


def quote_literal(value: str | int | float | bool | None, *, runtime_value: bool = False) -> str:
    """The one way a value enters SQL: an escaped Snowflake string literal (or a bare number).

    Template markers are refused in values rendered into SQL files (Airflow would render them
    again); runtime_value=True is for values substituted at run time, which are not re-rendered.
    String literal escapes: https://docs.snowflake.com/en/sql-reference/data-types-text#escape-sequences-in-single-quoted-string-constants
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if not runtime_value and any(mark in value for mark in ("{{", "{%", "{#")):
        raise ValueError(f"template markers are not allowed in SQL values: {value!r}")
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    )
    return f"'{escaped}'"


_TIMESTAMP_FUNCTIONS = {
    "TIMESTAMP": "TRY_TO_TIMESTAMP_NTZ",
    "DATETIME": "TRY_TO_TIMESTAMP_NTZ",
    "TIMESTAMP_NTZ": "TRY_TO_TIMESTAMP_NTZ",
    "TIMESTAMP_LTZ": "TRY_TO_TIMESTAMP_LTZ",
    "TIMESTAMP_TZ": "TRY_TO_TIMESTAMP_TZ",
}
_TRY_FUNCTIONS = {
    "BOOLEAN": "TRY_TO_BOOLEAN",
    "TIME": "TRY_TO_TIME",
    "VARIANT": "TRY_PARSE_JSON",
    "OBJECT": "TRY_PARSE_JSON",
    "ARRAY": "TRY_PARSE_JSON",
    "BINARY": "TRY_TO_BINARY",
    "VARBINARY": "TRY_TO_BINARY",
    "GEOGRAPHY": "TRY_TO_GEOGRAPHY",
    "GEOMETRY": "TRY_TO_GEOMETRY",
}


@dataclass(frozen=True)
class Conversion:
    """How the load step turns a field's text into a column's value.

    typed is SQL over the text (NULL where the column's type cannot hold it: the TRY_ functions,
    https://docs.snowflake.com/en/sql-reference/functions-conversion#error-handling-conversion-functions);
    max_length is the longest text a text column takes (None: any, or the column truncates).
    """

    typed: str
    max_length: int | None

    @property
    def may_fail(self) -> bool:
        """Whether typed can be NULL where the text is not (text columns take any text)."""
        return self.typed.startswith("TRY_")


def conversion(column_type: str, text: str, fmt: CsvFormat, truncate: bool) -> Conversion:
    """The conversion of text (a SQL expression) to a Snowflake column type, e.g. NUMBER(12,2)."""
    name, params = type_parts(column_type)
    if name in TEXT_TYPES:
        default = 1 if name in {"CHAR", "CHARACTER", "NCHAR"} else None
        length = params[0] if params else default
        if length is not None and truncate:
            return Conversion(f"LEFT({text}, {length})", None)
        return Conversion(text, length)
    if name in _TIMESTAMP_FUNCTIONS or name == "DATE":
        function = _TIMESTAMP_FUNCTIONS.get(name, "TRY_TO_DATE")
        pattern = fmt.date_format if name == "DATE" else fmt.timestamp_format
        extra = "" if pattern.upper() == "AUTO" else f", {quote_literal(pattern)}"
        return Conversion(f"{function}({text}{extra})", None)
    if name in _TRY_FUNCTIONS:
        return Conversion(f"{_TRY_FUNCTIONS[name]}({text})", None)
    return Conversion(f"TRY_CAST({text} AS {column_type})", None)  # numbers


RENDER_BUDGET = 1_000_000
"""The most items one step's render may ask of range(), all calls together, and the longest
string or list a `*` may make: a template is user code run at parse time in the DAG processor,
and one that loops or repeats without bound would stall the parse of every feed."""
_range_left: ContextVar[int] = ContextVar("_range_left", default=RENDER_BUDGET)


def _bounded_range(*args: int) -> range:
    items = range(*args)
    left = _range_left.get() - len(items)
    if left < 0:
        raise OverflowError(
            f"the template asks range() for more than {RENDER_BUDGET:,} items in one render"
        )
    _range_left.set(left)
    return items


class _BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox (no unsafe attributes) with range() and `*`/`**` kept within
    RENDER_BUDGET. https://jinja.palletsprojects.com/en/stable/sandbox/#operator-intercepting"""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _bounded_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise OverflowError("the template raises a number to a power over 64")
        if operator == "*":
            sized, times = (left, right) if isinstance(right, int) else (right, left)
            repeats = isinstance(sized, str | list | tuple) and isinstance(times, int)
            if repeats and len(sized) * times > RENDER_BUDGET:
                raise OverflowError(
                    f"the template repeats a value past {RENDER_BUDGET:,} items or characters"
                )
        return super().call_binop(context, operator, left, right)


@cache
def _environment(templates_dir: Path) -> jinja2.Environment:
    # Sandboxed: a template is user code run at parse time in the DAG processor; the sandbox
    # refuses unsafe attributes and caps range() at 100,000 items, so one template cannot stall
    # the parse of every feed. https://jinja.palletsprojects.com/en/stable/sandbox/
    env = _BoundedSandbox(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["ident"] = _strict(quote_identifier)
    env.filters["table"] = _strict(quote_table)
    env.filters["literal"] = _strict(quote_literal)
    return env


def _strict(helper: Any) -> Any:
    """Make a quoting helper report an undefined value as undefined, not as a bad value."""

    def apply(value: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return helper(value)

    return apply


def render_feed(
    project: Project,
    feed: Feed,
    feeds: Sequence[Feed],
    *,
    batch_id: str | None = None,
    settings: RenderSettings | None = None,
    steps: Sequence[str] = STEPS,
) -> dict[str, str]:
    """Render the SQL of each step for one feed: {step: sql}."""
    settings = settings or RenderSettings()
    settings.check()
    if batch_id is not None:
        check_batch_id(batch_id)
    batch = batch_id if batch_id is not None else RUNTIME_BATCH_ID
    env = _environment(project.templates_dir)
    context = _context(feed, feeds, batch, settings)
    out: dict[str, str] = {}
    for step in steps:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")
        budget = _range_left.set(RENDER_BUDGET)  # each step's render has its own budget
        try:
            out[step] = _render_step(env, feed, step, context)
        finally:
            _range_left.reset(budget)
    return out


def _render_step(env: jinja2.Environment, feed: Feed, step: str, context: dict[str, Any]) -> str:
    if step == "transform":
        # The transform template renders the statements; transform.sql.j2 runs them in one
        # transaction with the step's ledger update, so the template must not open or end one.
        body = _render_transform(env, feed, context)
        if match := _TRANSACTION_RE.search(body):
            raise TemplateProblem(
                "template",
                f"template '{feed.transform.template}' has a {match[1].upper()} statement",
                "the transform step runs the template inside its own transaction; remove it",
            )
        return env.get_template("transform.sql.j2").render({**context, "transform_sql": body})
    return env.get_template(f"{step}.sql.j2").render(context)


def _render_transform(env: jinja2.Environment, feed: Feed, context: dict[str, Any]) -> str:
    try:
        template = env.get_template(f"transforms/{feed.transform.template}.sql.j2")
    except jinja2.TemplateNotFound:
        available = sorted(
            p.name.removesuffix(".sql.j2")
            for p in (Path(env.loader.searchpath[0]) / "transforms").glob("*.sql.j2")  # type: ignore[union-attr]
        )
        raise TemplateProblem(
            "template",
            f"no transform template '{feed.transform.template}'",
            f"templates/transforms/ has: {', '.join(available)}",
        ) from None
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        raise TemplateProblem(
            "params",
            f"template '{feed.transform.template}' needs a value that is not set: {exc.message}",
            "add it under transform.params",
        ) from None


def _context(
    feed: Feed, feeds: Sequence[Feed], batch: str, settings: RenderSettings
) -> dict[str, Any]:
    by_name = {f.feed: f for f in feeds}
    references = []
    for ref in feed.references:
        target = by_name.get(ref.feed)
        if target is None:
            raise ValueError(f"feed {feed.feed!r} references unknown feed {ref.feed!r}")
        references.append({"ref": ref, "mart": target.mart, "name": ref.name})
    from streamline.ledger import CLAIM_VALUES, claim_sql  # ledger quotes through this module

    runtime = batch == RUNTIME_BATCH_ID
    layout = feed.layout
    # A run-time batch id is an Airflow expression: quoting happens around it, not through it.
    batch_literal = f"'{batch}'" if runtime else quote_literal(batch)
    claimed = {name: claim_expression("ledger", name) for name in CLAIM_VALUES}
    owned = {
        c.name: quote_identifier(c.name)
        for c in (*RAW_LINEAGE, *MART_LINEAGE, *LANDING_COLUMNS, *QUARANTINE_COLUMNS)
    }
    owned.update({c.name: quote_identifier(c.name) for c in LEDGER_COLUMNS})
    return {
        "feed": feed,
        "layout": layout,
        "columns": feed.columns,
        "key": feed.key,
        "non_key_columns": [c for c in feed.columns if c.name not in feed.key],
        "params": feed.transform.params,
        "references": references,
        "settings": settings,
        # The feed's own storage integration (<base>_<feed>), when the deployment names a base.
        "storage_integration": (
            layout.storage_integration(settings.storage_integration)
            if settings.storage_integration
            else None
        ),
        # StreamLine's own columns (lineage, ledger), quoted: col.batch_id is "BATCH_ID".
        "col": owned,
        "raw_lineage": RAW_LINEAGE,
        "mart_lineage": MART_LINEAGE,
        "ledger_columns": LEDGER_COLUMNS,
        "file_format": quote_table(layout.file_format),
        "stage": quote_table(layout.stage),
        "ledger": quote_table(layout.ledger),
        "schema_versions": quote_table(layout.schema_versions),
        "schema_version_columns": SCHEMA_VERSION_COLUMNS,
        "landing_table": quote_table(layout.landing_table),
        "quarantine": quote_table(layout.quarantine),
        "landing_columns": LANDING_COLUMNS,
        "quarantine_columns": QUARANTINE_COLUMNS,
        # Per column: its Conversion from text (load.sql), and whether a row needs a value in it.
        "conversions": {
            c.name: conversion(c.type, "{text}", feed.source.format, feed.copy.truncate_columns)
            for c in feed.columns
        },
        "required": [
            c.name
            for c in feed.columns
            if not c.nullable or c.name in feed.key or c.name == feed.ordering
        ],
        "batch_literal": batch_literal,
        # The claim step's values (quoted by it) recorded in the ledger by the load's session.
        "claim_record": claim_sql(layout.ledger, feed.feed, batch_literal, claimed),
        "claim_run_id": claimed["run_id"],
        "batch_path": layout.lake.folder(PROCESSING, batch),
        # The claim task quotes each file name with quote_literal before it reaches the XCom.
        "copy_files": RUNTIME_COPY_FILES,
        "source_files": RUNTIME_SOURCE_FILES,
        "runtime_claim": RUNTIME_CLAIM,
        "file_codes": ", ".join(quote_literal(code) for code in FILE_CODES),
        "columns_discarded": COLUMNS_DISCARDED,
        "step_started": f"'{STEP_STARTED}'",
    }


def schema_fingerprint(ddl: str, key: Sequence[str]) -> str:
    """What a feed's warehouse objects are, hashed: 16 hex digits of SHA-256 over its rendered
    DDL's lines (stripped; comment and blank lines left out) and its key. The stage statement is
    left out: its URL and storage integration are the deployment's (`streamline plan` compares
    it with the warehouse all the same), so a DAG parsed anywhere computes the same fingerprint.

    Text only, no SQL parser or connector: each DAG file parse computes it for every feed."""
    import hashlib
    import json

    kept, in_stage = [], False
    for raw in ddl.splitlines():
        line = raw.strip()
        if not line or line.startswith("--"):
            continue
        in_stage = in_stage or line.upper().startswith("CREATE OR REPLACE STAGE ")
        if not in_stage:
            kept.append(line)
        elif line.endswith(";"):
            in_stage = False
    body = json.dumps({"ddl": kept, "key": [k.upper() for k in key]}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]
