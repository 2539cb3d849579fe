"""Batch ids: UTC, unique per DAG run, sortable, readable, safe in SQL and S3 keys.

A batch id is the run's `run_after` in UTC to the microsecond, `20260101T000000.123456Z`: two
runs of one DAG started within the same second still get different ids, every retry and clear of a
run gets the same one, and ids sort in time order. Ids of the earlier, one-second form
(`20260101T000000Z`) stay valid, so batches claimed before the change can be reprocessed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from streamline.errors import BatchError

BATCH_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}(\.[0-9]{6})?Z$")
"""Also the DAG param's JSON Schema pattern; Python checks use fullmatch (no trailing newline)."""
BATCH_ID_EXAMPLE = "20260101T000000.000000Z"
BATCH_ID_WILDCARDS = tuple(
    re.sub("[0-9]", "?", form) for form in ("20260101T000000Z", BATCH_ID_EXAMPLE)
)
"""The two forms of batch id as IAM wildcard patterns (`?` is one character; IAM has no character
classes): each matches exactly the ids of one form, as the 16th character is `Z` in the short form
and `.` in the long one. Wildcards in resource ARNs:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html, and in
StringLike conditions:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"""
_SECONDS_FORMAT = "%Y%m%dT%H%M%S"


def check_batch_id(batch_id: str) -> str:
    """Return batch_id when it has the form 20260101T000000.123456Z (or 20260101T000000Z).

    Raises BatchError otherwise, or when the digits are not a real UTC time.
    """
    if not isinstance(batch_id, str) or not BATCH_ID_RE.fullmatch(batch_id):
        raise BatchError(
            f"batch id {batch_id!r} is not of the form YYYYMMDDTHHMMSS.ffffffZ (UTC), "
            f"e.g. {BATCH_ID_EXAMPLE}"
        )
    try:
        dt.datetime.strptime(batch_id[:15], _SECONDS_FORMAT)
    except ValueError as exc:
        raise BatchError(f"batch id {batch_id!r} is not a real UTC time: {exc}") from exc
    return batch_id


def format_batch_id(when: dt.datetime) -> str:
    """The batch id of an aware datetime: its UTC time to the microsecond."""
    if when.tzinfo is None:
        raise BatchError("a batch id needs a timezone-aware time")
    utc = when.astimezone(dt.UTC)
    return f"{utc.strftime(_SECONDS_FORMAT)}.{utc.microsecond:06d}Z"


def batch_id_for(run_after: dt.datetime, conf: dict[str, Any] | None = None) -> str:
    """The batch id of a DAG run: conf["batch_id"] when given (reprocessing), else run_after.

    A run keeps its run_after across retries and clears, so its batch id never changes
    (https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/dag-run.html).
    Raises BatchError for a malformed conf batch id or a naive run_after.
    """
    if conf and conf.get("batch_id"):
        return check_batch_id(str(conf["batch_id"]))
    return format_batch_id(run_after)


def batch_time(batch_id: str) -> dt.datetime:
    """The UTC time a batch id names (its run's run_after)."""
    check_batch_id(batch_id)
    seconds = dt.datetime.strptime(batch_id[:15], _SECONDS_FORMAT).replace(tzinfo=dt.UTC)
    micro = int(batch_id[16:22]) if len(batch_id) > 16 else 0
    return seconds + dt.timedelta(microseconds=micro)
