"""`streamline reprocess` over several batches: which ones, then one DAG run at a time.

After a spec change (a column added, a format fixed), the batches already published must be
loaded again, and those that failed meanwhile finished. Their files stay in the lake
(`processed/<BATCH_ID>/`, or `processing/<BATCH_ID>/` while open), so a backfill is a reprocess of
each: a DAG run with conf {"batch_id": ...}, which replaces the batch's raw rows and merges it into
the mart again (zero rows added).

`select_batches` picks them from the lake's batches (`streamline.lake.list_batches`): by id, or by
range of ids (inclusive, either end optional), in batch (time) order. An open batch whose DAG run
is still queued or running is never raced: named by id, it is refused; in a range, it is left out
and reported. `run_batches` then reprocesses them in that order, one DAG run at a time
(`AirflowRuns` triggers and follows each through Airflow's REST API), stopping at the first that
does not publish unless told to keep going.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from streamline.batches import batch_time
from streamline.errors import UsageError
from streamline.lake import LakeBatch

if TYPE_CHECKING:
    from streamline.airflowapi import Api
    from streamline.ledger import LedgerRow

BUSY = ("queued", "running")
"""DAG run states that hold a batch: a reprocess now would race the run."""
NOT_RUN, HELD, GONE, TIMED_OUT, NOT_TAKEN_OVER, API_ERROR = (
    "not run", "held", "gone", "timed out", "not taken over", "API error",
)  # fmt: skip
"""Outcomes of a batch beside its ledger status (published, empty, failed, ...)."""


@dataclass(frozen=True)
class Selection:
    """The batches to reprocess, in batch order, and those a range left out because a queued or
    running DAG run holds them (with that run's state)."""

    feed: str
    batches: tuple[LakeBatch, ...]
    left_out: tuple[tuple[LakeBatch, str], ...] = ()


def check_request(batch_ids: Sequence[str], start: str | None, end: str | None) -> None:
    """Raise UsageError unless the batches are named one way: by id, or by a range whose start
    is not after its end."""
    if batch_ids and (start or end):
        raise UsageError("give BATCH_IDs or a range (--from/--to), not both")
    if not batch_ids and not (start or end):
        raise UsageError(
            "name the batches: BATCH_ID..., or a range --from BATCH_ID / --to BATCH_ID"
        )
    if start and end and batch_time(start) > batch_time(end):
        raise UsageError(f"--from {start} is after --to {end}: no batch can be in between")


def select_batches(
    feed: str,
    held: Mapping[str, LakeBatch],
    *,
    batch_ids: Sequence[str] = (),
    start: str | None = None,
    end: str | None = None,
    run_state: Callable[[str], str | None] = lambda run_id: None,
    where: str = "the lake",
) -> Selection:
    """The batches of held (the lake's, by id) to reprocess: batch_ids, or those from start to
    end (inclusive; either may be None, and neither need be a batch), in batch time order.

    run_state gives the state of the DAG run holding an open batch (None when unknown). Raises
    UsageError for a request check_request refuses, an id held does not have, a batch named by
    id that a queued or running run holds, and a range with no batch (or only such held ones);
    where names the lake in these messages."""
    check_request(batch_ids, start, end)
    if batch_ids:
        unknown = sorted(set(batch_ids) - set(held), key=batch_time)
        if unknown:
            raise UsageError(
                f"no batch {', '.join(unknown)} of {feed} in {where}: not open in the claims "
                f"register and no manifest in processing/ or processed/; `streamline status "
                f"{feed}` lists its latest batches"
            )
        chosen = [held[b] for b in dict.fromkeys(batch_ids)]
    else:
        low = batch_time(start) if start else None
        high = batch_time(end) if end else None
        chosen = [
            b
            for b in held.values()
            if (low is None or batch_time(b.batch_id) >= low)
            and (high is None or batch_time(b.batch_id) <= high)
        ]
    chosen.sort(key=lambda b: batch_time(b.batch_id))
    busy: list[tuple[LakeBatch, str]] = []
    for batch in chosen:
        state = run_state(batch.run_id) if batch.run_id and not batch.finished else None
        if state in BUSY:
            busy.append((batch, str(state)))
    if busy and batch_ids:
        batch, state = busy[0]
        raise UsageError(
            f"batch {batch.batch_id} is held by DAG run {batch.run_id}, which is {state}: a "
            "reprocess now would race it; wait for it to end (or mark it failed in Airflow), "
            "then reprocess"
        )
    left = {b.batch_id for b, _ in busy}
    selected = tuple(b for b in chosen if b.batch_id not in left)
    if not selected:
        span = f"from {start or 'the first'} to {end or 'the last'}"
        if busy:
            held_by = ", ".join(f"{b.batch_id} (DAG run {b.run_id}, {s})" for b, s in busy)
            raise UsageError(
                f"every batch of {feed} {span} is held by a queued or running DAG run: "
                f"{held_by}; reprocess once they end"
            )
        raise UsageError(f"no batch of {feed} in {where} {span}")
    return Selection(feed, selected, tuple(busy))


@dataclass(frozen=True)
class BatchRun:
    """One batch's reprocess: its DAG run (None when none was triggered), the run's last state,
    the outcome (the ledger status the run left, or one of NOT_RUN ... API_ERROR), whether the
    batch is published (or empty: every file set aside), its ledger row when the run took it
    over, and why not, when it is not."""

    batch_id: str
    run_id: str | None
    state: str | None
    outcome: str
    ok: bool
    row: LedgerRow | None = None
    detail: str | None = None
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> int | None:
        return self.row.rows_loaded if self.row is not None else None


@dataclass
class Backfill:
    """A reprocess of several batches of one feed: each batch's run, in the order they ran;
    stopped_at, the batch whose failure stopped it (None when every batch was tried)."""

    feed: str
    dag_id: str
    runs: list[BatchRun] = field(default_factory=list)
    stopped_at: str | None = None

    @property
    def published(self) -> bool:
        """Every batch published (or empty)."""
        return all(run.ok for run in self.runs)


@dataclass
class AirflowRuns:
    """Starts and follows one feed's reprocess runs through Airflow's REST API (api), each
    judged by its batch's ledger row.

    owner_state(batch_id), read just before a trigger, is (the DAG run holding the batch, its
    state): ("", None) for a finished batch, (None, None) when the lake no longer holds it.
    read_row gives a batch's ledger row (None when the ledger cannot be read from here: the run's
    state decides then). timeout: seconds to wait for each run. on_triggered(batch_id, run_id),
    on_state(run_id, state) and on_done(the batch's outcome) report progress. No method raises
    ApiError: a refused call is the outcome API_ERROR."""

    api: Api
    dag_id: str
    owner_state: Callable[[str], tuple[str | None, str | None]]
    read_row: Callable[[str], LedgerRow | None]
    timeout: float = 1800.0
    poll: float = 2.0
    on_triggered: Callable[[str, str], None] = lambda batch_id, run_id: None
    on_state: Callable[[str, str], None] = lambda run_id, state: None
    on_done: Callable[[BatchRun], None] = lambda run: None

    def start(self, batch_id: str) -> str | BatchRun:
        """Trigger the batch's run: its run id; or, when none was triggered, the outcome: HELD
        (a queued or running DAG run holds the batch), GONE, API_ERROR."""
        from streamline.airflowapi import ApiError, trigger_run

        owner, state = self.owner_state(batch_id)
        if owner is None:
            return self._done(BatchRun(batch_id, None, None, GONE, False,
                                       detail="the lake no longer holds it"))  # fmt: skip
        if owner and state in BUSY:
            detail = f"held by DAG run {owner}, which is {state}: reprocess it once that run ends"
            return self._done(BatchRun(batch_id, None, None, HELD, False, detail=detail))
        try:
            run_id = trigger_run(self.api, self.dag_id, {"batch_id": batch_id})
        except ApiError as exc:
            return self._done(BatchRun(batch_id, None, None, API_ERROR, False, detail=str(exc)))
        self.on_triggered(batch_id, run_id)
        return run_id

    def _done(self, run: BatchRun) -> BatchRun:
        self.on_done(run)
        return run

    def finish(
        self, batch_id: str, run_id: str, on_running: Callable[[], None] = lambda: None
    ) -> BatchRun:
        """Wait for the run (at most timeout seconds; on_running is called when it is seen
        running) and judge it by the batch's ledger row."""
        return self._done(self._finish(batch_id, run_id, on_running))

    def _finish(self, batch_id: str, run_id: str, on_running: Callable[[], None]) -> BatchRun:
        from streamline.airflowapi import ApiError, wait_for_run

        started = time.monotonic()

        def seen(state: str) -> None:
            self.on_state(run_id, state)
            if state == "running":
                on_running()

        try:
            outcome = wait_for_run(self.api, self.dag_id, run_id, timeout=self.timeout,
                                   poll=self.poll, on_state=seen)  # fmt: skip
        except ApiError as exc:
            return BatchRun(batch_id, run_id, None, API_ERROR, False, detail=str(exc),
                            seconds=time.monotonic() - started)  # fmt: skip
        seconds = time.monotonic() - started
        if outcome.state not in ("success", "failed"):
            detail = (
                f"DAG run {run_id} is still {outcome.state} after {self.timeout:.0f} s (--timeout)"
            )
            return BatchRun(batch_id, run_id, outcome.state, TIMED_OUT, False, detail=detail,
                            seconds=seconds)  # fmt: skip
        row = self.read_row(batch_id)
        if row is not None and row.run_id != run_id:
            detail = (
                f"the ledger has no record of run {run_id} (it stopped before taking the batch "
                f"over; the batch's last run, {row.run_id}, left it {row.status}); the run's task "
                "logs in Airflow say why"
            )
            return BatchRun(batch_id, run_id, outcome.state, NOT_TAKEN_OVER, False,
                            detail=detail, seconds=seconds)  # fmt: skip
        if row is None:  # the ledger could not be read from here: the run's state decides
            ok = outcome.state == "success"
            why = None if ok else f"DAG run {run_id} failed (the ledger could not be read here)"
            return BatchRun(batch_id, run_id, outcome.state, "published" if ok else "failed",
                            ok, detail=why, seconds=seconds)  # fmt: skip
        ok = outcome.state == "success" and row.finished
        why = None
        if not ok:
            why = (
                f"failed at {row.failed_step or 'an unknown step'}: {row.error}"
                if row.status == "failed"
                else f"DAG run {run_id} is {outcome.state}; the batch is {row.status}"
            )
        return BatchRun(batch_id, run_id, outcome.state, row.status, ok, row, why, seconds)


class Runs(Protocol):
    """What run_batches needs: AirflowRuns, or a stand-in."""

    def start(self, batch_id: str) -> str | BatchRun: ...

    def finish(
        self, batch_id: str, run_id: str, on_running: Callable[[], None] = ...
    ) -> BatchRun: ...


def run_batches(
    feed: str,
    dag_id: str,
    batches: Sequence[str],
    runs: Runs,
    *,
    keep_going: bool = False,
    queue_next: bool = False,
) -> Backfill:
    """Reprocess batches in the order given, one DAG run at a time. The first batch that does
    not publish stops the rest (each recorded NOT_RUN) unless keep_going.

    queue_next (for a DAG that allows one active run): once a batch's run is running, the next
    batch's run is triggered, so it waits queued and Airflow starts it as soon as the running one
    ends, before the feed's own next run can take the DAG's one slot (a poll feed's continuous
    run would otherwise hold it until its sensor times out). A batch that fails therefore has the
    next one's run queued behind it: that run goes on, is waited for and reported, and no later
    batch is triggered.
    """
    result = Backfill(feed, dag_id)
    started: dict[str, str | BatchRun] = {}

    def start(index: int) -> None:
        if index < len(batches) and batches[index] not in started:
            started[batches[index]] = runs.start(batches[index])

    for index, batch_id in enumerate(batches):
        if result.stopped_at is not None and batch_id not in started:
            result.runs.append(BatchRun(batch_id, None, None, NOT_RUN, False))
            continue
        start(index)
        run = started[batch_id]
        if not isinstance(run, BatchRun):
            following = index + 1 if queue_next and result.stopped_at is None else len(batches)
            run = runs.finish(batch_id, run, functools.partial(start, following))
        result.runs.append(run)
        if not run.ok and not keep_going and result.stopped_at is None:
            result.stopped_at = batch_id
    return result
