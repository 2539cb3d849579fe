"""`--trigger poll|event`: every feed of a local run in one trigger mode, pipelines/ untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamline.errors import StreamlineError
from streamline.model import Feed
from streamline.project import Project


def override_trigger(project: Project, mode: str, folder: Path) -> tuple[Project, list[Feed]]:
    """A copy of the project in folder whose specs all say `trigger.mode: mode` (comments and
    layout kept; templates and schemas symlinked), and its validated feeds.

    Raises StreamlineError when the copy does not validate (e.g. a spec that event mode refuses).
    """
    from ruamel.yaml import YAML

    from streamline.validation import validate_paths

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "pipelines").mkdir(parents=True)
    for name in ("templates", "schemas"):
        if (project.root / name).is_dir():
            (folder / name).symlink_to((project.root / name).resolve())
    yaml = YAML()  # round trip: comments and layout survive
    yaml.preserve_quotes = True
    for spec in sorted(project.pipelines_dir.iterdir()):
        if spec.suffix not in (".yaml", ".yml"):
            continue
        data = yaml.load(spec.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            trigger = data.setdefault("trigger", {})
            if isinstance(trigger, dict):
                trigger["mode"] = mode
        with (folder / "pipelines" / spec.name).open("w", encoding="utf-8") as out:
            yaml.dump(data, out)
    copy = Project(
        root=folder.resolve(),
        pipelines_dir=(folder / "pipelines").resolve(),
        templates_dir=project.templates_dir,
        schema_path=project.schema_path,
        constraints_dir=project.constraints_dir,
    )
    result = validate_paths(copy, base=copy.root)
    if result.errors:
        first = result.errors[0]
        raise StreamlineError(
            f"specs with trigger.mode {mode} do not validate ({len(result.errors)} errors; "
            f"first: {first})"
        )
    return copy, list(result.feeds)
