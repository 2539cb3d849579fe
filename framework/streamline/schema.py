"""The JSON Schema stage: check a spec against schemas/feed.schema.json and fill its defaults.

jsonschema's errors are translated here into located SpecErrors with a message a person can act on.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import math
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from streamline.errors import SpecError, json_path
from streamline.loading import LoadedSpec

_REQUIRED_RE = re.compile(r"^'(?P<name>.*)' is a required property$")
IDENTIFIER_HINT = "use lower-case letters, digits and _, starting with a letter or _"


@lru_cache(maxsize=256)
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """A JSON Schema pattern compiled with ECMA-262's meaning of `$`: the end of the text only.

    JSON Schema patterns are ECMA-262 regular expressions
    (https://json-schema.org/draft/2020-12/json-schema-core#section-6.4), where `$` without the
    multiline flag matches only at the end of the input; Python's `$`, which jsonschema uses as
    is, also matches before a final newline, so "orders\n" would pass `^[a-z]+$`. Each `$` that is
    an anchor (not escaped, not in a [...] class) becomes `\\Z`.
    """
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


SpecValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern}
)
"""Draft 2020-12 with patterns matched as ECMA-262 matches them (ecma_regex)."""


def check_schema(spec: LoadedSpec, validator: Any) -> list[SpecError]:
    """Schema errors of one spec, each at the line of the offending key or value."""
    found: list[SpecError] = []
    for error in validator.iter_errors(spec.data):
        found.extend(_schema_error(spec, error))
    for path in _non_finite(spec.data, []):  # YAML's .nan and .inf pass JSON Schema's "number"
        line, col = spec.locate(path)
        found.append(SpecError(
            spec.file, line, col, json_path(path), "not a finite number",
            "write a number (YAML's .nan and .inf are not numbers in SQL or Airflow)",
        ))  # fmt: skip
    unique = {(e.line, e.col, e.json_path, e.message): e for e in found}
    return sorted(unique.values())


def _non_finite(value: Any, path: list[str | int]) -> list[list[str | int]]:
    """Paths of the NaN and infinite floats in a plain spec value."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _non_finite(item, [*path, key])]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _non_finite(item, [*path, index])]
    return []


def _schema_error(spec: LoadedSpec, error: ValidationError) -> list[SpecError]:
    """One schema error as SpecErrors: anyOf/oneOf noise collapsed, messages in spec terms."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _alternatives_error(spec, error)
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_keys(spec, error, path)
    if "propertyNames" in error.absolute_schema_path:
        # The error sits on the mapping; the culprit is one of its keys.
        path = [*path, str(error.instance)]
        line, col = spec.locate(path, key=True)
        message = f"key {_show(error.instance)} does not match '{error.validator_value}'"
        hint = _pattern_hint(error, path)
        return [SpecError(spec.file, line, col, json_path(path), message, hint)]
    line, col = spec.locate(path)
    message, hint = error.message, None
    instance: Any = error.instance
    expected: Any = error.validator_value
    if error.validator == "required":
        match = _REQUIRED_RE.match(error.message)
        name = match["name"] if match else "?"
        message = f"missing required key '{name}'"
        line, col = spec.locate(path, key=True)
        hint = _describe(error.schema, name)
    elif error.validator == "pattern":
        message = f"{_show(instance)} does not match '{expected}'"  # jsonschema repr()s it
        hint = _pattern_hint(error, path)
    elif error.validator == "type":
        message = f"{_show(instance)} is not of type {_types(expected)}"
        hint = _type_hint(instance, expected)
    elif error.validator == "enum":
        allowed = list(expected)
        message = f"{_show(instance)} is not one of {', '.join(map(_show, allowed))}"
        hint = did_you_mean(instance, allowed)
    elif error.validator == "uniqueItems" and isinstance(instance, list):
        for index, item in enumerate(instance):
            if any(_same(item, other) for other in instance[:index]):
                path = [*path, index]
                line, col = spec.locate(path)
                message = f"{_show(item)} appears more than once"
                break
    elif error.validator == "minItems" and isinstance(instance, list):
        message = f"has {len(instance)} items; needs at least {expected}"
        if not instance:
            message = "must not be empty"
    elif error.validator == "maxItems" and isinstance(instance, list):
        message = f"has {len(instance)} items; at most {expected} allowed"
    elif error.validator == "maxLength" and isinstance(instance, str):
        message = f"is {len(instance)} characters long; at most {expected} allowed"
    return [SpecError(spec.file, line, col, json_path(path), message, hint)]


def _alternatives_error(spec: LoadedSpec, error: ValidationError) -> list[SpecError]:
    """Collapse an anyOf/oneOf failure to the alternative that came closest."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    path = list(error.absolute_path)
    if all(sub.validator == "required" for sub in error.context or []):
        names = [m["name"] for s in error.context or [] if (m := _REQUIRED_RE.match(s.message))]
        line, col = spec.locate(path, key=True)
        wanted = " or ".join(f"'{name}'" for name in dict.fromkeys(names))
        return [SpecError(spec.file, line, col, json_path(path), f"missing required key {wanted}")]
    # A branch whose type does not fit the value says little; prefer one that got further.
    fitting = [subs for subs in branches.values() if not any(_wrong_type(s) for s in subs)]
    if not fitting:
        kinds: list[str] = []
        for sub in (sub for subs in branches.values() for sub in subs):
            value: Any = sub.validator_value
            kinds.extend(
                v for v in (value if isinstance(value, list) else [value]) if v not in kinds
            )
        line, col = spec.locate(path)
        message = f"{_show(error.instance)} is not of type {_types(kinds)}"
        hint = _type_hint(error.instance, kinds)
        return [SpecError(spec.file, line, col, json_path(path), message, hint)]
    closest = best_match([sub for subs in fitting for sub in subs])
    return _schema_error(spec, closest if closest is not None else error)


def _describe(schema: Any, name: str) -> str | None:
    """The first sentence of the schema's description of property name: what it is for."""
    prop = schema.get("properties", {}).get(name) if isinstance(schema, dict) else None
    text = prop.get("description") if isinstance(prop, dict) else None
    return f"add {name}: {text.split('. ')[0].rstrip('.')}" if isinstance(text, str) else None


def _wrong_type(error: ValidationError) -> bool:
    return error.validator == "type" and not error.relative_path


def _unknown_keys(
    spec: LoadedSpec, error: ValidationError, path: list[str | int]
) -> list[SpecError]:
    allowed = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    instance: Any = error.instance
    out = []
    for key in instance:
        if key in allowed:
            continue
        line, col = spec.locate([*path, key], key=True)
        hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(allowed)}"
        out.append(
            SpecError(spec.file, line, col, json_path([*path, key]), f"unknown key '{key}'", hint)
        )
    return out


def did_you_mean(value: Any, choices: Sequence[Any]) -> str | None:
    close = closest(value, choices)
    return f"did you mean '{close}'?" if close else None


def closest(value: Any, choices: Sequence[Any]) -> str | None:
    """The choice value was most likely meant to be: a near spelling, a prefix or another case."""
    if not isinstance(value, str) or not value:
        return None
    texts = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(value, texts, n=1)
    close += [c for c in texts if c.startswith(value) or value.startswith(c)]
    close += [c for c in texts if c.lower() == value.lower()]
    return close[0] if close else None


def _pattern_hint(error: ValidationError, path: Sequence[str | int]) -> str | None:
    """What a value matching the pattern looks like, with a corrected value when one is easy."""
    pattern = error.schema.get("pattern", "") if isinstance(error.schema, dict) else ""
    value = error.instance if isinstance(error.instance, str) else ""
    if value != value.strip() and ecma_regex(pattern).search(value.strip()):
        return f"remove the leading or trailing space or line break: '{value.strip()}'"
    if path[:1] == ["columns"] and path[-1:] == ["type"]:
        guide, fix = "write Snowflake types in upper case", value.upper()
        example = "VARCHAR(64) or NUMBER(12,2)"
    elif list(path) == ["source", "prefix"]:
        guide = "use lower-case folder names (letters, digits, _ and -) joined by /"
        fix, example = "/".join(part for part in value.lower().split("/") if part), "'eu/orders'"
    elif pattern.startswith(("^[a-z_]", "^[a-z]")):
        guide = IDENTIFIER_HINT
        if not pattern.startswith("^[a-z_]"):
            guide = "use lower-case letters, digits and _, starting with a letter"
        fix, example = re.sub(r"[^a-z0-9_]", "_", value.lower()), "'orders_v1'"
    elif pattern.startswith("^[^{}"):
        return "braces and line breaks are not allowed here"
    else:
        return None
    if fix and fix != value and ecma_regex(pattern).search(fix):
        example = f"'{fix}'"
    return f"{guide}, e.g. {example}"


def _type_hint(value: Any, expected: Any) -> str | None:
    kinds = expected if isinstance(expected, list) else [expected]
    if isinstance(value, dt.date) and "string" in kinds:
        return "quote the value to make it a string"
    if value is None:
        return "the key has no value; write one after the colon"
    if isinstance(value, str) and kinds == ["boolean"]:
        return "write true or false"
    if isinstance(value, str) and {"number", "integer"} & set(kinds) and _is_number(value):
        return "remove the quotes to make it a number"
    if isinstance(value, bool | int | float) and kinds == ["string"]:
        return "quote the value to make it a string"
    if "array" in kinds and not isinstance(value, list | dict):
        return f"write a list, e.g. [{value if isinstance(value, str) else _show(value)}]"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _escaped(ch: str) -> str:
    if ch in "\\'":
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch.isprintable() and ch not in "\u2028\u2029":
        return ch
    return repr(ch)[1:-1] if ch in "\r\t" else f"\\u{ord(ch):04x}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        # Every invisible or line-breaking character shown escaped (\r, NEL, U+2028 ...), so
        # the error line shows what is there.
        return "'" + "".join(_escaped(ch) for ch in value) + "'"
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
    items = [f"'{names.get(v, v)}'" for v in (value if isinstance(value, list) else [value])]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


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
        if "if" in part and SpecValidator(part["if"]).is_valid(instance):
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
