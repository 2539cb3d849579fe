"""Reprocess through Airflow's REST API: MWAA's InvokeRestApi (botocore's Stubber checks each
request against the service model) and a plain API server (requests, faked)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from streamline.airflowapi import ApiError, MwaaApi, RestApi, trigger_run, wait_for_run


def test_mwaa_triggers_a_reprocess_and_follows_it() -> None:
    client = boto3.client("mwaa", region_name="eu-west-1", aws_access_key_id="x",
                          aws_secret_access_key="x")  # fmt: skip
    api = MwaaApi("prod", client)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_rest_api",
            {"RestApiStatusCode": 200, "RestApiResponse": {"dag_id": "orders", "is_paused": False}},
            {"Name": "prod", "Path": "/dags/orders", "Method": "GET"},
        )
        stub.add_response(
            "invoke_rest_api",
            {
                "RestApiStatusCode": 200,
                "RestApiResponse": {"dag_run_id": "rp_1", "state": "queued"},
            },
            {"Name": "prod", "Path": "/dags/orders/dagRuns", "Method": "POST", "Body": ANY},
        )
        for state in ("running", "success"):
            stub.add_response(
                "invoke_rest_api",
                {"RestApiStatusCode": 200, "RestApiResponse": {"state": state}},
                {"Name": "prod", "Path": "/dags/orders/dagRuns/rp_1", "Method": "GET"},
            )
        run_id = trigger_run(api, "orders", {"batch_id": "20260101T000000.000000Z"})
        seen: list[str] = []
        outcome = wait_for_run(api, "orders", run_id, timeout=10, poll=0, on_state=seen.append)
        stub.assert_no_pending_responses()
    assert (run_id, outcome.state, seen) == ("rp_1", "success", ["running", "success"])


def test_a_paused_dag_and_a_long_mwaa_path_are_refused() -> None:
    client = boto3.client("mwaa", region_name="eu-west-1", aws_access_key_id="x",
                          aws_secret_access_key="x")  # fmt: skip
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_rest_api",
            {"RestApiStatusCode": 200, "RestApiResponse": {"is_paused": True}},
            {"Name": "prod", "Path": "/dags/orders", "Method": "GET"},
        )
        with pytest.raises(ApiError, match="DAG orders is paused"):
            trigger_run(MwaaApi("prod", client), "orders", {})
    with pytest.raises(ApiError, match="at most 64 characters"):
        MwaaApi("prod", client).call("GET", "/dags/" + "x" * 70)


def test_rest_api_logs_in_for_a_token_and_sends_the_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    sent: list[tuple[str, str, Any, dict[str, str]]] = []

    class Response:
        def __init__(self, body: Any, status: int = 200) -> None:
            self.body, self.status_code, self.content = body, status, b"x"
            self.text = str(body)

        def json(self) -> Any:
            return self.body

    def request(method: str, url: str, json: Any, headers: dict[str, str], timeout: float) -> Any:
        sent.append((method, url, json, headers))
        if url.endswith("/auth/token"):
            return Response({"access_token": "jwt"})
        if method == "GET" and url.endswith("/dags/orders"):
            return Response({"is_paused": False})
        if method == "POST":
            return Response({"dag_run_id": json["dag_run_id"]})
        return Response({"detail": "nope"}, 404)

    monkeypatch.setattr(requests, "request", request)
    api = RestApi("http://airflow:8080", username="svc", password="pw")
    run_id = trigger_run(api, "orders", {"batch_id": "B"})
    assert sent[0][1] == "http://airflow:8080/auth/token"
    post = sent[-1]
    assert post[1] == "http://airflow:8080/api/v2/dags/orders/dagRuns"
    assert post[2] == {"dag_run_id": run_id, "logical_date": None, "conf": {"batch_id": "B"}}
    assert post[3] == {"Authorization": "Bearer jwt"}
    with pytest.raises(ApiError, match="HTTP 404"):
        api.call("GET", "/nope")


def test_a_busy_api_server_is_tried_again_and_a_run_is_created_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import streamline.airflowapi as airflowapi

    monkeypatch.setattr(airflowapi, "RETRY_DELAYS", (0.0, 0.0, 0.0))

    class Flaky:
        """HTTP 500 ("Database error") on the first GET and on the first POST, which created
        the run all the same; the POST's repeat is then refused with 409."""

        def __init__(self) -> None:
            self.calls: list[str] = []
            self.created: set[str] = set()

        def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            self.calls.append(method)
            if self.calls.count(method) == 1:
                if method == "POST" and body is not None:
                    self.created.add(body["dag_run_id"])
                raise ApiError("HTTP 500: Database error", status=500)
            if method == "POST" and body is not None and body["dag_run_id"] in self.created:
                raise ApiError("HTTP 409: Unique constraint violation", status=409)
            return {"is_paused": False} if method == "GET" else {"dag_run_id": "x"}

    api = Flaky()
    run_id = trigger_run(api, "orders", {"batch_id": "B"})
    assert api.calls == ["GET", "GET", "POST", "POST"] and api.created == {run_id}

    class Refusing:
        def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            raise ApiError("HTTP 400: bad conf", status=400)

    with pytest.raises(ApiError, match="bad conf"):  # not transient: no second try
        trigger_run(Refusing(), "orders", {})
