"""Every name StreamLine derives for a feed, in one place.

Lake keys per zone, the claims register and batch manifests, warehouse object names (file format,
stage, batch ledger), AWS resource names, the lineage and bookkeeping columns, and the claim
task's XCom address are derived here and nowhere else. Templates, DAG config, the lake callables,
infra and the local runtime read them from a feed's `Layout`; validation reserves exactly the
column and table names defined here.

The lake (one S3 bucket):

    landing/<prefix>/...                        Firehose writes here
    claims/<prefix>.json                        the feed's claims register: its open batches
    processing/<BATCH_ID>/<prefix>/...          a claimed batch's files, read by COPY
    processing/<BATCH_ID>/<prefix>.manifest.json
    processed/<BATCH_ID>/<prefix>/...           a published batch's loaded files
    processed/<BATCH_ID>/<prefix>.manifest.json every file of the batch and its outcome
    quarantine/<BATCH_ID>/<prefix>/...          objects set aside: zero-byte, skipped by COPY
    errors/<prefix>/...                         Firehose's failed deliveries
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamline.batches import BATCH_ID_WILDCARDS
from streamline.model import TableRef

if TYPE_CHECKING:
    from streamline.model import Feed

LANDING, PROCESSING, PROCESSED, QUARANTINE = "landing", "processing", "processed", "quarantine"
ZONES = (LANDING, PROCESSING, PROCESSED, QUARANTINE)
"""The lake zones files move between, in lifecycle order."""
CLAIMS = "claims"
"""Top-level folder of the claims registers (one small JSON object per feed)."""
FIREHOSE_ERRORS = "errors"
"""Where Firehose writes records it could not deliver (its ErrorOutputPrefix)."""
STAGE_ZONES = (PROCESSING, PROCESSED)
"""The zones Snowflake reads: COPY reads processing/; processed/ stays readable for audits."""

BATCH_ID_TYPE = "VARCHAR(32)"


@dataclass(frozen=True)
class Column:
    """A column StreamLine adds or keeps itself: name (lower case), Snowflake type, meaning."""

    name: str
    type: str
    description: str
    nullable: bool = True


RAW_LINEAGE = (
    Column("batch_id", BATCH_ID_TYPE, "the batch that loaded the row", nullable=False),
    Column(
        "source_file",
        "VARCHAR(1024)",
        "the file the row came from, relative to the stage (METADATA$FILENAME)",
        nullable=False,
    ),
    Column(
        "source_row_number",
        "NUMBER(38,0)",
        "the row's line in its file (METADATA$FILE_ROW_NUMBER)",
        nullable=False,
    ),
    Column("loaded_at", "TIMESTAMP_LTZ(3)", "when the load step ran", nullable=False),
)
"""Columns after a feed's own in every raw table, in this order."""

MART_LINEAGE = (
    Column("batch_id", BATCH_ID_TYPE, "the batch that last changed the row", nullable=False),
    Column("merged_at", "TIMESTAMP_LTZ(3)", "when the row was last changed", nullable=False),
)
"""Columns after a feed's own in every mart table, in this order."""

LANDING_COLUMNS = (
    Column(
        "extra_field",
        "VARCHAR",
        "the field after the feed's last column: set when a row has more fields than columns",
    ),
    Column(
        "more_fields",
        "VARCHAR",
        "the field after extra_field: set when a row has two or more fields too many (the "
        "quarantine's RECORD then ends in '...': the fields after extra_field are not kept)",
    ),
    *RAW_LINEAGE[:3],
)
"""Columns after a feed's own (all VARCHAR: the fields as the CSV parser read them) in its landing
table, where the load step's COPY puts a batch's rows before it routes them to raw or quarantine."""

QUARANTINE_COLUMNS = (
    *RAW_LINEAGE[:2],
    Column(
        "source_row_number",
        "NUMBER(38,0)",
        "the row's line in its file (METADATA$FILE_ROW_NUMBER); for a whole file, the line of the "
        "COPY's first error, if any",
    ),
    Column(
        "record",
        "VARCHAR",
        "the row as read: its fields joined by the feed's delimiter, quoted where needed",
    ),
    Column(
        "error_code",
        "VARCHAR(32)",
        "why, for machines: too_many_fields, too_few_fields, not_a_value (the column's type "
        "cannot hold it), too_long, null_value (a NULL where the column, key or ordering needs a "
        "value), file_skipped (on_error skip_file: another row of the file was rejected), "
        "file_unreadable (the COPY's CSV parser could not read the file), file_set_aside (a "
        "reprocess or the header check set the file aside), columns_discarded (schema_contract "
        "discard_value did not load the file's columns the spec lacks)",
        nullable=False,
    ),
    Column("error", "VARCHAR(4000)", "why, for people: names the column and value", nullable=False),
    Column("column_name", "VARCHAR(255)", "the column at fault, when there is one"),
    Column("quarantined_at", "TIMESTAMP_LTZ(3)", "when the row was set aside", nullable=False),
)
"""The quarantine table: one row per rejected row of a feed, with its reason."""

REJECT_CODES = (
    "too_many_fields",
    "too_few_fields",
    "not_a_value",
    "too_long",
    "null_value",
    "file_skipped",
    "file_unreadable",
    "file_set_aside",
    "columns_discarded",
)
"""The quarantine table's ERROR_CODEs."""

COLUMNS_DISCARDED = REJECT_CODES[-1]
"""The note schema_contract discard_value leaves per file: its columns not loaded."""

FILE_CODES = REJECT_CODES[-3:]
"""ERROR_CODEs of rows that stand for a whole file, not a rejected row (RECORD is NULL): a file
set aside in quarantine/ (finalize writes them), or a file loaded without the columns its header
had beyond the spec's (the load writes them, as it writes rejected rows)."""

LOAD_GATES = ("rejected_rows", "rows_reconciled")
"""The checks of the load step's gates (templates/load.sql.j2): no check of a spec may take these
names."""

RESERVED_COLUMNS = tuple(
    dict.fromkeys(c.name for c in (*RAW_LINEAGE, *MART_LINEAGE, *LANDING_COLUMNS))
)
"""Column names a spec may not use: StreamLine adds them itself."""

LEDGER_TABLE = "streamline_batches"
"""The batch ledger's table name, in the raw table's database and schema."""

LEDGER_STATUSES = ("claimed", "loaded", "transformed", "published", "empty", "failed")
"""A batch's status in the ledger: claimed -> loaded -> transformed -> published; empty when it held
only objects set aside; failed when a step failed for good (until a reprocess moves it on)."""
FINISHED_STATUSES = ("published", "empty")

LEDGER_COLUMNS = (
    Column("feed", "VARCHAR(128)", "the feed", nullable=False),
    Column("batch_id", BATCH_ID_TYPE, "the batch", nullable=False),
    Column("dag_id", "VARCHAR(250)", "the feed's DAG"),
    Column("run_id", "VARCHAR(250)", "the DAG run that last worked on the batch"),
    Column(
        "runs",
        "NUMBER(38,0)",
        "DAG runs that held the batch: 1, plus one per reprocess that took it over (a reprocess "
        "that stopped before its claim, or a run killed before its load, is not counted)",
    ),
    Column("status", "VARCHAR(16)", "claimed, loaded, transformed, published, empty or failed"),
    Column("failed_step", "VARCHAR(32)", "the task that failed (status failed, or retrying)"),
    Column("error", "VARCHAR(4000)", "that task's error, first 4000 characters"),
    Column("files", "NUMBER(38,0)", "data files claimed"),
    Column("bytes", "NUMBER(38,0)", "their size in bytes"),
    Column("empty_files", "NUMBER(38,0)", "zero-byte objects claimed and set aside"),
    Column("files_loaded", "NUMBER(38,0)", "files COPY loaded (fully or, with continue, partly)"),
    Column("files_skipped", "NUMBER(38,0)", "files COPY skipped or a reprocess set aside"),
    Column("files_deferred", "NUMBER(38,0)", "files past SIZE_LIMIT: back in landing"),
    Column(
        "rows_parsed",
        "NUMBER(38,0)",
        "rows read from the batch's files: ROWS_LOADED + ROWS_REJECTED (files set aside whole "
        "not counted)",
    ),
    Column("rows_loaded", "NUMBER(38,0)", "rows in raw for the batch"),
    Column("rows_rejected", "NUMBER(38,0)", "rows the load step quarantined"),
    Column(
        "checks",
        "VARIANT",
        "check name -> {passed, severity, failing_rows, detail}, from the steps' gates",
    ),
    Column("claim_started_at", "TIMESTAMP_LTZ(3)", "when the claim step started"),
    Column("claimed_at", "TIMESTAMP_LTZ(3)", "when the claims register took the batch"),
    Column("load_started_at", "TIMESTAMP_LTZ(3)", "when the load step started"),
    Column("loaded_at", "TIMESTAMP_LTZ(3)", "when it committed"),
    Column("transform_started_at", "TIMESTAMP_LTZ(3)", "when the transform step started"),
    Column("transformed_at", "TIMESTAMP_LTZ(3)", "when it committed"),
    Column("checked_at", "TIMESTAMP_LTZ(3)", "when the checks had passed, or failed"),
    Column("published_at", "TIMESTAMP_LTZ(3)", "when finalize had moved the files on"),
    Column("failed_at", "TIMESTAMP_LTZ(3)", "when a step last failed"),
    Column("updated_at", "TIMESTAMP_LTZ(3)", "when the row last changed", nullable=False),
    Column(
        "schema_version",
        "NUMBER(38,0)",
        "the feed's schema version (streamline apply) the batch was last loaded under",
    ),
)
"""The batch ledger: one row per feed and batch, written by the DAG's tasks."""

SCHEMA_VERSIONS_TABLE = "streamline_schema_versions"
"""The schema versions' table name, beside the batch ledger."""

SCHEMA_VERSION_COLUMNS = (
    Column("feed", "VARCHAR(128)", "the feed", nullable=False),
    Column(
        "version", "NUMBER(38,0)", "1, 2, ...: one more per apply that changed it", nullable=False
    ),
    Column(
        "fingerprint",
        "VARCHAR(64)",
        "what the spec's warehouse objects are, hashed (the DAG run checks it before it loads)",
        nullable=False,
    ),
    Column("contract", "VARCHAR", "the objects the version stands for, as JSON", nullable=False),
    Column("statements", "VARCHAR", "the DDL the apply ran"),
    Column("applied_at", "TIMESTAMP_LTZ(3)", "when it was applied", nullable=False),
    Column("applied_by", "VARCHAR(256)", "the warehouse user that applied it"),
)
"""The schema versions: one row per feed and version, written by `streamline apply`."""

CLAIM_TASK = "claim"
XCOM_BATCH_ID = "batch_id"
XCOM_CLAIM = "claim"
"""XCom keys the claim task pushes: the batch id (for the Python steps and callbacks), and for
the SQL steps one value (ledger.claim_xcom) holding the batch id, the batch's files as SQL lists
of string literals (`copy_files` relative to the batch folder, for COPY's FILES option;
`source_files` relative to the stage, as METADATA$FILENAME), and what the claim records in the
batch ledger (`ledger`: column -> SQL literal), which the load step writes."""

RUNTIME_CLAIM = (
    '{%- set claim = ti.xcom_pull(task_ids="' + CLAIM_TASK + '", key="' + XCOM_CLAIM + '") %}'
)
"""The first line of a SQL step: one XCom read (a call to Airflow's API) for every use below."""


def claim_expression(field: str, item: str | None = None) -> str:
    """The Airflow template expression of a field of the claim's XCom (after RUNTIME_CLAIM)."""
    return "{{ claim." + field + (f".{item}" if item else "") + " }}"


RUNTIME_BATCH_ID = claim_expression("batch_id")
"""What rendered SQL carries until a run substitutes the claimed batch id."""
RUNTIME_COPY_FILES = claim_expression("copy_files")
RUNTIME_SOURCE_FILES = claim_expression("source_files")


def aws_name(feed: str) -> str:
    """Name of a feed's AWS resources (Firehose stream, default SQS queue; its storage
    integration's IAM role adds -snowflake): streamline-<feed>."""
    return f"streamline-{feed.replace('_', '-')}"


@dataclass(frozen=True)
class LakeLayout:
    """Keys of one feed's objects in the lake; prefix is the spec's source.prefix."""

    prefix: str

    @property
    def landing(self) -> str:
        """Folder Firehose writes the feed's files to: landing/<prefix>/."""
        return f"{LANDING}/{self.prefix}/"

    @property
    def claims(self) -> str:
        """The feed's claims register: which open batch owns which landed file."""
        return f"{CLAIMS}/{self.prefix}.json"

    @property
    def errors(self) -> str:
        """Firehose's error output prefix for the feed."""
        return f"{FIREHOSE_ERRORS}/{self.prefix}/"

    @property
    def stage_folders(self) -> tuple[str, ...]:
        """The feed's folders its stage reads, as IAM wildcard patterns for the storage
        integration's role: <zone>/<batch id>/<prefix>/ in processing/ and processed/, for either
        form of batch id (BATCH_ID_WILDCARDS).

        The batch id comes before the prefix, so no one folder holds a feed's files; a pattern's
        fixed-width batch id and `/<prefix>/` match only this feed's keys, as no two feeds'
        prefixes overlap (validation). Wildcards in resource ARNs:
        https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
        """
        return tuple(
            f"{zone}/{batch}/{self.prefix}/" for zone in STAGE_ZONES for batch in BATCH_ID_WILDCARDS
        )

    def folder(self, zone: str, batch_id: str) -> str:
        """A batch's files in a zone: <zone>/<batch_id>/<prefix>/."""
        return f"{zone}/{batch_id}/{self.prefix}/"

    def manifest(self, zone: str, batch_id: str) -> str:
        """A batch's manifest in a zone, beside (not inside) the folder COPY reads."""
        return f"{zone}/{batch_id}/{self.prefix}.manifest.json"

    def batch_of(self, key: str) -> str | None:
        """The batch id of a manifest key of this feed (any zone), else None."""
        zone, _, rest = key.partition("/")
        batch_id, _, name = rest.partition("/")
        return batch_id if zone in ZONES and name == f"{self.prefix}.manifest.json" else None


@dataclass(frozen=True)
class Layout:
    """Every derived name of one feed."""

    feed: str
    lake: LakeLayout
    file_format: TableRef
    stage: TableRef
    ledger: TableRef
    schema_versions: TableRef
    landing_table: TableRef
    quarantine: TableRef
    firehose_stream: str
    queue: str
    dead_letter_queue: str
    storage_role: str
    landing_asset: str
    queue_watcher: str

    @classmethod
    def of(cls, feed: Feed) -> Layout:
        """The layout of a validated feed."""
        schema = (feed.raw.database, feed.raw.schema)
        queue = feed.trigger.queue or aws_name(feed.feed)
        return cls(
            feed=feed.feed,
            lake=LakeLayout(feed.source.prefix),
            file_format=TableRef(*schema, f"{feed.feed}_csv_format"),
            stage=TableRef(*schema, f"{feed.feed}_stage"),
            ledger=TableRef(*schema, LEDGER_TABLE),
            schema_versions=TableRef(*schema, SCHEMA_VERSIONS_TABLE),
            landing_table=TableRef(*schema, f"{feed.feed}_landing"),
            quarantine=TableRef(*schema, f"{feed.feed}_quarantine"),
            firehose_stream=aws_name(feed.feed),
            queue=queue,
            dead_letter_queue=f"{queue}-dlq",
            storage_role=f"{aws_name(feed.feed)}-snowflake",
            landing_asset=f"streamline_{feed.feed}_landing",
            queue_watcher=f"streamline_{feed.feed}_queue",
        )

    def storage_integration(self, base: str) -> str:
        """The feed's Snowflake storage integration, <base>_<feed>: one per feed, each assuming
        the feed's own IAM role (storage_role), so the feed's stage reads only its folders.

        A stage reads its cloud storage through the role of the integration it names:
        https://docs.snowflake.com/en/user-guide/data-load-s3-config-storage-integration
        """
        return f"{base.lower()}_{self.feed}"
