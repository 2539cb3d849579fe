"""Render a feed's SQL from the Jinja templates: pure functions, model in, SQL text out.

Two template layers are kept apart. Spec values are filled in here; the batch id stays the
Airflow expression RUNTIME_BATCH_ID unless a batch id is given, so the output is exactly what a
run executes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from streamline.batches import RUNTIME_BATCH_ID, check_batch_id
from streamline.model import Feed, TableRef
from streamline.project import Project

STEPS = ("ddl", "load", "transform", "check")
"""Rendered steps; load, transform and check are DAG tasks, ddl is run when provisioning."""

_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
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
    """Deployment values the DDL needs: where the lake is and how Snowflake may read it."""

    lake_url: str = "s3://streamline-lake"
    storage_integration: str | None = None

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


def quote_literal(value: str | int | float | bool | None) -> str:
    """The one way a value enters SQL: an escaped Snowflake string literal (or a bare number)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if any(mark in value for mark in ("{{", "{%", "{#")):
        raise ValueError(f"template markers are not allowed in SQL values: {value!r}")
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    )
    return f"'{escaped}'"


def object_name(feed: Feed, suffix: str) -> str:
    """Quoted name of a per-feed object (file format, stage) in the raw table's schema."""
    table = TableRef(feed.raw.database, feed.raw.schema, f"{feed.feed}_{suffix}")
    return quote_table(table)


@cache
def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
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
    if not _LAKE_URL_RE.match(settings.lake_url):
        raise ValueError(f"lake URL {settings.lake_url!r} is not of the form s3://bucket[/prefix]")
    if settings.storage_integration is not None:
        quote_identifier(settings.storage_integration.lower())
    if batch_id is not None:
        check_batch_id(batch_id)
    batch = batch_id if batch_id is not None else RUNTIME_BATCH_ID
    env = _environment(project.templates_dir)
    context = _context(feed, feeds, batch, settings)
    out: dict[str, str] = {}
    for step in steps:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")
        out[step] = _render_step(env, feed, step, context)
    return out


def _render_step(env: jinja2.Environment, feed: Feed, step: str, context: dict[str, Any]) -> str:
    name = (
        f"transforms/{feed.transform.template}.sql.j2" if step == "transform" else f"{step}.sql.j2"
    )
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        if step != "transform":
            raise
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
        if step != "transform":
            raise
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
        references.append({"ref": ref, "mart": target.mart, "name": f"references__{ref.column}"})
    runtime = batch == RUNTIME_BATCH_ID
    return {
        "feed": feed,
        "columns": feed.columns,
        "key": feed.key,
        "non_key_columns": [c for c in feed.columns if c.name not in feed.key],
        "params": feed.transform.params,
        "references": references,
        "settings": settings,
        "file_format": object_name(feed, "csv_format"),
        "stage": object_name(feed, "stage"),
        # A run-time batch id is an Airflow expression: quoting happens around it, not through it.
        "batch_literal": f"'{batch}'" if runtime else quote_literal(batch),
        "batch_path": f"processing/{batch}/{feed.source.prefix}/",
    }
