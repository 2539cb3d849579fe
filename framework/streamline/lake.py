"""Move a feed's files through the lake: landing -> processing/<ID> -> processed/<ID> or quarantine.

Which landed file belongs to which batch is decided in one place, the feed's **claims register**
(`claims/<prefix>.json`, see `streamline.layout`): a small JSON object listing the open batches and
the files each one owns. A claim commits its batch to the register with an S3 conditional write
(`If-Match` on the register's ETag, `If-None-Match: *` to create it), so of two claims that read
the same register only one commits; the other reads again and takes only what is left. A file
named by an open batch is never claimed again, whatever state its moves are in, until that batch
is finalized; then its entry leaves the register. S3 conditional writes:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html

Every step is safe to retry or to run again from another DAG run (a reprocess): moves go from
wherever a file is to where it belongs, one failed move does not stop the others, and the register
entry goes last. Objects of 1 GiB and more move with boto3's managed (multipart) copy; S3's single
CopyObject stops at 5 GB: https://docs.aws.amazon.com/AmazonS3/latest/userguide/copy-object.html
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from streamline.batches import check_batch_id
from streamline.errors import BatchError
from streamline.layout import LANDING, PROCESSED, PROCESSING, QUARANTINE, LakeLayout

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MOVE_THREADS = 16
MULTIPART_COPY_THRESHOLD = 1024**3
"""Objects this large or larger are copied in parts (boto3's managed copy), not by CopyObject."""
MULTIPART_CHUNK_BYTES = 256 * 1024**2
REGISTER_ATTEMPTS = 25
"""Conditional writes of the claims register tried before a claim gives up (each re-reads it)."""
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}

CLAIMED, LOADED, QUARANTINED, DEFERRED = "claimed", "loaded", "quarantined", "deferred"
"""A file's outcome in its batch's manifest."""
EMPTY_OBJECT = "zero-byte object: no data to load"
COPY_REASON = "COPY "
"""How the reason of a file the COPY set aside starts (COPY LOAD_FAILED: ...); a reprocess's
--quarantine gives its own."""


@dataclass(frozen=True)
class ManifestEntry:
    """One claimed object: where it landed, its size, its ETag, and what became of it."""

    landing_key: str
    relative_key: str
    size: int
    etag: str
    outcome: str = CLAIMED
    reason: str | None = None

    @property
    def is_data(self) -> bool:
        """A file the load step reads (not set aside when it was claimed)."""
        return self.outcome != QUARANTINED or self.reason != EMPTY_OBJECT


@dataclass(frozen=True)
class Manifest:
    """A batch: its files and their outcomes. Written beside the batch folder in each zone."""

    feed: str
    batch_id: str
    prefix: str
    files: tuple[ManifestEntry, ...]
    run_id: str | None = None
    claimed_at: str | None = None
    reclaimed: bool = False
    """Registered again after its first claim (the claim retried, the DAG run cleared, or a
    reprocess): its files may be in processed/ (the batch finished, or a finalize failed
    part-way). Only such a claim moves files out of processed/; a first claim, still moving
    when a reprocess took the batch over and published it, finds its files gone and fails."""

    @property
    def data_files(self) -> tuple[ManifestEntry, ...]:
        """The files the load step reads."""
        return tuple(e for e in self.files if e.is_data)

    @property
    def load_files(self) -> tuple[ManifestEntry, ...]:
        """The files the load step's COPY names (data files not set aside)."""
        return tuple(e for e in self.files if e.is_data and e.outcome != QUARANTINED)

    @property
    def empty_files(self) -> tuple[ManifestEntry, ...]:
        return tuple(e for e in self.files if not e.is_data)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def count(self, outcome: str) -> int:
        return sum(1 for e in self.data_files if e.outcome == outcome)

    def unknown_files(self, names: Iterable[str]) -> list[str]:
        """Those of names (relative keys) that are not files of the batch, sorted."""
        return sorted(set(names) - {e.relative_key for e in self.files})

    def file_list(self, most: int = 10) -> str:
        """The batch's files (relative keys), sorted, the first `most` of them."""
        names = sorted(e.relative_key for e in self.files)
        return ", ".join(names[:most]) + (" ..." if len(names) > most else "")

    def body(self) -> dict[str, Any]:
        return {
            "feed": self.feed,
            "batch_id": self.batch_id,
            "prefix": self.prefix,
            "run_id": self.run_id,
            "claimed_at": self.claimed_at,
            "reclaimed": self.reclaimed,
            "file_count": len(self.files),
            "total_bytes": self.total_bytes,
            "files": [asdict(entry) for entry in self.files],
        }

    def to_json(self) -> str:
        return json.dumps(self.body(), indent=2, sort_keys=True)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Manifest:
        """Read a manifest; those written before outcomes existed read as all claimed."""
        return cls(
            feed=body["feed"],
            batch_id=body["batch_id"],
            prefix=body["prefix"],
            files=tuple(ManifestEntry(**entry) for entry in body["files"]),
            run_id=body.get("run_id"),
            claimed_at=body.get("claimed_at"),
            reclaimed=bool(body.get("reclaimed", False)),
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls.from_body(json.loads(text))


@dataclass
class Register:
    """A feed's claims register: its open batches (batch id -> manifest), the S3 ETag read, and
    its version, counted up on every write: the body never repeats, so neither does its ETag (an
    If-Match write of a stale read cannot succeed after the register went back to the same
    batches, the ABA problem)."""

    batches: dict[str, Manifest] = field(default_factory=dict)
    etag: str | None = None
    version: int = 0

    def owned_keys(self) -> set[str]:
        """Landing keys that belong to an open batch."""
        return {e.landing_key for m in self.batches.values() for e in m.files}

    def to_json(self, layout: LakeLayout) -> str:
        body = {
            "prefix": layout.prefix,
            "version": self.version + 1,
            "batches": {b: m.body() for b, m in sorted(self.batches.items())},
        }
        return json.dumps(body, indent=1, sort_keys=True)


@dataclass(frozen=True)
class Limits:
    """How much one batch may take (the spec's batch.max_files and batch.max_bytes)."""

    max_files: int = 1000
    max_bytes: int = 1024**3


@dataclass(frozen=True)
class LandedObject:
    key: str
    size: int
    etag: str
    last_modified: dt.datetime


@dataclass(frozen=True)
class CopyResult:
    """One row of a COPY INTO result: a file, its load status and counts.

    https://docs.snowflake.com/en/sql-reference/sql/copy-into-table#output
    """

    file: str
    status: str
    rows_parsed: int
    rows_loaded: int
    errors_seen: int
    first_error: str | None = None
    first_error_line: int | None = None
    first_error_column_name: str | None = None


COPY_STATUSES = {"LOADED", "LOAD_FAILED", "PARTIALLY_LOADED", "LOAD_SKIPPED"}


def step_rows(value: Any, matches: Callable[[Sequence[Any]], bool]) -> list[Sequence[Any]]:
    """The rows that `matches` in a SQL step's XCom (one list of rows per statement, maybe in
    Airflow's serialization envelope), in order."""
    found: list[Sequence[Any]] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict) and "__data__" in item:  # Airflow's serialization envelope
            walk(item["__data__"])
        elif isinstance(item, list | tuple):
            if matches(item):
                found.append(item)
                return
            for child in item:
                walk(child)

    walk(value)
    return found


SKIPPED_FILE = "skipped_file"
"""First field of the load's rows naming a file on_error skip_file set aside: (it, file, reason)."""


def skipped_files(value: Any) -> dict[str, str]:
    """The files a load step skipped under on_error skip_file (its XCom): path relative to the
    stage (METADATA$FILENAME) -> the reason, naming the rejected row."""
    rows = step_rows(value, lambda item: len(item) == 3 and item[0] == SKIPPED_FILE)
    return {str(row[1]): str(row[2]) for row in rows}


def set_skipped_aside(results: Sequence[CopyResult], skipped: dict[str, str]) -> list[CopyResult]:
    """The COPY's results with the files skip_file set aside marked LOAD_FAILED, with reasons."""
    marked = []
    for result in results:
        reason = next((r for name, r in skipped.items() if result.file.endswith("/" + name)), None)
        if reason is not None:
            result = replace(result, status="LOAD_FAILED", rows_loaded=0, first_error=reason,
                             first_error_line=None, first_error_column_name=None)  # fmt: skip
        marked.append(result)
    return marked


def _is_copy_row(item: Sequence[Any]) -> bool:
    return (
        len(item) >= 6
        and isinstance(item[0], str)
        and isinstance(item[1], str)
        and item[1].upper() in COPY_STATUSES
    )


def copy_results(value: Any) -> list[CopyResult]:
    """The COPY rows in a load step's result (its XCom: one list of rows per statement)."""
    return [
        CopyResult(
            file=item[0],
            status=item[1].upper(),
            rows_parsed=int(item[2] or 0),
            rows_loaded=int(item[3] or 0),
            errors_seen=int(item[5] or 0),
            first_error=item[6] if len(item) > 6 else None,
            first_error_line=int(item[7]) if len(item) > 7 and item[7] else None,
            first_error_column_name=item[9] if len(item) > 9 else None,
        )
        for item in step_rows(value, _is_copy_row)
    ]


# --- S3 primitives -----------------------------------------------------------------------------


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_missing(exc: Exception) -> bool:
    return _code(exc) in _MISSING_CODES or type(exc).__name__ == "NoSuchKey"


def list_landed(s3: S3Client, bucket: str, prefix: str) -> list[LandedObject]:
    """Every object under prefix except folder markers (keys ending in /), in key order."""
    found: list[LandedObject] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue  # an S3 console "folder": not data, not ours to move
            found.append(
                LandedObject(
                    item["Key"], item["Size"], item["ETag"].strip('"'), item["LastModified"]
                )
            )
    return found


def _read(s3: S3Client, bucket: str, key: str) -> tuple[str, str] | None:
    """An object's text and ETag, or None when there is none."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise
    return response["Body"].read().decode("utf-8"), str(response["ETag"]).strip('"')


def _etag(s3: S3Client, bucket: str, key: str) -> str | None:
    """The object's ETag (unquoted), or None when there is none."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise
    return str(head["ETag"]).strip('"')


def _exists(s3: S3Client, bucket: str, key: str) -> bool:
    return _etag(s3, bucket, key) is not None


def _changed(exc: Exception) -> bool:
    """S3 refused a conditional request: the object is not the version asked for."""
    return _code(exc) in ("PreconditionFailed", "412")


def copy_object(
    s3: S3Client, bucket: str, source: str, target: str, size: int, etag: str | None = None
) -> None:
    """Copy within the bucket: one CopyObject, or a managed multipart copy for large objects.
    With etag, only that version of the source (CopySourceIfMatch; 412 otherwise):
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html"""
    extra = {"CopySourceIfMatch": f'"{etag}"'} if etag else {}
    if size >= MULTIPART_COPY_THRESHOLD:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=MULTIPART_COPY_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK_BYTES,
            max_concurrency=4,
        )
        s3.copy({"Bucket": bucket, "Key": source}, bucket, target, ExtraArgs=extra, Config=config)
    else:
        s3.copy_object(
            Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source}, **extra
        )


def copy_to(
    s3: S3Client,
    bucket: str,
    sources: Sequence[str],
    target: str,
    size: int,
    guard: tuple[str, str] | None = None,
) -> str | None:
    """Copy to target from the first source that exists; the source to delete (None when the
    object was already at target). guard (key, etag): that source counts only while it holds
    that version; a producer that wrote the key again made a new object, for a later batch.
    Raises BatchError when it is at no source and not at target.
    """
    for source in sources:
        if source == target:
            continue
        etag = guard[1] if guard and guard[0] == source else None
        if etag is not None:  # checked here too: moto does not honour CopySourceIfMatch
            now = _etag(s3, bucket, source)
            if now is None:
                continue
            if now != etag:
                log.warning("s3://%s/%s was written again (ETag %s, the batch's is %s): "
                            "left for a later batch", bucket, source, now, etag)  # fmt: skip
                continue
        try:
            copy_object(s3, bucket, source, target, size, etag)
        except Exception as exc:
            if _is_missing(exc) or _changed(exc):
                continue
            raise
        return source
    if not _exists(s3, bucket, target):
        raise BatchError(f"s3://{bucket}/{sources[0]} is gone: not at {', '.join(sources)}")
    return None


def knows(s3: S3Client, shape: str, member: str) -> bool:
    """Whether the installed botocore's S3 model has this request member (e.g. 'PutObjectRequest',
    'IfMatch'). The boto3 an MWAA image pins may predate S3's conditional requests (Airflow
    2.10.3's constraints pin boto3 1.35.36, which has IfNoneMatch but not IfMatch)."""
    return member in s3.meta.service_model.shape_for(shape).members


@contextmanager
def request_headers(
    s3: S3Client, operation: str, key: str, headers: Mapping[str, str]
) -> Iterator[None]:
    """Add headers to this client's `operation` requests for `key` while the block runs, before
    they are signed: for conditions S3 honours whatever the SDK's model knows of them.
    https://boto3.amazonaws.com/v1/documentation/api/latest/guide/events.html"""
    path = "/" + urllib.parse.quote(key, safe="/~")

    def add(request: Any, **_: Any) -> None:
        if urllib.parse.urlsplit(request.url).path.endswith(path):
            for name, value in headers.items():  # botocore's HTTPHeaders: no update()
                if name in request.headers:
                    del request.headers[name]
                request.headers[name] = value

    event = f"before-sign.s3.{operation}"
    s3.meta.events.register_first(event, add)
    try:
        yield
    finally:
        s3.meta.events.unregister(event, add)


def delete_keys(
    s3: S3Client, bucket: str, keys: Sequence[str], etags: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """Delete keys, 1000 per DeleteObjects request; (key, error) for those S3 did not delete.
    A key with an ETag in etags is deleted only while it holds that version (a conditional
    delete: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html);
    one written again since is left, not an error. (moto ignores the condition.) With a boto3
    whose model has no per-object ETag, those keys are deleted one by one with If-Match."""
    etags = etags or {}
    failed: list[tuple[str, str]] = []
    if etags and not knows(s3, "ObjectIdentifier", "ETag"):
        for key in [k for k in keys if k in etags]:
            try:
                with request_headers(s3, "DeleteObject", key, {"If-Match": f'"{etags[key]}"'}):
                    s3.delete_object(Bucket=bucket, Key=key)
            except Exception as exc:
                if _changed(exc):
                    _written_again(bucket, key)
                    continue
                if _is_missing(exc):  # gone already (another mover): deleted, as DeleteObjects says
                    continue
                failed.append((key, f"{type(exc).__name__}: {exc}"))
        keys = [k for k in keys if k not in etags]
    for start in range(0, len(keys), 1000):
        chunk: list[Any] = [
            {"Key": key, "ETag": f'"{etags[key]}"'} if key in etags else {"Key": key}
            for key in keys[start : start + 1000]
        ]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        for e in answer.get("Errors", []):
            if e.get("Code") == "PreconditionFailed":
                _written_again(bucket, e["Key"])
                continue
            failed.append((e["Key"], f"{e.get('Code')}: {e.get('Message')}"))
    return failed


def _written_again(bucket: str, key: str) -> None:
    log.warning("s3://%s/%s was written again: left for a later batch", bucket, key)


Move = tuple[tuple[str, ...], str, int, tuple[str, str] | None]
"""(where the object may be, likeliest first; where it goes; its size; (landing key, ETag))"""


def move_all(s3: S3Client, bucket: str, moves: Sequence[Move], what: str) -> None:
    """Run every move: copies in parallel, then the sources' deletes in batches. One failure does
    not stop the others; a source is deleted only once its copy exists.

    Raises BatchError naming every object that did not move (and why), after all were tried.
    """
    if not moves:
        return
    failures: list[tuple[str, object]] = []
    copied: list[str] = []
    guards = {guard[0]: guard[1] for *_, guard in moves if guard}

    def run(item: Move) -> None:
        sources, target, size, guard = item
        try:
            source = copy_to(s3, bucket, sources, target, size, guard)
        except Exception as exc:
            failures.append((sources[0], exc))
            return
        if source is not None:
            copied.append(source)

    with ThreadPoolExecutor(max_workers=min(MOVE_THREADS, len(moves))) as pool:
        list(pool.map(run, moves))
    try:
        failures += delete_keys(s3, bucket, sorted(copied), guards)
    except Exception as exc:
        failures += [(key, exc) for key in copied]
    if failures:
        shown = "; ".join(f"s3://{bucket}/{key}: {exc}" for key, exc in sorted(failures)[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        raise BatchError(f"{what}: {len(failures)} of {len(moves)} objects failed: {shown}{more}")


# --- the claims register ----------------------------------------------------------------------


def read_register(s3: S3Client, bucket: str, layout: LakeLayout) -> Register:
    """The feed's claims register as it is now (empty when there is none yet)."""
    found = _read(s3, bucket, layout.claims)
    if found is None:
        return Register()
    text, etag = found
    try:
        body = json.loads(text)
        batches = {b: Manifest.from_body(m) for b, m in body.get("batches", {}).items()}
        version = int(body.get("version", 0))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BatchError(
            f"the claims register s3://{bucket}/{layout.claims} is unreadable "
            f"({type(exc).__name__}: {exc}); restore its last good version (S3 versioning keeps "
            "it) or repair it by hand: no run of this feed can claim until then"
        ) from None
    return Register(batches, etag, version)


def _write_register(s3: S3Client, bucket: str, layout: LakeLayout, register: Register) -> bool:
    """Write the register if nobody else did since it was read; False when someone did."""
    name, header, value = (
        ("IfMatch", "If-Match", register.etag) if register.etag
        else ("IfNoneMatch", "If-None-Match", "*")
    )  # fmt: skip
    condition = {name: value} if knows(s3, "PutObjectRequest", name) else {}
    headers = request_headers(s3, "PutObject", layout.claims, {header: value})
    try:
        with nullcontext() if condition else headers:
            s3.put_object(
                Bucket=bucket,
                Key=layout.claims,
                Body=register.to_json(layout).encode(),
                ContentType="application/json",
                **condition,
            )
    except Exception as exc:
        if _code(exc) in _CONFLICT_CODES:
            return False
        raise
    return True


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))


def _update_register(s3: S3Client, bucket: str, layout: LakeLayout, change: Any, what: str) -> Any:
    """Read, change and conditionally write the register until a write wins.

    change(register) edits the register in place and returns (write?, result).
    """
    for attempt in range(REGISTER_ATTEMPTS):
        register = read_register(s3, bucket, layout)
        write, result = change(register)
        if not write or _write_register(s3, bucket, layout, register):
            return result
        _backoff(attempt)
    raise BatchError(
        f"{what}: s3://{bucket}/{layout.claims} changed under {REGISTER_ATTEMPTS} attempts in a "
        "row; too many claims at once"
    )


# --- claim -------------------------------------------------------------------------------------


def select_batch(
    objects: Iterable[LandedObject], owned: set[str], limits: Limits
) -> list[LandedObject]:
    """The objects of the next batch: unowned, in arrival order, within the limits.

    Data files are taken in order of arrival (LastModified, then key) until the next one would
    pass max_files or max_bytes (a single larger file still makes a batch of its own); zero-byte
    objects are all taken, to be set aside.
    """
    free = sorted(
        (o for o in objects if o.key not in owned), key=lambda o: (o.last_modified, o.key)
    )
    empty = [o for o in free if o.size == 0]
    taken: list[LandedObject] = []
    total = 0
    for obj in (o for o in free if o.size > 0):
        if taken and (len(taken) >= limits.max_files or total + obj.size > limits.max_bytes):
            break
        taken.append(obj)
        total += obj.size
    return taken + empty


def register_batch(
    s3: S3Client,
    bucket: str,
    feed: str,
    layout: LakeLayout,
    batch_id: str,
    run_id: str,
    *,
    reprocess: bool = False,
    limits: Limits | None = None,
    quarantine: dict[str, str] | None = None,
) -> Manifest | None:
    """Commit batch_id to the claims register and write its manifest; None when nothing landed.

    - A batch already in the register is resumed; a reprocess run takes it over from the run that
      claimed it (the register records the run).
    - A reprocess of a finished batch registers its loaded files again (from processed/).
    - Otherwise the batch takes the landed objects no open batch owns (see select_batch).
    quarantine (relative key -> reason) sets files of a resumed batch aside.
    Raises BatchError when the batch id belongs to another run, NoBatchError when a reprocess
    finds no batch.
    """
    check_batch_id(batch_id)
    limits = limits or Limits()
    now = dt.datetime.now(dt.UTC).isoformat()

    def change(register: Register) -> tuple[bool, Manifest | None]:
        current = register.batches.get(batch_id)
        if current is not None:
            if current.run_id not in (None, run_id) and not reprocess:
                raise BatchError(
                    f"batch {batch_id} of feed {feed} belongs to DAG run {current.run_id}; run "
                    f"{run_id} has the same batch id (trigger it again with another run_after)"
                )
            updated = _set_aside(current, quarantine or {})
            # Registered again (a retry, a cleared run, a reprocess): its files may be anywhere.
            updated = replace(updated, run_id=run_id, reclaimed=True)
            register.batches[batch_id] = updated
            return updated != current, updated
        done = _finished_manifest(s3, bucket, layout, batch_id)
        if done is not None and not reprocess and done.run_id != run_id:
            raise BatchError(
                f"batch id {batch_id} of feed {feed} was used before, by DAG run "
                f"{done.run_id or 'unknown'}; reprocess it with conf batch_id"
            )
        if done is not None:  # a reprocess, or a cleared run claiming its own batch again
            # Loaded files load again; files set aside stay set aside, with their reasons;
            # deferred ones went back to landing/ and belong to later batches now.
            files = tuple(
                replace(e, outcome=CLAIMED, reason=None) if e.outcome in (CLAIMED, LOADED) else e
                for e in done.files
                if e.outcome != DEFERRED
            )
            manifest = _set_aside(
                Manifest(feed, batch_id, layout.prefix, files, run_id, now, reclaimed=True),
                quarantine or {},
            )
            register.batches[batch_id] = manifest
            return True, manifest
        if reprocess:
            raise no_batch(feed, bucket, layout, batch_id)
        objects = list_landed(s3, bucket, layout.landing)
        taken = select_batch(objects, register.owned_keys(), limits)
        if not taken:
            return False, None
        entries = tuple(
            ManifestEntry(
                o.key,
                o.key[len(layout.landing) :],
                o.size,
                o.etag,
                outcome=QUARANTINED if o.size == 0 else CLAIMED,
                reason=EMPTY_OBJECT if o.size == 0 else None,
            )
            for o in taken
        )
        manifest = Manifest(feed, batch_id, layout.prefix, entries, run_id, now)
        register.batches[batch_id] = manifest
        return True, manifest

    manifest: Manifest | None = _update_register(
        s3, bucket, layout, change, f"claiming batch {batch_id} of {feed}"
    )
    if manifest is not None:
        s3.put_object(
            Bucket=bucket,
            Key=layout.manifest(PROCESSING, batch_id),
            Body=manifest.to_json().encode(),
            ContentType="application/json",
        )
    return manifest


def _set_aside(manifest: Manifest, quarantine: dict[str, str]) -> Manifest:
    if not quarantine:
        return manifest
    if unknown := manifest.unknown_files(quarantine):
        raise BatchError(
            f"batch {manifest.batch_id} has no file {unknown[0]!r} to quarantine; its files: "
            + manifest.file_list()
        )
    files = tuple(
        replace(e, outcome=QUARANTINED, reason=quarantine[e.relative_key])
        if e.relative_key in quarantine
        else e
        for e in manifest.files
    )
    return replace(manifest, files=files)


def _finished_manifest(
    s3: S3Client, bucket: str, layout: LakeLayout, batch_id: str
) -> Manifest | None:
    """The manifest of a batch not in the register: finished (processed/), or claimed before the
    register existed and never finished (processing/)."""
    for zone in (PROCESSED, PROCESSING):
        found = _read(s3, bucket, layout.manifest(zone, batch_id))
        if found is not None:
            return Manifest.from_json(found[0])
    return None


def _whereabouts(
    layout: LakeLayout, manifest: Manifest, entry: ManifestEntry, finished: bool
) -> tuple[str, ...]:
    """Every key an object of a batch can be at, the likeliest first: landing/ while claiming,
    processing/ while finalizing. A finalize also looks in processed/ and quarantine/ (a retried
    finalize); a claim looks in processed/ only when the batch is reclaimed (see Manifest).
    """
    rel = entry.relative_key
    processing = layout.folder(PROCESSING, manifest.batch_id) + rel
    processed = layout.folder(PROCESSED, manifest.batch_id) + rel
    if finished:
        quarantine = layout.folder(QUARANTINE, manifest.batch_id) + rel
        return processing, entry.landing_key, processed, quarantine
    if manifest.reclaimed:
        return entry.landing_key, processing, processed
    return entry.landing_key, processing


def _home(layout: LakeLayout, batch_id: str, entry: ManifestEntry, finished: bool) -> str:
    """Where an object of the batch belongs: while open, processing/ (or quarantine/ when set
    aside); once finished, by its outcome."""
    rel = entry.relative_key
    if entry.outcome == QUARANTINED:
        return layout.folder(QUARANTINE, batch_id) + rel
    if not finished:
        return layout.folder(PROCESSING, batch_id) + rel
    if entry.outcome == DEFERRED:
        return entry.landing_key
    return layout.folder(PROCESSED, batch_id) + rel


def move_batch(
    s3: S3Client, bucket: str, layout: LakeLayout, manifest: Manifest, *, finished: bool
) -> None:
    """Move every object of the batch to where it belongs (see _home), from wherever it is."""
    moves = [
        (
            _whereabouts(layout, manifest, e, finished),
            _home(layout, manifest.batch_id, e, finished),
            e.size,
            (e.landing_key, e.etag) if e.etag else None,
        )
        for e in manifest.files
    ]
    what = "finalizing" if finished else "claiming"
    move_all(s3, bucket, moves, f"{what} batch {manifest.batch_id} of {manifest.feed}")


def claim(
    s3: S3Client,
    bucket: str,
    feed: str,
    prefix: str,
    batch_id: str,
    run_id: str = "manual",
    *,
    reprocess: bool = False,
    limits: Limits | None = None,
    quarantine: dict[str, str] | None = None,
) -> Manifest | None:
    """Register and move a batch (register_batch, then move_batch); None when nothing landed."""
    layout = LakeLayout(prefix)
    manifest = register_batch(s3, bucket, feed, layout, batch_id, run_id, reprocess=reprocess,
                              limits=limits, quarantine=quarantine)  # fmt: skip
    if manifest is not None:
        move_batch(s3, bucket, layout, manifest, finished=False)
        log.info(
            "claimed batch %s of %s: %d files, %d bytes, %d set aside",
            batch_id,
            feed,
            len(manifest.data_files),
            manifest.total_bytes,
            len(manifest.empty_files),
        )
    return manifest


# --- finalize ----------------------------------------------------------------------------------


def _results_by_key(results: Iterable[CopyResult], folder: str) -> dict[str, CopyResult]:
    """The COPY's result rows by the relative key of their file in the batch folder (a row's file
    is the URL s3://bucket/<folder><relative key>)."""
    by_key: dict[str, CopyResult] = {}
    for row in results:
        _, found, rel = row.file.partition(folder)
        if found:
            by_key[rel] = row
    return by_key


def decide_outcomes(
    manifest: Manifest, layout: LakeLayout, results: Sequence[CopyResult] | None
) -> Manifest:
    """Each data file's outcome from the COPY's result rows.

    LOADED and PARTIALLY_LOADED files were loaded; LOAD_FAILED ones (ON_ERROR = SKIP_FILE) are
    quarantined with the COPY's first error; files the COPY did not report (SIZE_LIMIT reached)
    are deferred: they go back to landing/ for a later batch. Without results (a batch finalized
    by an older version) every file counts as loaded.
    """
    by_name = _results_by_key(results or (), layout.folder(PROCESSING, manifest.batch_id))
    files = []
    for entry in manifest.files:
        if not entry.is_data or entry.outcome == QUARANTINED:
            files.append(entry)
            continue
        result = by_name.get(entry.relative_key)
        if results is None or (result and result.status in ("LOADED", "PARTIALLY_LOADED")):
            files.append(replace(entry, outcome=LOADED, reason=None))
        elif result is not None:
            where = f" (line {result.first_error_line})" if result.first_error_line else ""
            column = (
                f", column {result.first_error_column_name}"
                if result.first_error_column_name
                else ""
            )
            reason = (
                f"{COPY_REASON}{result.status}: {result.first_error or 'no error given'}"
                f"{where}{column}"
            )
            files.append(replace(entry, outcome=QUARANTINED, reason=reason))
        else:
            reason = "not loaded by this batch's COPY (SIZE_LIMIT reached): back to landing/"
            files.append(replace(entry, outcome=DEFERRED, reason=reason))
    return replace(manifest, files=tuple(files))


@dataclass(frozen=True)
class SetAsideFile:
    """A whole file of a batch set aside in quarantine/, as its row of the quarantine table."""

    source_file: str
    """Where the load read it, relative to the stage (as METADATA$FILENAME)."""
    row: int | None
    """The line of the COPY's first error, when the COPY gave one."""
    code: str
    """file_unreadable (the COPY's CSV parser could not read it) or file_set_aside (a reprocess's
    --quarantine)."""
    error: str
    column: str | None
    replace: bool = True
    """Replace the file's rows in the table (a file set aside now); else add the row only when the
    table holds none of the file's (a file an earlier run's COPY set aside, kept aside)."""


def files_set_aside(
    manifest: Manifest, results: Sequence[CopyResult], skipped: Mapping[str, str]
) -> list[SetAsideFile]:
    """The rows the quarantine table needs for the batch's files set aside whole: one for each
    file this run's COPY could not read (LOAD_FAILED, file_unreadable) and each file a reprocess
    set aside (file_set_aside: its earlier rows go, its good rows are no longer in raw). Files
    skip_file set aside (skipped: the load's skipped_files) are in the table row by row; files an
    earlier run's COPY set aside keep the rows they have; zero-byte objects have none."""
    layout = LakeLayout(manifest.prefix)
    folder = layout.folder(PROCESSING, manifest.batch_id)
    failed = {
        rel: row for rel, row in _results_by_key(results, folder).items()
        if row.status == "LOAD_FAILED"
    }  # fmt: skip
    aside = []
    for entry in manifest.data_files:
        source = folder + entry.relative_key
        if entry.outcome != QUARANTINED or source in skipped:
            continue
        kept = f"; the file is kept whole in {layout.folder(QUARANTINE, manifest.batch_id)}"
        kept += entry.relative_key
        result = failed.get(entry.relative_key)
        reason = entry.reason or "set aside by a reprocess"
        if result is not None:
            error = result.first_error or "no error given"
            aside.append(SetAsideFile(source, result.first_error_line, "file_unreadable",
                                      f"the CSV parser could not read the file: {error}{kept}",
                                      result.first_error_column_name))  # fmt: skip
        else:
            by_copy = reason.startswith(COPY_REASON)
            aside.append(SetAsideFile(source, None, "file_set_aside", reason + kept, None,
                                      replace=not by_copy))  # fmt: skip
    return aside


def finalize(
    s3: S3Client,
    bucket: str,
    prefix: str,
    batch_id: str,
    results: Sequence[CopyResult] | None = None,
    run_id: str | None = None,
) -> Manifest:
    """Move a loaded batch on: loaded files to processed/, the rest by outcome; the manifest to
    processed/; then the batch leaves the claims register. Safe to repeat.

    run_id, the DAG run finalizing: a batch another run has taken over (a reprocess) is left to
    that run. Raises BatchError when there is no such batch, or another run holds it or
    published it.
    """
    check_batch_id(batch_id)
    layout = LakeLayout(prefix)
    register = read_register(s3, bucket, layout)
    current = register.batches.get(batch_id)
    if current is not None and run_id and current.run_id not in (None, run_id):
        raise BatchError(
            f"batch {batch_id} of prefix {prefix} was taken over by DAG run {current.run_id} "
            f"(a reprocess): run {run_id} leaves it to that run"
        )
    if current is None:
        done = _read(s3, bucket, layout.manifest(PROCESSED, batch_id))
        if done is not None:  # finalized before: by this run (a retry), or by a reprocess
            finished = Manifest.from_json(done[0])
            if run_id and finished.run_id not in (None, run_id):
                raise BatchError(
                    f"batch {batch_id} of prefix {prefix} was published by DAG run "
                    f"{finished.run_id} (a reprocess that took it over): run {run_id} leaves it"
                )
            return finished
        legacy = _read(s3, bucket, layout.manifest(PROCESSING, batch_id))
        if legacy is None:
            raise BatchError(
                f"batch {batch_id} of prefix {prefix} has no manifest in processing/ and no "
                "entry in the claims register"
            )
        current = Manifest.from_json(legacy[0])
    manifest = decide_outcomes(current, layout, results)
    # Reconciliation: files in the manifest = loaded + set aside + deferred, before anything moves.
    if unsettled := [e.relative_key for e in manifest.files if e.outcome == CLAIMED]:
        raise BatchError(
            f"batch {batch_id} of prefix {prefix} does not reconcile: {len(unsettled)} of its "
            f"{len(manifest.files)} files have no outcome (first: {unsettled[0]}); nothing moved"
        )
    move_batch(s3, bucket, layout, manifest, finished=True)
    s3.put_object(
        Bucket=bucket,
        Key=layout.manifest(PROCESSED, batch_id),
        Body=manifest.to_json().encode(),
        ContentType="application/json",
    )
    s3.delete_object(Bucket=bucket, Key=layout.manifest(PROCESSING, batch_id))
    release(s3, bucket, layout, batch_id, run_id)
    return manifest


def release(
    s3: S3Client, bucket: str, layout: LakeLayout, batch_id: str, run_id: str | None = None
) -> None:
    """Take a finished batch out of the claims register; with run_id, only while that DAG run
    holds it (a reprocess that took it over meanwhile keeps it)."""

    def change(register: Register) -> tuple[bool, None]:
        current = register.batches.get(batch_id)
        if current is None or (run_id and current.run_id not in (None, run_id)):
            return False, None
        del register.batches[batch_id]
        return True, None

    _update_register(s3, bucket, layout, change, f"releasing batch {batch_id}")


def open_batch_owner(s3: S3Client, bucket: str, layout: LakeLayout, batch_id: str) -> str | None:
    """The DAG run an open batch belongs to now; "" when the batch is finished (in processed/),
    None when there is no such batch."""
    current = read_register(s3, bucket, layout).batches.get(batch_id)
    if current is not None:
        return current.run_id or ""
    return "" if _read(s3, bucket, layout.manifest(PROCESSED, batch_id)) is not None else None


@dataclass(frozen=True)
class Unregistered:
    """Objects of a feed's batch in processing/ that no open batch of the claims register holds:
    left by a run from before the register, or moved there by hand."""

    batch_id: str
    objects: int
    has_manifest: bool
    last_modified: dt.datetime


def unregistered_batches(
    s3: S3Client, bucket: str, layout: LakeLayout, register: Register | None = None
) -> list[Unregistered]:
    """Batches with objects of this feed in processing/ that are not in the claims register,
    in batch id order. Lists all of processing/ (open batches only, so short). register, read
    before the listing (pass the one you have), keeps a batch finishing meanwhile out; one
    claimed meanwhile shows, with fresh objects (judge by last_modified)."""
    open_ids = (register or read_register(s3, bucket, layout)).batches
    found: dict[str, list[LandedObject]] = {}
    manifests: set[str] = set()
    for obj in list_landed(s3, bucket, f"{PROCESSING}/"):
        batch_id, _, rest = obj.key[len(PROCESSING) + 1 :].partition("/")
        if rest == f"{layout.prefix}.manifest.json":
            manifests.add(batch_id)
        elif not rest.startswith(f"{layout.prefix}/"):
            continue  # another feed's
        found.setdefault(batch_id, []).append(obj)
    return [
        Unregistered(
            batch_id, len(objects), batch_id in manifests, max(o.last_modified for o in objects)
        )
        for batch_id, objects in sorted(found.items())
        if batch_id not in open_ids
    ]


@dataclass(frozen=True)
class LakeBatch:
    """A batch of a feed the lake holds, as a reprocess finds it: finished (its manifest in
    processed/, not open), or open: in the claims register (run_id: the DAG run holding it, None
    when none is recorded) or left in processing/ with a manifest and no register entry."""

    batch_id: str
    finished: bool
    run_id: str | None = None


def list_batches(
    s3: S3Client, bucket: str, layout: LakeLayout, start: str | None = None, end: str | None = None
) -> dict[str, LakeBatch]:
    """The feed's batches in the lake, by batch id: every batch with a manifest in processed/ or
    processing/, and every open batch of the claims register.

    start and end (batch ids) bound the listing of processed/ to the seconds they name (S3 lists
    keys in order, from StartAfter), so a range costs the keys of its own batches; ids outside
    [start, end] may still be returned (the caller selects exactly). processing/ holds open
    batches only and is listed whole."""
    register = read_register(s3, bucket, layout)
    found = {
        batch_id: LakeBatch(batch_id, False, manifest.run_id)
        for batch_id, manifest in register.batches.items()
    }
    for obj in list_landed(s3, bucket, f"{PROCESSING}/"):
        batch_id = layout.batch_of(obj.key)
        if batch_id is not None and batch_id not in found:
            found[batch_id] = LakeBatch(batch_id, False)
    listing: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{PROCESSED}/"}
    if start:
        listing["StartAfter"] = f"{PROCESSED}/{start[:15]}"  # both forms of id of that second
    for page in s3.get_paginator("list_objects_v2").paginate(**listing):
        for item in page.get("Contents", []):
            folder = item["Key"][len(PROCESSED) + 1 :].partition("/")[0]
            if end and folder[:15] > end[:15]:
                return found
            batch_id = layout.batch_of(item["Key"])
            if batch_id is not None and batch_id not in found:
                found[batch_id] = LakeBatch(batch_id, True)
    return found


class NoBatchError(BatchError):
    """A reprocess of a batch the lake does not hold."""


def no_batch(feed: str, bucket: str, layout: LakeLayout, batch_id: str) -> NoBatchError:
    """The error for a reprocess of a batch the lake does not hold."""
    return NoBatchError(
        f"no batch {batch_id} of {feed} in s3://{bucket}: not open in the claims register "
        f"({layout.claims}) and no manifest in processing/ or processed/"
    )


def batch_manifest(s3: S3Client, bucket: str, layout: LakeLayout, batch_id: str) -> Manifest | None:
    """The batch as the register has it while open, else its finished manifest; None if none."""
    current = read_register(s3, bucket, layout).batches.get(batch_id)
    return current if current is not None else _finished_manifest(s3, bucket, layout, batch_id)


def has_claimable(s3: S3Client, bucket: str, layout: LakeLayout) -> bool:
    """Whether landing/<prefix>/ holds an object no open batch owns (folder markers aside)."""
    owned: set[str] | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=layout.landing):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/"):
                continue
            if owned is None:
                owned = read_register(s3, bucket, layout).owned_keys()
            if item["Key"] not in owned:
                return True
    return False


__all__ = [
    "CLAIMED",
    "DEFERRED",
    "LANDING",
    "LOADED",
    "QUARANTINED",
    "CopyResult",
    "Limits",
    "Manifest",
    "ManifestEntry",
    "Register",
    "claim",
    "copy_results",
    "decide_outcomes",
    "finalize",
    "has_claimable",
    "list_landed",
    "move_batch",
    "read_register",
    "register_batch",
    "release",
    "select_batch",
]
