"""Validate specs: JSON Schema first, then the rules a schema cannot express.

Validation never raises for bad input: it returns every error it finds, located at file:line:col.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from streamline.errors import SpecError
from streamline.loading import LoadedSpec, find_spec_files, load_spec
from streamline.model import LINEAGE_COLUMNS, Feed, build_feed
from streamline.project import Project, load_schema

IDENTIFIER_HINT = "use lower-case letters, digits and _, starting with a letter or _"

# Snowflake data types: name -> how many numeric parameters it takes (min, max).
_SNOWFLAKE_TYPES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("NUMBER", "DECIMAL", "NUMERIC", "DEC"), (0, 2)),
    **dict.fromkeys(("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"), (0, 0)),
    **dict.fromkeys(("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"), (0, 0)),
    **dict.fromkeys(("VARCHAR", "CHAR", "CHARACTER", "NCHAR", "STRING", "TEXT", "NVARCHAR"), (0, 1)),
    **dict.fromkeys(("BINARY", "VARBINARY"), (0, 1)),
    "BOOLEAN": (0, 0),
    "DATE": (0, 0),
    **dict.fromkeys(
        ("TIME", "TIMESTAMP", "DATETIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"), (0, 1)
    ),
    **dict.fromkeys(("VARIANT", "OBJECT", "ARRAY", "GEOGRAPHY", "GEOMETRY"), (0, 0)),
}
_NUMERIC = {"NUMBER", "DECIMAL", "NUMERIC", "DEC", "INT", "INTEGER", "BIGINT", "SMALLINT",
            "TINYINT", "BYTEINT", "FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"}
_TEXT = {"VARCHAR", "CHAR", "CHARACTER", "NCHAR", "STRING", "TEXT", "NVARCHAR"}
_UNORDERED = {"VARIANT", "OBJECT", "ARRAY", "GEOGRAPHY", "GEOMETRY", "BOOLEAN", "BINARY",
              "VARBINARY"}
_TYPE_RE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*(?: [A-Z]+)?)(?:\((?P<args>[0-9 ,]+)\))?$")


@dataclass
class ValidationResult:
    """Every spec file read, the feeds that passed, and every error found."""

    files: list[str] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error_files(self) -> int:
        return len({error.file for error in self.errors})


def validate_paths(project: Project, paths: Sequence[Path] | None = None) -> ValidationResult:
    """Load and validate the specs at paths (files or folders; default: the project's pipelines/).

    Cross-spec rules (unique names, references, prefixes) always see the whole pipelines/ folder
    as well, so validating one file still catches a clash with its neighbours.
    """
    targets, missing = find_spec_files(paths or [project.pipelines_dir])
    context, _ = find_spec_files([project.pipelines_dir]) if paths else ([], [])
    result = ValidationResult()
    for name in missing:
        result.errors.append(SpecError(name, 1, 1, "$", "no such file or folder"))
    wanted = {p.resolve() for p in targets}
    every = list(dict.fromkeys([*targets, *(p for p in context if p.resolve() not in wanted)]))
    loaded: list[LoadedSpec] = []
    for path in every:
        spec = load_spec(path)
        if isinstance(spec, SpecError):
            if path.resolve() in wanted:
                result.files.append(spec.file)
                result.errors.append(spec)
            continue
        loaded.append(spec)
    feeds, errors = validate_specs(project, loaded)
    keep = {display for display in (s.file for s in loaded if s.path.resolve() in wanted)}
    result.files.extend(sorted(keep))
    result.files.sort()
    result.errors.extend(e for e in errors if e.file in keep)
    bad = {e.file for e in result.errors}
    result.feeds = [f for f in feeds if f.spec_file in keep and f.spec_file not in bad]
    result.errors.sort()
    return result


def validate_specs(project: Project, specs: Iterable[LoadedSpec]) -> tuple[list[Feed], list[SpecError]]:
    """Validate loaded specs against the schema and the semantic rules; build their models."""
    schema = load_schema(project.schema_path)
    validator = Draft202012Validator(schema)
    errors: list[SpecError] = []
    shaped: list[tuple[LoadedSpec, dict[str, Any]]] = []
    for spec in specs:
        schema_errors = check_schema(spec, validator)
        if schema_errors:
            errors.extend(schema_errors)
            continue
        shaped.append((spec, apply_defaults(spec.data, schema)))
    for spec, data in shaped:
        errors.extend(_check_feed(spec, data))
    errors.extend(_check_across(shaped))
    bad = {e.file for e in errors}
    feeds = [build_feed(data, spec.file) for spec, data in shaped if spec.file not in bad]
    errors.extend(_check_templates(project, feeds, {s.file: s for s, _ in shaped}))
    bad = {e.file for e in errors}
    return [f for f in feeds if f.spec_file not in bad], errors


# --- JSON Schema -------------------------------------------------------------------------------


def check_schema(spec: LoadedSpec, validator: Draft202012Validator) -> list[SpecError]:
    """Schema errors of one spec, each at the line of the offending key or value."""
    found: list[SpecError] = []
    for error in validator.iter_errors(spec.data):
        found.extend(_schema_error(spec, _leaf(error)))
    unique = {(e.line, e.col, e.json_path, e.message): e for e in found}
    return sorted(unique.values())


def _leaf(error: ValidationError) -> ValidationError:
    """Collapse anyOf/oneOf noise into the alternative that came closest."""
    while error.context:
        deeper = best_match(error.context)
        if deeper is None:
            break
        error = deeper
    return error


def _schema_error(spec: LoadedSpec, error: ValidationError) -> list[SpecError]:
    path = list(error.absolute_path)
    pointer = json_path(path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        out = []
        for key in extra:
            line, col = spec.locate([*path, key], key=True)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
            out.append(SpecError(spec.file, line, col, json_path([*path, key]),
                                 f"unknown key '{key}'", hint))
        return out
    line, col = spec.locate(path)
    message, hint = error.message, None
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        message = f"missing required key '{missing}'"
        line, col = spec.locate(path, key=True)
    elif error.validator == "pattern" and error.schema.get("pattern", "").startswith("^[a-z_]"):
        hint = IDENTIFIER_HINT
    elif error.validator == "type":
        message = f"{_show(error.instance)} is not of type {_types(error.validator_value)}"
        if isinstance(error.instance, str | int | float) or error.instance is None:
            hint = None
        if type(error.instance).__name__ in ("date", "datetime"):
            hint = "quote the value to make it a string"
    elif error.validator == "enum":
        message = f"{_show(error.instance)} is not one of {', '.join(map(_show, error.validator_value))}"
    return [SpecError(spec.file, line, col, pointer, message, hint)]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _types(value: Any) -> str:
    names = {"object": "mapping", "array": "list", "null": "null"}
    items = value if isinstance(value, list) else [value]
    return " or ".join(f"'{names.get(v, v)}'" for v in items)


def json_path(parts: Sequence[str | int]) -> str:
    """Format a JSON path like $.columns[2].name."""
    text = "$"
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def apply_defaults(data: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of data with every schema default filled in (the schema is the source of truth)."""
    filled = copy.deepcopy(data)
    _fill(filled, schema, schema)
    return filled


def _fill(instance: Any, node: dict[str, Any], root: dict[str, Any]) -> None:
    node = _resolve(node, root)
    if isinstance(instance, dict):
        for name, sub in node.get("properties", {}).items():
            if not isinstance(sub, dict):
                continue
            sub = _resolve(sub, root)
            if name not in instance and "default" in sub:
                instance[name] = copy.deepcopy(sub["default"])
            if name in instance:
                _fill(instance[name], sub, root)
    if isinstance(instance, list) and isinstance(node.get("items"), dict):
        for item in instance:
            _fill(item, node["items"], root)
    for part in node.get("allOf", []):
        part = _resolve(part, root)
        if "if" in part and Draft202012Validator(part["if"]).is_valid(instance):
            _fill(instance, part.get("then", {}), root)
        elif "if" not in part:
            _fill(instance, part, root)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and node["$ref"].startswith("#/"):
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


# --- rules within one spec -----------------------------------------------------------------------


def _check_feed(spec: LoadedSpec, data: dict[str, Any]) -> list[SpecError]:
    errors: list[SpecError] = []

    def err(path: list[str | int], message: str, hint: str | None = None, key: bool = False) -> None:
        line, col = spec.locate(path, key=key)
        errors.append(SpecError(spec.file, line, col, json_path(path), message, hint))

    columns: dict[str, dict[str, Any]] = {}
    for index, column in enumerate(data["columns"]):
        name = column["name"]
        if name in columns:
            err(["columns", index, "name"], f"duplicate column '{name}'")
        elif name in LINEAGE_COLUMNS:
            err(["columns", index, "name"], f"'{name}' is a column StreamLine adds itself",
                f"rename it; reserved: {', '.join(LINEAGE_COLUMNS)}")
        columns.setdefault(name, column)
        problem = snowflake_type_problem(column["type"])
        if problem:
            err(["columns", index, "type"], problem[0], problem[1])
    names = list(columns)

    def need(path: list[str | int], name: str) -> dict[str, Any] | None:
        if name in columns:
            return columns[name]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"columns: {', '.join(names)}"
        err(path, f"'{name}' is not a column of this feed", hint)
        return None

    for index, name in enumerate(data["key"]):
        need(["key", index], name)
    ordering = need(["ordering"], data["ordering"])
    if ordering and base_type(ordering["type"]) in _UNORDERED:
        err(["ordering"], f"ordering column '{data['ordering']}' has type {ordering['type']}, "
            "which cannot order rows", "use a timestamp, date or number column")
    for index, ref in enumerate(data["references"]):
        need(["references", index, "column"], ref["column"])
    for index, check in enumerate(data["checks"]):
        for cindex, name in enumerate(check.get("columns", [])):
            need(["checks", index, "columns", cindex], name)
        if "column" in check:
            column = need(["checks", index, "column"], check["column"])
            kind = base_type(column["type"]) if column else None
            if check["type"] == "range" and kind and kind not in _NUMERIC | {
                "DATE", "TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "DATETIME"
            }:
                err(["checks", index, "column"],
                    f"range check needs a numeric column; '{check['column']}' is {column and column['type']}")
            if check["type"] == "accepted_values" and kind and kind not in _TEXT:
                err(["checks", index, "column"],
                    f"accepted_values check needs a text column; '{check['column']}' is "
                    f"{column and column['type']}")
        if check["type"] == "row_count" and "max" in check and check["max"] < check["min"]:
            err(["checks", index, "max"], f"max {check['max']} is below min {check['min']}")
        if check["type"] == "range" and "min" in check and "max" in check and check["max"] < check["min"]:
            err(["checks", index, "max"], f"max {check['max']} is below min {check['min']}")
    if _dotted(data["raw"]) == _dotted(data["mart"]):
        err(["mart"], "the mart table is the raw table", "give the mart its own schema or name")
    return errors


def base_type(type_text: str) -> str:
    """The type name without parameters: NUMBER(12,2) -> NUMBER."""
    return type_text.split("(")[0].strip()


def snowflake_type_problem(type_text: str) -> tuple[str, str] | None:
    """Why type_text is not a valid Snowflake type (message, hint), or None when it is."""
    match = _TYPE_RE.match(type_text)
    if not match:
        return f"'{type_text}' is not a Snowflake data type", "e.g. VARCHAR(64), NUMBER(12,2)"
    name = match["name"]
    args = [a.strip() for a in (match["args"] or "").split(",") if a.strip()] if match["args"] else []
    if name not in _SNOWFLAKE_TYPES:
        close = difflib.get_close_matches(name, list(_SNOWFLAKE_TYPES), n=1)
        hint = f"did you mean {close[0]}?" if close else "see Snowflake's data types reference"
        return f"'{type_text}' is not a Snowflake data type", hint
    low, high = _SNOWFLAKE_TYPES[name]
    if not low <= len(args) <= high:
        return f"{name} takes {_arity(low, high)}, got {len(args)}", f"e.g. {_example(name)}"
    numbers = [int(a) for a in args]
    if name in ("NUMBER", "DECIMAL", "NUMERIC", "DEC") and numbers:
        precision, scale = numbers[0], numbers[1] if len(numbers) > 1 else 0
        if not 1 <= precision <= 38:
            return f"precision {precision} is outside 1..38", "e.g. NUMBER(38,0)"
        if not 0 <= scale <= precision:
            return f"scale {scale} is outside 0..{precision}", "e.g. NUMBER(12,2)"
    if name in _TEXT and numbers and not 1 <= numbers[0] <= 16777216:
        return f"length {numbers[0]} is outside 1..16777216", "e.g. VARCHAR(255)"
    if name.startswith(("TIME", "DATETIME")) and numbers and not 0 <= numbers[0] <= 9:
        return f"fractional-second precision {numbers[0]} is outside 0..9", f"e.g. {name}(3)"
    return None


def _arity(low: int, high: int) -> str:
    if high == 0:
        return "no parameters"
    return f"at most {high} parameter{'s' if high > 1 else ''}" if low == 0 else f"{low}..{high}"


def _example(name: str) -> str:
    return {"NUMBER": "NUMBER(12,2)", "VARCHAR": "VARCHAR(64)"}.get(name, name)


def _dotted(table: dict[str, str]) -> str:
    return f"{table['database']}.{table['schema']}.{table['table']}"


# --- rules across specs --------------------------------------------------------------------------


def _check_across(shaped: list[tuple[LoadedSpec, dict[str, Any]]]) -> list[SpecError]:
    errors: list[SpecError] = []
    ordered = sorted(shaped, key=lambda item: item[0].file)
    seen: dict[tuple[str, str], tuple[LoadedSpec, list[str | int]]] = {}

    def claim(kind: str, value: str, spec: LoadedSpec, path: list[str | int], what: str) -> None:
        first = seen.get((kind, value))
        if first is None:
            seen[(kind, value)] = (spec, path)
            return
        other, other_path = first
        line, col = spec.locate(path)
        oline, ocol = other.locate(other_path)
        errors.append(SpecError(spec.file, line, col, json_path(path),
                                f"{what} '{value}' is already used by {other.file}:{oline}:{ocol}",
                                f"each feed needs its own {what}"))

    feeds: dict[str, dict[str, Any]] = {}
    for spec, data in ordered:
        claim("feed", data["feed"], spec, ["feed"], "feed name")
        feeds.setdefault(data["feed"], data)
        dag_id = data["dag"].get("dag_id") or data["feed"]
        claim("dag", dag_id, spec, ["dag", "dag_id"] if data["dag"].get("dag_id") else ["feed"], "DAG id")
        for role in ("raw", "mart"):
            claim("table", _dotted(data[role]), spec, [role, "table"], "table")
        queue = data["trigger"].get("queue") or f"streamline-{data['feed'].replace('_', '-')}"
        if data["trigger"]["mode"] == "event":
            claim("queue", queue, spec, ["trigger", "queue"], "SQS queue")
    prefixes: list[tuple[str, LoadedSpec]] = []
    for spec, data in ordered:
        prefix = data["source"]["prefix"]
        for other_prefix, other in prefixes:
            if _overlaps(prefix, other_prefix):
                oline, ocol = other.locate(["source", "prefix"])
                line, col = spec.locate(["source", "prefix"])
                errors.append(SpecError(
                    spec.file, line, col, "$.source.prefix",
                    f"prefix '{prefix}' overlaps '{other_prefix}' of {other.file}:{oline}:{ocol}",
                    "one feed's files would be claimed by the other; use sibling folders"))
        prefixes.append((prefix, spec))
    for spec, data in ordered:
        for index, ref in enumerate(data["references"]):
            target = feeds.get(ref["feed"])
            if target is None:
                line, col = spec.locate(["references", index, "feed"])
                close = difflib.get_close_matches(ref["feed"], list(feeds), n=1)
                errors.append(SpecError(spec.file, line, col, json_path(["references", index, "feed"]),
                                        f"no feed named '{ref['feed']}'",
                                        f"did you mean '{close[0]}'?" if close else
                                        "referenced feeds must be specs in the same pipelines/ folder"))
            elif ref["to"] not in {c["name"] for c in target["columns"]}:
                line, col = spec.locate(["references", index, "to"])
                errors.append(SpecError(spec.file, line, col, json_path(["references", index, "to"]),
                                        f"feed '{ref['feed']}' has no column '{ref['to']}'"))
    return errors


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


# --- templates -------------------------------------------------------------------------------------


def _check_templates(project: Project, feeds: list[Feed], specs: dict[str, LoadedSpec]) -> list[SpecError]:
    """Every feed's templates exist and render with undefined variables treated as errors."""
    from streamline.rendering import TemplateProblem, render_feed

    errors: list[SpecError] = []
    for feed in feeds:
        try:
            render_feed(project, feed, feeds)
        except TemplateProblem as problem:
            spec = specs[feed.spec_file]
            path: list[str | int] = ["transform", problem.field]
            line, col = spec.locate(path)
            errors.append(SpecError(feed.spec_file, line, col, json_path(path), problem.message,
                                    problem.hint))
    return errors
