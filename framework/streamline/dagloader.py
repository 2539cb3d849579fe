"""Build Airflow DAGs from pipelines/ at parse time, through dag-factory.

Valid feeds become DAGs; invalid specs become one import error that names every file and line,
without hiding the feeds that are fine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")

from streamline import airflow_compat
from streamline.dagconfig import build_dag_config
from streamline.errors import SpecError, SpecsInvalid, format_errors
from streamline.generation import write_feed_sql, write_text
from streamline.model import Feed
from streamline.project import Project, find_project
from streamline.rendering import RenderSettings, schema_fingerprint
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
    settings = RenderSettings.from_env()
    try:
        settings.check()
        usable: RenderSettings | None = settings
    except ValueError:  # every feed's render fails, each an error of its spec (_build)
        usable = None
    # Spec files are named relative to the project, whatever folder Airflow parses from.
    try:
        kept = validated(project, target, airflow_compat.installed_airflow(), usable)
    except Exception as exc:  # not one spec's (those are errors of their spec): all of them
        log.exception("the specs could not be validated")
        where = str(project.pipelines_dir)
        failure = SpecError(
            where, 1, 1, "$", f"could not be validated: {type(exc).__name__}: {exc}"
        )
        globals_dict[ERROR_DAG_ID] = _error_dag([failure])
        return []
    errors = list(kept.result.errors)
    built: list[str] = []
    with config_docs_through_libyaml():
        built.extend(_build(globals_dict, project, kept, target, settings, errors))
    if errors:
        log.error("StreamLine specs with errors:\n%s", format_errors(errors))
        globals_dict[ERROR_DAG_ID] = _error_dag(errors)
    return built


def validation_key(
    project: Project, airflow_version: str | None, settings: RenderSettings | None = None
) -> str:
    """A digest of everything a validation reads: the spec files, the schema, the templates, the
    constraint files, StreamLine's own code, the Airflow version, where the project is and the
    render settings (the SQL it keeps the digests of depends on them)."""
    digest = hashlib.sha256(f"{airflow_version}\0{project.root}\0{settings!r}\0".encode())
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


@dataclass
class Validated:
    """A validation, and what it tells the DAG build about each feed's SQL: kept from one parse
    for the next (validated)."""

    result: ValidationResult
    """The validation. Its rendered SQL is this parse's only: the kept copy has none."""
    settings: RenderSettings | None
    """The render settings of the SQL below; None: none kept (the settings cannot render)."""
    sql: dict[str, dict[str, str]] = field(default_factory=dict)
    """{feed: {step: SHA-256 of its SQL file}} as the validation rendered it."""
    fingerprints: dict[str, str] = field(default_factory=dict)
    """{feed: schema fingerprint} of that SQL (rendering.schema_fingerprint)."""


def validated(
    project: Project,
    sql_dir: Path,
    airflow_version: str | None,
    settings: RenderSettings | None = None,
) -> Validated:
    """validate_paths over the project's pipelines/ (its template check rendering with settings),
    or its result from the previous parse when nothing it reads has changed (validation_key).

    Airflow's DAG processor parses the loader file again and again (every
    dag_processor.min_file_process_interval, 30 s by default), nearly always with the same specs:
    their YAML, the checks and the rendering are most of a parse (benchmarks/README.md). The
    result is kept as a pickle under sql_dir/.validated/<key>.pickle, written by this process for
    itself (the folder is the loader's own, like the SQL); only the newest is kept. A file that
    cannot be read is ignored. It keeps each feed's SQL as digests, so that the next parse need
    not render a feed whose SQL files are in place and unchanged (feed_sql).
    https://airflow.apache.org/docs/apache-airflow/stable/configurations-ref.html#min-file-process-interval
    """
    key = validation_key(project, airflow_version, settings)
    folder = sql_dir / VALIDATED_FOLDER
    cached = folder / f"{key}.pickle"
    try:
        with cached.open("rb") as stream:
            kept = pickle.load(stream)
        if isinstance(kept, Validated):
            return kept
    except Exception:  # missing, partly written by a killed parse, or from another version
        pass
    result = validate_paths(
        project, base=project.root, airflow_version=airflow_version, settings=settings
    )
    fresh = Validated(result, settings)
    if settings is not None:
        keys = {feed.feed: feed.key for feed in result.feeds}
        for name, sql in result.rendered.items():
            fresh.sql[name] = {step: _sha256(text.encode()) for step, text in sql.items()}
            fresh.fingerprints[name] = schema_fingerprint(sql["ddl"], keys[name])
    if validation_key(project, airflow_version, settings) != key:  # a file changed while read:
        return fresh  # this result may be of either content, so it is kept under neither
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{key}.{os.getpid()}.tmp"
        lean = dataclasses.replace(fresh, result=dataclasses.replace(result, rendered={}))
        partial.write_bytes(pickle.dumps(lean, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(partial, cached)  # whole or not at all
        for old in folder.glob("*.pickle"):  # not another parse's .tmp
            if old != cached:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only folder: validate on every parse
        log.warning("could not keep the validated specs in %s: %s", folder, exc)
    return fresh


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def feed_sql(
    project: Project, feed: Feed, kept: Validated, target: Path, settings: RenderSettings
) -> str:
    """Write the feed's SQL into target, as write_feed_sql does; its schema fingerprint.

    Rendered once per content: this parse's validation rendered it (its text is in
    kept.result.rendered), or an earlier parse's did and the files are in place with the same
    digests. Otherwise, or with other settings, it is rendered here."""
    if kept.settings == settings:
        text = kept.result.rendered.get(feed.feed)
        if text is not None:
            for step, sql in text.items():
                write_text(target / feed.feed / f"{step}.sql", sql)
            return kept.fingerprints[feed.feed]
        digests = kept.sql.get(feed.feed)
        if digests and all(
            _file_sha256(target / feed.feed / f"{step}.sql") == digest
            for step, digest in digests.items()
        ):
            return kept.fingerprints[feed.feed]
    return write_feed_sql(project, feed, kept.result.feeds, target, settings)


def _file_sha256(path: Path) -> str | None:
    try:
        return _sha256(path.read_bytes())
    except OSError:
        return None


def _build(
    globals_dict: dict[str, Any],
    project: Project,
    kept: Validated,
    target: Path,
    settings: RenderSettings,
    errors: list[SpecError],
) -> list[str]:
    """Each feed's SQL and DAG; a feed that fails is an error of its spec (appended to errors)."""
    import dagfactory
    from dagfactory.utils import cast_with_type

    sqs_url_prefix = os.environ.get("STREAMLINE_SQS_URL_PREFIX")
    built: list[str] = []
    for feed in kept.result.feeds:
        try:
            schema = feed_sql(project, feed, kept, target, settings)
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
