"""The run monitor: finished DAG runs of the feeds, read through Airflow's public REST API.

Airflow 3's stable REST API (https://airflow.apache.org/docs/apache-airflow/stable/stable-rest-api-ref.html)
gives everything the local runtime reports: `GET /dags/{dag_id}` (registered, paused),
`GET /dags/{dag_id}/dagRuns?state=success&state=failed&end_date_gte=...` (runs that ended),
`GET .../dagRuns/{run_id}/taskInstances` (each task's queued, start and end time) and
`GET .../taskInstances/claim/xcomEntries/batch_id` (the batch a run claimed). The metadata
database itself is never read.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from streamline.airflowapi import Api, ApiError
from streamline.layout import CLAIM_TASK, XCOM_BATCH_ID
from streamline.model import Feed

PAGE = 100
"""Runs asked for per feed and poll; more than this ending within one poll are read next time."""


def timestamp(value: Any) -> dt.datetime | None:
    """An ISO 8601 text or a datetime as an aware UTC datetime (naive means UTC); None stays."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@dataclass
class FinishedRun:
    """One DAG run that ended (success or failed) after claiming files: a batch.

    Times are ISO 8601 texts in UTC as Airflow gives them; `tasks` maps task id to its state and
    queued/start/end times. `rows` (raw rows of the batch) and `latencies` (seconds, one per
    distinct event) are filled in by streamline.local.latency.
    """

    feed: str
    run_id: str
    state: str
    batch_id: str | None
    tasks: dict[str, dict[str, str | None]]
    run_queued: str | None
    run_start: str | None
    run_end: str | None
    claimed: bool = True
    """False for a run that failed before its claim committed: a failed run, not a batch."""
    reprocess: bool = False
    """Started with a batch id in its conf (`streamline reprocess`): a batch run again."""
    rows: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def run_seconds(self) -> float | None:
        """Seconds from the run's start to its end."""
        start, end = timestamp(self.run_start), timestamp(self.run_end)
        return (end - start).total_seconds() if start and end else None

    def task_end(self, task_id: str) -> dt.datetime | None:
        """When task_id ended, or None when it did not run."""
        return timestamp(self.tasks.get(task_id, {}).get("end"))

    def to_json(self) -> str:
        """One line of the batches journal: the fields above, latencies as p50 and max."""
        from streamline.local.latency import percentile

        body: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k != "latencies"}
        if self.latencies:
            body["latency_p50"] = round(percentile(self.latencies, 0.5), 3)
            body["latency_max"] = round(max(self.latencies), 3)
        return json.dumps(body)


class Monitor:
    """Polls the API for runs of the feeds' DAGs that ended since the last poll."""

    def __init__(self, api: Api, feeds: Sequence[Feed]) -> None:
        self.api = api
        self.feeds = {f.dag.dag_id: f for f in feeds}
        self.seen: set[tuple[str, str, str]] = set()
        """(dag id, run id, end date) of the runs read."""
        self.last_error: ApiError | None = None
        self.since: dict[str, str] = {}
        self.empty_runs: dict[str, int] = {f.feed: 0 for f in feeds}
        """Per feed: runs that ended without a batch (a poll sensor that found no file in time)."""

    def dags_ready(self) -> list[str]:
        """DAG ids of the feeds that are registered and unpaused (none while the API is down)."""
        ready = []
        for dag_id in self.feeds:
            try:
                dag = self.api.call("GET", f"/dags/{quote(dag_id)}")
            except ApiError:  # 404 until the dag-processor has registered it
                continue
            if isinstance(dag, dict) and not dag.get("is_paused", True):
                ready.append(dag_id)
        return sorted(ready)

    def healthy(self) -> bool:
        """Whether the API server says the metadata database is healthy (GET /monitor/health)."""
        try:
            health = self.api.call("GET", "/monitor/health")
        except ApiError:
            return False
        return bool(health and health.get("metadatabase", {}).get("status") == "healthy")

    def sensors(self, sensor_id: str) -> str | None:
        """How far the poll feeds' first sensors are, the least advanced of them (see sensing);
        "poked" when there is no poll feed (event-mode DAGs run only once a message comes)."""
        polled = [d for d, f in self.feeds.items() if f.trigger.mode == "poll"]
        states = [self.sensing(dag_id, sensor_id) for dag_id in polled]
        if all(s == "poked" for s in states):
            return "poked"
        return "running" if all(states) else None

    def sensing(self, dag_id: str, sensor_id: str) -> str | None:
        """How far the sensor task of dag_id's running run is: "poked" once its log shows the
        PythonSensor's first poke ("Poking callable", GET .../taskInstances/{task_id}/logs/{try}),
        "running" before that, None when it does not run (or the API does not answer)."""
        base = f"/dags/{quote(dag_id)}/dagRuns"
        try:
            for run in self.api.call("GET", f"{base}?state=running&limit=1").get("dag_runs", []):
                path = f"{base}/{quote(str(run['dag_run_id']))}/taskInstances/{quote(sensor_id)}"
                ti = self.api.call("GET", path)
                if ti.get("state") != "running":
                    continue
                log = self.api.call(
                    "GET", f"{path}/logs/{ti.get('try_number', 1)}?full_content=true"
                )
                return "poked" if "Poking callable" in json.dumps(log) else "running"
        except ApiError:
            pass
        return None

    def poll(self) -> list[FinishedRun]:
        """Runs that ended since the last call, oldest end first per feed: those that claimed
        files, and failed ones (a run that succeeded without a batch only counts in empty_runs).

        A call the API refuses (or a server that does not answer) ends that feed's reading for
        this poll: what was read before it is returned, the rest is read by the next poll, and
        the error is kept in last_error. A run cleared and run again is reported again.
        """
        found: list[FinishedRun] = []
        self.last_error = None
        for dag_id, feed in self.feeds.items():
            try:
                self._poll_feed(dag_id, feed, found)
            except ApiError as exc:
                self.last_error = exc
        return found

    def _poll_feed(self, dag_id: str, feed: Feed, found: list[FinishedRun]) -> None:
        query = [("state", "success"), ("state", "failed"), ("order_by", "end_date"),
                 ("limit", str(PAGE))]  # fmt: skip
        if dag_id in self.since:
            query.append(("end_date_gte", self.since[dag_id]))
        answer = self.api.call("GET", f"/dags/{quote(dag_id)}/dagRuns?{urlencode(query)}")
        for run in answer.get("dag_runs", []):
            key = (dag_id, str(run["dag_run_id"]), str(run.get("end_date")))
            if key in self.seen:
                continue
            finished = self._finished(feed, run)
            self.seen.add(key)  # only once read whole: an ApiError above reads it again
            if run.get("end_date"):
                self.since[dag_id] = str(run["end_date"])
            if finished is not None:
                found.append(finished)

    def _finished(self, feed: Feed, run: dict[str, Any]) -> FinishedRun | None:
        base = f"/dags/{quote(feed.dag.dag_id)}/dagRuns/{quote(str(run['dag_run_id']))}"
        answer = self.api.call("GET", f"{base}/taskInstances")
        tasks = {
            str(ti["task_id"]): {
                "state": ti.get("state"),
                "queued": ti.get("queued_when"),
                "start": ti.get("start_date"),
                "end": ti.get("end_date"),
            }
            for ti in answer.get("task_instances", [])
        }
        claimed = tasks.get(CLAIM_TASK, {}).get("state") == "success"
        if run["state"] == "success" and not claimed:
            self.empty_runs[feed.feed] += 1
            return None
        batch_id = None
        if claimed:
            xcom_path = f"{base}/taskInstances/{CLAIM_TASK}/xcomEntries/{XCOM_BATCH_ID}"
            try:
                batch_id = _xcom_text(self.api.call("GET", xcom_path).get("value"))
            except ApiError as exc:  # cleared since (404): reported without its batch id
                if exc.status != 404:
                    raise  # read again by the next poll
                batch_id = None
        return FinishedRun(
            claimed=claimed,
            feed=feed.feed,
            run_id=str(run["dag_run_id"]),
            state=str(run["state"]),
            batch_id=batch_id,
            tasks=tasks,
            run_queued=run.get("queued_at"),
            run_start=run.get("start_date"),
            run_end=run.get("end_date"),
            reprocess=bool((run.get("conf") or {}).get("batch_id")),
        )


def _xcom_text(value: Any) -> str | None:
    """An XCom value as the API returns it (the stored JSON, or the value) as text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    try:
        decoded = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        decoded = value
    return str(decoded) if decoded else None
