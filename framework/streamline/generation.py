"""Write what Airflow needs for each valid feed: rendered SQL, dag-factory configs, loader file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from streamline.dagconfig import build_dag_config
from streamline.model import Feed
from streamline.project import Project
from streamline.rendering import RenderSettings, render_feed

SQL_FOLDER = "streamline_sql"
CONFIG_FOLDER = "streamline_configs"
LOADER_FILE = "streamline_dags.py"

LOADER_SOURCE = '''\
"""StreamLine airflow DAGs: one per feed spec in pipelines/, built at parse time by dag-factory.

Written by `streamline generate`. A broken spec shows as an import error of this file naming the
spec's file and line; the other feeds still load. Set STREAMLINE_PROJECT_DIR to move the project.
"""

import os
from pathlib import Path

from streamline.dagloader import load_dags

_HERE = Path(__file__).resolve().parent
{sqs_line}load_dags(
    globals(),
    project_dir=os.environ.get("STREAMLINE_PROJECT_DIR", {project_dir!r}),
    sql_dir=_HERE / {sql_folder!r},
)
'''


BUNDLE_PROJECT_FOLDER = "streamline_project"
"""Where a self-contained dags folder (the MWAA bundle) keeps pipelines/, templates/, schemas/."""

BUNDLE_LOADER_SOURCE = '''\
"""StreamLine airflow DAGs: one per feed spec in {project_folder}/pipelines/, built at parse time.

Written by `streamline deploy` for a self-contained dags folder (Amazon MWAA): the specs, templates
and schema travel beside this file, so no path of the build machine is baked in. A broken spec
shows as an import error of this file naming the spec's file and line; the other feeds still load.
These files were built for one framework wheel (plugins.zip, requirements.txt): on workers that
have another, this file fails as one import error naming both versions.
"""

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

BUILT_FOR = {built_for!r}
_dist = metadata.distribution("streamline")
# An editable install (PEP 610) is a developer's own checkout: it has no wheel version to match.
_install = json.loads(_dist.read_text("direct_url.json") or "{{}}").get("dir_info", {{}})
if BUILT_FOR and _dist.version != BUILT_FOR and not _install.get("editable"):
    raise ImportError(
        f"these DAGs were built for the streamline wheel {{BUILT_FOR}}, but the workers have "
        f"{{_dist.version}}. The environment and the DAGs must come from one deploy: update the "
        "MWAA environment to the requirements.txt and plugins.zip object versions that "
        "`streamline deploy` printed, then deploy the DAGs of that same bundle"
    )

from streamline.dagloader import load_dags

_HERE = Path(__file__).resolve().parent
# Rendered SQL goes outside the dags folder, which MWAA keeps as a copy of S3.
_SQL_DIR = os.environ.get("STREAMLINE_SQL_DIR") or os.path.join(
    tempfile.gettempdir(), "streamline_sql"
)
{sqs_line}load_dags(globals(), project_dir=_HERE / {project_folder!r}, sql_dir=_SQL_DIR)
'''


@dataclass
class Written:
    """Files written or left unchanged by a generation."""

    changed: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


def write_text(path: Path, text: str, written: Written | None = None) -> bool:
    """Write text atomically, only when it differs from what is there; True when it changed."""
    try:
        if path.read_text(encoding="utf-8") == text:
            if written is not None:
                written.unchanged.append(path)
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    if written is not None:
        written.changed.append(path)
    return True


def write_feed_sql(
    project: Project,
    feed: Feed,
    feeds: Sequence[Feed],
    sql_dir: Path,
    settings: RenderSettings | None = None,
    written: Written | None = None,
) -> str:
    """Render the feed's steps into sql_dir/<feed>/<step>.sql; returns the feed's schema
    fingerprint (rendering.schema_fingerprint), which its DAG runs check."""
    from streamline.rendering import schema_fingerprint

    rendered = render_feed(project, feed, feeds, settings=settings)
    for step, sql in rendered.items():
        write_text(sql_dir / feed.feed / f"{step}.sql", sql, written)
    return schema_fingerprint(rendered["ddl"], feed.key)


def dump_yaml(data: Any) -> str:
    """YAML text of a plain dict, keys in insertion order."""
    import io

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.representer.ignore_aliases = lambda *args: True  # repeat shared values, no &id001
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def generate(
    project: Project,
    feeds: Sequence[Feed],
    out_dir: Path,
    settings: RenderSettings | None = None,
    sqs_url_prefix: str | None = None,
) -> Written:
    """Write a dags folder: the loader file, SQL per feed and the dag-factory config per feed."""
    out_dir = out_dir.resolve()
    written = Written()
    sql_dir = out_dir / SQL_FOLDER
    for feed in feeds:
        schema = write_feed_sql(project, feed, feeds, sql_dir, settings, written)
        config = build_dag_config(feed, sql_dir, sqs_url_prefix, schema)
        header = (
            f"# dag-factory config of feed {feed.feed}, generated from {feed.spec_file}.\n"
            "# Review only: streamline_dags.py builds the DAG from the spec itself.\n"
        )
        write_text(
            out_dir / CONFIG_FOLDER / f"{feed.feed}.yaml", header + dump_yaml(config), written
        )
    sqs_line = (
        f"os.environ.setdefault('STREAMLINE_SQS_URL_PREFIX', {sqs_url_prefix!r})\n"
        if sqs_url_prefix
        else ""
    )
    loader = LOADER_SOURCE.format(
        project_dir=str(project.root), sql_folder=SQL_FOLDER, sqs_line=sqs_line
    )
    write_text(out_dir / LOADER_FILE, loader, written)
    return written


def write_bundle_loader(
    out_dir: Path,
    sqs_url_prefix: str | None = None,
    written: Written | None = None,
    built_for: str | None = None,
) -> Path:
    """Write the relocatable loader file that finds the project in out_dir/streamline_project/.

    built_for is the framework wheel's version (e.g. '0.1.0+g1a2b3c4d5e6f'): the loader then
    refuses to build DAGs on workers with another installed wheel.
    """
    sqs_line = (
        f"os.environ.setdefault('STREAMLINE_SQS_URL_PREFIX', {sqs_url_prefix!r})\n"
        if sqs_url_prefix
        else ""
    )
    path = out_dir / LOADER_FILE
    write_text(
        path,
        BUNDLE_LOADER_SOURCE.format(
            project_folder=BUNDLE_PROJECT_FOLDER, sqs_line=sqs_line, built_for=built_for or ""
        ),
        written,
    )
    return path
