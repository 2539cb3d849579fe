"""`streamline deploy`: build the Amazon MWAA bundle and upload what changed to its S3 bucket.

The bundle is self-contained. dags/ holds the loader with pipelines/, templates/ and schemas/
beside it; plugins.zip holds the framework as a wheel; requirements.txt installs that wheel from
the unpacked plugins folder under the Airflow constraint file of the target MWAA version. Every
file is built byte-for-byte reproducibly and uploads compare content hashes, so a deploy with
nothing changed uploads nothing and MWAA keeps the object versions it pins.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamline
from streamline.errors import StreamlineError, UsageError
from streamline.generation import BUNDLE_PROJECT_FOLDER, LOADER_FILE, write_bundle_loader
from streamline.loading import find_spec_files
from streamline.model import Feed
from streamline.mwaa import (
    DEFAULT_AIRFLOW_VERSION,
    MwaaTarget,
    mwaa_target,
    target_requirements,
    wheel_requires,
)
from streamline.project import SCHEMA_RELPATH, Project

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from rich.console import Console

PLUGINS_DIR = "/usr/local/airflow/plugins"
"""Where MWAA unpacks plugins.zip on every container, before it installs requirements.txt."""

DAGS = "dags"
ROOT_FILES = ("requirements.txt", "plugins.zip", "startup.sh")
"""Bundle files outside dags/: MWAA pins each by its S3 object version."""
WHEEL_FILES = ("requirements.txt", "plugins.zip")
"""The files that change the framework the workers run."""
HOLD_RECORD = "streamline-held.json"
"""Written beside requirements.txt by a deploy that holds dags/ back: the wheel and the object
versions of requirements.txt and plugins.zip the environment must run before the DAG files go."""
PIN_OPTIONS = {
    # root file: (Terraform variable in infra/, aws mwaa update-environment option)
    "requirements.txt": ("mwaa_requirements_s3_object_version", "requirements-s3-object-version"),
    "plugins.zip": ("mwaa_plugins_s3_object_version", "plugins-s3-object-version"),
    "startup.sh": ("mwaa_startup_script_s3_object_version", "startup-script-s3-object-version"),
}
HASH_METADATA = "streamline-sha256"
"""S3 user metadata holding a file's SHA-256: ETags are not MD5s under SSE-KMS or multipart."""

WHEEL_SKIP = ("local", "_bundled")
"""Sub-packages left out of the wheel: the embedded local stack never runs on MWAA, and the
bundle's dags/ carries the project's templates and schema (the copies an installed package
bundles would make the wheel depend on how the framework was installed)."""
WHEEL_SUFFIXES = frozenset({".py", ".pyi", ".typed", ".json", ".j2", ".sql", ".yaml", ".yml"})
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

AIRFLOWIGNORE = f"""\
# Only {LOADER_FILE} is a DAG file: specs, templates and the schema are its data.
# (This line means the same in Airflow's glob and regexp syntaxes.)
{BUNDLE_PROJECT_FOLDER}/
"""

STARTUP_SCRIPT = """\
#!/bin/sh
# StreamLine start-up script for Amazon MWAA, written by `streamline deploy`. MWAA runs it on
# every container before Airflow starts; it only sets environment variables.
# dag-factory reports usage unless told not to; the environment may have no internet access.
export AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY=False
export DO_NOT_TRACK=1
"""


@dataclass(frozen=True)
class BundleFile:
    """One file of the bundle; key is its path below the bundle root, '/'-separated."""

    key: str
    path: Path
    size: int
    md5: str
    sha256: str


@dataclass(frozen=True)
class Bundle:
    """A built bundle folder and what went into it."""

    root: Path
    target: MwaaTarget
    version: str
    wheel: str
    files: tuple[BundleFile, ...]


@dataclass
class DeployOptions:
    """Where the bundle goes and what the deploy may do."""

    bucket: str | None = None
    prefix: str | None = None
    out: Path = Path("build/mwaa")
    airflow_version: str = DEFAULT_AIRFLOW_VERSION
    python_version: str | None = None
    sqs_url_prefix: str | None = None
    endpoint_url: str | None = None
    dry_run: bool = False
    delete: bool = False
    build_only: bool = False
    check: bool = False
    mwaa_environment: str | None = None
    """The MWAA environment to ask whether it runs the held wheel yet (airflow:GetEnvironment)."""
    environment_updated: bool = False
    """The user confirms the environment runs the held wheel: release the held DAG files."""


@dataclass
class SyncPlan:
    """How the bundle compares with the bucket; keys are relative to the prefix."""

    bucket: str
    prefix: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """Files under dags/ that a deploy uploaded (they carry HASH_METADATA) and the bundle no
    longer has: --delete removes them."""
    foreign: list[str] = field(default_factory=list)
    """Files under dags/ that are not this bundle's: no deploy uploaded them (another team's DAGs,
    a hand-made file), or they lie outside its layout (another bundle deployed under dags/<sub>/,
    a renamed copy). Never deleted."""
    held: list[str] = field(default_factory=list)
    """Added or changed files under dags/ held back for a later deploy: this one changes the
    framework wheel (requirements.txt, plugins.zip) while DAGs already run on the old one, or an
    earlier one did and the environment is not known to run it yet (HOLD_RECORD)."""
    hold: dict[str, Any] | None = None
    """The HOLD_RECORD an earlier deploy left: the wheel and the object versions it waits for."""
    held_changed: set[str] = field(default_factory=set)
    """The held files that are on S3 already (the others are new)."""
    waiting: str | None = None
    """Why the DAG files stay held (the environment is not known to run the held wheel)."""


@dataclass
class DeployResult:
    """What a real deploy did, and the object versions MWAA should pin."""

    uploaded: list[str]
    deleted: list[str]
    versions: dict[str, str | None]


# ---- build ---------------------------------------------------------------------------------


def build_bundle(
    project: Project, out_dir: Path, target: MwaaTarget, sqs_url_prefix: str | None = None
) -> Bundle:
    """Write the bundle folder afresh from the project's specs, templates and schema."""
    _clear_out(out_dir)
    dags = out_dir / DAGS
    wheel_name, version, wheel = build_wheel()
    write_bundle_loader(dags, sqs_url_prefix, built_for=version)
    (dags / ".airflowignore").write_text(AIRFLOWIGNORE, encoding="utf-8")
    data = dags / BUNDLE_PROJECT_FOLDER
    specs, _ = find_spec_files([project.pipelines_dir])
    for spec in specs:
        _copy(spec, data / "pipelines" / spec.name)
    for template in sorted(project.templates_dir.rglob("*")):
        relative = template.relative_to(project.templates_dir)
        if template.is_file() and not _hidden(relative):
            _copy(template, data / "templates" / relative)
    _copy(project.schema_path, data / SCHEMA_RELPATH)

    (out_dir / "plugins.zip").write_bytes(_zip([(wheel_name, wheel)]))
    (out_dir / "requirements.txt").write_text(render_requirements(target, version), "utf-8")
    (out_dir / "startup.sh").write_text(STARTUP_SCRIPT, encoding="utf-8")
    return Bundle(out_dir, target, version, wheel_name, _hash_files(out_dir))


def render_requirements(target: MwaaTarget, version: str) -> str:
    """requirements.txt for MWAA: the constraint line, the plugins folder, the pins, the wheel."""
    lines = [
        f"# StreamLine on Amazon MWAA (Airflow {target.airflow_version}, Python "
        f"{target.python_version}), written by `streamline deploy`.",
        "# The constraint file pins Airflow's dependencies and the providers; what it does not",
        "# cover is pinned here. The streamline wheel comes from plugins.zip, which MWAA unpacks",
        f"# into {PLUGINS_DIR}.",
        f'--constraint "{target.constraints_url}"',
        f"--find-links {PLUGINS_DIR}",
        *target_requirements(target),
        f"streamline=={version}",
    ]
    return "\n".join(lines) + "\n"


def build_wheel() -> tuple[str, str, bytes]:
    """Package the installed framework as a reproducible wheel: (file name, version, bytes).

    The version carries a content hash as its local label (0.1.0+g<hash>): PyPI never serves
    local versions, so MWAA cannot pick up the unrelated `streamline` project from an index, and
    any change to the framework changes plugins.zip and the pin in requirements.txt together.
    The metadata is what every MWAA target needs (lower bounds); requirements.txt pins versions.
    """
    files = _package_files()
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    requires = wheel_requires()
    digest.update("\n".join(requires).encode())
    version = f"{streamline.__version__}+g{digest.hexdigest()[:12]}"
    dist_info = f"streamline-{version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\nName: streamline\n",
            f"Version: {version}\n",
            "Summary: StreamLine framework for Amazon MWAA, packaged by streamline deploy\n",
            "Requires-Python: >=3.11\n",
            *(f"Requires-Dist: {requirement}\n" for requirement in requires),
        ]
    )
    entries = [
        *files,
        (f"{dist_info}/METADATA", metadata.encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: streamline-deploy\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        ),
        (f"{dist_info}/entry_points.txt", b"[console_scripts]\nstreamline = streamline.cli:main\n"),
    ]
    record = "".join(
        f"{name},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}\n"
        for name, data in entries
    )
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    return f"streamline-{version}-py3-none-any.whl", version, _zip(entries)


def _package_files() -> list[tuple[str, bytes]]:
    root = Path(streamline.__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if (
            path.is_file()
            and path.suffix in WHEEL_SUFFIXES
            and relative.parts[0] not in WHEEL_SKIP
            and not _hidden(relative)
        ):
            files.append((f"streamline/{relative.as_posix()}", path.read_bytes()))
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def _zip(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """A zip whose bytes depend only on its entries: fixed dates and modes, no compression
    (deflate output can differ between zlib builds, which would re-upload unchanged files)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _clear_out(out_dir: Path) -> None:
    if out_dir.exists():
        is_bundle = (out_dir / DAGS / LOADER_FILE).is_file()
        if not out_dir.is_dir() or (any(out_dir.iterdir()) and not is_bundle):
            raise UsageError(
                f"{out_dir} exists and is not a StreamLine bundle: choose another --out"
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


def _hash_files(root: Path) -> tuple[BundleFile, ...]:
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            files.append(
                BundleFile(
                    key=path.relative_to(root).as_posix(),
                    path=path,
                    size=len(data),
                    md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
    return tuple(files)


# ---- S3 ------------------------------------------------------------------------------------


def s3_client(endpoint_url: str | None = None) -> S3Client:
    """An S3 client from the standard AWS configuration (credentials, region, profile)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


def normalize_prefix(prefix: str | None) -> str:
    """'' or 'path/' for S3 keys."""
    prefix = (prefix or "").strip("/")
    return f"{prefix}/" if prefix else ""


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn AWS failures into one StreamlineError line (exit 1) instead of a traceback; what
    names the resource, e.g. 'S3 bucket B'."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StreamlineError(
            f"{what}: {error.get('Code', '?')}: {error.get('Message', exc)}"
        ) from exc
    except BotoCoreError as exc:
        raise StreamlineError(f"{what}: {exc}") from exc


def plan_sync(client: S3Client, bundle: Bundle, bucket: str, prefix: str) -> SyncPlan:
    """Compare the bundle with the bucket: added, changed, unchanged, and stale (only on S3)."""
    remote: dict[str, tuple[int, str]] = {}
    listings = [
        {"Prefix": f"{prefix}{DAGS}/"},
        {"Prefix": prefix, "Delimiter": "/"},  # the files beside dags/, not the whole bucket
    ]
    for listing in listings:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, **listing):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(prefix) :]
                if key and not key.endswith("/"):  # skip console "folder" markers
                    remote[key] = (obj["Size"], obj["ETag"].strip('"'))
    plan = SyncPlan(bucket, prefix)
    for file in bundle.files:
        if file.key not in remote:
            plan.added.append(file.key)
        elif _same(client, bucket, prefix + file.key, file, *remote[file.key]):
            plan.unchanged.append(file.key)
        else:
            plan.changed.append(file.key)
    local = {file.key for file in bundle.files}
    for key in sorted(k for k in remote if k.startswith(f"{DAGS}/") and k not in local):
        metadata = client.head_object(Bucket=bucket, Key=prefix + key).get("Metadata", {})
        ours = HASH_METADATA in metadata and _in_bundle_layout(key)
        (plan.stale if ours else plan.foreign).append(key)
    plan.hold = _read_hold(client, bucket, prefix)
    _hold_dags(plan)
    return plan


def _in_bundle_layout(key: str) -> bool:
    """Whether a key under dags/ is one a bundle of this prefix writes: the loader, its
    .airflowignore or the project folder (not another bundle deployed under dags/<sub>/, not a
    copy of a bundle file under another name)."""
    project = f"{DAGS}/{BUNDLE_PROJECT_FOLDER}/"
    return key in (f"{DAGS}/{LOADER_FILE}", f"{DAGS}/.airflowignore") or key.startswith(project)


def _read_hold(client: S3Client, bucket: str, prefix: str) -> dict[str, Any] | None:
    try:
        body = client.get_object(Bucket=bucket, Key=prefix + HOLD_RECORD)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    record: dict[str, Any] = json.loads(body)
    return record


def _hold_dags(plan: SyncPlan) -> None:
    """Hold back dags/ when the wheel changes under DAGs that already run.

    MWAA picks up dags/ within about a minute, but installs a new requirements.txt and
    plugins.zip only when the environment is updated to their object versions (20 to 30
    minutes). New DAG files on the old wheel would fail to import (the loader checks the wheel),
    so the order is: upload the wheel, update the environment, then deploy again for the DAGs.
    https://docs.aws.amazon.com/mwaa/latest/userguide/configuring-dag-folder.html
    """
    running = any(k.startswith(f"{DAGS}/") for k in [*plan.unchanged, *plan.changed, *plan.stale])
    if not ((wheel_changes(plan) and running) or plan.hold):
        return
    dags = [k for k in [*plan.added, *plan.changed] if k.startswith(f"{DAGS}/")]
    plan.held = sorted(dags)
    plan.held_changed = {k for k in dags if k in plan.changed}
    plan.added = [k for k in plan.added if k not in dags]
    plan.changed = [k for k in plan.changed if k not in dags]


def _same(client: S3Client, bucket: str, key: str, file: BundleFile, size: int, etag: str) -> bool:
    if size != file.size:
        return False
    if etag == file.md5:  # a single-part upload without SSE-KMS: the ETag is the MD5
        return True
    head = client.head_object(Bucket=bucket, Key=key)
    stored: str | None = head.get("Metadata", {}).get(HASH_METADATA)
    return stored == file.sha256


def require_versioning(client: S3Client, bucket: str) -> None:
    """MWAA pins requirements.txt, plugins.zip and startup.sh by S3 object version, so its source
    bucket must be versioned: https://docs.aws.amazon.com/mwaa/latest/userguide/mwaa-s3-bucket.html
    Raises StreamlineError otherwise, before anything is uploaded."""
    status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise StreamlineError(
            f"S3 bucket {bucket} is not versioned (versioning: {status or 'never enabled'}): "
            "MWAA pins requirements.txt and plugins.zip by object version and needs versioning "
            "on (infra/ enables it on the bucket it creates)"
        )


_BUILT_FOR_RE = re.compile(r"^# StreamLine on Amazon MWAA \(Airflow (\S+), Python")


def deployed_airflow(client: S3Client, bucket: str, prefix: str) -> str | None:
    """The Airflow version the bucket's requirements.txt was built for, when it is StreamLine's."""
    try:
        head = client.get_object(
            Bucket=bucket, Key=prefix + "requirements.txt", Range="bytes=0-200"
        )
    except client.exceptions.NoSuchKey:
        return None
    found = _BUILT_FOR_RE.match(head["Body"].read().decode("utf-8", "replace"))
    return found[1] if found else None


def wheel_changes(plan: SyncPlan) -> bool:
    """Whether this deploy uploads a new framework wheel (requirements.txt or plugins.zip)."""
    return any(k in plan.added or k in plan.changed for k in WHEEL_FILES)


def release_held(plan: SyncPlan, options: DeployOptions) -> None:
    """An earlier deploy held dags/ back for its wheel: release the DAG files (back into added and
    changed) once the environment runs that wheel, else say what it waits for (plan.waiting).

    With --mwaa-environment, MWAA's GetEnvironment tells: the environment must be AVAILABLE and
    pin the held object versions of requirements.txt and plugins.zip.
    https://docs.aws.amazon.com/mwaa/latest/API/API_GetEnvironment.html
    """
    if not plan.hold or wheel_changes(plan):
        return
    wanted = {key: plan.hold.get(key) for key in WHEEL_FILES}
    if not options.environment_updated:
        if not options.mwaa_environment:
            plan.waiting = (
                f"the environment must run the wheel {plan.hold.get('wheel')} (requirements.txt "
                f"{wanted['requirements.txt']}, plugins.zip {wanted['plugins.zip']}) before its "
                "DAG files go: pass --mwaa-environment NAME to check it, or "
                "--environment-updated once the update is done"
            )
            return
        environment = mwaa_environment(options.mwaa_environment)
        running = {
            "requirements.txt": environment.get("RequirementsS3ObjectVersion"),
            "plugins.zip": environment.get("PluginsS3ObjectVersion"),
        }
        status = environment.get("Status")
        if status != "AVAILABLE" or running != wanted:
            plan.waiting = (
                f"MWAA environment {options.mwaa_environment} is {status} with requirements.txt "
                f"{running['requirements.txt']} and plugins.zip {running['plugins.zip']}; the held "
                f"DAG files need {wanted['requirements.txt']} and {wanted['plugins.zip']}, "
                "AVAILABLE"
            )
            return
    plan.added += [k for k in plan.held if k not in plan.held_changed]
    plan.changed += [k for k in plan.held if k in plan.held_changed]
    plan.held, plan.held_changed = [], set()


def mwaa_environment(name: str) -> dict[str, Any]:
    """MWAA's description of an environment (GetEnvironment's Environment)."""
    import boto3

    with aws_errors(f"MWAA environment {name}"):
        environment: dict[str, Any] = boto3.client("mwaa").get_environment(Name=name)["Environment"]
    return environment


def apply_sync(client: S3Client, bundle: Bundle, plan: SyncPlan, delete: bool) -> DeployResult:
    """Upload the added and changed files (data first, loader last), delete stale ones if asked,
    and read the object versions of the files MWAA pins."""
    files = {file.key: file for file in bundle.files}
    loader = f"{DAGS}/{LOADER_FILE}"
    order = sorted([*plan.added, *plan.changed], key=lambda k: (k in ROOT_FILES, k == loader, k))
    versions: dict[str, str | None] = {}
    for key in order:
        file = files[key]
        response = client.put_object(
            Bucket=plan.bucket,
            Key=plan.prefix + key,
            Body=file.path.read_bytes(),
            ContentMD5=base64.b64encode(bytes.fromhex(file.md5)).decode(),
            Metadata={HASH_METADATA: file.sha256},
        )
        if key in ROOT_FILES:
            versions[key] = response.get("VersionId")
    deleted = []
    if delete and not plan.held:  # stale DAG files go with the DAGs that replace them
        for key in plan.stale:
            client.delete_object(Bucket=plan.bucket, Key=plan.prefix + key)
            deleted.append(key)
    for key in ROOT_FILES:
        if key not in versions and key in files:
            head = client.head_object(Bucket=plan.bucket, Key=plan.prefix + key)
            versions[key] = head.get("VersionId")
    record = plan.prefix + HOLD_RECORD
    if plan.held and wheel_changes(plan):
        hold = {"wheel": bundle.version, **{k: versions.get(k) for k in WHEEL_FILES}}
        client.put_object(Bucket=plan.bucket, Key=record, Body=json.dumps(hold).encode())
    elif plan.hold and not plan.held:  # released: the environment runs the held wheel
        client.delete_object(Bucket=plan.bucket, Key=record)
    return DeployResult(order, deleted, {k: _version(v) for k, v in versions.items()})


def _version(version_id: str | None) -> str | None:
    return None if version_id in (None, "null") else version_id  # "null": versioning is off


# ---- the command ---------------------------------------------------------------------------


def run_deploy(
    project: Project, feeds: Sequence[Feed], options: DeployOptions, out: Console
) -> int:
    """Build, optionally check, compare and upload; report each step. Specs are already valid."""
    if not feeds:
        raise UsageError(f"no spec files found in {project.pipelines_dir}")
    target = mwaa_target(project.constraints_dir, options.airflow_version, options.python_version)
    bucket = options.bucket or os.environ.get("STREAMLINE_DAG_BUCKET")
    prefix = normalize_prefix(
        options.prefix if options.prefix is not None else os.environ.get("STREAMLINE_DAG_PREFIX")
    )
    if not bucket and not options.build_only:
        raise UsageError("no bucket: pass --bucket (or set STREAMLINE_DAG_BUCKET), or --build-only")
    sqs_url_prefix = options.sqs_url_prefix or os.environ.get("STREAMLINE_SQS_URL_PREFIX")
    event_feeds = [feed.feed for feed in feeds if feed.trigger.mode == "event"]
    if event_feeds and not sqs_url_prefix:
        raise UsageError(
            f"event-triggered feeds ({', '.join(event_feeds)}) need the queue URL prefix: pass "
            "--sqs-url-prefix (or set STREAMLINE_SQS_URL_PREFIX)"
        )

    bundle = build_bundle(project, options.out, target, sqs_url_prefix)
    out.print(
        f"bundle {options.out} for MWAA Airflow {target.airflow_version} (Python "
        f"{target.python_version}): {len(bundle.files)} files, {len(feeds)} feeds "
        f"({', '.join(f.feed for f in feeds)}), {bundle.wheel} in plugins.zip",
        markup=False,
    )
    if options.check and not check_on_target(project, feeds, bundle, options, out):
        return 1
    if not bucket:
        out.print("build only: nothing compared or uploaded", markup=False)
        return 0

    client = s3_client(options.endpoint_url)
    with aws_errors(f"S3 bucket {bucket}"):
        require_versioning(client, bucket)
        plan = plan_sync(client, bundle, bucket, prefix)
        release_held(plan, options)
        built_for = deployed_airflow(client, bucket, prefix)
        if built_for and built_for != target.airflow_version:
            out.print(
                f"warning: the bucket's requirements.txt is for Airflow {built_for}; this deploy "
                f"is for {target.airflow_version}: is --airflow-version (or "
                "$STREAMLINE_AIRFLOW_VERSION) the environment's?",
                markup=False,
                style="yellow",
            )
        for line in format_plan(plan, options.delete, options.dry_run):
            out.print(line, markup=False)
        if options.dry_run:
            return 0
        result = apply_sync(client, bundle, plan, options.delete)
    for line in format_result(result, plan):
        out.print(line, markup=False)
    return 0


def check_on_target(
    project: Project, feeds: Sequence[Feed], bundle: Bundle, options: DeployOptions, out: Console
) -> bool:
    """`deploy --check`: install the bundle in the target's environment and run each DAG once
    there (streamline.local.mwaa_check); report it. True when every DAG ran to success."""
    from streamline.local.mwaa_check import check_bundle

    workdir = options.out.with_name(options.out.name + "-check")
    out.print(
        f"checking on Airflow {bundle.target.airflow_version} (Python "
        f"{bundle.target.python_version}) with the embedded stack; logs in {workdir}",
        markup=False,
    )
    result = check_bundle(project, feeds, bundle.root, bundle.target, workdir.resolve())
    for path, message in result.import_errors.items():
        out.print(f"import error in {path}:\n{message}", markup=False, style="red")
    if not result.warehouse_host:
        out.print(
            f"  the Snowflake provider {result.snowflake_provider} of Airflow {result.airflow} "
            "connects only to <account>.snowflakecomputing.com, not to the local warehouse: the "
            "runs are checked up to the warehouse connection",
            markup=False,
        )
    modes = {feed.dag.dag_id: feed.trigger.mode for feed in feeds}
    for dag_id, run in result.runs.items():
        tasks = " ".join(f"{task}:{state}" for task, state in run["tasks"].items())
        verdict = result.verdict(dag_id)
        out.print(
            f"  DAG {dag_id} ({modes.get(dag_id, '?')} mode): {verdict} in {run['seconds']} s "
            f"({tasks})",
            markup=False,
            style=None if verdict.startswith("passed") else "red",
        )
    summary = "passed" if result.ok else f"FAILED (see {result.log})"
    phases = ", ".join(f"{name} {value} s" for name, value in result.seconds.items())
    out.print(f"check on Airflow {result.airflow}: {summary} ({phases})", markup=False)
    return result.ok


def format_plan(plan: SyncPlan, delete: bool, dry_run: bool) -> list[str]:
    """A summary line, then one line per change (and per unchanged file in a dry run)."""
    lines = [
        f"s3://{plan.bucket}/{plan.prefix}: {len(plan.added)} to add, {len(plan.changed)} to "
        f"change, {len(plan.unchanged)} unchanged, {len(plan.stale)} "
        + ("to delete" if delete else "stale")
        + (" (only on S3; --delete removes them)" if plan.stale and not delete else "")
        + (f"; {len(plan.foreign)} not uploaded by streamline, left alone" if plan.foreign else "")
        + (
            f"; {_count(len(plan.held), 'DAG file')} held back until the environment runs the "
            "new wheel"
            if plan.held
            else ""
        )
    ]
    rows = [("add", key) for key in plan.added] + [("change", key) for key in plan.changed]
    if dry_run:
        rows += [("unchanged", key) for key in plan.unchanged]
    rows += [("delete" if delete else "stale", key) for key in plan.stale]
    rows += [("foreign", key) for key in plan.foreign]
    rows += [("held", key) for key in plan.held]
    lines += [f"  {word:<9}  {key}" for word, key in rows]
    if plan.waiting:
        lines.append(f"held: {plan.waiting}")
    retired = [k for k in plan.stale if k.startswith(f"{DAGS}/{BUNDLE_PROJECT_FOLDER}/pipelines/")]
    if retired and not delete:
        lines.append(
            f"warning: {_count(len(retired), 'spec')} removed here but still on S3: the DAG of "
            "each keeps running until you deploy with --delete"
        )
    if dry_run:
        lines.append("dry run: nothing was uploaded or deleted")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def format_result(result: DeployResult, plan: SyncPlan) -> list[str]:
    """What was uploaded, the pinned object versions, and the next step."""
    lines = [
        f"uploaded {_count(len(result.uploaded), 'file')}, deleted {len(result.deleted)}"
        + (f", kept {len(plan.stale)} stale" if plan.stale and not result.deleted else "")
    ]
    pinned = [key for key in ROOT_FILES if key in result.versions]
    width = max(len(key) for key in pinned) if pinned else 0
    lines.append(
        "S3 object versions (MWAA pins requirements, plugins and start-up script by these):"
    )
    for key in pinned:
        state = "new" if key in result.uploaded else "unchanged"
        lines.append(f"  {key:<{width}}  {result.versions[key] or '(none)'}  ({state})")
    if any(key in result.uploaded for key in pinned):
        tf_vars = "\n".join(f'    {PIN_OPTIONS[k][0]} = "{result.versions[k]}"' for k in pinned)
        flags = " ".join(f"--{PIN_OPTIONS[k][1]} {result.versions[k]}" for k in pinned)
        lines += [
            "next: point the MWAA environment at these versions. With Terraform, set them in the",
            "tfvars file you apply with (infra/README.md), so that later applies keep them:",
            tf_vars,
            "  then: terraform -chdir=infra apply -var-file=<your tfvars>",
            "or with the AWS CLI (an environment Terraform manages would drift from its state):",
            f"  aws mwaa update-environment --name ENVIRONMENT {flags}",
        ]
        if plan.held:
            lines += [
                f"then, once the update is done, release the {_count(len(plan.held), 'DAG file')} "
                "held back (DAGs built for the new wheel fail to import on the old one):",
                "  streamline deploy ... --mwaa-environment ENVIRONMENT   (checks the environment "
                "runs these versions)",
                "  streamline deploy ... --environment-updated            (you checked it)",
            ]
    elif plan.held:
        lines.append(
            "requirements, plugins and start-up script unchanged since the deploy that "
            "held the DAG files: the environment must run them first (held: above)"
        )
    else:
        lines.append("requirements, plugins and start-up script unchanged: no environment update")
    if any(key.startswith(f"{DAGS}/") for key in result.uploaded + result.deleted):
        lines.append("dags/ changes need no environment update: MWAA syncs them from S3 itself")
    return lines
