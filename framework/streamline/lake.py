"""Move a feed's files through the lake zones: landing -> processing/<ID> -> processed/<ID>.

These callables run inside Airflow tasks. Every step is safe to retry: the manifest is written
before any file moves, and a retry finishes whatever moves a failed attempt left undone.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from streamline.batches import batch_id_for, check_batch_id
from streamline.errors import BatchError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
MOVE_THREADS = 16


@dataclass(frozen=True)
class ManifestEntry:
    """One claimed file: where it landed, its size and its S3 ETag (MD5 for single-part objects)."""

    landing_key: str
    relative_key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Manifest:
    feed: str
    batch_id: str
    prefix: str
    files: tuple[ManifestEntry, ...]

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def to_json(self) -> str:
        body = {
            "feed": self.feed,
            "batch_id": self.batch_id,
            "prefix": self.prefix,
            "file_count": len(self.files),
            "total_bytes": self.total_bytes,
            "files": [asdict(entry) for entry in self.files],
        }
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        body = json.loads(text)
        return cls(
            feed=body["feed"],
            batch_id=body["batch_id"],
            prefix=body["prefix"],
            files=tuple(ManifestEntry(**entry) for entry in body["files"]),
        )


def zone_prefix(zone: str, batch_id: str, prefix: str) -> str:
    """Folder of a batch's files in a zone: processing/<BATCH_ID>/<prefix>/."""
    return f"{zone}/{batch_id}/{prefix}/"


def manifest_key(zone: str, batch_id: str, prefix: str) -> str:
    """Key of a batch's manifest, beside (not inside) the folder COPY reads."""
    return f"{zone}/{batch_id}/{prefix}.manifest.json"


def list_keys(s3: S3Client, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under prefix (key, size, etag), in key order."""
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found.append(
                {"key": item["Key"], "size": item["Size"], "etag": item["ETag"].strip('"')}
            )
    return found


def _exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _read(s3: S3Client, bucket: str, key: str) -> str | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return str(body.decode("utf-8"))


def _move(s3: S3Client, bucket: str, sources: tuple[str, ...], target: str) -> None:
    """Copy then delete from the first source that exists; a move already done is a no-op."""
    for source in sources:
        if _exists(s3, bucket, source):
            s3.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source})
            s3.delete_object(Bucket=bucket, Key=source)
            return
    if not _exists(s3, bucket, target):
        raise BatchError(f"s3://{bucket}/{sources[0]} vanished before it reached {target}")


def _move_all(s3: S3Client, bucket: str, moves: list[tuple[tuple[str, ...], str]]) -> None:
    if not moves:
        return
    with ThreadPoolExecutor(max_workers=min(MOVE_THREADS, len(moves))) as pool:
        list(pool.map(lambda move: _move(s3, bucket, *move), moves))


def claim(s3: S3Client, bucket: str, feed: str, prefix: str, batch_id: str) -> Manifest | None:
    """Claim landing/<prefix>/ into processing/<batch_id>/<prefix>/; None when nothing landed.

    A batch that already has a manifest in processing/ is resumed as it is; one that reached
    processed/ is moved back so it can be reprocessed.
    """
    check_batch_id(batch_id)
    processing_manifest = manifest_key("processing", batch_id, prefix)
    text = _read(s3, bucket, processing_manifest)
    if text is None:
        done = _read(s3, bucket, manifest_key("processed", batch_id, prefix))
        if done is not None:
            manifest = Manifest.from_json(done)
            s3.put_object(Bucket=bucket, Key=processing_manifest, Body=done.encode())
            _move_all(s3, bucket, _pairs(manifest, "processed", "processing"))
            s3.delete_object(Bucket=bucket, Key=manifest_key("processed", batch_id, prefix))
            log.info("reprocessing batch %s of %s: %d files", batch_id, feed, len(manifest.files))
            return manifest
    if text is not None:
        manifest = Manifest.from_json(text)
        # Files may still sit in landing/ (interrupted claim) or processed/ (interrupted reprocess).
        processed = zone_prefix("processed", batch_id, prefix)
        _move_all(
            s3,
            bucket,
            [
                ((e.landing_key, processed + e.relative_key), target)
                for e, target in _targets(manifest)
            ],
        )
        log.info("resuming batch %s of %s: %d files", batch_id, feed, len(manifest.files))
        return manifest
    landing = f"landing/{prefix}/"
    objects = list_keys(s3, bucket, landing)
    if not objects:
        return None
    manifest = Manifest(
        feed=feed,
        batch_id=batch_id,
        prefix=prefix,
        files=tuple(
            ManifestEntry(o["key"], o["key"][len(landing) :], o["size"], o["etag"]) for o in objects
        ),
    )
    # The manifest goes first: a crash mid-move leaves a record a retry can finish from.
    s3.put_object(Bucket=bucket, Key=processing_manifest, Body=manifest.to_json().encode())
    _move_all(s3, bucket, [((e.landing_key,), target) for e, target in _targets(manifest)])
    log.info(
        "claimed batch %s of %s: %d files, %d bytes",
        batch_id,
        feed,
        len(manifest.files),
        manifest.total_bytes,
    )
    return manifest


def finalize(s3: S3Client, bucket: str, prefix: str, batch_id: str) -> Manifest:
    """Move a loaded batch to processed/<batch_id>/<prefix>/, the manifest last."""
    check_batch_id(batch_id)
    text = _read(s3, bucket, manifest_key("processing", batch_id, prefix))
    if text is None:
        done = _read(s3, bucket, manifest_key("processed", batch_id, prefix))
        if done is None:
            raise BatchError(f"batch {batch_id} of prefix {prefix} has no manifest in processing/")
        return Manifest.from_json(done)
    manifest = Manifest.from_json(text)
    _move_all(s3, bucket, _pairs(manifest, "processing", "processed"))
    s3.put_object(
        Bucket=bucket, Key=manifest_key("processed", batch_id, prefix), Body=text.encode()
    )
    s3.delete_object(Bucket=bucket, Key=manifest_key("processing", batch_id, prefix))
    return manifest


def _targets(manifest: Manifest) -> list[tuple[ManifestEntry, str]]:
    folder = zone_prefix("processing", manifest.batch_id, manifest.prefix)
    return [(entry, folder + entry.relative_key) for entry in manifest.files]


def _pairs(manifest: Manifest, source: str, target: str) -> list[tuple[tuple[str, ...], str]]:
    src = zone_prefix(source, manifest.batch_id, manifest.prefix)
    dst = zone_prefix(target, manifest.batch_id, manifest.prefix)
    return [((src + e.relative_key,), dst + e.relative_key) for e in manifest.files]


# --- Airflow task callables -------------------------------------------------------------------


def _s3_client(aws_conn_id: str) -> S3Client:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client: S3Client = S3Hook(aws_conn_id=aws_conn_id).get_conn()
    return client


def _run_batch_id(context: dict[str, Any]) -> str:
    dag_run = context["dag_run"]
    conf = dict(dag_run.conf or {})
    params = context.get("params") or {}
    if not conf.get("batch_id") and params.get("batch_id"):
        conf["batch_id"] = params["batch_id"]
    when = getattr(dag_run, "run_after", None) or dag_run.logical_date
    return batch_id_for(when, conf)


def claim_batch(
    feed: str, bucket: str, prefix: str, aws_conn_id: str, **context: Any
) -> dict[str, Any]:
    """Task `claim`: fix the run's batch id and claim its files; skip the run when none landed."""
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:  # Airflow 2.x (MWAA 2.10/2.11)
        from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef]

    batch_id = _run_batch_id(context)
    manifest = claim(_s3_client(aws_conn_id), bucket, feed, prefix, batch_id)
    if manifest is None:
        raise AirflowSkipException(f"no new files under s3://{bucket}/landing/{prefix}/")
    context["ti"].xcom_push(key="batch_id", value=batch_id)
    return {"batch_id": batch_id, "files": len(manifest.files), "bytes": manifest.total_bytes}


def finalize_batch(
    feed: str, bucket: str, prefix: str, aws_conn_id: str, **context: Any
) -> dict[str, Any]:
    """Task `finalize`: move the batch's files and manifest to processed/."""
    batch_id = context["ti"].xcom_pull(task_ids="claim", key="batch_id")
    manifest = finalize(_s3_client(aws_conn_id), bucket, prefix, check_batch_id(batch_id))
    log.info("finalized batch %s of %s: %d files", batch_id, feed, len(manifest.files))
    return {"batch_id": batch_id, "files": len(manifest.files), "bytes": manifest.total_bytes}
