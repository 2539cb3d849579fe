"""`streamline deploy`: the MWAA bundle, its upload to a moto bucket; the feed-author CI files."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamline.cli import main
from streamline.dagconfig import TASKS
from streamline.dagloader import check_dags_folder
from streamline.deploy import (
    DEFAULT_AIRFLOW_VERSION,
    HASH_METADATA,
    PIN_OPTIONS,
    ROOT_FILES,
    build_wheel,
)

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "mwaa-dags"  # the dag_bucket fixture's bucket (conftest.py)
CONSTRAINT = (
    '--constraint "https://raw.githubusercontent.com/apache/airflow/'
    f'constraints-{DEFAULT_AIRFLOW_VERSION}/constraints-3.12.txt"'
)
BUNDLE = {
    "dags/.airflowignore",
    "dags/streamline_dags.py",
    "dags/streamline_project/pipelines/customers.yaml",
    "dags/streamline_project/pipelines/orders.yaml",
    "dags/streamline_project/schemas/feed.schema.json",
    "dags/streamline_project/templates/check.sql.j2",
    "dags/streamline_project/templates/ddl.sql.j2",
    "dags/streamline_project/templates/ledger.sql.j2",
    "dags/streamline_project/templates/load.sql.j2",
    "dags/streamline_project/templates/transform.sql.j2",
    "dags/streamline_project/templates/transforms/append.sql.j2",
    "dags/streamline_project/templates/transforms/merge_latest.sql.j2",
    "plugins.zip",
    "requirements.txt",
    "startup.sh",
}
SHIPMENTS = textwrap.dedent(
    """\
    feed: shipments
    source:
      prefix: shipments
    columns:
      - {name: shipment_id, type: VARCHAR(24)}
      - {name: order_id, type: VARCHAR(20)}
      - {name: shipped_at, type: TIMESTAMP_NTZ(3)}
    key: [shipment_id]
    ordering: shipped_at
    raw: {database: streamline, schema: raw, table: shipments}
    mart: {database: streamline, schema: mart, table: shipments}
    """
)
LOCAL_ONLY = ("moto", "fakesnow", "duckdb")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's project; the working directory is elsewhere."""
    root = tmp_path / "project"
    for folder in ("schemas", "templates", "pipelines", "infra/mwaa"):
        shutil.copytree(ROOT / folder, root / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STREAMLINE_PROJECT_DIR", raising=False)
    for name in ("STREAMLINE_DAG_BUCKET", "STREAMLINE_DAG_PREFIX", "STREAMLINE_SQS_URL_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMLINE_SQL_DIR", str(tmp_path / "sql"))
    return root


@pytest.fixture
def s3(dag_bucket: Any) -> Any:
    """The environment's bucket, BUCKET (tests/unit/conftest.py)."""
    return dag_bucket


def deploy(project: Path, *flags: str) -> int:
    out = project.parent / "mwaa"
    return main(["--project", str(project), "deploy", "--out", str(out), *flags])


def keys(client: Any, prefix: str = "") -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def listed(output: str, word: str) -> set[str]:
    """Keys printed after `word` in the deploy report."""
    return set(re.findall(rf"^  {word} +(\S+)$", output, re.MULTILINE))


def uploaded_count(output: str) -> int:
    match = re.search(r"^uploaded (\d+) files?", output, re.MULTILINE)
    assert match, output
    return int(match[1])


# ---- the bundle ----------------------------------------------------------------------------


def test_requirements_carry_the_constraint_and_no_local_stack(project: Path) -> None:
    assert deploy(project, "--build-only") == 0
    text = (project.parent / "mwaa" / "requirements.txt").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert CONSTRAINT in lines
    assert "--find-links /usr/local/airflow/plugins" in lines
    names = {re.split(r"[=<>]", line)[0].lower() for line in lines if not line.startswith("-")}
    assert not names & set(LOCAL_ONLY)
    assert "apache-airflow" not in names  # MWAA's own Airflow stays as installed
    # Packages the constraint file does not cover are pinned to the locked versions.
    for package in ("dag-factory", "sqlglot"):
        assert f"{package}=={importlib.metadata.version(package)}" in lines
    (wheel_pin,) = [line for line in lines if line.startswith("streamline==")]
    with zipfile.ZipFile(project.parent / "mwaa" / "plugins.zip") as plugins:
        (wheel,) = plugins.namelist()
    assert wheel == f"streamline-{wheel_pin.split('==')[1]}-py3-none-any.whl"


def test_each_mwaa_version_gets_its_own_constraint_line(project: Path) -> None:
    assert deploy(project, "--build-only", "--airflow-version", "latest") == 2
    assert deploy(project, "--build-only", "--airflow-version", "3.1.0") == 2  # not on MWAA
    assert deploy(project, "--build-only", "--airflow-version", "2.10.3") == 0
    text = (project.parent / "mwaa" / "requirements.txt").read_text()
    assert "constraints-2.10.3/constraints-3.11.txt" in text  # the 2.10.3 image's Python


def test_event_feeds_cannot_deploy_to_airflow_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = project / "pipelines" / "orders.yaml"
    spec.write_text(spec.read_text().replace("  mode: poll", "  mode: event"))
    prefix = ("--sqs-url-prefix", "https://sqs.eu-west-1.amazonaws.com/123456789012")
    assert deploy(project, "--build-only", *prefix, "--airflow-version", "2.11.2") == 1
    assert "pipelines/orders.yaml:" in capsys.readouterr().err
    assert not (project.parent / "mwaa").exists()
    assert deploy(project, "--build-only", *prefix, "--airflow-version", "3.0.6") == 0


def test_plugins_zip_holds_a_streamline_wheel_for_mwaa(project: Path, tmp_path: Path) -> None:
    assert deploy(project, "--build-only") == 0
    with zipfile.ZipFile(project.parent / "mwaa" / "plugins.zip") as plugins:
        (name,) = plugins.namelist()
        wheel_path = tmp_path / name
        wheel_path.write_bytes(plugins.read(name))
    assert re.fullmatch(r"streamline-0\.1\.0\+g[0-9a-f]{12}-py3-none-any\.whl", name)
    with zipfile.ZipFile(wheel_path) as wheel:
        names = wheel.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = wheel.read(metadata).decode()
        (record,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        for line in wheel.read(record).decode().splitlines():
            path, digest, size = line.rsplit(",", 2)
            if path == record:
                continue
            data = wheel.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == f"sha256={expected.decode()}" and int(size) == len(data), path
        wheel.extractall(tmp_path / "site")
    assert "streamline/dagloader.py" in names and "streamline/lake.py" in names
    assert not [n for n in names if n.startswith("streamline/local/") or "__pycache__" in n]
    # MWAA's Airflow 3 runs Python 3.12; the development pins (Airflow 3.3.2, <3.12) stay out.
    assert "Requires-Python: >=3.11\n" in meta
    assert "apache-airflow==" not in meta and not any(p in meta for p in LOCAL_ONLY)
    # The wheel's package imports on its own (the editable install is later on sys.path).
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import streamline.validation, streamline; print(streamline.__file__)",
        ],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(shown.strip()).is_relative_to(tmp_path / "site")


UV = os.environ.get("UV") or shutil.which("uv")  # `uv run` (make test) says where it is


@pytest.mark.skipif(UV is None, reason="needs uv to install the wheel")
def test_the_wheel_installs_from_the_plugins_folder_by_its_pin(
    project: Path, tmp_path: Path
) -> None:
    assert deploy(project, "--build-only") == 0
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(project.parent / "mwaa" / "plugins.zip") as archive:
        archive.extractall(plugins)
    (pin,) = [
        line
        for line in (project.parent / "mwaa" / "requirements.txt").read_text().splitlines()
        if line.startswith("streamline==")
    ]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--find-links {plugins}\n{pin}\n")
    done = subprocess.run(
        [
            *(str(UV), "pip", "install", "--offline", "--no-index", "--no-deps"),
            *("--target", str(tmp_path / "site"), "-r", str(requirements)),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "streamline" / "dagloader.py").is_file()


def test_builds_are_reproducible(project: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["--project", str(project), "deploy", "--build-only", "--out", str(out)]) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert {p.as_posix() for p in files} == BUNDLE
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_out_must_be_a_bundle_folder(project: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code = main(["--project", str(project), "deploy", "--build-only", "--out", str(precious)])
    assert code == 2
    assert (precious / "notes.txt").read_text() == "keep me"


def test_bundle_dags_load_anywhere_with_no_build_machine_path(
    project: Path, tmp_path: Path
) -> None:
    assert deploy(project, "--build-only") == 0
    # As on MWAA: only the dags folder arrives, somewhere else; the project is gone.
    moved = tmp_path / "elsewhere" / "dags"
    shutil.copytree(project.parent / "mwaa" / "dags", moved)
    shutil.rmtree(project)
    shutil.rmtree(project.parent / "mwaa")
    for path in moved.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert str(tmp_path) not in text and str(ROOT) not in text, path
    dags, errors = check_dags_folder(moved)
    assert errors == {}
    assert dags == {"customers": list(TASKS), "orders": list(TASKS)}
    # The SQL was rendered outside the dags folder, which MWAA keeps as a copy of S3.
    assert (tmp_path / "sql" / "orders" / "load.sql").is_file()
    assert not list(moved.rglob("*.sql"))


def test_airflowignore_hides_the_project_data_from_the_dag_processor(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert deploy(project, "--build-only") == 0
    dags = project.parent / "mwaa" / "dags"
    # A Python file among the data would be an import error if Airflow parsed it.
    stray = dags / "streamline_project" / "templates" / "stray.py"
    stray.write_text("raise RuntimeError('parsed')  # airflow dag\n")
    for syntax in ("glob", "regexp"):  # Airflow 3's default, and Airflow 2's
        monkeypatch.setenv("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", syntax)
        found, errors = check_dags_folder(dags)
        assert errors == {}, syntax
        assert set(found) == {"customers", "orders"}
    (dags / ".airflowignore").unlink()
    _, errors = check_dags_folder(dags)
    assert [Path(path).name for path in errors] == ["stray.py"]


def test_event_feeds_need_the_queue_url_prefix(project: Path) -> None:
    spec = project / "pipelines" / "customers.yaml"
    spec.write_text(spec.read_text().replace("  mode: poll", "  mode: event"))
    assert deploy(project, "--build-only") == 2
    prefix = "https://sqs.eu-west-1.amazonaws.com/123456789012"
    assert deploy(project, "--build-only", "--sqs-url-prefix", prefix) == 0
    loader = (project.parent / "mwaa" / "dags" / "streamline_dags.py").read_text()
    assert f"os.environ.setdefault('STREAMLINE_SQS_URL_PREFIX', {prefix!r})" in loader


# ---- upload --------------------------------------------------------------------------------


def test_dry_run_lists_the_whole_bundle_and_uploads_nothing(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(project, "--bucket", BUCKET, "--dry-run") == 0
    output = capsys.readouterr().out
    assert listed(output, "add") == BUNDLE
    assert f"s3://{BUCKET}/: {len(BUNDLE)} to add, 0 to change, 0 unchanged" in output
    assert keys(s3) == set()


def test_deploy_uploads_once_then_nothing_until_something_changes(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(project, "--bucket", BUCKET) == 0
    output = capsys.readouterr().out
    assert keys(s3) == BUNDLE
    assert uploaded_count(output) == len(BUNDLE)
    for name in ("requirements.txt", "plugins.zip"):
        version = s3.head_object(Bucket=BUCKET, Key=name)["VersionId"]
        assert re.search(rf"^  {re.escape(name)} +{re.escape(version)}  \(new\)$", output, re.M)
    assert "aws mwaa update-environment" in output
    requirements = s3.head_object(Bucket=BUCKET, Key="requirements.txt")["VersionId"]
    assert f"--requirements-s3-object-version {requirements}" in output
    assert f'mwaa_requirements_s3_object_version = "{requirements}"' in output
    assert "terraform -chdir=infra apply -var-file=" in output
    versions = {k: s3.head_object(Bucket=BUCKET, Key=k)["VersionId"] for k in BUNDLE}

    assert deploy(project, "--bucket", BUCKET) == 0
    output = capsys.readouterr().out
    assert uploaded_count(output) == 0
    assert "no environment update" in output
    assert {k: s3.head_object(Bucket=BUCKET, Key=k)["VersionId"] for k in BUNDLE} == versions

    spec = project / "pipelines" / "orders.yaml"
    spec.write_text(spec.read_text().replace("retries: 2", "retries: 3"))
    assert deploy(project, "--bucket", BUCKET, "--dry-run") == 0
    output = capsys.readouterr().out
    assert listed(output, "change") == {"dags/streamline_project/pipelines/orders.yaml"}
    assert listed(output, "unchanged") == BUNDLE - {"dags/streamline_project/pipelines/orders.yaml"}
    assert deploy(project, "--bucket", BUCKET) == 0
    output = capsys.readouterr().out
    assert uploaded_count(output) == 1
    assert listed(output, "change") == {"dags/streamline_project/pipelines/orders.yaml"}
    changed = {
        k for k in BUNDLE if s3.head_object(Bucket=BUCKET, Key=k)["VersionId"] != versions[k]
    }
    assert changed == {"dags/streamline_project/pipelines/orders.yaml"}
    assert "dags/ changes need no environment update" in output


def test_a_new_wheel_goes_first_and_the_dags_wait_for_the_environment_update(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline import deploy as module

    assert deploy(project, "--bucket", BUCKET) == 0  # the first deploy: everything at once
    capsys.readouterr()
    loader = "dags/streamline_dags.py"
    orders = "dags/streamline_project/pipelines/orders.yaml"
    old_loader = s3.get_object(Bucket=BUCKET, Key=loader)["Body"].read()
    # A framework change: a new wheel, so a new pin and a loader built for it.
    files = module._package_files()
    edited = [(p, b + b"\n# edited\n") if p.endswith("lake.py") else (p, b) for p, b in files]
    monkeypatch.setattr(module, "_package_files", lambda: edited)
    spec = project / "pipelines" / "orders.yaml"
    spec.write_text(spec.read_text().replace("retries: 2", "retries: 3"))
    assert deploy(project, "--bucket", BUCKET, "--delete") == 0
    output = capsys.readouterr().out
    assert listed(output, "change") == {"requirements.txt", "plugins.zip"}
    assert listed(output, "held") == {loader, orders}
    assert s3.get_object(Bucket=BUCKET, Key=loader)["Body"].read() == old_loader
    assert "2 DAG files held back until the environment runs the new wheel" in output
    order = output.index("aws mwaa update-environment")
    assert output.index("once the update is done, release the 2 DAG files held back") > order
    versions = {k: s3.head_object(Bucket=BUCKET, Key=k)["VersionId"] for k in module.WHEEL_FILES}

    # Deploying again before the environment runs the new wheel (a CI job on the next push):
    # the DAG files stay held, with the reason.
    assert deploy(project, "--bucket", BUCKET) == 0
    output = capsys.readouterr().out
    assert listed(output, "held") == {loader, orders} and listed(output, "change") == set()
    assert "held: the environment must run the wheel" in output
    assert s3.get_object(Bucket=BUCKET, Key=loader)["Body"].read() == old_loader

    # --mwaa-environment asks MWAA: still updating, then running the held versions.
    environment = {
        "Status": "UPDATING",
        "RequirementsS3ObjectVersion": "old",
        "PluginsS3ObjectVersion": "old",
    }
    monkeypatch.setattr(module, "mwaa_environment", lambda name: environment)
    assert deploy(project, "--bucket", BUCKET, "--mwaa-environment", "prod") == 0
    output = capsys.readouterr().out
    assert "held: MWAA environment prod is UPDATING" in output
    assert listed(output, "change") == set()
    environment |= {
        "Status": "AVAILABLE",
        "RequirementsS3ObjectVersion": versions["requirements.txt"],
        "PluginsS3ObjectVersion": versions["plugins.zip"],
    }
    assert deploy(project, "--bucket", BUCKET, "--mwaa-environment", "prod") == 0
    output = capsys.readouterr().out
    assert listed(output, "change") == {loader, orders}
    assert listed(output, "held") == set()
    assert s3.get_object(Bucket=BUCKET, Key=loader)["Body"].read() != old_loader
    assert module.HOLD_RECORD not in keys(s3)  # released: the next deploy holds nothing
    assert deploy(project, "--bucket", BUCKET) == 0
    assert "held" not in capsys.readouterr().out


def test_environment_updated_releases_the_held_dags(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline import deploy as module

    assert deploy(project, "--bucket", BUCKET) == 0
    files = module._package_files()
    edited = [(p, b + b"\n# edited\n") if p.endswith("lake.py") else (p, b) for p, b in files]
    monkeypatch.setattr(module, "_package_files", lambda: edited)
    assert deploy(project, "--bucket", BUCKET) == 0
    capsys.readouterr()
    assert deploy(project, "--bucket", BUCKET, "--environment-updated") == 0
    output = capsys.readouterr().out
    assert listed(output, "change") == {"dags/streamline_dags.py"}
    assert module.HOLD_RECORD not in keys(s3)


def test_a_removed_spec_is_a_warning_until_deleted(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(project, "--bucket", BUCKET) == 0
    (project / "pipelines" / "orders.yaml").unlink()
    (project / "pipelines" / "customers.yaml").write_text(
        (project / "pipelines" / "customers.yaml").read_text()
    )
    capsys.readouterr()
    assert deploy(project, "--bucket", BUCKET, "--dry-run") == 0
    assert "warning: 1 spec removed here but still on S3: the DAG of each keeps running" in (
        capsys.readouterr().out
    )


def test_a_third_spec_is_the_only_new_file(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(project, "--bucket", BUCKET) == 0
    capsys.readouterr()
    (project / "pipelines" / "shipments.yaml").write_text(SHIPMENTS)
    assert deploy(project, "--bucket", BUCKET) == 0
    output = capsys.readouterr().out
    assert listed(output, "add") == {"dags/streamline_project/pipelines/shipments.yaml"}
    assert listed(output, "change") == set()
    found, errors = check_dags_folder(project.parent / "mwaa" / "dags")
    assert errors == {} and found["shipments"] == list(TASKS)
    assert "dags/streamline_project/pipelines/shipments.yaml" in keys(s3)


def test_an_invalid_spec_stops_the_deploy(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pipelines" / "broken.yaml").write_text(
        "feed: broken\nsource:\n  prefix: broken\n  colour: red\n"
    )
    assert deploy(project, "--bucket", BUCKET) == 1
    captured = capsys.readouterr()
    assert "pipelines/broken.yaml:4:3: $.source.colour: unknown key 'colour'" in captured.err
    assert re.search(r"^\d+ errors? in 1 file$", captured.err, re.MULTILINE)
    assert keys(s3) == set()
    assert not (project.parent / "mwaa").exists()


def test_removed_files_are_reported_and_deleted_only_when_asked(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pipelines" / "shipments.yaml").write_text(SHIPMENTS)
    assert deploy(project, "--bucket", BUCKET) == 0
    (project / "pipelines" / "shipments.yaml").unlink()
    gone = "dags/streamline_project/pipelines/shipments.yaml"
    capsys.readouterr()
    assert deploy(project, "--bucket", BUCKET) == 0
    output = capsys.readouterr().out
    assert listed(output, "stale") == {gone}
    assert gone in keys(s3)
    assert deploy(project, "--bucket", BUCKET, "--delete", "--dry-run") == 0
    assert listed(capsys.readouterr().out, "delete") == {gone}
    assert gone in keys(s3)
    assert deploy(project, "--bucket", BUCKET, "--delete") == 0
    assert keys(s3) == BUNDLE


def test_delete_leaves_files_that_no_deploy_uploaded(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(project, "--bucket", BUCKET) == 0
    theirs = "dags/billing_team/invoices.py"  # another team's DAG under the same dags/ prefix
    s3.put_object(Bucket=BUCKET, Key=theirs, Body=b"# not ours\n")
    capsys.readouterr()
    assert deploy(project, "--bucket", BUCKET, "--delete") == 0
    output = capsys.readouterr().out
    assert listed(output, "foreign") == {theirs} and listed(output, "delete") == set()
    assert "1 not uploaded by streamline, left alone" in output
    assert keys(s3) == BUNDLE | {theirs}


def test_delete_leaves_another_bundle_deployed_under_dags_and_renamed_copies(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(project, "--bucket", BUCKET) == 0
    assert deploy(project, "--bucket", BUCKET, "--prefix", "dags/teamb") == 0  # team B's bundle
    copy = "dags/hand_copy.py"  # a copy keeps the metadata of what it copies
    s3.copy_object(
        Bucket=BUCKET, Key=copy, CopySource={"Bucket": BUCKET, "Key": "dags/streamline_dags.py"}
    )
    (project / "pipelines" / "orders.yaml").unlink()
    capsys.readouterr()
    assert deploy(project, "--bucket", BUCKET, "--delete") == 0
    output = capsys.readouterr().out
    assert listed(output, "delete") == {"dags/streamline_project/pipelines/orders.yaml"}
    team_b = {k for k in keys(s3) if k.startswith("dags/teamb/")}
    assert len(team_b) == len(BUNDLE) and copy in keys(s3)
    assert listed(output, "foreign") == team_b | {copy}


def test_multipart_and_kms_etags_fall_back_to_the_stored_hash(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(project, "--bucket", BUCKET, "--prefix", "/prod/") == 0
    assert keys(s3) == {f"prod/{k}" for k in BUNDLE}
    # Re-upload two files as multipart uploads (ETag "<md5 of md5s>-1"): one keeps the content
    # hash in its metadata, as deploy writes it, the other has none (uploaded by another tool).
    for key, metadata in (("startup.sh", True), ("requirements.txt", False)):
        body = s3.get_object(Bucket=BUCKET, Key=f"prod/{key}")
        extra = {"Metadata": body["Metadata"]} if metadata else {}
        data = body["Body"].read()
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key=f"prod/{key}", **extra)
        part = s3.upload_part(
            Bucket=BUCKET, Key=f"prod/{key}", UploadId=upload["UploadId"], PartNumber=1, Body=data
        )
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=f"prod/{key}",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )
        head = s3.head_object(Bucket=BUCKET, Key=f"prod/{key}")
        assert head["ETag"].endswith('-1"')
        assert (HASH_METADATA in head["Metadata"]) is metadata
    capsys.readouterr()
    assert deploy(project, "--bucket", BUCKET, "--prefix", "prod", "--dry-run") == 0
    output = capsys.readouterr().out
    assert listed(output, "change") == {"requirements.txt"}
    assert "startup.sh" in listed(output, "unchanged")


def test_an_unversioned_or_missing_bucket_is_an_error_before_any_upload(
    project: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    s3.create_bucket(Bucket="plain", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert deploy(project, "--bucket", "plain") == 1
    assert "S3 bucket plain is not versioned (versioning: never enabled)" in capsys.readouterr().err
    assert s3.list_objects_v2(Bucket="plain").get("KeyCount") == 0
    assert deploy(project, "--bucket", "no-such-bucket") == 1
    assert "NoSuchBucket" in capsys.readouterr().err
    assert deploy(project) == 2  # no bucket and not --build-only


@pytest.mark.skipif(not (ROOT / "infra").is_dir(), reason="no infra/ in this checkout")
def test_the_printed_terraform_variables_exist_in_infra() -> None:
    variables = "".join(p.read_text() for p in (ROOT / "infra").glob("*.tf"))
    assert set(PIN_OPTIONS) == set(ROOT_FILES)
    for variable, _ in PIN_OPTIONS.values():
        assert f'variable "{variable}"' in variables


def test_the_wheel_version_follows_the_framework_content(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamline import deploy as module

    name, version, data = build_wheel()
    assert build_wheel() == (name, version, data)
    assert name == f"streamline-{version}-py3-none-any.whl"
    files = module._package_files()
    edited = [
        (path, body + b"\n# edited\n") if path.endswith("lake.py") else (path, body)
        for path, body in files
    ]
    monkeypatch.setattr(module, "_package_files", lambda: edited)
    _, other, _ = build_wheel()
    assert other != version and other.split("+")[0] == version.split("+")[0]


# ---- feed-author CI ------------------------------------------------------------------------


def hook_command(hook: dict[str, Any]) -> list[str]:
    """The hook's entry as this venv runs it: the streamline script as python -m streamline.cli."""
    words = shlex.split(hook["entry"])
    if words[0] == "streamline":
        return [sys.executable, "-m", "streamline.cli", *words[1:]]
    assert words[0] == "python"
    return [sys.executable, *words[1:]]


def run_hook(hook: dict[str, Any], project: Path) -> subprocess.CompletedProcess[str]:
    files = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
    matched = [f for f in files if re.search(hook["files"], f)]
    assert matched, hook["id"]
    command = hook_command(hook) + (matched if hook.get("pass_filenames", True) else [])
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)


def test_pre_commit_hooks_pass_on_pipelines_and_fail_on_a_broken_spec(project: Path) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"streamline-validate", "streamline-render"}
    for hook in hooks:
        assert {"id", "name", "entry", "language", "files"} <= set(hook)
        assert hook["language"] == "python"
    assert by_id["streamline-validate"]["pass_filenames"] is True
    assert by_id["streamline-validate"]["files"] == r"^pipelines/.*\.ya?ml$"

    for hook in hooks:
        done = run_hook(hook, project)
        assert done.returncode == 0, (hook["id"], done.stdout, done.stderr)
    assert "2 specs valid" in run_hook(by_id["streamline-validate"], project).stdout

    spec = project / "pipelines" / "orders.yaml"
    spec.write_text(spec.read_text().replace("feed: orders", "feed: Orders-V1"))
    for hook in hooks:
        done = run_hook(hook, project)
        assert done.returncode == 1, (hook["id"], done.stdout, done.stderr)
        assert "pipelines/orders.yaml:2:7: $.feed:" in done.stderr, hook["id"]


def test_the_render_hook_fails_on_a_template_that_does_not_render(project: Path) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (render,) = [hook for hook in hooks if hook["id"] == "streamline-render"]
    load = project / "templates" / "load.sql.j2"
    load.write_text(load.read_text() + "\n{{ no_such_value.attribute }}\n")
    done = run_hook(render, project)
    assert done.returncode != 0, done.stdout


def test_example_ci_files_use_the_hooks_and_dry_run_on_main() -> None:
    hook_ids = {
        hook["id"] for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    }
    config = yaml.safe_load((ROOT / "docs" / "examples" / "pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert {hook["id"] for hook in repo["hooks"]} == hook_ids
    workflow = yaml.safe_load((ROOT / "docs" / "examples" / "feed-ci.yml").read_text())
    steps = {
        job: " ".join(step.get("run", "") for step in spec["steps"])
        for job, spec in workflow["jobs"].items()
    }
    assert "streamline validate" in steps["check"]
    assert "streamline generate --check" in steps["check"]
    assert "streamline deploy --dry-run" in steps["plan"]
    assert "refs/heads/main" in workflow["jobs"]["plan"]["if"]
