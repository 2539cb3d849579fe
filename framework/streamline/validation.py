"""Validate specs: JSON Schema first, then the rules a schema cannot express.

Validation never raises for bad input: it returns every error it finds, located at file:line:col.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline import airflow_compat
from streamline.errors import SpecError, UsageError, json_path
from streamline.layout import LEDGER_TABLE, LOAD_GATES, RESERVED_COLUMNS, aws_name
from streamline.loading import LoadedSpec, find_spec_files, load_spec
from streamline.model import (
    DEFAULT_SCHEMA_CONTRACT,
    FIXED_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    TEXT_TYPES,
    Feed,
    build_check,
    build_feed,
    reference_name,
)
from streamline.project import Project, load_schema
from streamline.schema import (
    IDENTIFIER_HINT,
    SpecValidator,
    apply_defaults,
    check_schema,
    closest,
    did_you_mean,
)

if TYPE_CHECKING:
    from streamline.rendering import RenderSettings

__all__ = [
    "IDENTIFIER_HINT",
    "ValidationResult",
    "apply_defaults",
    "base_type",
    "check_schema",
    "json_path",
    "snowflake_type_problem",
    "validate_paths",
    "validate_specs",
]


# Snowflake data types: name -> how many numeric parameters it takes (min, max).
_SNOWFLAKE_TYPES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(FIXED_TYPES, (0, 2)),
    **dict.fromkeys(INTEGER_TYPES, (0, 0)),
    **dict.fromkeys(FLOAT_TYPES, (0, 0)),
    **dict.fromkeys(
        ("VARCHAR", "CHAR", "CHARACTER", "NCHAR", "STRING", "TEXT", "NVARCHAR"), (0, 1)
    ),
    **dict.fromkeys(("BINARY", "VARBINARY"), (0, 1)),
    "BOOLEAN": (0, 0),
    "DATE": (0, 0),
    **dict.fromkeys(
        ("TIME", "TIMESTAMP", "DATETIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"), (0, 1)
    ),
    **dict.fromkeys(("VARIANT", "OBJECT", "ARRAY", "GEOGRAPHY", "GEOMETRY"), (0, 0)),
}
_NUMERIC = FIXED_TYPES | INTEGER_TYPES | FLOAT_TYPES
_UNORDERED = {"VARIANT", "OBJECT", "ARRAY", "GEOGRAPHY", "GEOMETRY", "BOOLEAN", "BINARY"}
_UNORDERED |= {"VARBINARY"}
_TYPE_RE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*(?: [A-Z]+)?)(?:\((?P<args>[0-9 ,]+)\))?$")
_UNDEFINED_RE = re.compile(r"has no attribute '(?P<name>[^']+)'")


@dataclass
class ValidationResult:
    """Every spec file read, the feeds that passed, and every error found."""

    files: list[str] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    rendered: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    """{feed: {step: sql}} of the feeds the template check rendered (validate_specs)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error_files(self) -> int:
        return len({error.file for error in self.errors})


def validate_paths(
    project: Project,
    paths: Sequence[Path] | None = None,
    base: Path | None = None,
    airflow_version: str | None = None,
    settings: RenderSettings | None = None,
) -> ValidationResult:
    """Load and validate the specs at paths (files or folders; default: the project's pipelines/).

    With airflow_version (e.g. '2.10.3'), features that version cannot run are errors too.
    The template check renders each feed with settings (default: RenderSettings()); what it
    rendered is kept in result.rendered (see validate_specs).

    Cross-spec rules (unique names, references, prefixes) always see the whole pipelines/ folder
    as well, so validating one file still catches a clash with its neighbours; only the errors of
    the files asked for are reported. A path that does not exist is a UsageError.
    """
    targets, missing = find_spec_files(paths or [project.pipelines_dir])
    if missing and paths:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    context, _ = find_spec_files([project.pipelines_dir]) if paths else ([], [])
    result = ValidationResult()
    for name in missing:  # only the default pipelines/ folder can be missing here
        result.errors.append(SpecError(name, 1, 1, "$", "no such file or folder"))
    wanted = {p.resolve() for p in targets}
    unique: dict[Path, Path] = {}
    for path in [*context, *targets]:
        unique.setdefault(path.resolve(), path)
    loaded: list[LoadedSpec] = []
    for resolved, path in unique.items():
        spec = load_spec(path, base, positions=False)  # positions when an error needs them
        if isinstance(spec, SpecError):
            if resolved in wanted:
                result.files.append(spec.file)
                result.errors.append(spec)
            continue
        loaded.append(spec)
    # Specs that only give context claim names first, so a clash is reported in a file asked for.
    loaded.sort(key=lambda s: (s.path.resolve() in wanted, s.file))
    feeds, errors = validate_specs(project, loaded, airflow_version, settings, result.rendered)
    keep = {s.file for s in loaded if s.path.resolve() in wanted}
    result.files.extend(keep)
    result.files.sort()
    result.errors.extend(e for e in errors if e.file in keep)
    bad = {e.file for e in result.errors}
    result.feeds = [f for f in feeds if f.spec_file in keep and f.spec_file not in bad]
    result.rendered = _rendered_over(result.rendered, result.feeds)
    result.errors.sort()
    return result


def validate_specs(
    project: Project,
    specs: Iterable[LoadedSpec],
    airflow_version: str | None = None,
    settings: RenderSettings | None = None,
    rendered: dict[str, dict[str, str]] | None = None,
) -> tuple[list[Feed], list[SpecError]]:
    """Validate loaded specs against the schema and the semantic rules; build their models.

    With airflow_version, features that Airflow version cannot run are errors of their spec.

    The template check renders every feed with settings (default: RenderSettings()). Given a
    rendered dict, it is filled with {feed name: {step: sql}}: each feed the check rendered as
    render_feed(project, feed, feeds) renders it over the feeds returned (its references name the
    same feeds), so that a loader can write that SQL instead of rendering it again.

    Cross-spec clashes are reported on the later spec, in the order given.
    """
    schema = load_schema(project.schema_path)
    validator = SpecValidator(schema)
    errors: list[SpecError] = []
    shaped: list[tuple[LoadedSpec, dict[str, Any]]] = []
    unshaped: dict[str, str] = {}
    for spec in specs:
        try:  # one spec's surprise must not stop the others' validation
            schema_errors = check_schema(spec, validator)
        except Exception as exc:
            errors.append(_unexpected(spec, exc))
            continue
        if schema_errors:
            errors.extend(schema_errors)
            if isinstance(spec.data.get("feed"), str):
                unshaped.setdefault(spec.data["feed"], spec.file)
            continue
        shaped.append((spec, apply_defaults(spec.data, schema)))
    built: dict[str, Feed] = {}
    for spec, data in shaped:
        try:  # one spec's surprise must not stop the others' validation
            errors.extend(_check_feed(spec, data))
            built[spec.file] = build_feed(data, spec.file)
            errors.extend(_check_limits(spec, built[spec.file]))
            if airflow_version:
                errors.extend(_check_airflow(spec, built[spec.file], airflow_version))
        except Exception as exc:
            errors.append(_unexpected(spec, exc))
    shaped = [(spec, data) for spec, data in shaped if spec.file in built]
    first_errors: dict[str, SpecError] = {}
    for error in sorted(errors):
        first_errors.setdefault(error.file, error)
    errors.extend(_check_across_guarded(shaped, first_errors, unshaped))
    bad = {e.file for e in errors}
    every = [built[spec.file] for spec, _ in shaped]
    feeds = [f for f in every if f.spec_file not in bad]
    specs_by_file = {s.file: s for s, _ in shaped}
    sql: dict[str, dict[str, str]] = {}
    errors.extend(_check_templates(project, feeds, every, specs_by_file, settings, sql))
    bad = {e.file for e in errors}
    valid = [f for f in feeds if f.spec_file not in bad]
    if rendered is not None:
        rendered.update(_rendered_over(sql, valid))
    return valid, errors


def _rendered_over(sql: dict[str, dict[str, str]], feeds: list[Feed]) -> dict[str, dict[str, str]]:
    """The SQL of each of feeds that render_feed over feeds renders the same: those whose
    references are all among feeds (render_feed fails for the others)."""
    names = {f.feed for f in feeds}
    return {
        f.feed: sql[f.feed]
        for f in feeds
        if f.feed in sql and all(ref.feed in names for ref in f.references)
    }


def _unexpected(spec: LoadedSpec, exc: Exception) -> SpecError:
    """An error no rule expected, as an error of its spec (the other specs go on)."""
    return SpecError(
        spec.file, 1, 1, "$", f"could not be validated: {type(exc).__name__}: {exc}",
        "a StreamLine bug: please report it with this spec; the other specs are not affected",
    )  # fmt: skip


RESERVED_DAG_ID = "streamline_invalid_specs"
"""The DAG id of the loader's error DAG (streamline.dagloader.ERROR_DAG_ID)."""

NAME_LIMITS = (
    # (what, Layout attribute, most characters, the service's documentation)
    ("Firehose stream name", "firehose_stream", 64,
     "https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html"),
    ("SQS queue name", "queue", 80,
     "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html"),
    ("SQS dead-letter queue name", "dead_letter_queue", 80,
     "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html"),
    ("IAM role name of the Snowflake storage integration", "storage_role", 64,
     "https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html"),
)  # fmt: skip
"""Limits of the AWS names derived from a spec, which the local stand-ins do not enforce."""


def _check_limits(spec: LoadedSpec, feed: Feed) -> list[SpecError]:
    """Names derived from the spec that the services they reach would refuse as too long."""
    errors = []
    for what, attribute, most, doc in NAME_LIMITS:
        name = getattr(feed.layout, attribute)
        if len(name) <= most:
            continue
        own = feed.trigger.queue if attribute in ("queue", "dead_letter_queue") else None
        path: list[str | int] = ["trigger", "queue"] if own else ["feed"]
        spare = len(name) - len(own or feed.feed)
        line, col = spec.locate(path)
        errors.append(SpecError(
            spec.file, line, col, json_path(path),
            f"the {what} '{name}' is {len(name)} characters; AWS allows at most {most} ({doc})",
            f"shorten {json_path(path)[2:]} to at most {most - spare} characters",
        ))  # fmt: skip
    return errors


def _check_airflow(spec: LoadedSpec, feed: Feed, airflow_version: str) -> list[SpecError]:
    """Features of the spec that the target Airflow version cannot run (airflow_compat)."""
    if feed.trigger.mode == "event" and not airflow_compat.supports_event_mode(airflow_version):
        line, col = spec.locate(["trigger", "mode"])
        return [SpecError(
            spec.file, line, col, "$.trigger.mode",
            f"event mode needs Airflow {airflow_compat.EVENT_MODE_AIRFLOW}'s asset watchers, "
            f"which Airflow {airflow_version} does not have",
            "set trigger.mode to poll (its sensor pokes landing/ every poll_interval_seconds), "
            f"or target Airflow {airflow_compat.EVENT_MODE_AIRFLOW}",
        )]  # fmt: skip
    return []


# --- rules within one spec -----------------------------------------------------------------------


def _check_feed(spec: LoadedSpec, data: dict[str, Any]) -> list[SpecError]:
    errors: list[SpecError] = []

    def err(
        path: list[str | int], message: str, hint: str | None = None, key: bool = False
    ) -> None:
        line, col = spec.locate(path, key=key)
        errors.append(SpecError(spec.file, line, col, json_path(path), message, hint))

    columns: dict[str, dict[str, Any]] = {}
    for index, column in enumerate(data["columns"]):
        name = column["name"]
        if name in columns:
            first = data["columns"].index(columns[name])
            first_line, _ = spec.locate(["columns", first, "name"])
            err(
                ["columns", index, "name"],
                f"duplicate column '{name}'",
                f"'{name}' is first defined at line {first_line}",
            )
        elif name in RESERVED_COLUMNS:
            err(
                ["columns", index, "name"],
                f"'{name}' is a column StreamLine adds itself",
                f"rename it; reserved: {', '.join(RESERVED_COLUMNS)}",
            )
        columns.setdefault(name, column)
        problem = snowflake_type_problem(column["type"])
        if problem:
            err(["columns", index, "type"], problem[0], problem[1])
    names = list(columns)

    def need(path: list[str | int], name: str) -> dict[str, Any] | None:
        if name in columns:
            return columns[name]
        hint = did_you_mean(name, names) or f"columns: {', '.join(names)}"
        err(path, f"'{name}' is not a column of this feed", hint)
        return None

    for index, name in enumerate(data["key"]):
        need(["key", index], name)
    ordering = need(["ordering"], data["ordering"])
    if ordering and base_type(ordering["type"]) in _UNORDERED:
        err(
            ["ordering"],
            f"ordering column '{data['ordering']}' has type {ordering['type']}, "
            "which cannot order rows",
            "use a timestamp, date or number column",
        )
    for index, ref in enumerate(data["references"]):
        need(["references", index, "column"], ref["column"])
    for index, check in enumerate(data["checks"]):
        _check_check(check, ["checks", index], need, err)
    # Every check's result is keyed by its name (failures, the ledger's CHECKS): one name each.
    named: list[tuple[list[str | int], str]] = []
    for index, check in enumerate(data["checks"]):
        named.append((["checks", index], build_check(check).name))
    for index, ref in enumerate(data["references"]):
        named.append((["references", index], reference_name(ref["column"])))
    first_at: dict[str, list[str | int] | None] = dict.fromkeys(LOAD_GATES)
    for path, name in named:
        if name not in first_at:
            first_at[name] = path
            continue
        other = first_at[name]
        where = "a gate of the load step" if other is None else f"at line {spec.locate(other)[0]}"
        hint = "remove the duplicate reference"
        if path[0] == "checks":
            named_already = "name" in data["checks"][int(path[1])]
            hint = f"give this check {'another' if named_already else 'a'} `name:`"
        err(
            path,
            f"another check is named '{name}' ({where}): their results would mix in failures "
            "and in the batch ledger",
            hint,
        )
    for table in ("raw", "mart"):
        if data[table]["table"] == LEDGER_TABLE:
            err(
                [table, "table"],
                f"'{LEDGER_TABLE}' is the name of StreamLine's batch ledger",
                "give the table another name",
            )
    fmt = data["source"]["format"]
    if "schema_contract" in fmt and not fmt["header"]:
        err(
            ["source", "format", "schema_contract"],
            "a schema contract needs a header row to compare with the columns (header: false)",
            "remove schema_contract: without a header the columns are positional, and a row "
            "with a field too many or too few is quarantined; or set header: true",
        )
    elif fmt.get("schema_contract_mart") and fmt.get("schema_contract") != "evolve":
        err(
            ["source", "format", "schema_contract_mart"],
            "schema_contract_mart adds evolved columns to the mart, and this feed's contract is "
            f"{fmt.get('schema_contract', DEFAULT_SCHEMA_CONTRACT) if fmt['header'] else 'none'}",
            "set schema_contract: evolve, or remove schema_contract_mart",
        )
    if data["trigger"]["mode"] == "poll" and data["dag"]["max_active_runs"] > 1:
        err(
            ["dag", "max_active_runs"],
            "a poll-mode feed runs one DAG run at a time (Airflow's continuous schedule)",
            "set max_active_runs: 1, or use trigger.mode: event for concurrent runs",
        )
    if _dotted(data["raw"]) == _dotted(data["mart"]):
        err(
            ["mart"],
            "the mart table is the raw table",
            "give the mart its own schema or name",
            key=True,
        )
    return errors


def _check_check(
    check: dict[str, Any],
    path: list[str | int],
    need: Callable[[list[str | int], str], dict[str, Any] | None],
    err: Callable[[list[str | int], str], None],
) -> None:
    for index, name in enumerate(check.get("columns", [])):
        need([*path, "columns", index], name)
    kind = check["type"]
    column = need([*path, "column"], check["column"]) if "column" in check else None
    # A column whose type is already reported as invalid gets no second, derived error.
    if column is not None and snowflake_type_problem(column["type"]) is None:
        base = base_type(column["type"])
        if kind == "range" and base not in _NUMERIC:
            # min and max are numbers, compared with the column in SQL.
            err(
                [*path, "column"],
                f"a range check needs a numeric column; '{check['column']}' is {column['type']}",
            )
        if kind == "accepted_values" and base not in TEXT_TYPES:
            err(
                [*path, "column"],
                f"an accepted_values check needs a text column; "
                f"'{check['column']}' is {column['type']}",
            )
    low = check.get("min", 1 if kind == "row_count" else None)
    if kind in ("row_count", "range") and "max" in check and low is not None and check["max"] < low:
        err([*path, "max"], f"max {check['max']} is below min {low}")


def base_type(type_text: str) -> str:
    """The type name without parameters: NUMBER(12,2) -> NUMBER."""
    return type_text.split("(")[0].strip()


def snowflake_type_problem(type_text: str) -> tuple[str, str] | None:
    """Why type_text is not a valid Snowflake type (message, hint), or None when it is."""
    match = _TYPE_RE.match(type_text)
    if not match:
        return f"'{type_text}' is not a Snowflake data type", "e.g. VARCHAR(64), NUMBER(12,2)"
    name = match["name"]
    args = [a.strip() for a in (match["args"] or "").split(",")] if match["args"] else []
    if name not in _SNOWFLAKE_TYPES:
        close = difflib.get_close_matches(name, list(_SNOWFLAKE_TYPES), n=1)
        hint = f"did you mean {close[0]}?" if close else "see Snowflake's data types reference"
        return f"'{type_text}' is not a Snowflake data type", hint
    if not all(arg.isdigit() for arg in args):
        return f"'{type_text}' is not a Snowflake data type", f"e.g. {_example(name)}"
    low, high = _SNOWFLAKE_TYPES[name]
    if not low <= len(args) <= high:
        hint = f"write {name} without parentheses" if high == 0 else f"e.g. {_example(name)}"
        return f"{name} takes {_arity(low, high)}, got {len(args)}", hint
    numbers = [int(a) for a in args]
    if name in FIXED_TYPES and numbers:
        precision, scale = numbers[0], numbers[1] if len(numbers) > 1 else 0
        if not 1 <= precision <= 38:
            return f"precision {precision} is outside 1..38", "e.g. NUMBER(38,0)"
        if not 0 <= scale <= precision:
            return f"scale {scale} is outside 0..{precision}", "e.g. NUMBER(12,2)"
    if name in TEXT_TYPES and numbers and not 1 <= numbers[0] <= 16777216:
        return f"length {numbers[0]} is outside 1..16777216", "e.g. VARCHAR(255)"
    if name in ("BINARY", "VARBINARY") and numbers and not 1 <= numbers[0] <= 8388608:
        return f"length {numbers[0]} is outside 1..8388608", "e.g. BINARY(16)"
    if name.startswith(("TIME", "DATETIME")) and numbers and not 0 <= numbers[0] <= 9:
        return f"fractional-second precision {numbers[0]} is outside 0..9", f"e.g. {name}(3)"
    return None


def _arity(low: int, high: int) -> str:
    if high == 0:
        return "no parameters"
    if low == 0:
        return f"at most {high} parameter{'s' if high > 1 else ''}"
    return f"{low} to {high} parameters"


def _example(name: str) -> str:
    if name in FIXED_TYPES:
        return f"{name}(12,2)"
    if name in TEXT_TYPES or name in ("BINARY", "VARBINARY"):
        return f"{name}(64)"
    if name.startswith(("TIME", "DATETIME")):
        return f"{name}(3)"
    return name


def _dotted(table: dict[str, str]) -> str:
    return f"{table['database']}.{table['schema']}.{table['table']}"


# --- rules across specs --------------------------------------------------------------------------


def _check_across_guarded(
    shaped: list[tuple[LoadedSpec, dict[str, Any]]],
    bad: Mapping[str, SpecError],
    unshaped: dict[str, str],
) -> list[SpecError]:
    """_check_across, where an error no rule expected is one spec's, not every spec's: the specs
    are added one by one, and one whose addition makes the rules fail is reported and left out."""
    try:
        return _check_across(shaped, bad, unshaped)
    except Exception:
        pass
    kept: list[tuple[LoadedSpec, dict[str, Any]]] = []
    errors: list[SpecError] = []
    for item in shaped:
        try:
            _check_across([*kept, item], bad, unshaped)
        except Exception as exc:
            errors.append(_unexpected(item[0], exc))
            continue
        kept.append(item)
    return errors + _check_across(kept, bad, unshaped)


def _check_across(
    shaped: list[tuple[LoadedSpec, dict[str, Any]]],
    bad: Mapping[str, SpecError],
    unshaped: dict[str, str],
) -> list[SpecError]:
    """Names, tables, queues and prefixes are unique; references name feeds and their columns.

    bad: files that already have errors, each with its first; unshaped: feed names of specs the
    schema rejected.
    """
    errors: list[SpecError] = []
    seen: dict[tuple[str, str], tuple[LoadedSpec, list[str | int]]] = {}

    def claim(kind: str, value: str, spec: LoadedSpec, path: list[str | int], what: str) -> bool:
        first = seen.get((kind, value))
        if first is None:
            seen[(kind, value)] = (spec, path)
            return True
        other, other_path = first
        line, col = spec.locate(path)
        oline, ocol = other.locate(other_path)
        errors.append(
            SpecError(
                spec.file,
                line,
                col,
                json_path(path),
                f"{what} '{value}' is already used by {other.file}:{oline}:{ocol}",
                f"each feed needs its own {what}",
            )
        )
        return False

    feeds: dict[str, tuple[LoadedSpec, dict[str, Any]]] = {}
    for spec, data in shaped:
        named = claim("feed", data["feed"], spec, ["feed"], "feed name")
        feeds.setdefault(data["feed"], (spec, data))
        dag_id = data["dag"].get("dag_id")
        if (dag_id or data["feed"]) == RESERVED_DAG_ID:
            path: list[str | int] = ["dag", "dag_id"] if dag_id else ["feed"]
            line, col = spec.locate(path)
            errors.append(SpecError(
                spec.file, line, col, json_path(path),
                f"the DAG id '{RESERVED_DAG_ID}' is StreamLine's own: the DAG that reports "
                "invalid specs", "choose another feed name or dag.dag_id",
            ))  # fmt: skip
        if dag_id:
            claim("dag", dag_id, spec, ["dag", "dag_id"], "DAG id")
        elif named:  # the DAG id is the feed name: a clash was reported just above
            claim("dag", data["feed"], spec, ["feed"], "DAG id")
        claim("table", _dotted(data["raw"]), spec, ["raw", "table"], "table")
        if _dotted(data["mart"]) != _dotted(data["raw"]):  # else _check_feed reported it
            claim("table", _dotted(data["mart"]), spec, ["mart", "table"], "table")
        # Every feed gets its queue and dead-letter queue (infra/queues.tf), whatever its mode.
        own = data["trigger"].get("queue")
        queue = own or aws_name(data["feed"])
        where: list[str | int] = ["trigger", "queue"] if own else ["feed"]
        # A derived name clashes only when the feed name does, which is reported already.
        if (own or named) and claim("queue", queue, spec, where, "SQS queue"):
            claim("queue", f"{queue}-dlq", spec, where, "SQS queue")
    prefixes: list[tuple[str, LoadedSpec]] = []
    for spec, data in shaped:
        prefix = data["source"]["prefix"]
        for other_prefix, other in prefixes:
            if _overlaps(prefix, other_prefix):
                oline, ocol = other.locate(["source", "prefix"])
                line, col = spec.locate(["source", "prefix"])
                errors.append(
                    SpecError(
                        spec.file,
                        line,
                        col,
                        "$.source.prefix",
                        f"prefix '{prefix}' overlaps '{other_prefix}' of "
                        f"{other.file}:{oline}:{ocol}",
                        "one feed's files would be claimed by the other; use sibling folders",
                    )
                )
                break
        prefixes.append((prefix, spec))
    for spec, data in shaped:
        for index, ref in enumerate(data["references"]):
            errors.extend(_check_reference(spec, index, ref, feeds, bad, unshaped))
    return errors


def _check_reference(
    spec: LoadedSpec,
    index: int,
    ref: dict[str, Any],
    feeds: dict[str, tuple[LoadedSpec, dict[str, Any]]],
    bad: Mapping[str, SpecError],
    unshaped: dict[str, str],
) -> list[SpecError]:
    path: list[str | int] = ["references", index, "feed"]

    def error(message: str, hint: str | None) -> list[SpecError]:
        line, col = spec.locate(path)  # only for an error: positions may take a parse
        return [SpecError(spec.file, line, col, json_path(path), message, hint)]

    target = feeds.get(ref["feed"])
    if target is None:
        if ref["feed"] in unshaped:
            return error(
                f"feed '{ref['feed']}' is defined in {unshaped[ref['feed']]}, which has errors",
                f"fix {unshaped[ref['feed']]} first",
            )
        hint = did_you_mean(ref["feed"], [*feeds, *unshaped]) or (
            "referenced feeds must be specs in the same pipelines/ folder"
        )
        return error(f"no feed named '{ref['feed']}'", hint)
    other, data = target
    names = [c["name"] for c in data["columns"]]
    if ref["to"] not in names:
        path = ["references", index, "to"]
        hint = did_you_mean(ref["to"], names) or f"columns of '{ref['feed']}': {', '.join(names)}"
        return error(f"feed '{ref['feed']}' has no column '{ref['to']}'", hint)
    if other.file in bad and other.file != spec.file:
        first = bad[other.file]
        message = (
            f"feed '{ref['feed']}' is defined in {other.file}, which has errors (first, line "
            f"{first.line}: {first.message})"
        )
        return error(message, f"fix {other.file} first")
    return []


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


# --- templates ---------------------------------------------------------------------------------


def _check_templates(
    project: Project,
    feeds: list[Feed],
    every: list[Feed],
    specs: dict[str, LoadedSpec],
    settings: RenderSettings | None = None,
    rendered: dict[str, dict[str, str]] | None = None,
) -> list[SpecError]:
    """Every feed's templates exist and render with undefined variables treated as errors.

    feeds are rendered; every (including feeds with errors of their own) is what references see.
    Given rendered, the SQL of each feed whose references see the same feeds in feeds as in
    every goes in it (what render_feed over a subset of feeds holding those would render).
    """
    from streamline.rendering import TemplateProblem, render_feed

    known = {f.feed for f in every}
    seen = {f.feed: f for f in every}  # as render_feed's context finds them: the last of a name
    valid = {f.feed: f for f in feeds}
    errors: list[SpecError] = []
    for feed in feeds:
        if any(ref.feed not in known for ref in feed.references):
            continue  # reported as a reference error; the transform cannot be rendered without it
        try:
            sql = render_feed(project, feed, every, settings=settings)
            if rendered is not None and all(
                seen[ref.feed] is valid.get(ref.feed) for ref in feed.references
            ):
                rendered[feed.feed] = sql
        except TemplateProblem as problem:
            spec = specs[feed.spec_file]
            path: list[str | int] = ["transform", problem.field]
            message, hint = problem.message, problem.hint
            missing = _UNDEFINED_RE.search(message) if problem.field == "params" else None
            if missing:  # say it in spec terms rather than Jinja's ('dict object' has no ...)
                name = missing["name"]
                message = f"template '{feed.transform.template}' needs params.{name}, not set"
                close = closest(name, list(feed.transform.params))
                hint = f"did you mean '{close}'?" if close else f"set {name} under transform.params"
                path = [*path, close] if close else path
            line, col = spec.locate(path, key=len(path) == 3)
            errors.append(SpecError(feed.spec_file, line, col, json_path(path), message, hint))
        except Exception as exc:  # a template or filter that raises: this feed's, not all's
            line, col = specs[feed.spec_file].locate(["transform", "template"])
            errors.append(SpecError(
                feed.spec_file, line, col, "$.transform.template",
                f"template '{feed.transform.template}' could not be rendered: "
                f"{type(exc).__name__}: {exc}",
                "render it with `streamline render <feed> --debug` to see where it fails",
            ))  # fmt: skip
    return errors
