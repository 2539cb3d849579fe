"""Static checks of infra/: formatting, parsing, generated feed variables, least privilege, checkov.

Terraform's providers cannot be downloaded here, so nothing runs `terraform init/validate/plan`.
What can be checked without them is: `terraform fmt` (the binary alone), every .tf file parsing
(python-hcl2), the generated feeds.auto.tfvars.json matching pipelines/, the shape of every IAM
policy, and checkov's static security scan.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import sqlglot
from hcl2 import SerializationOptions
from sqlglot import exp

from streamline.cli import main
from streamline.infra import (
    SnowflakeSetup,
    feed_variables,
    public_key_body,
    render_snowflake_setup,
    render_tfvars,
    tfvars_path,
)
from streamline.layout import LakeLayout
from streamline.model import Feed
from streamline.project import Project, find_project
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TF_FILES = sorted(INFRA.glob("*.tf"))

# checkov is not in the locked dev group: its releases pin packaging<24 and Airflow 3.3 needs
# packaging>=25. It runs from uv's tool cache instead (`uv tool run`, i.e. uvx), pinned here.
CHECKOV_VERSION = "3.3.30"

# Every checkov skip in infra/, with the reason next to it as a `#checkov:skip=` comment. A new
# skip must be added here too, so it is reviewed rather than slipped in.
EXPECTED_SKIPS = {
    ("CKV_AWS_109", "aws_iam_policy_document.kms"),
    ("CKV_AWS_111", "aws_iam_policy_document.kms"),
    ("CKV_AWS_356", "aws_iam_policy_document.kms"),
    ("CKV_AWS_144", "aws_s3_bucket.lake"),
    ("CKV_AWS_144", "aws_s3_bucket.dags"),
    ("CKV_AWS_144", "aws_s3_bucket.access_logs"),
    ("CKV_AWS_145", "aws_s3_bucket.access_logs"),
    ("CKV2_AWS_62", "aws_s3_bucket.access_logs"),
    ("CKV2_AWS_62", "aws_s3_bucket.dags"),
    ("CKV2_AWS_57", "aws_secretsmanager_secret.connection"),
    ("CKV2_AWS_57", "aws_secretsmanager_secret.variable"),
}

# Allow statements whose Resource is "*", by (policy document, sid), and why.
STAR_RESOURCE_ALLOWED = {
    # In a key policy "*" is the key itself.
    ("kms", "AccountAdministersKeyAndDelegatesToIam"),
    ("kms", "CloudWatchLogsForStreamLineLogGroups"),
    ("kms", "LakeNotificationsToEncryptedQueues"),
    # Actions without resource-level permissions.
    ("mwaa", "CheckAccountPublicAccessBlock"),
    ("mwaa", "DescribeLogGroups"),
    ("mwaa", "PutMwaaMetrics"),
}
# Allow statements with a service-wide action ("svc:*"): only AWS's default key-policy statement.
SERVICE_WILDCARD_ALLOWED = {("kms", "AccountAdministersKeyAndDelegatesToIam")}


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _load_tf(path: Path) -> dict[str, Any]:
    options = SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = hcl2.load(handle, serialization_options=options)
    return parsed


@pytest.fixture(scope="module")
def hcl() -> dict[str, Any]:
    """Every block of infra/*.tf: {"resource": {type: {name: body}}, "data": ..., "locals": ...}."""
    merged: dict[str, Any] = {"resource": {}, "data": {}, "locals": {}, "variable": {}}
    for path in TF_FILES:
        parsed = _load_tf(path)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_, named in block.items():
                    merged[kind].setdefault(type_, {}).update(named)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
        for block in parsed.get("variable", []):
            merged["variable"].update(block)
    return merged


def _policy(hcl: dict[str, Any], name: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = hcl["data"]["aws_iam_policy_document"][name]["statement"]
    return statements


def _statement(hcl: dict[str, Any], policy: str, sid: str) -> dict[str, Any]:
    for statement in _policy(hcl, policy):
        if statement.get("sid") == sid:
            return statement
    raise AssertionError(f"policy {policy} has no statement {sid}")


def _all_statements(hcl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, document in hcl["data"]["aws_iam_policy_document"].items():
        for statement in document["statement"]:
            yield name, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _iam_match(pattern: str, value: str) -> bool:
    """IAM's wildcard match (resource ARNs, StringLike): `*` is any run of characters, `/`
    included, and `?` one character.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html"""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


@pytest.fixture(scope="module")
def project() -> Project:
    return find_project(ROOT)


@pytest.fixture(scope="module")
def feeds(project: Project) -> list[Feed]:
    result = validate_paths(project)
    assert result.ok, result.errors
    return result.feeds


# ------------------------------------------------------------------------------------------------
# Formatting and parsing
# ------------------------------------------------------------------------------------------------


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip(
            "terraform is not on PATH, so `terraform fmt -check -recursive infra` did NOT run; "
            "install Terraform >= 1.9 to check the formatting of infra/"
        )
    # No CLI config file is needed for fmt; pointing at an empty one silences the warning.
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1"}
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "infra"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        "terraform fmt found unformatted files; run `terraform fmt -recursive infra`\n"
        + done.stdout
        + done.stderr
    )


def test_infra_has_the_expected_files() -> None:
    names = {p.name for p in TF_FILES}
    assert {
        "versions.tf",
        "variables.tf",
        "lake.tf",
        "firehose.tf",
        "queues.tf",
        "mwaa.tf",
    } <= names
    assert (INFRA / "feeds.auto.tfvars.json").is_file()
    assert (INFRA / "snowflake" / "setup.sql.j2").is_file()


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.name)
def test_tf_file_parses(path: Path) -> None:
    parsed = _load_tf(path)
    assert parsed, f"{path.name} parsed to nothing"


def test_provider_is_pinned(hcl: dict[str, Any]) -> None:
    versions = _load_tf(INFRA / "versions.tf")
    aws = versions["terraform"][0]["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 5\.\d+", aws["version"]), aws["version"]


# ------------------------------------------------------------------------------------------------
# Generated feed variables
# ------------------------------------------------------------------------------------------------


def test_tfvars_matches_pipelines(project: Project, feeds: list[Feed]) -> None:
    committed = tfvars_path(project).read_text(encoding="utf-8")
    assert committed == render_tfvars(feeds, project.root), (
        "infra/feeds.auto.tfvars.json is stale for the specs in pipelines/: "
        "run `uv run streamline infra-vars` and commit the result"
    )


def test_feed_variables_follow_the_specs(project: Project, feeds: list[Feed]) -> None:
    variables = feed_variables(feeds, project.root)["feeds"]
    assert sorted(variables) == sorted(f.feed for f in feeds)
    for feed in feeds:
        entry = variables[feed.feed]
        assert entry["prefix"] == feed.source.prefix
        assert entry["queue_name"] == feed.layout.queue == f"streamline-{feed.feed}"
        assert entry["dlq_name"] == feed.layout.dead_letter_queue == f"{feed.layout.queue}-dlq"
        # The name the local stack gives the stream (framework/streamline/local/stack.py).
        assert entry["stream_name"] == f"streamline-{feed.feed.replace('_', '-')}"
        assert entry["raw_table"] == feed.raw.dotted
        assert entry["mart_table"] == feed.mart.dotted


def test_feeds_variable_type_matches_the_generated_keys(
    hcl: dict[str, Any], project: Project, feeds: list[Feed]
) -> None:
    declared = hcl["variable"]["feeds"]["type"]
    variables = feed_variables(feeds, project.root)
    for name in variables:
        assert name in hcl["variable"], f"infra/variables.tf does not declare {name}"
    generated = next(iter(variables["feeds"].values()))
    for key in generated:
        assert re.search(rf"\b{key}\s*=", declared), f"variable feeds does not declare {key}"
    assert len(re.findall(r"\b\w+\s*=\s*(?:string|list\(string\))", declared)) == len(generated)


def _third_spec(project_dir: Path) -> None:
    orders = (project_dir / "pipelines" / "orders.yaml").read_text(encoding="utf-8")
    shipments = (
        orders.replace("feed: orders", "feed: shipments")
        .replace("prefix: orders", "prefix: shipments")
        .replace("table: orders", "table: shipments")
        .replace("tags: [orders]", "tags: [shipments]")
        .replace("compression: auto", "compression: gzip")
        .replace("mode: poll", "mode: event")
    )
    assert shipments.count("shipments") >= 5
    (project_dir / "pipelines" / "shipments.yaml").write_text(shipments, encoding="utf-8")


@pytest.fixture
def three_feed_project(tmp_path: Path) -> Path:
    for folder in ("pipelines", "templates", "schemas", "infra"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    _third_spec(tmp_path)
    return tmp_path


def test_a_third_spec_changes_the_feed_variables(
    three_feed_project: Path, feeds: list[Feed], capsys: pytest.CaptureFixture[str]
) -> None:
    project = find_project(three_feed_project)
    result = validate_paths(project)
    assert result.ok, result.errors
    variables = feed_variables(result.feeds, project.root)["feeds"]
    assert sorted(variables) == sorted([*(f.feed for f in feeds), "shipments"])
    assert variables["shipments"] == {
        "prefix": "shipments",
        "stream_name": "streamline-shipments",
        "queue_name": "streamline-shipments",
        "dlq_name": "streamline-shipments-dlq",
        "trigger_mode": "event",
        "compression": "GZIP",
        "dag_id": "shipments",
        "aws_conn_id": "streamline_aws",
        "snowflake_conn_id": "streamline_snowflake",
        "raw_table": "streamline.raw.shipments",
        "mart_table": "streamline.mart.shipments",
        "spec_file": "pipelines/shipments.yaml",
        "storage_role": "streamline-shipments-snowflake",
        "stage_folders": [
            "processing/????????T??????Z/shipments/",
            "processing/????????T??????.??????Z/shipments/",
            "processed/????????T??????Z/shipments/",
            "processed/????????T??????.??????Z/shipments/",
        ],
    }

    # Through the CLI: the copied (two-feed) file is stale, the command rewrites it, then it is not.
    args = ["--project", str(three_feed_project)]
    assert main([*args, "infra-vars", "--check"]) == 1
    assert "run `streamline infra-vars`" in capsys.readouterr().err
    assert main([*args, "infra-vars"]) == 0
    assert main([*args, "infra-vars", "--check"]) == 0
    written = json.loads((three_feed_project / "infra" / "feeds.auto.tfvars.json").read_text())
    assert written == feed_variables(result.feeds, project.root)


def test_infra_vars_stops_on_an_invalid_spec(
    three_feed_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = three_feed_project / "pipelines" / "shipments.yaml"
    spec.write_text(spec.read_text().replace("prefix: shipments", "prefix: Shipments!"))
    before = (three_feed_project / "infra" / "feeds.auto.tfvars.json").read_text()
    assert main(["--project", str(three_feed_project), "infra-vars"]) == 1
    assert "shipments.yaml" in capsys.readouterr().err
    assert (three_feed_project / "infra" / "feeds.auto.tfvars.json").read_text() == before


# ------------------------------------------------------------------------------------------------
# Least privilege, read from the parsed HCL
# ------------------------------------------------------------------------------------------------


def test_per_feed_resources_iterate_over_the_feeds_variable(hcl: dict[str, Any]) -> None:
    resources = hcl["resource"]
    for type_, name in [
        ("aws_kinesis_firehose_delivery_stream", "feed"),
        ("aws_iam_role", "firehose"),
        ("aws_iam_role_policy", "firehose"),
        ("aws_sqs_queue", "feed"),
        ("aws_sqs_queue", "dlq"),
        ("aws_sqs_queue_policy", "feed"),
        ("aws_cloudwatch_log_group", "firehose"),
    ]:
        assert resources[type_][name]["for_each"] == "${var.feeds}", (type_, name)
    assert hcl["data"]["aws_iam_policy_document"]["snowflake"]["for_each"] == "${var.feeds}"
    # One storage-integration role per feed, once Snowflake's IAM user and external id are known.
    assert resources["aws_iam_role"]["snowflake"]["for_each"] == "${local.snowflake_roles}"
    assert hcl["locals"]["snowflake_roles"] == (
        "${{for feed, f in var.feeds : feed => f if local.create_snowflake_role}}"
    )
    assert resources["aws_iam_role_policy"]["snowflake"]["for_each"] == "${aws_iam_role.snowflake}"


def test_firehose_writes_only_its_landing_prefix(hcl: dict[str, Any]) -> None:
    stream = hcl["resource"]["aws_kinesis_firehose_delivery_stream"]["feed"]
    s3 = stream["extended_s3_configuration"][0]
    assert stream["name"] == "${each.value.stream_name}"
    assert s3["prefix"] == "landing/${each.value.prefix}/"
    assert s3["error_output_prefix"] == "errors/${each.value.prefix}/"
    assert s3["buffering_size"] == "${local.buffering[each.key].size_mb}"
    assert s3["buffering_interval"] == "${local.buffering[each.key].interval_seconds}"
    assert stream["server_side_encryption"][0]["key_type"] == "CUSTOMER_MANAGED_CMK"

    write = _statement(hcl, "firehose", "WriteOwnLandingAndErrorPrefixes")
    assert write["resources"] == [
        "${local.lake_bucket_arn}/landing/${each.value.prefix}/*",
        "${local.lake_bucket_arn}/errors/${each.value.prefix}/*",
    ]
    listing = _statement(hcl, "firehose", "ListOwnPrefixesOnly")
    assert listing["condition"][0]["values"] == [
        "landing/${each.value.prefix}/*",
        "errors/${each.value.prefix}/*",
    ]
    # No other statement of the Firehose role reaches lake objects.
    for statement in _policy(hcl, "firehose"):
        for resource in _as_list(statement["resources"]):
            if resource.startswith("${local.lake_bucket_arn}/"):
                assert statement["sid"] == "WriteOwnLandingAndErrorPrefixes"
    kms = _statement(hcl, "firehose", "EncryptLakeObjects")
    assert kms["resources"] == ["${aws_kms_key.streamline.arn}"]
    assert {c["variable"] for c in kms["condition"]} == {
        "kms:ViaService",
        "kms:EncryptionContext:aws:s3:arn",
    }


def test_storage_integration_role_trusts_only_snowflake_with_external_id(
    hcl: dict[str, Any], feeds: list[Feed]
) -> None:
    (trust,) = _policy(hcl, "snowflake_assume")
    assert trust["actions"] == ["sts:AssumeRole"]
    assert trust["principals"] == [
        {"type": "AWS", "identifiers": ["${var.snowflake_iam_user_arn}"]}
    ]
    assert trust["condition"] == [
        {
            "test": "StringEquals",
            "variable": "sts:ExternalId",
            "values": ["${var.snowflake_external_id}"],
        }
    ]
    role = hcl["resource"]["aws_iam_role"]["snowflake"]
    assert role["name"] == "${each.value.storage_role}"
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.snowflake_assume[0].json}"
    assert "var.snowflake_iam_user_arn != null" in hcl["locals"]["create_snowflake_role"]
    assert "var.snowflake_external_id != null" in hcl["locals"]["create_snowflake_role"]
    # The ARNs Snowflake's integrations need before the roles exist name the same roles.
    assert "role/${f.storage_role}" in hcl["locals"]["snowflake_role_arns"]
    # The integration named in the description is the one `streamline infra-sql` makes.
    described = "Snowflake storage integration ${var.snowflake_storage_integration}_${each.key}:"
    assert role["description"].startswith(described)
    base = hcl["variable"]["snowflake_storage_integration"]["default"]
    assert base == SETUP.storage_integration  # infra-sql's default
    for feed in feeds:
        assert feed.layout.storage_integration(base) == f"{base}_{feed.feed}"
    for statement in _policy(hcl, "snowflake"):
        assert not any(a.startswith(("s3:Put", "s3:Delete")) for a in statement["actions"])


# Prefixes that do not overlap (validation refuses those that do), chosen to trip a loose
# pattern: "eu/orders" ends like "orders", "a" is also a sub-folder of "b"'s files, and "2026" is
# also a sub-folder of Firehose's date folders.
_PREFIXES = ("orders", "eu/orders", "customers", "a", "b", "2026")
_BATCHES = ("20261130T161648Z", "20261130T161648.852588Z")


def _lake_keys(prefix: str) -> list[str]:
    """Keys a feed's files and manifests take in every zone, for both forms of batch id."""
    keys = [f"landing/{prefix}/2026/11/30/16/f.csv", f"claims/{prefix}.json"]
    for zone in ("processing", "processed", "quarantine"):
        for batch in _BATCHES:
            folder = f"{zone}/{batch}/{prefix}/"
            keys += [f"{folder}f.csv", f"{folder}2026/11/30/16/f.gz", f"{folder}a/b/f.csv"]
            keys.append(f"{zone}/{batch}/{prefix}.manifest.json")
    return keys


def test_a_feeds_stage_folders_match_its_own_files_only() -> None:
    """The storage role's patterns: every object of the feed in processing/ and processed/, for
    both forms of batch id; nothing of another feed, and nothing in another zone."""
    keys = {prefix: _lake_keys(prefix) for prefix in _PREFIXES}
    for prefix in _PREFIXES:
        patterns = [f"{folder}*" for folder in LakeLayout(prefix).stage_folders]
        assert len(patterns) == 4  # two zones, two forms of batch id
        for owner, owned in keys.items():
            for key in owned:
                readable = owner == prefix and key.startswith(("processing/", "processed/"))
                readable = readable and not key.endswith(".manifest.json")
                matched = any(_iam_match(p, key) for p in patterns)
                assert matched == readable, (prefix, key)
    # The loose pattern `processing/*/<prefix>/*` would not do: `*` crosses `/`.
    assert _iam_match("processing/*/orders/*", "processing/20261130T161648Z/eu/orders/f.csv")
    assert _iam_match("processing/*/a/*", "processing/20261130T161648Z/b/a/b/f.csv")


LAKE_ARN = "arn:aws:s3:::streamline-lake-123456789012"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
_FOR_FOLDERS = re.compile(r'\[for folder in each\.value\.stage_folders : "([^"]*)"\]')


def _render(value: Any, feed: dict[str, Any]) -> list[str]:
    """A policy value of iam_snowflake.tf for one feed, as Terraform renders it: the forms the
    file uses (a `for` over the feed's stage_folders, concat of lists, plain interpolation); any
    other form fails the test, so a change to the policy must be rendered here too."""
    if isinstance(value, list):
        return [v for item in value for v in _render(item, feed)]

    def fill(template: str, folder: str = "") -> str:
        for name, actual in [
            ("${local.lake_bucket_arn}", LAKE_ARN),
            ("${each.value.prefix}", feed["prefix"]),
            ("${folder}", folder),
            ("${var.region}", "us-east-1"),
            ("${aws_kms_key.streamline.arn}", KEY_ARN),
        ]:
            template = template.replace(name, actual)
        assert "${" not in template, f"not rendered: {template}"
        return template

    def expand(expression: str) -> list[str]:
        if match := _FOR_FOLDERS.fullmatch(expression):
            return [fill(match[1], folder) for folder in feed["stage_folders"]]
        if expression.startswith("concat(") and expression.endswith(")"):
            parts = re.split(r",\s*(?=\[)", expression[len("concat(") : -1])
            return [v for part in parts for v in expand(part.strip())]
        if expression == "[local.lake_bucket_arn]":
            return [LAKE_ARN]
        raise AssertionError(f"iam_snowflake.tf: a form this test does not render: {expression}")

    if value.startswith(("${[", "${concat(")) and value.endswith("}"):
        return expand(value[2:-1])
    return [fill(value)]


def _snowflake_policy(hcl: dict[str, Any], feed: dict[str, Any]) -> list[dict[str, Any]]:
    """The storage-integration role's policy statements for one feed's variables."""
    rendered = []
    for statement in _policy(hcl, "snowflake"):
        rendered.append({
            "actions": statement["actions"],
            "resources": _render(statement["resources"], feed),
            "conditions": {
                c["variable"]: (c["test"], _render(c["values"], feed))
                for c in statement.get("condition", [])
            },
        })  # fmt: skip
    return rendered


def _allows(policy: list[dict[str, Any]], action: str, resource: str, **context: str) -> bool:
    """Whether an Allow-only policy allows the request: a statement with the action, a matching
    resource and every condition met (StringLike and StringEquals, one value per key)."""
    for statement in policy:
        if action not in statement["actions"]:
            continue
        if not any(_iam_match(r, resource) for r in statement["resources"]):
            continue
        met = True
        for key, (test, values) in statement["conditions"].items():
            actual = context.get(key)
            if actual is None:
                met = False  # a condition on a key the request lacks does not match
            elif test == "StringLike":
                met = met and any(_iam_match(v, actual) for v in values)
            else:
                assert test == "StringEquals", test
                met = met and actual in values
        if met:
            return True
    return False


@pytest.mark.parametrize("three_feeds", [False, True], ids=["pipelines", "with-a-third-spec"])
def test_a_feeds_storage_role_reads_only_its_own_batch_folders(
    hcl: dict[str, Any], project: Project, three_feed_project: Path, three_feeds: bool
) -> None:
    """The rendered policy of each feed's storage-integration role, for the generated feed
    variables: feed A's role gets and lists A's files in processing/ and processed/, and no
    object or listing of feed B, of another zone, or of a whole zone."""
    if three_feeds:
        project = find_project(three_feed_project)
    result = validate_paths(project)
    assert result.ok, result.errors
    feeds = feed_variables(result.feeds, project.root)["feeds"]
    assert len(feeds) == (3 if three_feeds else 2)
    keys = {name: _lake_keys(feed["prefix"]) for name, feed in feeds.items()}
    for name, feed in feeds.items():
        policy = _snowflake_policy(hcl, feed)
        for owner, owned in keys.items():
            for key in owned:
                own = owner == name and key.startswith(("processing/", "processed/"))
                own = own and not key.endswith(".manifest.json")
                allowed = _allows(policy, "s3:GetObject", f"{LAKE_ARN}/{key}")
                assert allowed == own, (name, key)
                folder = key.rsplit("/", 1)[0] + "/"
                listed = _allows(policy, "s3:ListBucket", LAKE_ARN, **{"s3:prefix": folder})
                assert listed == own, (name, folder)
                kms = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
                kms["kms:EncryptionContext:aws:s3:arn"] = f"{LAKE_ARN}/{key}"
                assert _allows(policy, "kms:Decrypt", KEY_ARN, **kms) == own, (name, key)
        for zone in ("processing/", "processed/", "landing/", ""):
            assert not _allows(policy, "s3:ListBucket", LAKE_ARN, **{"s3:prefix": zone}), zone
        assert _allows(policy, "s3:GetBucketLocation", LAKE_ARN)
        assert not any(
            a.startswith(("s3:Put", "s3:Delete")) for st in policy for a in st["actions"]
        )


def test_mwaa_role_is_scoped_to_its_buckets_zones_queues_and_secrets(
    hcl: dict[str, Any],
) -> None:
    zones = _statement(hcl, "mwaa", "ReadWriteDeleteLakeZones")
    assert "local.lake_zones" in zones["resources"]
    assert "${local.lake_bucket_arn}/${zone}/*" in zones["resources"]
    assert hcl["locals"]["lake_zones"] == "${var.lake_zones}"
    zones = feed_variables([], ROOT)["lake_zones"]
    assert zones == ["landing", "processing", "processed", "quarantine", "claims"]

    dags = _statement(hcl, "mwaa", "ReadDagBucket")
    assert dags["actions"] == ["s3:GetObject", "s3:GetObjectVersion"]  # read only
    assert dags["resources"] == ["${local.dag_bucket_arn}/*"]

    queues = _statement(hcl, "mwaa", "ConsumeFeedQueues")
    assert queues["resources"] == "${[for q in aws_sqs_queue.feed : q.arn]}"
    assert "sqs:SendMessage" not in queues["actions"]

    variables = _statement(hcl, "mwaa", "ReadOwnVariableSecrets")
    assert variables["resources"] == "${[for s in aws_secretsmanager_secret.variable : s.arn]}"
    secrets = _statement(hcl, "mwaa", "ReadOwnConnectionSecrets")
    assert secrets["actions"] == ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    assert "${local.secret_prefix}/${id}-??????" in secrets["resources"]
    assert "local.conn_ids" in secrets["resources"]
    assert hcl["locals"]["secret_prefix"] == "airflow/connections"

    logs = _statement(hcl, "mwaa", "WriteOwnLogs")
    assert logs["resources"] == ["${local.mwaa_log_groups}"]
    assert hcl["locals"]["mwaa_log_groups"].endswith("log-group:airflow-${var.name}-*")

    kms = _statement(hcl, "mwaa", "UseKeyViaServices")
    assert kms["condition"][0]["variable"] == "kms:ViaService"

    # Every lake statement of the role is one of the two above.
    for statement in _policy(hcl, "mwaa"):
        resources = " ".join(_as_list(statement["resources"]))
        if "lake_bucket_arn" in resources:
            assert statement["sid"] in {"ReadWriteDeleteLakeZones", "ListLake"}


EDGE_RESOURCES = (
    "[for feed in local.edge_feeds : aws_kinesis_firehose_delivery_stream.feed[feed].arn]"
)


def test_edge_role_is_optional_and_may_only_put_records(hcl: dict[str, Any]) -> None:
    role = hcl["resource"]["aws_iam_role"]["edge"]
    assert role["count"] == "${var.create_edge_role ? 1 : 0}"
    (statement,) = _policy(hcl, "edge")
    assert statement["actions"] == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    # Only the streams of edge_feeds (every feed when it is null): run by Terraform below.
    assert statement["resources"] == "${" + EDGE_RESOURCES + "}"
    assert hcl["locals"]["edge_feeds"] == (
        "${var.edge_feeds == null ? keys(var.feeds) : distinct(var.edge_feeds)}"
    )
    assert hcl["variable"]["edge_feeds"]["default"] is None


def _terraform_block(text: str, header: str) -> str:
    """One top-level block of a .tf file, by its first line (they end with a `}` line)."""
    start = text.index(header + " {\n")
    return text[start : text.index("\n}\n", start) + 3]


@pytest.fixture(scope="module")
def feed_module(tmp_path_factory: pytest.TempPathFactory, hcl: dict[str, Any]) -> Any:
    """Runs infra/'s feed variables, their validations and the edge role's resources in real
    Terraform, without providers: a module of the variables.tf blocks as they are, the locals
    edge_feeds of locals.tf, and the edge policy's resources with each stream's ARN made from its
    name (the provider would give it). Returns run(tfvars) -> (outputs, error text)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not on PATH: the feed variables' validations did NOT run")
    folder = tmp_path_factory.mktemp("feed_module")
    variables = (INFRA / "variables.tf").read_text(encoding="utf-8")
    locals_tf = (INFRA / "locals.tf").read_text(encoding="utf-8")
    edge_feeds = re.search(r"^  edge_feeds = (.*)$", locals_tf, re.M)
    assert edge_feeds is not None
    (statement,) = _policy(hcl, "edge")
    resources = statement["resources"].removeprefix("${").removesuffix("}")
    stream_arn = "aws_kinesis_firehose_delivery_stream.feed[feed].arn"
    arn = "arn:aws:firehose:us-east-1:123456789012:deliverystream/${f.stream_name}"
    module = [
        *(_terraform_block(variables, f'variable "{name}"') for name in ("lake_zones", "feeds")),
        _terraform_block(variables, 'variable "edge_feeds"'),
        "locals {",
        f"  edge_feeds = {edge_feeds[1]}",
        f'  stream_arns = {{ for feed, f in var.feeds : feed => "{arn}" }}',
        "}",
        'output "edge_resources" {',
        "  value = " + resources.replace(stream_arn, "local.stream_arns[feed]"),
        "}",
    ]
    (folder / "main.tf").write_text("\n".join(module) + "\n", encoding="utf-8")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1"}
    init = subprocess.run(
        [terraform, "init", "-input=false", "-no-color"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr

    def run(tfvars: dict[str, Any]) -> tuple[dict[str, Any], str]:
        (folder / "run.tfvars.json").write_text(json.dumps(tfvars), encoding="utf-8")
        done = subprocess.run(
            [terraform, "apply", "-input=false", "-auto-approve", "-no-color",
             "-var-file=run.tfvars.json"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            return {}, done.stderr
        shown = subprocess.run(
            [terraform, "output", "-json", "-no-color"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return {k: v["value"] for k, v in json.loads(shown.stdout).items()}, ""

    return run


def _stream_arn(feed: str) -> str:
    return f"arn:aws:firehose:us-east-1:123456789012:deliverystream/streamline-{feed}"


def test_edge_feeds_limits_the_edge_role_to_those_feeds_streams(
    feed_module: Any, project: Project
) -> None:
    tfvars = json.loads(tfvars_path(project).read_text(encoding="utf-8"))
    outputs, error = feed_module(tfvars)  # edge_feeds unset: every feed
    assert outputs["edge_resources"] == [_stream_arn("customers"), _stream_arn("orders")], error
    outputs, error = feed_module({**tfvars, "edge_feeds": ["orders"]})
    assert outputs["edge_resources"] == [_stream_arn("orders")], error
    outputs, error = feed_module({**tfvars, "edge_feeds": ["orders", "orders"]})
    assert outputs["edge_resources"] == [_stream_arn("orders")], error


@pytest.mark.parametrize("edge_feeds", [["shipments"], ["orders", "Orders"], []])
def test_edge_feeds_refuses_unknown_feeds(
    feed_module: Any, project: Project, edge_feeds: list[str]
) -> None:
    tfvars = json.loads(tfvars_path(project).read_text(encoding="utf-8"))
    outputs, error = feed_module({**tfvars, "edge_feeds": edge_feeds})
    assert not outputs
    assert "edge_feeds names at least one feed of feeds.auto.tfvars.json" in " ".join(error.split())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stage_folders": ["processing/*/orders/"]}, "Each stage folder ends in /<prefix>/"),
        ({"stage_folders": ["processing/????????T??????Z/customers/"]}, "Each stage folder"),
        ({"stage_folders": []}, "Each stage folder"),
        ({"storage_role": "streamline-" + "x" * 54}, "IAM role names are at most 64"),
    ],
)
def test_the_feeds_variable_refuses_a_storage_role_that_reads_too_much(
    feed_module: Any, project: Project, change: dict[str, Any], message: str
) -> None:
    tfvars = json.loads(tfvars_path(project).read_text(encoding="utf-8"))
    tfvars["feeds"]["orders"].update(change)
    outputs, error = feed_module(tfvars)
    assert not outputs
    assert message in " ".join(error.split())


def test_queues_accept_only_the_lake_bucket(hcl: dict[str, Any]) -> None:
    allow = _statement(hcl, "feed_queue", "LakeBucketNotifications")
    assert allow["principals"] == [{"type": "Service", "identifiers": ["s3.amazonaws.com"]}]
    assert allow["actions"] == ["sqs:SendMessage"]
    assert {
        "test": "ArnEquals",
        "variable": "aws:SourceArn",
        "values": ["${local.lake_bucket_arn}"],
    } in allow["condition"]
    deny = _statement(hcl, "feed_queue", "DenyEveryOtherSender")
    assert deny["effect"] == "Deny"
    assert deny["condition"][0]["test"] == "ArnNotEquals"
    for name in ("feed", "dlq"):
        queue = hcl["resource"]["aws_sqs_queue"][name]
        assert queue["kms_master_key_id"] == "${aws_kms_key.streamline.arn}"
    notification = hcl["resource"]["aws_s3_bucket_notification"]["lake"]
    (queue_block,) = notification["dynamic"][0]["queue"]["content"]
    assert queue_block["filter_prefix"] == "landing/${queue.value.prefix}/"
    assert queue_block["events"] == ["s3:ObjectCreated:*"]


def test_buckets_are_private_versioned_encrypted_and_tls_only(hcl: dict[str, Any]) -> None:
    resources = hcl["resource"]
    for bucket in ("lake", "dags", "access_logs"):
        block = resources["aws_s3_bucket_public_access_block"][bucket]
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ):
            assert block[flag] is True, (bucket, flag)
        versioning = resources["aws_s3_bucket_versioning"][bucket]
        assert versioning["versioning_configuration"][0]["status"] == "Enabled"
        policy = {"lake": "lake_bucket", "dags": "dag_bucket", "access_logs": "access_logs"}[bucket]
        tls = _statement(hcl, policy, "DenyInsecureTransport")
        assert tls["effect"] == "Deny"
        assert tls["condition"][0]["variable"] == "aws:SecureTransport"
    for bucket in ("lake", "dags"):
        sse = resources["aws_s3_bucket_server_side_encryption_configuration"][bucket]
        default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
        assert default["sse_algorithm"] == "aws:kms"
    assert "lake" in resources["aws_s3_bucket_logging"]
    rules = {r["id"]: r for r in resources["aws_s3_bucket_lifecycle_configuration"]["lake"]["rule"]}
    processed = rules["processed-transition-and-expiry"]
    assert processed["filter"][0]["prefix"] == "processed/"
    assert processed["transition"][0]["days"] == "${var.processed_transition_days}"
    assert processed["expiration"][0]["days"] == "${var.processed_expiration_days}"


def test_mwaa_environment_uses_secrets_manager_and_pinned_objects(hcl: dict[str, Any]) -> None:
    env = hcl["resource"]["aws_mwaa_environment"]["streamline"]
    options = env["airflow_configuration_options"]
    assert (
        '"secrets.backend" = "airflow.providers.amazon.aws.secrets.secrets_manager.'
        'SecretsManagerBackend"'
    ) in options
    assert "connections_prefix = local.secret_prefix" in options
    assert "connections_lookup_pattern" in options and "variables_lookup_pattern" in options
    assert hcl["locals"]["variable_prefix"] == "airflow/variables"
    # The three root files of the deploy bundle, each pinned by the version deploy printed.
    for key, variable in [
        ("requirements", "mwaa_requirements_s3_object_version"),
        ("plugins", "mwaa_plugins_s3_object_version"),
        ("startup_script", "mwaa_startup_script_s3_object_version"),
    ]:
        assert env[f"{key}_s3_object_version"] == f"${{var.{variable}}}"
        assert f"var.{variable} == null ? null" in env[f"{key}_s3_path"]
    assert env["dag_s3_path"] == "${var.mwaa_bundle_prefix}dags/"
    assert env["airflow_version"] == "${var.airflow_version}"
    assert env["network_configuration"][0]["subnet_ids"] == "${var.mwaa_subnet_ids}"
    assert env["network_configuration"][0]["security_group_ids"] == (
        "${var.mwaa_security_group_ids}"
    )
    assert env["execution_role_arn"] == "${aws_iam_role.mwaa.arn}"
    assert hcl["locals"]["dag_bucket"].startswith("airflow-")  # MWAA requires the prefix


def test_mwaa_defaults_match_streamline_deploy() -> None:
    from streamline import deploy, mwaa

    versions = _load_tf(INFRA / "variables.tf")["variable"]
    airflow = next(v["airflow_version"] for v in versions if "airflow_version" in v)
    assert airflow["default"] == mwaa.DEFAULT_AIRFLOW_VERSION
    assert deploy.ROOT_FILES == ("requirements.txt", "plugins.zip", "startup.sh")


def test_no_wildcard_actions_or_resources_except_where_justified(hcl: dict[str, Any]) -> None:
    for policy, statement in _all_statements(hcl):
        where = (policy, statement.get("sid"))
        actions = _as_list(statement.get("actions", []))
        assert "*" not in actions, f"{where}: Action '*'"
        allow = statement.get("effect", "Allow") == "Allow"
        if not allow:
            continue
        if any(a.endswith(":*") for a in actions):
            assert where in SERVICE_WILDCARD_ALLOWED, f"{where}: service-wide action {actions}"
        if "*" in _as_list(statement.get("resources", [])):
            assert where in STAR_RESOURCE_ALLOWED, f"{where}: Resource '*'"
        for principal in statement.get("principals", []):
            assert "*" not in principal["identifiers"], f"{where}: Allow to any principal"


# ------------------------------------------------------------------------------------------------
# Snowflake setup SQL
# ------------------------------------------------------------------------------------------------


def _role_arns(*feeds: str) -> dict[str, str]:
    """What `terraform output -json snowflake_storage_role_arns` gives for these feeds."""
    return {f: f"arn:aws:iam::123456789012:role/streamline-{f}-snowflake" for f in feeds}


SETUP = SnowflakeSetup(
    lake_bucket="streamline-lake-123456789012",
    storage_role_arns=_role_arns("customers", "orders"),
    external_id="0123456789abcdef0123456789abcdef",
)

SETUP_ARN_OF_ANOTHER = "arn:aws:iam::123456789012:role/streamline-customers-snowflake"

# Statement forms sqlglot 30 does not model and returns as an opaque Command; each must match
# its grammar here exactly instead.
_Q = r'"[A-Z_][A-Z0-9_]*"'
_COMMAND_FORMS = [
    rf"CREATE ROLE IF NOT EXISTS {_Q} COMMENT = '[^']*'",
    rf"GRANT ROLE {_Q} TO (ROLE SYSADMIN|USER {_Q})",
    rf"GRANT (SELECT|INSERT|UPDATE|DELETE)(, (SELECT|INSERT|UPDATE|DELETE))* ON (ALL|FUTURE) "
    rf"TABLES IN SCHEMA {_Q}\.{_Q} TO ROLE {_Q}",
    rf"GRANT USAGE ON (ALL|FUTURE) (STAGES|FILE FORMATS) IN SCHEMA {_Q}\.{_Q} TO ROLE {_Q}",
    rf"CREATE USER IF NOT EXISTS {_Q}\s+TYPE = SERVICE\s+DEFAULT_ROLE = {_Q}\s+"
    rf"DEFAULT_WAREHOUSE = {_Q}\s+COMMENT = '[^']*'",
    rf"ALTER USER {_Q} SET RSA_PUBLIC_KEY = '[A-Za-z0-9+/=]+'",
]


def _statements(sql: str) -> list[exp.Expression]:
    return [s for s in sqlglot.parse(sql, read="snowflake") if s is not None]


@pytest.mark.parametrize("with_ddl", [True, False], ids=["with-ddl", "setup-only"])
def test_snowflake_setup_parses(project: Project, feeds: list[Feed], with_ddl: bool) -> None:
    key = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 40
    setup = dataclasses.replace(SETUP, rsa_public_key=key)
    sql = render_snowflake_setup(project, feeds, setup, with_ddl=with_ddl)
    statements = _statements(sql)
    assert len(statements) >= 30
    for statement in statements:
        if isinstance(statement, exp.Command):
            text = statement.sql(dialect="snowflake", comments=False)
            assert any(re.fullmatch(form, text, re.S) for form in _COMMAND_FORMS), text
    kinds = [type(s).__name__ for s in statements]
    assert kinds.count("Copy") == 0 and kinds.count("Merge") == 0
    create_tables = [s for s in statements if isinstance(s, exp.Create) and s.kind == "TABLE"]
    # landing, quarantine, raw, mart, and the batch ledger of the raw schema (IF NOT EXISTS: once
    # per feed is fine)
    assert len(create_tables) == (6 * len(feeds) if with_ddl else 0)


def _integrations(sql: str) -> dict[str, str]:
    """Storage integration -> the text of its CREATE statement, from the setup SQL."""
    found = re.findall(r'CREATE STORAGE INTEGRATION IF NOT EXISTS "(\w+)"(.*?);', sql, re.S)
    return dict(found)


def _stages(sql: str) -> dict[str, str]:
    """Stage name -> the storage integration its CREATE statement names (or "")."""
    stages = {}
    for name, body in re.findall(r'CREATE OR REPLACE STAGE "\w+"\."\w+"\."(\w+)"(.*?);', sql, re.S):
        named = re.search(r'STORAGE_INTEGRATION = "(\w+)"', body)
        stages[name] = named[1] if named else ""
    return stages


def test_snowflake_setup_grants_least_privilege(project: Project, feeds: list[Feed]) -> None:
    sql = render_snowflake_setup(project, feeds, SETUP)
    integrations = _integrations(sql)
    assert sorted(integrations) == ["STREAMLINE_LAKE_CUSTOMERS", "STREAMLINE_LAKE_ORDERS"]
    for feed in feeds:
        body = integrations[f"STREAMLINE_LAKE_{feed.feed.upper()}"]
        role = f"arn:aws:iam::123456789012:role/streamline-{feed.feed}-snowflake"
        assert f"STORAGE_AWS_ROLE_ARN = '{role}'" in body
        assert "STORAGE_AWS_EXTERNAL_ID = '0123456789abcdef0123456789abcdef'" in body
        assert "STORAGE_ALLOWED_LOCATIONS = ('s3://streamline-lake-123456789012/')" in body
        blocked = re.search(r"STORAGE_BLOCKED_LOCATIONS = \(([^)]*)\)", body)
        assert blocked is not None
        assert sorted(re.findall(r"'s3://streamline-lake-123456789012/(\w+)/'", blocked[1])) == [
            "claims", "errors", "landing", "quarantine"
        ]  # fmt: skip
        assert f'GRANT USAGE ON INTEGRATION "STREAMLINE_LAKE_{feed.feed.upper()}"' in sql
        assert f'DESC INTEGRATION "STREAMLINE_LAKE_{feed.feed.upper()}";' in sql
    # Each stage the feed DDL creates uses its feed's integration, at a URL the integration allows.
    assert _stages(sql) == {
        f"{f.feed.upper()}_STAGE": f"STREAMLINE_LAKE_{f.feed.upper()}" for f in feeds
    }
    assert sql.count("URL = 's3://streamline-lake-123456789012/'") == len(feeds)
    loader = [line for line in sql.splitlines() if line.endswith('TO ROLE "STREAMLINE_LOADER";')]
    assert loader
    assert not any(
        re.search(r"\b(CREATE|OWNERSHIP|ALL PRIVILEGES|TRUNCATE)\b", line) for line in loader
    ), "the loader role may create, own or truncate nothing"
    # raw: DELETE + COPY of a batch; UPDATE for the batch ledger, which lives there
    assert (
        'GRANT SELECT, INSERT, UPDATE, DELETE ON FUTURE TABLES IN SCHEMA "STREAMLINE"."RAW"' in sql
    )
    assert (
        'GRANT SELECT, INSERT, UPDATE, DELETE ON FUTURE TABLES IN SCHEMA "STREAMLINE"."MART"' in sql
    )
    assert "TYPE = SERVICE" in sql and "PASSWORD" not in sql
    assert sql.rstrip().endswith('DESC INTEGRATION "STREAMLINE_LAKE_ORDERS";')


def _three_feed_setup(root: Path) -> tuple[Project, Any, str]:
    """The three-feed project, its validation result and its Snowflake setup SQL."""
    project = find_project(root)
    result = validate_paths(project)
    assert result.ok, result.errors
    setup = dataclasses.replace(
        SETUP, storage_role_arns=_role_arns("customers", "orders", "shipments")
    )
    return project, result, render_snowflake_setup(project, result.feeds, setup)


def test_a_feeds_stage_reaches_only_its_own_files(
    hcl: dict[str, Any], three_feed_project: Path
) -> None:
    """Stage -> integration -> IAM role -> policy, from the setup SQL, the feed variables and the
    rendered policy: each feed's stage reads its own batch folders and no other feed's files."""
    project, result, sql = _three_feed_setup(three_feed_project)
    variables = feed_variables(result.feeds, project.root)["feeds"]
    by_role = {feed["storage_role"]: name for name, feed in variables.items()}
    integrations = _integrations(sql)
    stages = _stages(sql)
    assert len(stages) == len(set(stages.values())) == 3  # a stage per feed, each its own
    keys = {name: _lake_keys(feed["prefix"]) for name, feed in variables.items()}
    for stage, integration in stages.items():
        feed = stage.removesuffix("_STAGE").lower()
        arn = re.search(r"STORAGE_AWS_ROLE_ARN = '([^']+)'", integrations[integration])
        assert arn is not None
        assert by_role[arn[1].rsplit("/", 1)[-1]] == feed  # the role Terraform makes for it
        policy = _snowflake_policy(hcl, variables[feed])
        for owner, owned in keys.items():
            for key in owned:
                readable = _allows(policy, "s3:GetObject", f"{LAKE_ARN}/{key}")
                assert readable == (
                    owner == feed
                    and key.endswith((".csv", ".gz"))
                    and key.startswith(("processing/", "processed/"))
                ), (stage, key)


def test_a_third_spec_changes_the_snowflake_sql(three_feed_project: Path) -> None:
    project, result, sql = _three_feed_setup(three_feed_project)
    assert 'CREATE TABLE IF NOT EXISTS "STREAMLINE"."RAW"."SHIPMENTS"' in sql
    assert 'CREATE OR REPLACE STAGE "STREAMLINE"."RAW"."SHIPMENTS_STAGE"' in sql
    assert "STREAMLINE_LAKE_SHIPMENTS" in _integrations(sql)
    # The two-feed ARNs are stale for three feeds: the SQL would leave shipments without a role.
    from streamline.errors import UsageError

    with pytest.raises(UsageError, match="no role for shipments"):
        render_snowflake_setup(project, result.feeds, SETUP)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lake_bucket": "Not_A_Bucket"}, "not an S3 bucket name"),
        ({"storage_role_arns": {"orders": "arn:aws:iam::123:role/x"}}, "not an IAM role ARN"),
        ({"storage_role_arns": _role_arns("orders")}, "no role for customers"),
        ({"storage_role_arns": _role_arns("customers", "orders", "x")}, "not in pipelines/: x"),
        (
            {"storage_role_arns": {**_role_arns("customers"), "orders": SETUP_ARN_OF_ANOTHER}},
            "StreamLine names it streamline-orders-snowflake",
        ),
        ({"external_id": "x"}, "external id"),
        ({"external_id": "abc'; DROP"}, "external id"),
        ({"loader_role": "loader; DROP"}, "loader role"),
        ({"warehouse_size": "HUGE"}, "warehouse size"),
        ({"rsa_public_key": "-----BEGIN PUBLIC KEY-----"}, "base64 body"),
    ],
)
def test_snowflake_setup_rejects_unsafe_values(
    project: Project, feeds: list[Feed], change: dict[str, Any], message: str
) -> None:
    from streamline.errors import UsageError

    setup = dataclasses.replace(SETUP, **change)
    with pytest.raises(UsageError, match=message):
        render_snowflake_setup(project, feeds, setup)


def test_public_key_body_strips_the_pem_armour() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nAAAA\nBBBB\n-----END PUBLIC KEY-----\n"
    assert public_key_body(pem) == "AAAABBBB"


def test_infra_sql_command(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--project",
            str(ROOT),
            "infra-sql",
            "--lake-bucket",
            SETUP.lake_bucket,
            "--storage-role-arns",
            json.dumps(dict(SETUP.storage_role_arns)),
            "--external-id",
            SETUP.external_id,
            "--setup-only",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(_integrations(captured.out)) == [
        "STREAMLINE_LAKE_CUSTOMERS",
        "STREAMLINE_LAKE_ORDERS",
    ]
    assert "CREATE TABLE" not in captured.out


@pytest.mark.parametrize(
    ("arns", "message"),
    [("not json", "is not JSON"), ('["arn"]', "JSON object of feed -> role ARN")],
)
def test_infra_sql_refuses_role_arns_that_are_not_a_feed_map(
    arns: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--project", str(ROOT), "infra-sql", "--lake-bucket", SETUP.lake_bucket]
    code = main([*args, "--storage-role-arns", arns, "--external-id", SETUP.external_id])
    assert code == 2
    assert message in capsys.readouterr().err


def test_stream_name_matches_the_local_stack(feeds: list[Feed]) -> None:
    source = (ROOT / "framework" / "streamline" / "local" / "stack.py").read_text()
    assert "name = layout.firehose_stream" in source  # the stack names streams as infra does
    assert all(f.layout.firehose_stream == f"streamline-{f.feed.replace('_', '-')}" for f in feeds)


# ------------------------------------------------------------------------------------------------
# checkov
# ------------------------------------------------------------------------------------------------


def test_checkov_passes_with_only_justified_skips() -> None:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is not on PATH: checkov runs through `uv tool run` (make install sets uv up)"
    command = [
        uv, "tool", "run", "--from", f"checkov=={CHECKOV_VERSION}", "checkov",
        "--directory", str(INFRA),
        "--framework", "terraform",
        "--skip-download",  # no Prisma Cloud guideline download: runs offline once installed
        "--output", "json",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=540)
    if not done.stdout.strip().startswith("{"):
        pytest.fail(
            f"checkov {CHECKOV_VERSION} did not run (exit {done.returncode}); it installs from "
            f"PyPI into uv's tool cache on first use:\n{done.stderr[-3000:]}"
        )
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]}): "
        f"{c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert summary["parsing_errors"] == 0, summary
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} has no reason"
    assert {(c["check_id"], c["resource"]) for c in skipped} == EXPECTED_SKIPS
    assert summary["passed"] > 200, summary  # the per-feed resources were expanded and checked
