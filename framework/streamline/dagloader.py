"""Build Airflow DAGs from pipelines/ at parse time, through dag-factory.

Valid feeds become DAGs; invalid specs become one import error that names every file and line,
without hiding the feeds that are fine.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")

from streamline import airflow_compat
from streamline.dagconfig import build_dag_config
from streamline.errors import SpecError, SpecsInvalid, format_errors
from streamline.generation import write_feed_sql
from streamline.model import Feed
from streamline.project import Project, find_project
from streamline.rendering import RenderSettings
from streamline.validation import RESERVED_DAG_ID, ValidationResult, validate_paths

log = logging.getLogger(__name__)
DAG = airflow_compat.dag_class()
ERROR_DAG_ID = RESERVED_DAG_ID
VALIDATED_FOLDER = ".validated"
"""Under the SQL folder: the last validation's result, by the content it was made from."""
PACKAGE_DIR = Path(__file__).resolve().parent


class InvalidSpecsDag(DAG):  # type: ignore[misc,valid-type]
    """A DAG that never bags: its validation raises the spec errors, which Airflow records as an
    import error of the loader file while the file's other DAGs load normally."""

    streamline_errors: list[SpecError]

    def validate(self) -> None:
        raise SpecsInvalid(self.streamline_errors)


def default_sql_dir() -> Path:
    """Where parse-time SQL goes when the loader is not given a folder."""
    if os.environ.get("STREAMLINE_SQL_DIR"):
        return Path(os.environ["STREAMLINE_SQL_DIR"])
    home = os.environ.get("AIRFLOW_HOME")
    return Path(home) / "streamline_sql" if home else Path(tempfile.gettempdir()) / "streamline_sql"


def load_dags(
    globals_dict: dict[str, Any],
    project_dir: str | Path | None = None,
    sql_dir: str | Path | None = None,
) -> list[str]:
    """Validate every spec, render its SQL, build its DAG into globals_dict; return dag ids."""
    from dagfactory import settings as dagfactory_settings

    dagfactory_settings.enable_telemetry = False
    project = find_project(Path(project_dir) if project_dir else None)
    target = Path(sql_dir) if sql_dir else default_sql_dir()
    # Spec files are named relative to the project, whatever folder Airflow parses from.
    try:
        result = validated(project, target, airflow_compat.installed_airflow())
    except Exception as exc:  # not one spec's (those are errors of their spec): all of them
        log.exception("the specs could not be validated")
        where = str(project.pipelines_dir)
        failure = SpecError(
            where, 1, 1, "$", f"could not be validated: {type(exc).__name__}: {exc}"
        )
        globals_dict[ERROR_DAG_ID] = _error_dag([failure])
        return []
    errors = list(result.errors)
    settings = RenderSettings.from_env()
    built: list[str] = []
    with config_docs_through_libyaml():
        built.extend(_build(globals_dict, project, result.feeds, target, settings, errors))
    if errors:
        log.error("StreamLine specs with errors:\n%s", format_errors(errors))
        globals_dict[ERROR_DAG_ID] = _error_dag(errors)
    return built


def validation_key(project: Project, airflow_version: str | None) -> str:
    """A digest of everything a validation reads: the spec files, the schema, the templates, the
    constraint files, StreamLine's own code, the Airflow version and where the project is."""
    digest = hashlib.sha256(f"{airflow_version}\0{project.root}\0".encode())
    digest.update(_code_digest())
    folders = (
        project.pipelines_dir, project.templates_dir, project.schema_path.parent,
        project.constraints_dir,
    )  # fmt: skip
    for folder in folders:
        digest.update(_folder_digest(folder))
    return digest.hexdigest()[:32]


@functools.cache
def _code_digest() -> bytes:
    """StreamLine's own files, once per process: the code that runs is the code imported, and a
    parse need not read it again."""
    return _folder_digest(PACKAGE_DIR)


def _folder_digest(folder: Path) -> bytes:
    """A digest of every file below folder (names and bytes; __pycache__ left out)."""
    digest = hashlib.sha256(f"{folder}\0".encode())
    for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(f"{path.relative_to(folder)}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.digest()


def validated(project: Project, sql_dir: Path, airflow_version: str | None) -> ValidationResult:
    """validate_paths over the project's pipelines/, or its result from the previous parse when
    nothing it reads has changed (validation_key).

    Airflow's DAG processor parses the loader file again and again (every
    dag_processor.min_file_process_interval, 30 s by default), nearly always with the same specs:
    their YAML with positions and the checks are most of a parse (22 of 31 ms per feed at 500
    feeds; benchmarks/README.md). The result is kept as a pickle under
    sql_dir/.validated/<key>.pickle, written by this process for itself (the folder is the
    loader's own, like the SQL); only the newest is kept. A file that cannot be read is ignored.
    https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#min-file-process-interval
    """
    key = validation_key(project, airflow_version)
    folder = sql_dir / VALIDATED_FOLDER
    cached = folder / f"{key}.pickle"
    try:
        with cached.open("rb") as stream:
            result = pickle.load(stream)
        if isinstance(result, ValidationResult):
            return result
    except Exception:  # missing, partly written by a killed parse, or from another version
        pass
    result = validate_paths(project, base=project.root, airflow_version=airflow_version)
    if validation_key(project, airflow_version) != key:  # a file changed while it was read:
        return result  # this result may be of either content, so it is kept under neither
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{key}.{os.getpid()}.tmp"
        partial.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(partial, cached)  # whole or not at all
        for old in folder.glob("*.pickle"):  # not another parse's .tmp
            if old != cached:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only folder: validate on every parse
        log.warning("could not keep the validated specs in %s: %s", folder, exc)
    return result


def _build(
    globals_dict: dict[str, Any],
    project: Project,
    feeds: list[Feed],
    target: Path,
    settings: RenderSettings,
    errors: list[SpecError],
) -> list[str]:
    """Each feed's SQL and DAG; a feed that fails is an error of its spec (appended to errors)."""
    import dagfactory
    from dagfactory.utils import cast_with_type

    sqs_url_prefix = os.environ.get("STREAMLINE_SQS_URL_PREFIX")
    built: list[str] = []
    for feed in feeds:
        try:
            schema = write_feed_sql(project, feed, feeds, target, settings)
            config = cast_with_type(build_dag_config(feed, target, sqs_url_prefix, schema))
            # A folder with no defaults.yml: a stray one in the dags folder must not leak in.
            dagfactory.load_yaml_dags(
                globals_dict, config_dict=config, defaults_config_path=str(target / feed.feed)
            )
        except Exception as exc:  # one feed's failure must not hide the others
            log.exception("feed %s could not be built", feed.feed)
            errors.append(SpecError(feed.spec_file, 1, 1, "$", f"DAG could not be built: {exc}"))
            continue
        built.append(feed.dag.dag_id)
    return built


@contextlib.contextmanager
def config_docs_through_libyaml() -> Iterator[bool]:
    """Within the block, dag-factory writes each DAG's config into its doc_md with libyaml's
    emitter; yields whether it does (False: this dag-factory or PyYAML offers no way to).

    dag-factory renders each DAG's config and defaults as YAML for the DAG's docs with yaml.dump,
    PyYAML's pure-Python emitter (dagfactory/dagfactory.py, _DagFactory._serialise_config_md):
    about 75% of its time per DAG, 11 of 15 ms here, on every parse. yaml.CDumper is the same
    representer with libyaml's emitter (https://pyyaml.org/wiki/PyYAMLDocumentation, "LibYAML
    bindings"); the docs' text is the same (tests/unit/test_dagbag.py compares them). Only the
    module's yaml name is swapped, and put back on the way out.
    """
    import yaml
    from dagfactory import dagfactory as module

    if not getattr(yaml, "__with_libyaml__", False) or getattr(module, "yaml", None) is not yaml:
        yield False
        return

    class LibYaml:
        """yaml, with dump through libyaml's emitter."""

        def __getattr__(self, name: str) -> Any:
            return getattr(yaml, name)

        @staticmethod
        def dump(data: Any, stream: Any = None, **options: Any) -> Any:
            return yaml.dump(data, stream, Dumper=yaml.CDumper, **options)

    module.yaml = LibYaml()
    try:
        yield True
    finally:
        module.yaml = yaml


def _error_dag(errors: list[SpecError]) -> InvalidSpecsDag:
    """The DAG whose validation raises these errors: the loader file's one import error."""
    error_dag = InvalidSpecsDag(dag_id=ERROR_DAG_ID, schedule=None)
    error_dag.streamline_errors = sorted(errors)
    return error_dag


def check_dags_folder(folder: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Load a dags folder as Airflow's dag processor does: ({dag_id: task_ids}, import_errors)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder)
    dags = {dag_id: [t.task_id for t in dag.tasks] for dag_id, dag in sorted(bag.dags.items())}
    return dags, dict(bag.import_errors)
