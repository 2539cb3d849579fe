"""`streamline reprocess FEED --from ...` on the local stack: a backfill that rebuilds a mart.

The command runs as a user runs it (a subprocess reading the lake and the ledger through the DAGs'
connections) against an Airflow REST API served here, whose DAG runs are the harness workers' real
runs (`dag.test()`), so the batches go through the real DAG one at a time.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from harness import Local, customer

from streamline.local.stack import create_warehouse_objects
from streamline.rendering import quote_table

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stack")]
FEED = "customers"


class Airflow:
    """The REST API calls reprocess makes (GET a DAG, POST a run, GET a run), answered by the
    harness: a POST runs the DAG in the feed's worker and answers once the run has ended, with
    the run's own id (the one the ledger records; `dag.test()` takes none)."""

    def __init__(self, lake: Local) -> None:
        self.lake = lake
        self.states: dict[str, str] = {}
        self.confs: list[dict[str, Any]] = []

    def answer(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        parts = urllib.parse.unquote(path).split("/")[3:]  # /api/v2/dags/...
        if method == "GET" and len(parts) == 2:
            return {"dag_id": parts[1], "is_paused": False}
        if method == "POST" and parts[2:] == ["dagRuns"] and body is not None:
            self.confs.append(body["conf"])
            summary = self.lake.run(FEED, **body["conf"])
            return {"dag_run_id": self.record(summary), "state": "queued"}
        if method == "GET" and len(parts) == 4 and parts[3] in self.states:
            return {"dag_run_id": parts[3], "state": self.states[parts[3]]}
        return None

    def record(self, summary: dict[str, Any]) -> str:
        """A run the harness made, known to the API from now on."""
        self.states[summary["run_id"]] = summary["state"]
        return str(summary["run_id"])


@pytest.fixture
def airflow(lake: Local) -> Iterator[tuple[Airflow, str]]:
    """The API served on a free 127.0.0.1 port; yields it and its URL."""
    api = Airflow(lake)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = api.answer("GET", self.path, None)
            payload = json.dumps(answer or {"detail": "not found"}).encode()
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            """Airflow answers at once; this run takes a while. The client's read timeout
            (30 s) counts from the last byte received, so the answer starts now and whitespace,
            which JSON allows before a value, keeps it coming until the run has ended (the body
            ends when the connection closes: HTTP/1.0)."""
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            answer: list[Any] = []

            def run_dag() -> None:
                answer.append(api.answer("POST", self.path, body))

            run = threading.Thread(target=run_dag)
            run.start()
            while run.is_alive():
                self.wfile.write(b" ")
                self.wfile.flush()
                run.join(timeout=2)
            self.wfile.write(json.dumps(answer[0]).encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reprocess(lake: Local, *args: str) -> subprocess.CompletedProcess[str]:
    """`streamline reprocess ...` as lake.cli runs a command, with time for several runs."""
    return lake.cli("reprocess", *args, timeout=600)


def test_a_range_of_batches_rebuilds_the_mart_one_run_at_a_time(
    lake: Local, airflow: tuple[Airflow, str]
) -> None:
    api, url = airflow
    events = [
        [customer(1, "free", "10:00:00.000"), customer(2, "pro", "10:00:00.000")],
        [customer(1, "pro", "10:05:00.000"), customer(3, "free", "10:00:00.000")],
        [customer(4, "plus", "10:00:00.000")],
    ]
    batches = []
    for lines in events[:2]:
        lake.land(FEED, lines)
        run = lake.run(FEED)
        assert run["state"] == "success", run
        batches.append(run["batch_id"])
        api.record(run)
    # The mart is dropped and created again empty (a change rebuilt by hand): the next batch
    # fails at its transform meanwhile, and stays open in processing/.
    mart = quote_table(lake.feeds[FEED].mart)
    lake.query(f"DROP TABLE {mart}")
    lake.land(FEED, events[2])
    try:
        failed = lake.run(FEED)
    finally:
        create_warehouse_objects(lake.stack, lake.project, list(lake.feeds.values()))
    assert failed["state"] == "failed" and failed["tasks"]["transform"]["state"] == "failed"
    batches.append(failed["batch_id"])
    api.record(failed)
    raw_before = lake.count(FEED, "raw")
    assert raw_before == 5 and lake.count(FEED, "mart") == 0

    done = reprocess(lake, FEED, "--from", batches[0], "--airflow-url", url)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    # One run per batch, in batch order; the published ones and the failed one alike.
    assert [conf["batch_id"] for conf in api.confs] == batches
    assert "3 of 3 batches of customers published" in done.stdout, done.stdout
    for index, batch in enumerate(batches, start=1):
        assert f"[{index}/3] batch {batch}: published" in done.stdout
    # Zero rows added; the mart is the latest row per key again.
    assert lake.count(FEED, "raw") == raw_before
    lake.assert_converged(FEED, [line for lines in events for line in lines])
    # The ledger says which batches were redone, by which runs.
    ledger = lake.ledger(FEED)
    reprocess_runs = list(api.states)[3:]
    assert [(ledger[b]["runs"], ledger[b]["run_id"]) for b in batches] == [
        (2, run_id) for run_id in reprocess_runs
    ]
    status = lake.cli("status", FEED, "--json")
    assert status.returncode == 0, status.stdout
    redone = json.loads(status.stdout)["feeds"][0]["redone"]
    assert (redone["batches"], redone["first_batch_id"], redone["last_batch_id"]) == (
        3,
        batches[0],
        batches[-1],
    )
