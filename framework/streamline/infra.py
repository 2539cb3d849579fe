"""Feeds -> infrastructure inputs: the Terraform feed variables and the Snowflake setup SQL.

Pure functions, model in, text out. `infra/feeds.auto.tfvars.json` is what Terraform's for_each
runs over, so a new spec in pipelines/ needs no Terraform edit: regenerate the file
(`streamline infra-vars`) and apply. `infra/snowflake/setup.sql.j2` renders the account-level
Snowflake objects (roles, warehouse, databases, schemas, storage integrations, grants, service
user) for the same feeds, followed by every feed's DDL.

Least privilege per feed: every feed has its own storage integration, `<base>_<feed>`, assuming its
own IAM role (infra/iam_snowflake.tf), which reads only the feed's batch folders in processing/ and
processed/ (`LakeLayout.stage_folders`), and the feed's stage names that integration. A Snowflake
allowed or blocked location is a bucket with an optional path prefix, and a stage's URL must lie
within an allowed one
(https://docs.snowflake.com/en/sql-reference/sql/create-storage-integration); the stage is at the
lake root, as the batch id comes before the feed's prefix in processing/<BATCH_ID>/<prefix>/, so
the root is allowed and every other top-level folder of the lake is blocked, and the IAM role
decides which objects the feed can read. The integrations share one external id
(STORAGE_AWS_EXTERNAL_ID, set here) and Snowflake's one IAM user per account, so every role's trust
takes the same two Terraform variables
(https://docs.snowflake.com/en/user-guide/data-load-s3-config-storage-integration).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from streamline.errors import UsageError
from streamline.layout import CLAIMS, FIREHOSE_ERRORS, STAGE_ZONES, ZONES
from streamline.loading import display_path
from streamline.model import Feed
from streamline.project import Project
from streamline.rendering import (
    RenderSettings,
    quote_identifier,
    quote_literal,
    quote_table,
    render_feed,
)

INFRA_DIR = Path("infra")
TFVARS_RELPATH = INFRA_DIR / "feeds.auto.tfvars.json"
SETUP_TEMPLATE_RELPATH = INFRA_DIR / "snowflake" / "setup.sql.j2"

# Firehose writes GZIP or plain files: a spec that reads gzip gets GZIP; auto and none get plain
# files, which Snowflake reads as they are. Firehose cannot write zstd: a zstd feed's files must
# land another way (its stream then stays unused).
_FIREHOSE_COMPRESSION = {"gzip": "GZIP"}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_RSA_KEY_RE = re.compile(r"^[A-Za-z0-9+/=]{64,}$")
# sts:AssumeRole's ExternalId: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
_EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}\Z", re.ASCII)
_WAREHOUSE_SIZES = ("XSMALL", "SMALL", "MEDIUM", "LARGE", "XLARGE", "XXLARGE")


def feed_variables(feeds: Sequence[Feed], root: Path) -> dict[str, Any]:
    """Terraform's `feeds` variable: feed name -> what its resources need, in feed order.

    Spec files are named relative to the project root, wherever the command runs from.
    """
    return {
        # The lake's folders the DAGs write (the zones and the claims registers):
        # streamline.layout owns these names, and each feed's below.
        "lake_zones": [*ZONES, CLAIMS],
        "feeds": {
            feed.feed: {
                "prefix": feed.layout.lake.prefix,
                "stream_name": feed.layout.firehose_stream,
                "queue_name": feed.layout.queue,
                "dlq_name": feed.layout.dead_letter_queue,
                "trigger_mode": feed.trigger.mode,
                "compression": _FIREHOSE_COMPRESSION.get(
                    feed.source.format.compression, "UNCOMPRESSED"
                ),
                "dag_id": feed.dag.dag_id,
                "aws_conn_id": feed.dag.aws_conn_id,
                "snowflake_conn_id": feed.dag.snowflake_conn_id,
                "raw_table": feed.raw.dotted,
                "mart_table": feed.mart.dotted,
                "spec_file": display_path(Path(feed.spec_file), root),
                # The role of the feed's Snowflake storage integration, and what it may read.
                "storage_role": feed.layout.storage_role,
                "stage_folders": list(feed.layout.lake.stage_folders),
            }
            for feed in sorted(feeds, key=lambda f: f.feed)
        },
    }


def render_tfvars(feeds: Sequence[Feed], root: Path) -> str:
    """The text of infra/feeds.auto.tfvars.json: stable JSON, so the file diffs cleanly."""
    return json.dumps(feed_variables(feeds, root), indent=2, sort_keys=True) + "\n"


def tfvars_path(project: Project) -> Path:
    """Where the generated feed variables live in a project."""
    return project.root / TFVARS_RELPATH


@dataclass(frozen=True)
class SnowflakeSetup:
    """Account-level names and values of the Snowflake side; identifiers are lower-case.

    storage_role_arns: feed -> the IAM role of its storage integration (Terraform's output
    snowflake_storage_role_arns); external_id: the STORAGE_AWS_EXTERNAL_ID of every integration
    (Terraform's snowflake_external_id), which CREATE STORAGE INTEGRATION takes instead of
    generating one (https://docs.snowflake.com/en/sql-reference/sql/create-storage-integration);
    storage_integration: the base of the integrations' names.
    """

    lake_bucket: str
    storage_role_arns: Mapping[str, str]
    external_id: str
    storage_integration: str = "streamline_lake"
    admin_role: str = "streamline_admin"
    loader_role: str = "streamline_loader"
    warehouse: str = "streamline_wh"
    warehouse_size: str = "XSMALL"
    auto_suspend_seconds: int = 60
    service_user: str = "streamline_svc"
    rsa_public_key: str | None = None

    def check(self) -> None:
        """Raise UsageError on a value that cannot go into the setup SQL."""
        if not _BUCKET_RE.match(self.lake_bucket):
            raise UsageError(f"not an S3 bucket name: {self.lake_bucket!r}")
        for feed, arn in sorted(self.storage_role_arns.items()):
            if not _ROLE_ARN_RE.match(arn):
                raise UsageError(
                    f"storage role of feed {feed!r}: not an IAM role ARN: {arn!r} "
                    "(terraform -chdir=infra output -json snowflake_storage_role_arns)"
                )
        if not _EXTERNAL_ID_RE.match(self.external_id):
            raise UsageError(
                "the external id is 2-1224 letters, digits and _+=,.@:/- (AWS's sts:ExternalId): "
                "choose a random one, e.g. `openssl rand -hex 16`, and give Terraform the same "
                "as snowflake_external_id"
            )
        names = {
            "storage integration": self.storage_integration,
            "admin role": self.admin_role,
            "loader role": self.loader_role,
            "warehouse": self.warehouse,
            "service user": self.service_user,
        }
        for what, name in names.items():
            try:
                quote_identifier(name)
            except ValueError:
                raise UsageError(
                    f"{what} {name!r}: use lower-case letters, digits and _, "
                    "starting with a letter or _"
                ) from None
        if self.warehouse_size not in _WAREHOUSE_SIZES:
            raise UsageError(f"warehouse size is one of {', '.join(_WAREHOUSE_SIZES)}")
        if self.auto_suspend_seconds < 60:
            raise UsageError("warehouse auto-suspend is at least 60 seconds")
        if self.rsa_public_key is not None and not _RSA_KEY_RE.match(self.rsa_public_key):
            raise UsageError(
                "the RSA public key is the base64 body of the PEM file, without the BEGIN/END lines"
            )


def parse_role_arns(text: str) -> dict[str, str]:
    """Feed -> role ARN from the JSON of `terraform output -json snowflake_storage_role_arns`."""
    try:
        arns = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--storage-role-arns is not JSON: {exc}") from None
    if not isinstance(arns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in arns.items()
    ):
        raise UsageError(
            "--storage-role-arns is a JSON object of feed -> role ARN: "
            '"$(terraform -chdir=infra output -json snowflake_storage_role_arns)"'
        )
    return arns


def storage_integrations(feeds: Sequence[Feed], setup: SnowflakeSetup) -> list[dict[str, str]]:
    """Per feed (in feed order): its storage integration's name and IAM role ARN.

    The ARNs must cover exactly these feeds and name the roles streamline.layout derives, which
    Terraform creates from the same feed variables; anything else means a stale infra-vars or
    Terraform output, and raises UsageError.
    """
    names = {f.feed for f in feeds}
    missing = sorted(names - set(setup.storage_role_arns))
    unknown = sorted(set(setup.storage_role_arns) - names)
    if missing or unknown:
        raise UsageError(
            f"--storage-role-arns has no role for {', '.join(missing) or '-'} and roles of "
            f"feeds not in pipelines/: {', '.join(unknown) or '-'}; run `streamline infra-vars`, "
            "terraform apply, then pass `terraform -chdir=infra output -json "
            "snowflake_storage_role_arns` again"
        )
    integrations = []
    for feed in sorted(feeds, key=lambda f: f.feed):
        arn = setup.storage_role_arns[feed.feed]
        if arn.rsplit("/", 1)[-1] != feed.layout.storage_role:
            raise UsageError(
                f"the storage role of feed {feed.feed} is {arn}, but StreamLine names it "
                f"{feed.layout.storage_role}: run `streamline infra-vars` and terraform apply"
            )
        integrations.append(
            {
                "feed": feed.feed,
                "prefix": feed.source.prefix,
                "name": feed.layout.storage_integration(setup.storage_integration),
                "role_arn": arn,
            }
        )
    return integrations


def public_key_body(pem: str) -> str:
    """The base64 body of a PEM public key, as Snowflake's RSA_PUBLIC_KEY wants it."""
    return "".join(line.strip() for line in pem.splitlines() if line and "-----" not in line)


def schema_grants(feeds: Sequence[Feed]) -> list[dict[str, Any]]:
    """Per schema the feeds use: the table privileges the DAG tasks need, and whether it holds
    the feeds' stages and file formats (the raw schema does)."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(database: str, schema: str) -> dict[str, Any]:
        return schemas.setdefault(
            (database, schema),
            {"database": database, "schema": schema, "privileges": set(), "stages": False},
        )

    for feed in feeds:
        raw = entry(feed.raw.database, feed.raw.schema)
        # load: DELETE the batch's rows, COPY (INSERT); check: SELECT; the batch ledger, which
        # lives in the raw schema: MERGE and UPDATE its rows.
        raw["privileges"] |= {"SELECT", "INSERT", "UPDATE", "DELETE"}
        raw["stages"] = True
        mart = entry(feed.mart.database, feed.mart.schema)
        # transform: MERGE (INSERT, UPDATE) or append (DELETE, INSERT); check: SELECT.
        mart["privileges"] |= {"SELECT", "INSERT", "UPDATE", "DELETE"}
    order = ("SELECT", "INSERT", "UPDATE", "DELETE")
    return [
        {
            **value,
            "name": quote_schema(value["database"], value["schema"]),
            "privileges": [p for p in order if p in value["privileges"]],
        }
        for _, value in sorted(schemas.items())
    ]


def quote_schema(database: str, schema: str) -> str:
    """Quoted database.schema."""
    return f"{quote_identifier(database)}.{quote_identifier(schema)}"


def render_snowflake_setup(
    project: Project,
    feeds: Sequence[Feed],
    setup: SnowflakeSetup,
    *,
    with_ddl: bool = True,
) -> str:
    """The account setup SQL for these feeds, then (with_ddl) every feed's DDL."""
    setup.check()
    template_path = project.root / SETUP_TEMPLATE_RELPATH
    if not template_path.is_file():
        raise UsageError(f"no Snowflake setup template at {template_path}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_path.parent)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["ident"] = quote_identifier
    env.filters["literal"] = quote_literal
    env.filters["table"] = quote_table
    settings = RenderSettings(
        lake_url=f"s3://{setup.lake_bucket}", storage_integration=setup.storage_integration
    )
    ordered = sorted(feeds, key=lambda f: f.feed)
    ddl = (
        {
            f.feed: render_feed(project, f, feeds, settings=settings, steps=["ddl"])["ddl"]
            for f in ordered
        }
        if with_ddl
        else {}
    )
    databases = sorted({f.raw.database for f in feeds} | {f.mart.database for f in feeds})
    lake_url = f"s3://{setup.lake_bucket}/"
    return env.get_template(template_path.name).render(
        setup=setup,
        feeds=[f.feed for f in ordered],
        databases=databases,
        schemas=schema_grants(feeds),
        integrations=storage_integrations(feeds, setup),
        lake_url=lake_url,
        # Every top-level folder of the lake but those the stages read.
        blocked_locations=[
            f"{lake_url}{folder}/"
            for folder in (*ZONES, CLAIMS, FIREHOSE_ERRORS)
            if folder not in STAGE_ZONES
        ],
        ddl=ddl,
    )
