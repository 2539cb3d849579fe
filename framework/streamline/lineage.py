"""What each step of a feed's DAG reports to OpenLineage: its input and output datasets, its batch.

The DAGs emit lineage through Airflow's OpenLineage provider (apache-airflow-providers-openlineage),
not an emitter of StreamLine's own. When a task ends, the provider's listener asks its operator for
its lineage by calling `get_openlineage_facets_on_complete(task_instance)` (the provider's
DefaultExtractor; a failed task falls back to the same method), which returns an OperatorLineage of
input and output datasets and run facets. Every provider release MWAA ships does this, 1.13.0 on
Airflow 2.10.3 to 2.20.0 on 3.3.1:
https://airflow.apache.org/docs/apache-airflow-providers-openlineage/stable/guides/developer.html

So StreamLine's own operators carry `LineageMixin`: `streamline.gates.GatedSQLExecuteQueryOperator`
(load, transform) and `LineagePythonOperator` here (claim, finalize). Inlets and outlets could not
say the same: they are fixed when the DAG file is parsed, while a batch's files are known only when
it runs; they carry no run facet for the batch; and on Airflow 3 an outlet is an asset whose events
can schedule other DAGs.

What each step reports (its `lineage` argument, written by streamline.dagconfig, names the kinds):

    claim      in: the batch's files in landing/ (a first claim)
               out: the same files in processing/<ID>/
    load       in: the batch's files in processing/<ID>/
               out: the raw table, the quarantine table
    transform  in: the raw table
               out: the mart table
    finalize   in: the batch's files in processing/<ID>/
               out: each file where it ended: processed/<ID>/, quarantine/<ID>/ (the COPY
                    skipped it) or landing/ (deferred past SIZE_LIMIT)

Every COMPLETE (and FAIL) event of these steps carries the run facet `streamline_batch` (feed,
batch id). A batch's files are the ones its load reads: claim and finalize hand over the
manifest (streamline.lake) as they leave it (`remember_manifest`), the load takes its COPY's result
rows (`remember_copied`), and only a step that failed before that reads the manifest from the lake
(the provider waits for the event in the task's process). A reprocess's claim takes the batch's own
files back, so it reports no landing/ inputs. START events carry no datasets: a step's batch and
files are known only as it runs, and the START event is built before the task runs, on its path.

Dataset names follow OpenLineage's naming spec (https://openlineage.io/docs/spec/naming): an S3
object is namespace `s3://<bucket>`, name its key; a Snowflake table is namespace
`snowflake://<account>`, as the Snowflake provider derives it from the connection (so StreamLine's
tables are the same datasets as in any other Snowflake task's events), and name
`DATABASE.SCHEMA.TABLE`. Events carry no connection fields beyond that account name.

Not reported: the detect sensor (it only lists landing/), zero-byte objects and the batch ledger
(no data), the quarantine rows finalize writes for whole files set aside, and the marts the
reference checks read.

Nothing here imports the provider or the OpenLineage client until the provider calls these
methods: DAGs parse and run where it is not installed, and the provider logs, never raises, an
error in building lineage.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamline import airflow_compat
from streamline.layout import LANDING, PROCESSING, LakeLayout
from streamline.model import TableRef

if TYPE_CHECKING:
    from streamline.lake import Manifest, ManifestEntry

BATCH_FACET = "streamline_batch"
"""The run facet carrying the feed and batch id (custom facets are prefixed with their producer)."""
BATCH_FACET_SCHEMA = "https://streamline.dev/schemas/batch-run-facet.json"
"""The facet's JSON Schema ($id of docs/batch-run-facet.schema.json)."""
FINISHED = "finished"
"""The `files` kind of finalize's outputs: each file where finalize left it."""
FILE_KINDS = (LANDING, PROCESSING, FINISHED)


@dataclass(frozen=True)
class Dataset:
    """An OpenLineage dataset: namespace and name, as the naming spec builds them."""

    namespace: str
    name: str


@dataclass(frozen=True)
class StepLineage:
    """What one step of one batch read and wrote."""

    feed: str
    batch_id: str
    inputs: tuple[Dataset, ...]
    outputs: tuple[Dataset, ...]

    def batch_facet(self) -> dict[str, str]:
        """The fields of the streamline_batch run facet."""
        return {"feed": self.feed, "batch_id": self.batch_id}


def s3_dataset(bucket: str, key: str) -> Dataset:
    """An S3 object: namespace s3://<bucket>, name its key."""
    return Dataset(f"s3://{bucket}", key)


def snowflake_dataset(namespace: str, table: TableRef) -> Dataset:
    """A Snowflake table: namespace snowflake://<account>, name DATABASE.SCHEMA.TABLE (spec
    identifiers are lower case and rendered quoted in upper case, as Snowflake folds them)."""
    return Dataset(namespace, table.dotted.upper())


def files(kind: str) -> dict[str, str]:
    """A `lineage` item: the batch's files, where `kind` says (one of FILE_KINDS)."""
    if kind not in FILE_KINDS:
        raise ValueError(f"files kind {kind!r} is not one of {', '.join(FILE_KINDS)}")
    return {"files": kind}


def table(ref: TableRef) -> dict[str, dict[str, str]]:
    """A `lineage` item: a Snowflake table."""
    return {"table": {"database": ref.database, "schema": ref.schema, "table": ref.table}}


def lineage_config(
    feed: str,
    bucket: str,
    prefix: str,
    aws_conn_id: str,
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """A step's `lineage` argument (plain data for the DAG config; bucket may be a template)."""
    return {
        "feed": feed,
        "bucket": bucket,
        "prefix": prefix,
        "aws_conn_id": aws_conn_id,
        "inputs": [dict(item) for item in inputs],
        "outputs": [dict(item) for item in outputs],
    }


def _needs(config: Mapping[str, Any], what: str) -> bool:
    return any(what in item for item in (*config["inputs"], *config["outputs"]))


def _read_files(manifest: Manifest) -> list[ManifestEntry]:
    """The files the batch's load reads: its data files but those a reprocess set aside when it
    claimed them (files the COPY skipped are set aside later, by finalize, with a COPY reason)."""
    from streamline.lake import COPY_REASON, QUARANTINED

    return [
        e
        for e in manifest.data_files
        if e.outcome != QUARANTINED or (e.reason or "").startswith(COPY_REASON)
    ]


def _file_datasets(bucket: str, manifest: Manifest, kind: str) -> list[Dataset]:
    from streamline.lake import CLAIMED, _home

    layout = LakeLayout(manifest.prefix)
    read = _read_files(manifest)
    if kind == LANDING:
        # A reclaimed batch (a reprocess, a cleared run) took its own files back from wherever
        # its earlier run left them, not from landing/.
        keys = [] if manifest.reclaimed else [e.landing_key for e in read]
    elif kind == PROCESSING:
        keys = [layout.folder(PROCESSING, manifest.batch_id) + e.relative_key for e in read]
    elif any(e.outcome == CLAIMED for e in read):  # FINISHED, but finalize did not get there
        keys = []
    else:
        keys = [_home(layout, manifest.batch_id, e, finished=True) for e in read]
    return [s3_dataset(bucket, key) for key in keys]


def _datasets(
    config: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    manifest: Manifest | None,
    snowflake_namespace: str | None,
) -> tuple[Dataset, ...]:
    found: list[Dataset] = []
    for item in items:
        if "files" in item:
            if manifest is not None:
                found += _file_datasets(config["bucket"], manifest, item["files"])
        elif snowflake_namespace is not None:
            found.append(snowflake_dataset(snowflake_namespace, TableRef(**item["table"])))
    return tuple(found)


def step_lineage(
    config: Mapping[str, Any],
    batch_id: str,
    manifest: Manifest | None,
    snowflake_namespace: str | None = None,
) -> StepLineage:
    """A step's datasets for a batch: config is its `lineage` argument (rendered); manifest the
    batch's (its files: none are reported without it); snowflake_namespace snowflake://<account>
    (no tables are reported without it)."""
    return StepLineage(
        feed=config["feed"],
        batch_id=batch_id,
        inputs=_datasets(config, config["inputs"], manifest, snowflake_namespace),
        outputs=_datasets(config, config["outputs"], manifest, snowflake_namespace),
    )


@functools.cache
def _batch_facet_class() -> type[Any]:
    """The streamline_batch run facet, an OpenLineage client RunFacet (attrs) subclass."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define(kw_only=True)
    class BatchRunFacet(RunFacet):
        """The StreamLine batch a step's run worked on."""

        feed: str
        batch_id: str

        @staticmethod
        def _get_schema() -> str:
            return BATCH_FACET_SCHEMA

    return BatchRunFacet


def operator_lineage(step: StepLineage | None) -> Any:
    """The provider's OperatorLineage of a step (empty for None)."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset as OpenLineageDataset

    if step is None:
        return OperatorLineage()
    return OperatorLineage(
        inputs=[OpenLineageDataset(namespace=d.namespace, name=d.name) for d in step.inputs],
        outputs=[OpenLineageDataset(namespace=d.namespace, name=d.name) for d in step.outputs],
        run_facets={BATCH_FACET: _batch_facet_class()(**step.batch_facet())},
    )


class LineageMixin:
    """Reports a StreamLine step's lineage to the OpenLineage provider (see the module).

    Takes `lineage` (lineage_config's dict; a template field of the operator, so the lake bucket
    renders) and remembers the run's batch id when it executes (`remember_batch`).
    """

    lineage: dict[str, Any] | None = None
    _lineage_batch_id: str | None = None
    _lineage_manifest: Manifest | None = None

    def remember_batch(self, context: Mapping[str, Any]) -> None:
        """Keep the run's batch id for the lineage: the one the claim takes (no I/O)."""
        from streamline.tasks import run_batch_id

        self._lineage_batch_id = run_batch_id(dict(context))
        self._lineage_manifest = None

    def remember_copied(self, step_result: Any) -> None:
        """Keep the files a load step's COPY read (its result rows name each file's URL) as the
        batch's files, so that the lineage needs no S3 read of the manifest."""
        from streamline.lake import Manifest, ManifestEntry, copy_results

        config, batch_id = self.lineage, self._lineage_batch_id
        if not config or not batch_id:
            return
        folder = LakeLayout(config["prefix"]).folder(PROCESSING, batch_id)
        read = [r.file.partition(folder)[2] for r in copy_results(step_result) if folder in r.file]
        entries = tuple(ManifestEntry("", rel, 0, "") for rel in read)
        self._lineage_manifest = Manifest(config["feed"], batch_id, config["prefix"], entries)

    def get_openlineage_facets_on_start(self) -> Any:
        """No datasets yet: the batch and its files are known as the step runs (and, for the SQL
        steps, this keeps the provider from parsing the SQL with a connection on the task's path).
        """
        return operator_lineage(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The step's datasets and batch facet, when the run has a batch."""
        return operator_lineage(self.step_lineage())

    def step_lineage(self) -> StepLineage | None:
        """This run's lineage, or None before the step ran or when the run has no batch."""
        config, batch_id = self.lineage, self._lineage_batch_id
        if not config or not batch_id:
            return None
        manifest = self._lineage_manifest
        if manifest is not None and manifest.batch_id != batch_id:
            manifest = None
        if manifest is None and _needs(config, "files"):
            # The step did not hand its batch over (it failed first): read it from the lake.
            from streamline.lake import batch_manifest
            from streamline.tasks import s3_client

            layout = LakeLayout(config["prefix"])
            manifest = batch_manifest(
                s3_client(config["aws_conn_id"]), config["bucket"], layout, batch_id
            )
            if manifest is None:  # nothing was claimed: the run has no batch
                return None
        namespace = self.snowflake_namespace() if _needs(config, "table") else None
        return step_lineage(config, batch_id, manifest, namespace)

    def snowflake_namespace(self) -> str | None:
        """snowflake://<account> of the step's connection (None: the step has none)."""
        return None


def remember_manifest(context: Mapping[str, Any], manifest: Manifest) -> None:
    """Hand a Python step's lineage its batch as the step leaves it (claim, finalize), so that
    the provider's call after the task reads no S3 object; nothing for other operators."""
    task = context.get("task")
    if isinstance(task, LineageMixin):
        task._lineage_manifest = manifest


def snowflake_namespace(connection: Any) -> str:
    """snowflake://<account> of an Airflow Snowflake connection, as the Snowflake provider names
    it for OpenLineage (SnowflakeHook._get_openlineage_authority: the host of the connection's
    SQLAlchemy URL, its `host` extra or else `account[.region]`, normalised by the provider's
    fix_account_name), without building that URL: importing snowflake-sqlalchemy alone takes
    seconds, on the task's path."""
    extra = connection.extra_dejson

    def field(name: str) -> str:
        return str(extra.get(name) or extra.get(f"extra__snowflake__{name}") or "")

    name = str(extra.get("host") or "") or ".".join(
        filter(None, (field("account"), field("region")))
    )
    try:
        from airflow.providers.snowflake.utils.openlineage import fix_account_name
    except ImportError:  # a Snowflake provider without OpenLineage support: the name as it is
        return f"snowflake://{name.lower()}"
    return f"snowflake://{fix_account_name(name.lower()).lower()}"


if TYPE_CHECKING or airflow_compat.installed_major() >= 3:
    from airflow.providers.standard.operators.python import PythonOperator
else:  # Airflow 2 (MWAA 2.10, 2.11): the class airflow_compat.class_paths names
    from airflow.operators.python import PythonOperator


class LineagePythonOperator(LineageMixin, PythonOperator):
    """The PythonOperator of the claim and finalize steps, reporting their lineage (see the
    module): a subclass rather than inlets/outlets, which are fixed at parse time."""

    template_fields = (*PythonOperator.template_fields, "lineage")

    def __init__(self, *, lineage: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lineage = lineage

    def execute(self, context: Any) -> Any:
        self.remember_batch(context)
        return super().execute(context)
