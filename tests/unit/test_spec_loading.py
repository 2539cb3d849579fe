"""Specs read through libyaml's C parser give the very data ruamel's round-trip parser gives, and
their positions (ruamel's) are parsed only when an error needs them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from streamline import loading
from streamline.errors import SpecError
from streamline.loading import LoadedSpec, load_spec, plain_by_libyaml, to_plain
from streamline.project import find_project
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted(
    [*ROOT.glob("tests/**/*.yaml"), *ROOT.glob("pipelines/*.yaml"), *ROOT.glob("docs/**/*.yaml")]
)

SCALARS = [
    # booleans and null, YAML 1.2 (ruamel) against 1.1 (PyYAML's own resolver)
    "true", "True", "TRUE", "tRue", "false", "yes", "no", "on", "off", "Yes", "y", "n", "Off",
    "null", "Null", "NULL", "~", "", "nULL", "none",
    # numbers
    "0", "7", "-3", "+12", "-0", "010", "00", "-01", "0o17", "0x1F", "0b101", "1_000", "0_1",
    "1.5", "-0.25", "+12.0", "0.1", "1.", ".5", "-.5", "+.5", "1e3", "1.0e3", "1E3", "1e-3",
    "1.5_0", "0.", ".inf", "-.Inf", ".nan", "3.14159265358979323846", "12345678901234567890",
    # timestamps and other resolvers
    "2024-01-01", "2024-01-01 10:00:00", "2024-01-01T10:00:00Z", "1:20", "=", "<<",
    # strings that merely look like something
    "1.2.3", "1-2", "v1.0", "-", "- x", "NUMBER(12,2)", "YYYY-MM-DD HH24:MI:SS.FF3",
    "'quoted 1'", '"double \\t quoted"', "'true'", '"0x1F"', "caf\u00e9", "a: b",
]  # fmt: skip


def strictly_equal(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (True == 1 and 1 == 1.0 are not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b or (a != a and b != b))  # NaN


def ruamel_plain(text: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return to_plain(yaml.load(text))


@pytest.mark.parametrize("scalar", SCALARS)
@pytest.mark.parametrize("shape", ["key: {}\n", "key: [{}]\n", "key:\n  - {}\n"])
def test_a_scalar_reads_as_ruamel_reads_it_or_is_left_to_ruamel(scalar: str, shape: str) -> None:
    text = shape.format(scalar)
    try:
        expected = ruamel_plain(text)
    except Exception:
        assert plain_by_libyaml(text) is None
        return
    fast = plain_by_libyaml(text)
    assert fast is None or strictly_equal(fast, expected), (text, fast, expected)


def test_plain_scalars_of_a_usual_spec_take_the_fast_path() -> None:
    """The fast path is not left to ruamel for what specs usually hold."""
    for scalar in ("true", "null", "7", "-3", "0.1", "NUMBER(12,2)", "'|'", "abc def", ""):
        assert plain_by_libyaml(f"key: {scalar}\n") is not None, scalar


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_of_the_repository_reads_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    fast = plain_by_libyaml(text)
    if fast is not None:
        assert strictly_equal(fast, ruamel_plain(text))


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1, 2]\nb: *x\nc: {d: *x}\n",  # aliases are copies, as to_plain makes them
        "a: |\n  line one\n  line two\nb: >\n  folded\n  text\n",
        "a: 'it''s'\nb: \"tab\\tand \\u00e9\"\nc: plain # comment\n",
        "---\na: 1\n...\n",
        "\ufeffa: 1\n",
        "a: {b: [1, {c: null}], d: []}\ne: {}\n",
    ],
)
def test_structures_read_the_same(text: str) -> None:
    fast = plain_by_libyaml(text)
    assert fast is not None and strictly_equal(fast, ruamel_plain(text))


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # duplicate key: ruamel's error, with both lines
        "a: 1\n1: 2\n",  # a key ruamel types
        "? [a]\n: 1\n",  # a complex key
        "a: !!str 12\n",  # an explicit tag
        "base: &b {x: 1}\nc:\n  <<: *b\n",  # a merge key
        "%YAML 1.1\n---\na: yes\n",  # a directive: YAML 1.1 reads yes as true
        "a: &x [1, *x]\n",  # a recursive alias
        "a: " + "[" * 2000 + "]" * 2000 + "\n",  # deeper than Python recurses
        "- a\n- b\n",  # not a mapping
        "",  # empty
        "a: 1\n---\nb: 2\n",  # two documents
        "a: [1, 2\n",  # a syntax error: ruamel's, with its position and hint
        "a:\n\t- 1\n",  # a tab
    ],
)
def test_what_libyaml_might_read_otherwise_is_left_to_ruamel(text: str) -> None:
    assert plain_by_libyaml(text) is None


def test_a_spec_loaded_without_positions_finds_them_when_asked(tmp_path: Path) -> None:
    spec_file = ROOT / "pipelines" / "orders.yaml"
    eager = load_spec(spec_file)
    lazy = load_spec(spec_file, positions=False)
    assert isinstance(eager, LoadedSpec) and isinstance(lazy, LoadedSpec)
    assert lazy.document is None  # not parsed by ruamel yet
    assert strictly_equal(lazy.data, eager.data)
    for path in (["feed"], ["columns", 2, "type"], ["key"], ["checks", 0], ["no", "such"]):
        assert lazy.locate(path) == eager.locate(path)
        assert lazy.locate(path, key=True) == eager.locate(path, key=True)
    assert lazy.document is not None  # parsed once, then kept
    broken = tmp_path / "broken.yaml"
    broken.write_text("feed: x\nfeed: y\n", encoding="utf-8")
    error = load_spec(broken, positions=False)
    assert isinstance(error, SpecError) and (error.line, error.col) == (2, 1)
    assert error == load_spec(broken)


def test_valid_specs_are_validated_without_a_position_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positions only name where an error is: valid specs (references included) never pay
    ruamel's parse; an invalid one does, and its error is where ruamel puts it."""
    root = tmp_path / "project"
    for folder in ("schemas", "templates", "pipelines"):
        shutil.copytree(ROOT / folder, root / folder)
    project = find_project(root)
    parsed: list[str] = []
    real = loading._round_trip

    def counted(text: str) -> Any:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(loading, "_round_trip", counted)
    result = validate_paths(project, base=root)
    assert result.ok and {f.feed for f in result.feeds} == {"customers", "orders"}
    assert parsed == []
    orders = root / "pipelines" / "orders.yaml"
    orders.write_text(orders.read_text().replace("feed: customers", "feed: custmers"))
    result = validate_paths(project, base=root)
    assert len(parsed) == 1
    (error,) = result.errors
    assert error.message == "no feed named 'custmers'"
    expected = load_spec(orders, base=root)
    assert isinstance(expected, LoadedSpec)
    assert (error.line, error.col) == expected.locate(["references", 0, "feed"])
