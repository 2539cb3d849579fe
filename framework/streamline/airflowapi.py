"""Trigger and follow DAG runs through Airflow's REST API: a deployment's, MWAA's, or `up`'s.

Airflow 3's stable REST API (https://airflow.apache.org/docs/apache-airflow/stable/stable-rest-api-ref.html):
`POST /api/v2/dags/{dag_id}/dagRuns` starts a run with a conf, `GET .../dagRuns/{dag_run_id}`
reports its state. Amazon MWAA forwards the same calls with `InvokeRestApi` under the caller's
AWS credentials (https://docs.aws.amazon.com/mwaa/latest/API/API_InvokeRestApi.html; its Path is
at most 64 characters, so run ids are kept short).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streamline.errors import StreamlineError

FINISHED = {"success", "failed"}
TRANSIENT = {500, 502, 503, 504}
"""HTTP statuses worth a second try: an API server whose metadata database was busy (a local
SQLite one answers "Database error" while another writer holds it), or a proxy in between."""
RETRY_DELAYS = (0.5, 1.0, 2.0)
"""Seconds before each further try of a call that failed with a TRANSIENT status."""


class ApiError(StreamlineError):
    """Airflow's REST API refused a call (status: its HTTP status) or could not be reached
    (status None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Api(Protocol):
    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call a path under /api/v2; the decoded JSON answer. Raises ApiError."""
        ...


@dataclass
class RestApi:
    """An Airflow API server at base_url; a JWT from /auth/token when a user is given."""

    base_url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    timeout: float = 30.0

    def _headers(self) -> dict[str, str]:
        if self.token is None and self.username:
            login = {"username": self.username, "password": self.password}
            answer = self._send("POST", f"{self.base_url}/auth/token", login, {})
            self.token = str(answer["access_token"])
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _send(self, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
        import requests

        try:
            response = requests.request(
                method, url, json=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise ApiError(f"{method} {url}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(
                f"{method} {url}: HTTP {response.status_code}: {response.text[:500]}",
                status=response.status_code,
            )
        return response.json() if response.content else None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url.rstrip('/')}/api/v2{path}"
        return self._send(method, url, body, self._headers())


@dataclass
class MwaaApi:
    """An Amazon MWAA environment's Airflow REST API, through boto3's mwaa.invoke_rest_api."""

    environment: str
    client: Any = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if len(path) > 64:
            raise ApiError(f"MWAA's InvokeRestApi takes paths of at most 64 characters: {path}")
        if self.client is None:
            import boto3

            self.client = boto3.client("mwaa")
        arguments: dict[str, Any] = {"Name": self.environment, "Path": path, "Method": method}
        if body is not None:
            arguments["Body"] = body
        try:
            answer = self.client.invoke_rest_api(**arguments)
        except Exception as exc:
            raise ApiError(f"MWAA {self.environment}: {method} {path}: {exc}") from exc
        return answer.get("RestApiResponse")


@dataclass(frozen=True)
class RunOutcome:
    dag_id: str
    run_id: str
    state: str
    seconds: float


def call_with_retries(
    api: Api,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    settled_by: int | None = None,
) -> Any:
    """api.call, tried again after RETRY_DELAYS when it fails with a TRANSIENT status; the last
    error is raised. Only for calls that are safe to repeat: a GET, or a POST whose repeat is
    refused with settled_by (an earlier try did the work after all: None is returned)."""
    for attempt, delay in enumerate((*RETRY_DELAYS, None)):
        try:
            return api.call(method, path, body)
        except ApiError as exc:
            if attempt and settled_by is not None and exc.status == settled_by:
                return None
            if delay is None or exc.status not in TRANSIENT:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def trigger_run(api: Api, dag_id: str, conf: dict[str, Any]) -> str:
    """Start a DAG run with conf; its run id. Raises ApiError (e.g. the DAG is paused).

    A TRANSIENT failure is tried again with the same run id: when the first try did create the
    run, the next is refused with HTTP 409 (the run id exists), which counts as created.
    """
    dag = call_with_retries(api, "GET", f"/dags/{dag_id}")
    if dag.get("is_paused"):
        raise ApiError(f"DAG {dag_id} is paused: unpause it, or the run would wait for ever")
    run_id = f"rp_{secrets.token_hex(4)}"
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    answer = call_with_retries(api, "POST", f"/dags/{dag_id}/dagRuns", body, settled_by=409)
    return str((answer or {}).get("dag_run_id") or run_id)


def run_state(api: Api, dag_id: str, run_id: str) -> str | None:
    """A DAG run's state (queued, running, success, failed), or None when it cannot be read."""
    try:
        return str(call_with_retries(api, "GET", f"/dags/{dag_id}/dagRuns/{run_id}").get("state"))
    except ApiError:
        return None


def wait_for_run(
    api: Api,
    dag_id: str,
    run_id: str,
    *,
    timeout: float,
    poll: float = 2.0,
    on_state: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Poll the run until it is success or failed, or timeout seconds have passed."""
    started = time.monotonic()
    state, last = "queued", None
    while time.monotonic() - started < timeout:
        answer = call_with_retries(api, "GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        state = str(answer.get("state"))
        if state != last and on_state is not None:
            on_state(state)
        last = state
        if state in FINISHED:
            break
        time.sleep(poll)
    return RunOutcome(dag_id, run_id, state, time.monotonic() - started)
