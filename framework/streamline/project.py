"""Where a StreamLine project keeps its specs, templates and schema."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from streamline.errors import UsageError

SCHEMA_RELPATH = Path("schemas") / "feed.schema.json"
_BUNDLED = Path(__file__).parent / "_bundled"
CONSTRAINTS_RELPATH = Path("infra") / "mwaa"


@dataclass(frozen=True)
class Project:
    """The folders of one project: pipelines/, templates/, schemas/ and infra/mwaa/."""

    root: Path
    pipelines_dir: Path
    templates_dir: Path
    schema_path: Path
    constraints_dir: Path = _BUNDLED / CONSTRAINTS_RELPATH
    """The constraint files of each Amazon MWAA version (streamline.mwaa)."""


def find_project(root: Path | None = None, pipelines_dir: Path | None = None) -> Project:
    """Locate the project: an explicit root, $STREAMLINE_PROJECT_DIR, a parent of the working
    directory holding schemas/feed.schema.json, or the copy bundled in the installed package.

    Templates, the schema and the MWAA constraint files fall back to the bundled copies, so a
    feeds repository only needs pipelines/ (and may add its own templates/transforms/).
    """
    if root is None and os.environ.get("STREAMLINE_PROJECT_DIR"):
        root = Path(os.environ["STREAMLINE_PROJECT_DIR"])
    if root is None:
        root = _search_upwards(Path.cwd()) or Path.cwd()
    root = root.resolve()
    if not root.is_dir():
        raise UsageError(f"project folder {root} does not exist")
    templates = root / "templates"
    schema = root / SCHEMA_RELPATH
    constraints = root / CONSTRAINTS_RELPATH
    return Project(
        root=root,
        pipelines_dir=(pipelines_dir or root / "pipelines").resolve(),
        templates_dir=templates if templates.is_dir() else _BUNDLED / "templates",
        schema_path=schema if schema.is_file() else _BUNDLED / SCHEMA_RELPATH,
        constraints_dir=constraints if constraints.is_dir() else _BUNDLED / CONSTRAINTS_RELPATH,
    )


def _search_upwards(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / SCHEMA_RELPATH).is_file():
            return folder
    return None


@cache
def load_schema(schema_path: Path) -> dict[str, Any]:
    """The feed JSON Schema, parsed once per process."""
    try:
        schema: dict[str, Any] = json.loads(schema_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the feed schema {schema_path}: {exc}") from exc
    return schema
