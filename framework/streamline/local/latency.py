"""End-to-end latency as the local runtime reports it: one definition for `up` and `demo`.

**Event written -> visible in the mart**, per distinct event, in seconds:
- *written* is the event's ordering column (`updated_at`) as the edge generator set it when it made
  the event. Only the feeds the generator streams (`GENERATED_FEEDS`) have such a column; a feed
  whose rows come from elsewhere (landed by hand, or a feed you added) is reported with its rows
  and runs but no latency, since its ordering column says when the source changed, not when the
  event entered the pipeline.
- *visible* is the end of the batch's `transform` task, when the MERGE (and the checks in the same
  transaction) committed.
- An event counts once, in the first batch that carried it: a duplicate line re-sends an old event,
  whose old timestamp says nothing about the pipeline. Edge buffering (the generator flushes each
  feed to Firehose once a second) is included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from streamline.local.monitor import FinishedRun, timestamp
from streamline.local.streaming import GENERATED_FEEDS
from streamline.model import Feed
from streamline.rendering import quote_identifier, quote_literal, quote_table
from streamline.tasks import TRANSFORM_TASK

VISIBLE_TASK = TRANSFORM_TASK
BATCH_COLUMN = quote_identifier("batch_id")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1, nearest rank) of values; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def batch_rows_sql(feed: Feed, batch_id: str) -> str:
    """How many raw rows the batch holds."""
    raw, batch, column = quote_table(feed.raw), quote_literal(batch_id), BATCH_COLUMN
    return f"SELECT COUNT(*) FROM {raw} WHERE {column} = {batch}"


def first_arrivals_sql(feed: Feed, batch_id: str) -> str:
    """The written time of each event (key, ordering) that first arrived in batch_id."""
    raw, batch, column = quote_table(feed.raw), quote_literal(batch_id), BATCH_COLUMN
    keys = [quote_identifier(k) for k in (*feed.key, feed.ordering)]
    same = " AND ".join(f"p.{k} = r.{k}" for k in keys)
    events = (
        f"SELECT DISTINCT {', '.join(f'r.{k}' for k in keys)} FROM {raw} AS r"
        f" WHERE r.{column} = {batch} AND NOT EXISTS"
        f" (SELECT 1 FROM {raw} AS p WHERE p.{column} < {batch} AND {same})"
    )
    return f"SELECT {quote_identifier(feed.ordering)} FROM ({events})"


def has_latency(feed: Feed) -> bool:
    """Whether the feed's rows carry the time their event was written (see the module)."""
    return feed.feed in GENERATED_FEEDS


class LatencyMeter:
    """Fills a finished run's rows and latencies from the warehouse, over one connection."""

    def __init__(self, connect: Callable[[], Any], feeds: Sequence[Feed]) -> None:
        self.connect = connect
        self.feeds = {f.feed: f for f in feeds}
        self._connection: Any = None

    def measure(self, run: FinishedRun) -> None:
        """Set run.rows and run.latencies; no latencies for a reprocess (its events arrived
        with the batch's first run), a run without a transform end or a feed without
        has_latency, and nothing when the warehouse does not answer (it may be stopping)."""
        visible = run.task_end(VISIBLE_TASK)
        if run.batch_id is None:
            return
        feed = self.feeds[run.feed]
        try:
            if self._connection is None:
                self._connection = self.connect()
            cursor = self._connection.cursor()
            cursor.execute(batch_rows_sql(feed, run.batch_id))
            run.rows = int(cursor.fetchone()[0])
            if visible is None or run.reprocess or not has_latency(feed):
                return
            cursor.execute(first_arrivals_sql(feed, run.batch_id))
            written = [timestamp(row[0]) for row in cursor.fetchall()]
        except Exception:  # the warehouse may be stopping: the run stays without figures
            self.close()
            return
        run.latencies = [(visible - w).total_seconds() for w in written if w is not None]

    def close(self) -> None:
        if self._connection is not None:
            with suppress(Exception):
                self._connection.close()
            self._connection = None
