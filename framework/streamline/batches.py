"""Batch ids: UTC, deterministic for a DAG run, safe to put in SQL and S3 keys."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from streamline.errors import BatchError

BATCH_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
BATCH_ID_FORMAT = "%Y%m%dT%H%M%SZ"
RUNTIME_BATCH_ID = '{{ ti.xcom_pull(task_ids="claim", key="batch_id") }}'
"""Airflow expression that the rendered SQL carries until a run substitutes the claimed batch id."""


def check_batch_id(batch_id: str) -> str:
    """Return batch_id when it has the form 20260101T000000Z; raise BatchError otherwise."""
    if not isinstance(batch_id, str) or not BATCH_ID_RE.match(batch_id):
        raise BatchError(
            f"batch id {batch_id!r} is not of the form YYYYMMDDTHHMMSSZ (UTC), "
            "e.g. 20260101T000000Z"
        )
    try:
        dt.datetime.strptime(batch_id, BATCH_ID_FORMAT)
    except ValueError as exc:
        raise BatchError(f"batch id {batch_id!r} is not a real UTC time: {exc}") from exc
    return batch_id


def batch_id_for(run_after: dt.datetime, conf: dict[str, Any] | None = None) -> str:
    """The batch id of a DAG run: conf["batch_id"] when given (reprocessing), else run_after in UTC.

    A run keeps its run_after across retries and clears, so its batch id never changes.
    """
    if conf and conf.get("batch_id"):
        return check_batch_id(str(conf["batch_id"]))
    if run_after.tzinfo is None:
        raise BatchError("run_after must be timezone-aware")
    return run_after.astimezone(dt.UTC).strftime(BATCH_ID_FORMAT)
