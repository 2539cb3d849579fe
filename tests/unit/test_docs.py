"""The README stays the user's manual: it names what the code defines."""

from __future__ import annotations

from pathlib import Path

from streamline.cli import build_parser
from streamline.layout import LEDGER_COLUMNS, LEDGER_STATUSES
from streamline.project import load_schema

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_describes_every_ledger_column() -> None:
    for column in LEDGER_COLUMNS:
        assert f"| `{column.name.upper()}` | {column.description} |" in README, column.name
    for status in LEDGER_STATUSES:
        assert status in README


def test_the_readme_lists_every_command() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # type: ignore[union-attr]
    for name in commands:
        assert f"`streamline {name}" in README, name


def test_the_readme_names_every_top_level_spec_key() -> None:
    schema = load_schema(ROOT / "schemas" / "feed.schema.json")
    table = README.split("### What a spec says", 1)[1].split("\n#", 1)[0]
    for key in schema["properties"]:
        assert f"`{key}`" in table or f"`{key}." in table, key


def test_the_local_runtime_doc_gives_the_probe_figure_and_lists_every_gap() -> None:
    from streamline.local.fidelity import PROBES

    doc = (ROOT / "docs" / "local-runtime.md").read_text(encoding="utf-8")
    gaps = [p for p in PROBES if p.gap]
    figure = f"**{len(PROBES) - len(gaps)} of {len(PROBES)} probes behave as Snowflake documents**"
    assert figure in doc
    for probe in gaps:
        assert f"| `{probe.name}` |" in doc, probe.name
