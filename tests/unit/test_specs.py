"""The shipped feed specs: valid, editor-ready, and consistent with each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamline.project import find_project
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "pipelines").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../schemas/feed.schema.json"


def test_the_reference_feeds_are_there() -> None:
    assert [p.stem for p in SPECS] == ["customers", "orders"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_starts_with_the_schema_modeline(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == MODELINE
    assert (path.parent / "../schemas/feed.schema.json").resolve().is_file()


def test_pipelines_are_valid_and_orders_reference_customers() -> None:
    result = validate_paths(find_project(ROOT))
    assert result.errors == []
    feeds = {f.feed: f for f in result.feeds}
    assert set(feeds) == {"customers", "orders"}
    (reference,) = feeds["orders"].references
    assert (reference.column, reference.feed, reference.to) == (
        "customer_id",
        "customers",
        "customer_id",
    )
    for feed in feeds.values():
        assert feed.key and feed.ordering in feed.column_names
        assert feed.raw != feed.mart
