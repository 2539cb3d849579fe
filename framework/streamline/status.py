"""`streamline status`: the state of every feed's batches, from the ledger and the lake.

Per feed: the latest batches in the batch ledger, batches that failed or are stuck (claimed and
unfinished for longer than the spec's batch.stuck_after_seconds), open batches of the claims
register, the landing backlog (data files waiting, their bytes, the oldest one's age against
batch.landing_stale_after_seconds), and the batches redone (held by more than one DAG run: a
reprocess, e.g. a backfill after a spec change). The result is a typed report;
`streamline.reporting` prints it for people or as JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from streamline.errors import BatchError
from streamline.layout import FINISHED_STATUSES, PROCESSING, LakeLayout
from streamline.ledger import LedgerRow, Redone, read_batches, read_redone
from streamline.model import Feed, TableRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from streamline.ledger import Runner

FAILED, STUCK, STALE, UNREADABLE = "failed", "stuck", "stale", "unreadable"
SCHEMA = "schema"
"""The warehouse lacks the schema version the feed's spec renders: its runs claim nothing."""


@dataclass(frozen=True)
class Problem:
    """Something a person must look at: a failed or stuck batch, or data waiting too long."""

    kind: str
    message: str
    batch_id: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class OpenBatch:
    """A batch in the claims register: claimed, not finalized yet."""

    batch_id: str
    run_id: str | None
    claimed_at: dt.datetime | None
    files: int
    bytes: int


@dataclass(frozen=True)
class Backlog:
    """Data files in landing/<prefix>/ that no open batch owns."""

    files: int = 0
    bytes: int = 0
    oldest: dt.datetime | None = None
    empty_files: int = 0


@dataclass
class FeedStatus:
    feed: str
    batches: list[LedgerRow] = field(default_factory=list)
    open_batches: list[OpenBatch] = field(default_factory=list)
    backlog: Backlog = field(default_factory=Backlog)
    problems: list[Problem] = field(default_factory=list)
    redone: Redone | None = None
    """Its batches more than one DAG run held (reprocessed), beyond the latest ones listed."""
    schema_version: int | None = None
    """The feed's latest schema version in the warehouse (None: none, or not read)."""

    @property
    def healthy(self) -> bool:
        return not self.problems


@dataclass
class StatusReport:
    """Every feed asked about, as of checked_at."""

    checked_at: dt.datetime
    feeds: list[FeedStatus]

    @property
    def healthy(self) -> bool:
        return all(f.healthy for f in self.feeds)

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        return {
            "checked_at": self.checked_at.isoformat(),
            "healthy": self.healthy,
            "feeds": [{**plain(asdict(f)), "healthy": f.healthy} for f in self.feeds],
        }


def _age(now: dt.datetime, when: dt.datetime | None) -> float:
    return (now - when).total_seconds() if when else 0.0


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def feed_status(
    feed: Feed,
    s3: S3Client,
    bucket: str,
    rows: Sequence[LedgerRow],
    now: dt.datetime | None = None,
    *,
    target: str = "",
) -> FeedStatus:
    """One feed's status from its ledger rows and the lake, judged at now (default: after the
    lake is read); target ends each reprocess hint (see collect_status)."""
    from streamline.lake import list_landed, read_register, unregistered_batches

    layout: LakeLayout = feed.layout.lake
    status = FeedStatus(feed.feed, batches=list(rows))
    register = read_register(s3, bucket, layout)
    for batch_id, manifest in sorted(register.batches.items()):
        claimed = dt.datetime.fromisoformat(manifest.claimed_at) if manifest.claimed_at else None
        status.open_batches.append(
            OpenBatch(
                batch_id, manifest.run_id, claimed, len(manifest.data_files), manifest.total_bytes
            )
        )
    owned = register.owned_keys()
    waiting = [o for o in list_landed(s3, bucket, layout.landing) if o.key not in owned]
    leftovers = unregistered_batches(s3, bucket, layout, register)
    now = now or dt.datetime.now(dt.UTC)
    data = [o for o in waiting if o.size > 0]
    status.backlog = Backlog(
        files=len(data),
        bytes=sum(o.size for o in data),
        oldest=min((o.last_modified for o in data), default=None),
        empty_files=len(waiting) - len(data),
    )
    by_id = {row.batch_id: row for row in rows}

    def reprocess(batch_id: str) -> str:
        return f"streamline reprocess {feed.feed} {batch_id}" + (f" {target}" if target else "")

    for row in rows:
        if row.status == "failed":
            status.problems.append(
                Problem(
                    FAILED,
                    f"batch {row.batch_id} failed at {row.failed_step or 'an unknown step'}: "
                    f"{row.error or 'no error recorded'}",
                    row.batch_id,
                    f"fix the cause, then: {reprocess(row.batch_id)}"
                    + (
                        " (a file that cannot load: add --quarantine FILE=REASON to set it aside)"
                        if row.failed_step == "load"
                        else ""
                    ),
                )
            )
        elif row.status not in FINISHED_STATUSES:
            idle = _age(now, row.updated_at)
            if idle > feed.batch.stuck_after_seconds:
                status.problems.append(
                    Problem(
                        STUCK,
                        f"batch {row.batch_id} is {row.status} and has not moved for "
                        f"{_seconds(idle)} (batch.stuck_after_seconds: "
                        f"{feed.batch.stuck_after_seconds})",
                        row.batch_id,
                        f"check its DAG run {row.run_id}; to run it again: "
                        f"{reprocess(row.batch_id)}",
                    )
                )
    for batch in status.open_batches:
        recorded = by_id.get(batch.batch_id)
        if recorded is not None and recorded.status not in FINISHED_STATUSES:
            continue  # reported above from the ledger
        idle = _age(now, batch.claimed_at)
        if idle > feed.batch.stuck_after_seconds:
            where = f"s3://{bucket}/{layout.folder(PROCESSING, batch.batch_id)}"
            status.problems.append(
                Problem(
                    STUCK,
                    f"batch {batch.batch_id} has been open for {_seconds(idle)} "
                    f"({batch.files} files, {where}) and is "
                    + (f"{recorded.status} in the ledger" if recorded else "not in the ledger"),
                    batch.batch_id,
                    f"to finish it: {reprocess(batch.batch_id)}",
                )
            )
    for left in leftovers:
        idle = _age(now, left.last_modified)
        if idle > feed.batch.stuck_after_seconds:
            where = f"s3://{bucket}/{PROCESSING}/{left.batch_id}/"
            status.problems.append(
                Problem(
                    STUCK,
                    f"batch {left.batch_id} has {left.objects} objects in {where} untouched for "
                    f"{_seconds(idle)} and is not in the claims register (claimed before the "
                    "register existed, or moved by hand)",
                    left.batch_id,
                    f"to finish it: {reprocess(left.batch_id)}"
                    if left.has_manifest
                    else f"it has no manifest: move its files back to s3://{bucket}/"
                    f"{layout.landing} to load them in a new batch",
                )
            )
    waited = _age(now, status.backlog.oldest)
    if status.backlog.files and waited > feed.batch.landing_stale_after_seconds:
        status.problems.append(
            Problem(
                STALE,
                f"{status.backlog.files} files have waited in s3://{bucket}/{layout.landing}, "
                f"the oldest for {_seconds(waited)} (batch.landing_stale_after_seconds: "
                f"{feed.batch.landing_stale_after_seconds})",
                hint="is the feed's DAG unpaused and running?",
            )
        )
    return status


def collect_status(
    feeds: Sequence[Feed],
    s3_for: Callable[[Feed], S3Client],
    warehouse_for: Callable[[Feed], Runner],
    bucket: str,
    *,
    latest: int = 5,
    now: dt.datetime | None = None,
    target: str = "",
    fingerprints: dict[str, str] | None = None,
) -> StatusReport:
    """The status of these feeds. s3_for and warehouse_for give each feed's connections;
    target, the flags that reach the feeds' Airflow, ends every reprocess hint; fingerprints
    (feed -> the schema fingerprint its spec renders, streamline.migrations) are checked against
    the warehouse's schema versions: a feed whose DAG runs would claim nothing is a problem.

    now (default: the clock after each feed's reads) is the time ages are measured at, so a
    batch claimed while the report is being made never shows a negative age.
    """
    by_ledger: dict[tuple[str, str, str], list[Feed]] = {}
    for feed in feeds:
        table = feed.layout.ledger
        by_ledger.setdefault((table.database, table.schema, table.table), []).append(feed)
    rows: dict[str, list[LedgerRow]] = {f.feed: [] for f in feeds}
    redone: dict[str, Redone] = {}
    for (database, schema, name), members in by_ledger.items():
        runner = warehouse_for(members[0])
        names = [f.feed for f in members]
        for row in read_batches(runner, TableRef(database, schema, name), names, latest):
            rows[row.feed].append(row)
        redone.update(read_redone(runner, TableRef(database, schema, name), names))
    statuses = []
    for feed in feeds:
        try:
            statuses.append(
                feed_status(feed, s3_for(feed), bucket, rows[feed.feed], now, target=target)
            )
        except BatchError as exc:  # one feed's damaged lake state: report it, go on
            problem = Problem(UNREADABLE, str(exc), hint="fix it, then run status again")
            statuses.append(FeedStatus(feed.feed, batches=rows[feed.feed], problems=[problem]))
        statuses[-1].redone = redone.get(feed.feed)
        if fingerprints and feed.feed in fingerprints:
            _check_schema(statuses[-1], feed, warehouse_for(feed), fingerprints[feed.feed])
    return StatusReport(now or dt.datetime.now(dt.UTC), statuses)


def _check_schema(status: FeedStatus, feed: Feed, runner: Runner, fingerprint: str) -> None:
    from streamline.schema_versions import read_recorded

    recorded = read_recorded(runner, feed.layout.schema_versions, feed.feed)
    status.schema_version = recorded.version if recorded else None
    if recorded is not None and recorded.fingerprint == fingerprint:
        return
    held = f"schema version {recorded.describe()}" if recorded else "no schema version"
    status.problems.append(
        Problem(
            SCHEMA,
            f"the warehouse holds {held}, and the spec renders schema {fingerprint}: DAG runs "
            "made from this spec claim no files until the warehouse holds it",
            hint=f"streamline plan {feed.feed}, then streamline apply {feed.feed}",
        )
    )
