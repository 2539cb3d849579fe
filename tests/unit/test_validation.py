"""Validation as users see it: exact error lines for bad specs, exit codes, positions, the schema.

Every spec in tests/fixtures/specs/invalid/ has an .expected file holding the exact stderr of
`streamline validate NAME.yaml`; each folder in invalid_sets/ is validated as a whole against
invalid_sets/<case>.expected. `pytest --update-golden` rewrites the .expected files from the
current output, to be reviewed as diffs like any golden file.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from streamline import cli
from streamline.errors import SpecError, format_errors, json_path
from streamline.loading import LoadedSpec, load_spec, locate, to_plain
from streamline.project import find_project
from streamline.validation import (
    apply_defaults,
    snowflake_type_problem,
    validate_paths,
    validate_specs,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "specs"
VALID = FIXTURES / "valid"
INVALID = FIXTURES / "invalid"
SETS = FIXTURES / "invalid_sets"
SCHEMA_PATH = ROOT / "schemas" / "feed.schema.json"

VALID_SPECS = sorted(VALID.glob("*.yaml"))
INVALID_SPECS = sorted(INVALID.glob("*.yaml"))
INVALID_SETS = sorted(p for p in SETS.iterdir() if p.is_dir())

# file:line:col: $.path: message
ERROR_LINE = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\$\S*): (?P<msg>.+)$"
)
HINT_LINE = re.compile(r"^    hint: \S.*$")
COUNT_LINE = re.compile(r"^(?P<errors>\d+) errors? in (?P<files>\d+) files?$")
# What must never reach a user: Python reprs of internal objects and Jinja's wording.
# (A bracket right after $, ] or a name is a JSON path part like $['feed.x'], not a list.)
LEAKS = re.compile(r"object at 0x|<class |dict object|Undefined|Unset|\{'|(?<![$\]\w])\['|\\\\")


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A throw-away project: the repo's schema and templates (plus test-only ones), no specs."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "schemas", root / "schemas")
    shutil.copytree(ROOT / "templates", root / "templates")
    shutil.copytree(FIXTURES / "templates", root / "templates", dirs_exist_ok=True)
    (root / "pipelines").mkdir()
    return root


@pytest.fixture
def update(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_expected(expected_file: Path, actual: str, update: bool) -> None:
    if update:
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.is_file(), f"missing {expected_file}; run pytest --update-golden"
    assert actual == expected_file.read_text(encoding="utf-8")


def assert_well_formed(stderr: str) -> None:
    """Error lines, hint lines under them, then one count line that adds up."""
    lines = stderr.splitlines()
    assert lines, "nothing printed"
    count = COUNT_LINE.match(lines[-1])
    assert count, f"last line is not a count: {lines[-1]!r}"
    errors = [ERROR_LINE.match(line) for line in lines[:-1] if not HINT_LINE.match(line)]
    assert all(errors), f"malformed lines in:\n{stderr}"
    assert not HINT_LINE.match(lines[0])
    assert int(count["errors"]) == len(errors)
    assert int(count["files"]) == len({m["file"] for m in errors if m})
    keys = [(m["file"], int(m["line"]), int(m["col"])) for m in errors if m]
    assert keys == sorted(keys), "errors are not sorted by file, line and column"
    assert "Traceback" not in stderr
    assert not LEAKS.search(stderr), f"internal repr leaked:\n{stderr}"


# --- fixtures: invalid specs ---------------------------------------------------------------------


def test_there_are_enough_invalid_fixtures_and_each_has_its_expected_file() -> None:
    assert len(INVALID_SPECS) >= 18
    specs = {p.stem for p in INVALID_SPECS}
    expected = {p.stem for p in INVALID.glob("*.expected")}
    assert specs == expected
    assert {p.name for p in INVALID_SETS} == {p.stem for p in SETS.glob("*.expected")}


@pytest.mark.parametrize("spec", INVALID_SPECS, ids=lambda p: p.stem)
def test_invalid_spec_prints_its_expected_errors(
    spec: Path,
    project_dir: Path,
    update: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(INVALID)
    code, out, err = run(capsys, "--project", str(project_dir), "validate", spec.name)
    assert code == 1
    assert out == ""
    check_expected(spec.with_suffix(".expected"), err, update)
    assert_well_formed(err)
    assert {m["file"] for m in map(ERROR_LINE.match, err.splitlines()) if m} == {spec.name}


@pytest.mark.parametrize("case", INVALID_SETS, ids=lambda p: p.name)
def test_invalid_set_prints_its_expected_errors(
    case: Path,
    project_dir: Path,
    update: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(SETS)
    code, out, err = run(capsys, "--project", str(project_dir), "validate", case.name)
    assert code == 1
    assert out == ""
    check_expected(SETS / f"{case.name}.expected", err, update)
    assert_well_formed(err)


@pytest.mark.parametrize(
    ("case", "asked", "other"),
    [
        ("duplicate_feed", "events.yaml", "events_copy.yaml"),
        ("duplicate_feed", "events_copy.yaml", "events.yaml"),
        ("overlapping_prefix", "orders.yaml", "orders_eu.yaml"),
        ("overlapping_prefix", "orders_eu.yaml", "orders.yaml"),
        ("reference_to_invalid", "orders.yaml", "customers.yaml"),
    ],
)
def test_one_file_is_checked_against_its_pipelines_folder(
    case: str, asked: str, other: str, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clash with a neighbour is reported in the file asked for, whichever sorts first."""
    monkeypatch.chdir(SETS)
    project = find_project(project_dir, pipelines_dir=SETS / case)
    result = validate_paths(project, [Path(case) / asked])
    assert result.files == [f"{case}/{asked}"]
    assert len(result.errors) == 1
    (error,) = result.errors
    assert error.file == f"{case}/{asked}"
    assert f"{case}/{other}" in error.message
    assert result.feeds == []


def test_a_reference_to_a_feed_with_semantic_errors_is_reported(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "specs"
    shutil.copytree(SETS / "reference_unknown_column", folder)
    customers = folder / "customers.yaml"
    customers.write_text(customers.read_text().replace("VARCHAR(32)", "VARCHAR(0)"))
    orders = folder / "orders.yaml"
    orders.write_text(orders.read_text().replace("to: customer_id", "to: customers_id"))
    monkeypatch.chdir(folder)
    result = validate_paths(find_project(project_dir, pipelines_dir=folder), [Path("orders.yaml")])
    assert [e.format() for e in result.errors] == [
        "orders.yaml:18:11: $.references[0].feed: feed 'customers' is defined in customers.yaml, "
        "which has errors (first, line 7: length 0 is outside 1..16777216)\n"
        "    hint: fix customers.yaml first"
    ]  # validating orders.yaml alone still shows why customers does not count


def test_errors_of_several_files_are_sorted_by_file_then_line_and_counted(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["wrong_type.yaml", "multiple_errors.yaml", "bad_enum.yaml", "check_wrong_key.yaml"]
    monkeypatch.chdir(INVALID)
    code, _, err = run(capsys, "--project", str(project_dir), "validate", *names)
    assert code == 1
    assert_well_formed(err)
    body = "".join(
        (INVALID / name).with_suffix(".expected").read_text().rsplit("\n", 2)[0] + "\n"
        for name in sorted(names)
    )
    assert err == body + "8 errors in 4 files\n"


def test_format_errors_sorts_and_counts() -> None:
    errors = [
        SpecError("b.yaml", 2, 1, "$.b", "second file"),
        SpecError("a.yaml", 10, 3, "$.y", "later line", hint="fix it"),
        SpecError("a.yaml", 9, 30, "$.x", "earlier line"),
        SpecError("a.yaml", 9, 30, "$.x", "earlier line", hint="a hint sorts after none"),
    ]
    assert format_errors(errors).splitlines() == [
        "a.yaml:9:30: $.x: earlier line",
        "a.yaml:9:30: $.x: earlier line",
        "    hint: a hint sorts after none",
        "a.yaml:10:3: $.y: later line",
        "    hint: fix it",
        "b.yaml:2:1: $.b: second file",
        "4 errors in 2 files",
    ]
    assert format_errors([errors[0]]).splitlines()[-1] == "1 error in 1 file"


# --- fixtures: valid specs and the shipped pipelines ---------------------------------------------


def test_valid_fixtures_pass_together(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(VALID_SPECS) >= 2
    monkeypatch.chdir(VALID)
    code, out, err = run(capsys, "--project", str(project_dir), "validate", ".")
    assert (code, err) == (0, "")
    assert out == "4 specs valid: payments, events, shipments, signups\n"


@pytest.mark.parametrize("spec", VALID_SPECS, ids=lambda p: p.stem)
def test_each_valid_fixture_passes_alone_with_its_folder_as_context(
    spec: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(VALID)
    result = validate_paths(find_project(project_dir, pipelines_dir=VALID), [spec])
    assert result.errors == []
    assert result.files == [spec.name]
    assert [f.spec_file for f in result.feeds] == [spec.name]


def test_the_shipped_pipelines_are_valid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = run(capsys, "--project", str(ROOT), "validate")
    assert (code, err) == (0, "")
    assert out.startswith(f"{len(list((ROOT / 'pipelines').glob('*.yaml')))} specs valid: ")
    code, out, err = run(capsys, "--project", str(ROOT), "validate", "pipelines/orders.yaml")
    assert (code, out, err) == (0, "1 spec valid: orders\n", "")


def test_minimal_spec_takes_every_default_from_the_schema(project_dir: Path) -> None:
    (feed,) = validate_paths(find_project(project_dir), [VALID / "minimal.yaml"]).feeds
    defs = json.loads(SCHEMA_PATH.read_text())["$defs"]
    assert feed.copy.on_error == defs["copy"]["properties"]["on_error"]["default"]
    assert feed.transform.template == defs["transform"]["properties"]["template"]["default"]
    assert feed.trigger.mode == defs["trigger"]["properties"]["mode"]["default"]
    assert feed.dag.retries == defs["dag"]["properties"]["retries"]["default"]
    assert feed.dag.dag_id == feed.feed
    assert (
        list(feed.source.format.null_markers)
        == (defs["csv_format"]["properties"]["null_markers"]["default"])
    )
    assert [(c.type, c.min) for c in feed.checks] == [("row_count", 1)]


# --- usage errors and tracebacks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "no_such_spec.yaml"], "error: no such file or folder: no_such_spec.yaml\n"),
        (["validate", "--strict"], "error: streamline: unrecognized arguments: --strict\n"),
        (
            ["validate", "empty_folder"],
            "error: no spec files found (looked for *.yaml and *.yml)\n",
        ),
        (["--no-such-option", "validate"], None),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(
    argv: list[str],
    message: str | None,
    project_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty_folder").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "--project", str(project_dir), *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and "Traceback" not in err
    if message is not None:
        assert err == message


def test_a_missing_project_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--project", str(tmp_path / "nowhere"), "validate")
    assert code == 2
    assert err.startswith("error: project folder ") and "Traceback" not in err


def test_only_debug_shows_a_traceback(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("validator exploded")

    monkeypatch.setattr(cli, "validate_paths", broken)
    code, _, err = run(capsys, "--project", str(project_dir), "validate")
    assert code == 1
    assert err == (
        "internal error: RuntimeError: validator exploded (rerun with --debug for a traceback)\n"
    )
    with pytest.raises(RuntimeError, match="validator exploded"):
        cli.main(["--debug", "--project", str(project_dir), "validate"])


def test_the_console_script_exits_1_with_only_error_lines(project_dir: Path) -> None:
    """The real process: exit code, stdout empty, stderr exactly the expected lines."""
    spec = INVALID / "unknown_key.yaml"
    command = [sys.executable, "-m", "streamline.cli", "--project", str(project_dir)]
    for extra in ([], ["--debug"]):  # an invalid spec is not a crash: no traceback either way
        done = subprocess.run(
            [*command, *extra, "validate", spec.name],
            cwd=INVALID,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr == spec.with_suffix(".expected").read_text()


def test_validation_never_raises_whatever_a_value_is(project_dir: Path) -> None:
    """Replace each value of a rich spec by values of other shapes: errors come back, no crash."""
    project = find_project(project_dir)
    events = load_spec(VALID / "minimal.yaml")
    original = load_spec(VALID / "shipments.yaml")
    assert isinstance(events, LoadedSpec) and isinstance(original, LoadedSpec)
    weird: list[Any] = [None, {}, "Bad-Name", -1, [{"a": [1]}], "a" * 300]
    checked = rejected = 0
    for path in _value_paths(original.document):
        for value in weird:
            document = copy.deepcopy(original.document)
            parent = document
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]] = value
            spec = dataclasses.replace(original, document=document, data=to_plain(document))
            feeds, errors = validate_specs(project, [events, spec])
            if errors:  # some values fit (a description may well be 'Bad-Name')
                assert_well_formed(format_errors(errors) + "\n")
                assert [f.feed for f in feeds] == ["events"]
                rejected += 1
            checked += 1
    assert checked > 400
    assert rejected > checked * 0.8


def _value_paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if prefix:
        yield prefix
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in children:
        yield from _value_paths(child, (*prefix, key))


def test_json_path() -> None:
    assert json_path([]) == "$"
    assert json_path(["columns", 2, "name"]) == "$.columns[2].name"
    assert json_path(["transform", "params", "Soft-Delete"]) == "$.transform.params.Soft-Delete"
    assert json_path(["feed.x", "1", "it's"]) == "$['feed.x']['1']['it\\'s']"


# --- positions -----------------------------------------------------------------------------------

LOCATE_DOC = """\
feed: events   # line 1
source:
  prefix: events
  format:
    delimiter: ","
columns:
  - name: event_id
    type: VARCHAR(32)
  - {name: amount, type: "NUMBER(12,2)"}
key: [event_id,
      amount]
ordering:
1: numeric key
"""


@pytest.fixture(scope="module")
def document() -> Any:
    return YAML(typ="rt").load(LOCATE_DOC)


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ([], False, (1, 1)),
        (["feed"], False, (1, 7)),
        (["feed"], True, (1, 1)),
        (["source", "prefix"], False, (3, 11)),
        (["source", "prefix"], True, (3, 3)),
        (["source", "format", "delimiter"], False, (5, 16)),
        (["source", "format", "delimiter"], True, (5, 5)),
        # A block collection is located at its first entry; a missing key at its parent.
        (["source"], False, (3, 3)),
        (["source"], True, (2, 1)),
        (["source", "format", "quote"], False, (5, 5)),
        (["columns"], False, (7, 5)),
        (["columns", 0], False, (7, 5)),
        (["columns", 0, "type"], False, (8, 11)),
        (["columns", 0, "type"], True, (8, 5)),
        (["columns", 5, "type"], False, (7, 5)),
        # Flow collections: items and keys inside braces and brackets.
        (["columns", 1], False, (9, 5)),
        (["columns", 1, "type"], False, (9, 26)),
        (["columns", 1, "type"], True, (9, 20)),
        (["key"], False, (10, 6)),
        (["key", 0], False, (10, 7)),
        (["key", 1], False, (11, 7)),
        # An empty value has no position of its own: point at its key.
        (["ordering"], False, (12, 1)),
        # Keys YAML reads as numbers are named as text in JSON paths.
        (["1"], True, (13, 1)),
        (["nowhere", "deeper"], False, (1, 1)),
    ],
)
def test_locate(document: Any, path: list[str | int], key: bool, expected: tuple[int, int]) -> None:
    assert locate(document, path, key=key) == expected


# --- Snowflake types and defaults ----------------------------------------------------------------


@pytest.mark.parametrize(
    "type_text",
    [
        "NUMBER",
        "NUMBER(38,0)",
        "NUMBER(12, 2)",
        "DECIMAL(5)",
        "INT",
        "FLOAT",
        "DOUBLE PRECISION",
        "VARCHAR",
        "VARCHAR(16777216)",
        "CHAR(2)",
        "BINARY(16)",
        "BOOLEAN",
        "DATE",
        "TIME(9)",
        "TIMESTAMP_NTZ",
        "TIMESTAMP_TZ(3)",
        "VARIANT",
        "GEOGRAPHY",
    ],
)
def test_snowflake_types_that_are_valid(type_text: str) -> None:
    assert snowflake_type_problem(type_text) is None


@pytest.mark.parametrize(
    ("type_text", "problem"),
    [
        ("VARCHAR2(10)", ("'VARCHAR2(10)' is not a Snowflake data type", "did you mean VARCHAR?")),
        ("NUMBER(40,2)", ("precision 40 is outside 1..38", "e.g. NUMBER(38,0)")),
        ("NUMBER(0)", ("precision 0 is outside 1..38", "e.g. NUMBER(38,0)")),
        ("NUMBER(5,6)", ("scale 6 is outside 0..5", "e.g. NUMBER(12,2)")),
        ("NUMBER(1,2,3)", ("NUMBER takes at most 2 parameters, got 3", "e.g. NUMBER(12,2)")),
        (
            "INTEGER(10)",
            ("INTEGER takes no parameters, got 1", "write INTEGER without parentheses"),
        ),
        ("VARCHAR(0)", ("length 0 is outside 1..16777216", "e.g. VARCHAR(255)")),
        ("VARCHAR(,)", ("'VARCHAR(,)' is not a Snowflake data type", "e.g. VARCHAR(64)")),
        ("BINARY(8388609)", ("length 8388609 is outside 1..8388608", "e.g. BINARY(16)")),
        (
            "TIMESTAMP_NTZ(10)",
            ("fractional-second precision 10 is outside 0..9", "e.g. TIMESTAMP_NTZ(3)"),
        ),
        ("varchar", ("'varchar' is not a Snowflake data type", "e.g. VARCHAR(64), NUMBER(12,2)")),
        ("JSONB", ("'JSONB' is not a Snowflake data type", "see Snowflake's data types reference")),
    ],
)
def test_snowflake_types_that_are_not(type_text: str, problem: tuple[str, str]) -> None:
    assert snowflake_type_problem(type_text) == problem


def test_apply_defaults_reads_the_schema_and_leaves_its_input_alone() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["$defs"]["copy"]["properties"]["on_error"]["default"] = "continue"
    schema["$defs"]["dag"]["properties"]["retries"]["default"] = 7
    data: dict[str, Any] = {
        "feed": "events",
        "dag": {"retries": 0},
        "checks": [{"type": "row_count"}, {"type": "range", "column": "x", "max": 1}],
    }
    filled = apply_defaults(data, schema)
    assert filled["copy"]["on_error"] == "continue"  # a default object, then its defaults
    assert filled["dag"]["retries"] == 0  # a given value wins
    assert filled["dag"]["owner"] == "streamline"
    assert filled["transform"] == {"template": "merge_latest", "params": {}}
    assert "source" not in filled  # no default in the schema: nothing invented
    assert filled["checks"][0] == {"type": "row_count", "min": 1, "severity": "error"}  # if/then
    assert filled["checks"][1] == {"type": "range", "column": "x", "max": 1, "severity": "error"}
    assert data == {
        "feed": "events",
        "dag": {"retries": 0},
        "checks": [{"type": "row_count"}, {"type": "range", "column": "x", "max": 1}],
    }


# --- the schema itself ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _subschemas(node: Any, where: str) -> Iterator[tuple[str, Any, bool]]:
    """Every schema below node with its location and whether it sits in a then branch.

    `if` conditions are skipped: they describe values, they do not declare keys.
    """
    if not isinstance(node, dict):
        return
    yield where, node, ".then" in where
    for keyword, value in node.items():
        if keyword in ("properties", "$defs"):
            for name, sub in value.items():
                yield from _subschemas(sub, f"{where}.{keyword}.{name}")
        elif keyword in ("items", "additionalProperties", "propertyNames", "then", "else"):
            yield from _subschemas(value, f"{where}.{keyword}")
        elif keyword in ("allOf", "anyOf", "oneOf"):
            for index, sub in enumerate(value):
                yield from _subschemas(sub, f"{where}.{keyword}[{index}]")


def test_schema_is_a_valid_2020_12_schema(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_property_has_a_description_and_examples_that_validate(
    schema: dict[str, Any],
) -> None:
    missing, invalid = [], []
    for where, node, in_then in _subschemas(schema, "#"):
        for name, prop in node.get("properties", {}).items():
            if prop is True:
                assert in_then, f"{where}.properties.{name} is `true` outside an if/then branch"
                continue
            effective = _resolve(prop, schema)
            missing += [
                f"{where}.properties.{name}: {keyword}"
                for keyword in ("description", "examples")
                if not effective.get(keyword)
            ]
            validator = Draft202012Validator({**effective, "$defs": schema["$defs"]})
            invalid += [
                f"{where}.properties.{name}: {example!r}"
                for example in effective.get("examples", [])
                if not validator.is_valid(example)
            ]
    assert missing == []
    assert invalid == []


def test_every_object_schema_is_closed(schema: dict[str, Any]) -> None:
    """Unknown keys are errors: every object schema says additionalProperties false.

    transform.params is the one open mapping (names checked by propertyNames); a check closes
    itself in each if/then branch, and those branches must cover every check type.
    """
    open_objects = []
    for where, node, _ in _subschemas(schema, "#"):
        if node.get("type") != "object" and "properties" not in node:
            continue
        if node.get("additionalProperties") is False:
            continue
        if where == "#.$defs.transform.properties.params":
            assert "propertyNames" in node
            continue
        branches = node.get("allOf", [])
        if branches and all(
            b.get("then", {}).get("additionalProperties") is False for b in branches
        ):
            covered: set[str] = set()
            for branch in branches:
                condition = branch["if"]["properties"]["type"]
                covered |= {condition["const"]} if "const" in condition else set(condition["enum"])
            assert covered == set(node["properties"]["type"]["enum"]), where
            continue
        open_objects.append(where)
    assert open_objects == []


def test_schema_defaults_are_valid_values(schema: dict[str, Any]) -> None:
    bad = []
    for where, node, _ in _subschemas(schema, "#"):
        if "default" in node:
            validator = Draft202012Validator({**node, "$defs": schema["$defs"]})
            if not validator.is_valid(node["default"]):
                bad.append(where)
    assert bad == []


def test_project_fixture_is_hermetic(project_dir: Path) -> None:
    project = find_project(project_dir)
    assert project.pipelines_dir == (project_dir / "pipelines").resolve()
    assert project.schema_path == project_dir / "schemas" / "feed.schema.json"
    assert list(project.pipelines_dir.iterdir()) == []


def test_a_surprise_in_one_spec_is_its_error_and_the_others_still_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamline import validation

    real = validation._check_feed

    def check(spec: LoadedSpec, data: dict[str, Any]) -> list[SpecError]:
        if data["feed"] == "orders":  # (orders refers to customers, not the other way round)
            raise ValueError("not a safe identifier")
        return real(spec, data)

    monkeypatch.setattr(validation, "_check_feed", check)
    result = validate_paths(find_project(ROOT))
    assert [f.feed for f in result.feeds] == ["customers"]
    [error] = result.errors
    assert error.file == "pipelines/orders.yaml"
    assert error.message == "could not be validated: ValueError: not a safe identifier"


def test_every_name_the_schema_allows_fits_snowflake_s3_and_airflow_limits() -> None:
    """Snowflake identifiers (255 characters), S3 keys (1024 bytes) and Airflow DAG ids (250)
    cannot be exceeded by any valid spec: the schema's own bounds keep them inside, so they need
    no check of their own (the AWS names that can be exceeded are NAME_LIMITS').
    https://docs.snowflake.com/en/sql-reference/identifiers-syntax
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html"""
    from streamline.batches import BATCH_ID_EXAMPLE
    from streamline.layout import Layout
    from streamline.model import TableRef

    schema = json.loads((ROOT / "schemas" / "feed.schema.json").read_text())
    identifier = schema["$defs"]["identifier"]["pattern"]
    longest_name = 1 + int(re.fullmatch(r".*\{0,(\d+)\}\$", identifier)[1])  # type: ignore[index]
    prefix = schema["properties"]["source"]["properties"]["prefix"]["pattern"]
    segment, more = (int(n) for n in re.findall(r"\{0,(\d+)\}", prefix)[1:3])
    longest_prefix = "/".join(["p" * (segment + 1)] * (more + 1))
    name = "n" * longest_name
    orders = next(f for f in validate_paths(find_project(ROOT)).feeds if f.feed == "orders")
    feed = dataclasses.replace(
        orders,
        feed=name,
        raw=TableRef(name, name, name),
        source=dataclasses.replace(orders.source, prefix=longest_prefix),
    )
    layout = Layout.of(feed)
    for ref in (layout.file_format, layout.stage, layout.landing_table, layout.quarantine):
        assert max(len(part) for part in (ref.database, ref.schema, ref.table)) <= 255
    assert len(name) <= 250  # the DAG id: the feed name or dag.dag_id, both identifiers
    # The longest key the pipeline writes: a Firehose object (stream name, version, time, UUID)
    # under the feed's prefix and a batch folder, and the batch's manifest beside it.
    firehose_object = f"{layout.firehose_stream[:64]}-1-2026-01-01-00-00-00-{'u' * 36}.gz"
    folder = f"quarantine/{BATCH_ID_EXAMPLE}/{longest_prefix}/2026/01/01/00/"
    assert len((folder + firehose_object).encode()) <= 1024
    assert len(f"processed/{BATCH_ID_EXAMPLE}/{longest_prefix}.manifest.json".encode()) <= 1024


def test_an_error_in_a_merged_key_is_located_at_the_merging_mapping(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pipelines"
    shutil.copytree(ROOT / "pipelines", folder)
    lines = (folder / "orders.yaml").read_text().splitlines()
    start = lines.index("raw:")
    end = lines.index("mart:") + 4
    merged = [
        *(line.replace("orders", "merged") if line.startswith(("feed:", "  prefix:")) else line
          for line in lines[:start]),
        "raw: &r {database: streamline, schema: raw, table: Customers}",
        "mart: {<<: *r, schema: mart}",
        *lines[end:],
    ]  # fmt: skip
    (folder / "merged.yaml").write_text("\n".join(merged) + "\n")
    monkeypatch.chdir(tmp_path)
    result = validate_paths(find_project(project_dir, pipelines_dir=folder))
    located = {(e.file, e.line, e.col, e.json_path) for e in result.errors}
    line = start + 1
    assert located == {
        ("pipelines/merged.yaml", line, 52, "$.raw.table"),
        ("pipelines/merged.yaml", line + 1, 7, "$.mart.table"),  # the merging mapping
    }
    assert sorted(f.feed for f in result.feeds) == ["customers", "orders"]


def _edited_pipelines(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> Any:
    """Validate a copy of pipelines/ with {file: (old, new)} text edits; the result."""
    folder = tmp_path / "pipelines"
    shutil.copytree(ROOT / "pipelines", folder)
    for name, (old, new) in edits.items():
        path = folder / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))
    return validate_paths(find_project(ROOT, pipelines_dir=folder), base=tmp_path)


def test_queue_and_dead_letter_queue_names_are_unique_across_feeds_in_any_mode(
    tmp_path: Path,
) -> None:
    same = _edited_pipelines(
        tmp_path / "same",
        {
            "customers.yaml": ("  mode: poll", "  mode: poll\n  queue: shared-q"),
            "orders.yaml": ("  mode: poll", "  mode: poll\n  queue: shared-q"),
        },
    )
    assert [e.json_path for e in same.errors] == ["$.trigger.queue"]
    assert "SQS queue 'shared-q' is already used by pipelines/" in same.errors[0].message
    dlq = _edited_pipelines(
        tmp_path / "dlq",
        {
            "customers.yaml": ("  mode: poll", "  mode: poll\n  queue: zz"),
            "orders.yaml": ("  mode: poll", "  mode: poll\n  queue: zz-dlq"),
        },
    )
    assert len(dlq.errors) == 1 and "'zz-dlq' is already used" in dlq.errors[0].message


def test_the_error_dags_id_is_reserved(tmp_path: Path) -> None:
    result = _edited_pipelines(
        tmp_path, {"orders.yaml": ("feed: orders", "feed: streamline_invalid_specs")}
    )
    assert any(
        e.json_path == "$.feed" and "is StreamLine's own" in e.message for e in result.errors
    )


def test_nan_and_infinity_are_not_numbers(tmp_path: Path) -> None:
    result = _edited_pipelines(
        tmp_path,
        {
            "orders.yaml": ("    max_orphan_ratio: 0.2", "    max_orphan_ratio: .nan"),
            "customers.yaml": ("  poll_interval_seconds: 2", "  poll_interval_seconds: .nan"),
        },
    )
    # NaN passes every minimum and maximum (no comparison with it is true).
    assert sorted((e.file, e.json_path, e.message) for e in result.errors) == [
        ("pipelines/customers.yaml", "$.trigger.poll_interval_seconds", "not a finite number"),
        ("pipelines/orders.yaml", "$.references[0].max_orphan_ratio", "not a finite number"),
    ]


def test_a_spec_that_expands_without_bound_is_one_error_of_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    shutil.copytree(ROOT / "pipelines", folder)
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 9)]
    (folder / "bomb.yaml").write_text("\n".join(bomb) + "\n")  # 9^9 values once expanded
    result = validate_paths(find_project(ROOT, pipelines_dir=folder), base=tmp_path)
    assert [(e.file, e.message) for e in result.errors] == [
        ("pipelines/bomb.yaml", "the spec expands to more than 100,000 values")
    ]
    assert sorted(f.feed for f in result.feeds) == ["customers", "orders"]


def test_invisible_characters_are_shown_escaped_in_errors() -> None:
    from streamline.schema import _show

    assert _show("cr\r") == "'cr\\r'"
    assert _show("a\nb") == "'a\\nb'"
    assert _show("x\u0085y") == "'x\\u0085y'"  # NEL
    assert _show("p\u2028q") == "'p\\u2028q'"  # line separator
    assert _show("it's é") == "'it\\'s é'"


def test_the_template_check_keeps_the_sql_the_loader_would_render(project_dir: Path) -> None:
    """result.rendered is each feed's SQL as render_feed renders it over result.feeds, with the
    settings given; a feed whose references are not all among result.feeds has none (render_feed
    would fail for it)."""
    from streamline.rendering import RenderSettings, render_feed

    for spec in (ROOT / "pipelines").glob("*.yaml"):
        shutil.copy(spec, project_dir / "pipelines" / spec.name)
    project = find_project(project_dir)
    settings = RenderSettings(lake_url="s3://another-lake/prefix")
    result = validate_paths(project, settings=settings)
    assert result.ok and set(result.rendered) == {"customers", "orders"}
    for feed in result.feeds:
        assert result.rendered[feed.feed] == render_feed(
            project, feed, result.feeds, settings=settings
        )
    assert "s3://another-lake/prefix" in result.rendered["orders"]["ddl"]
    alone = validate_paths(project, [project_dir / "pipelines" / "orders.yaml"])
    assert [f.feed for f in alone.feeds] == ["orders"] and alone.rendered == {}
