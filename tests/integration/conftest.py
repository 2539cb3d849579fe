"""Local servers for integration tests: moto standing in for AWS, the warehouse for Snowflake.

Both are session-scoped, bind 127.0.0.1 on free ports and are stopped at the end of the session.
The warehouse runs as a subprocess (`python -m streamline.local.warehouse`), exactly as the
embedded stack runs it, and is reached over HTTPS with the real Snowflake connector.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

REGION = "us-east-1"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Warehouse:
    """A running local warehouse: where it listens and how to connect to it."""

    port: int
    pid: int
    ca_bundle: Path
    log: Path

    def connect_options(self) -> dict[str, Any]:
        from streamline.local.warehouse import connect_options

        return connect_options(self.port)

    def connect(self, **overrides: Any) -> Any:
        """A snowflake.connector connection (streamline.local.warehouse.connect)."""
        from streamline.local.warehouse import connect

        return connect(self.port, self.ca_bundle, **overrides)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3(moto_server: str) -> Any:
    """A boto3 S3 client for moto."""
    return boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def warehouse(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """The local warehouse as a subprocess over TLS, reading stages from moto (started as the
    embedded stack starts it)."""
    from streamline.local.stack import start_warehouse

    folder = tmp_path_factory.mktemp("warehouse")
    process, port, bundle = start_warehouse(folder, moto_server)
    log = folder / "warehouse.log"
    try:
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
        try:
            yield Warehouse(port, process.pid, bundle, log)
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous
        process.terminate()
        assert process.wait(timeout=30) == 0, f"warehouse did not exit 0; see {log}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The embedded stack, provisioned, with generated DAGs and a served worker per feed."""
    from harness import Local, fast_project, worker_env

    from streamline.generation import generate
    from streamline.local.airflow_config import lineage_env, prepare_airflow
    from streamline.local.stack import embedded_stack, provision
    from streamline.rendering import RenderSettings
    from streamline.validation import validate_paths

    workdir = tmp_path_factory.mktemp("local")
    project = fast_project(workdir / "project")
    result = validate_paths(project)
    assert result.ok, result.errors
    with embedded_stack(workdir / "stack") as stack:
        provision(stack, project, result.feeds)
        dags = workdir / "dags"
        generate(project, result.feeds, dags, RenderSettings(lake_url=f"s3://{stack.bucket}"),
                 stack.sqs_url_prefix)  # fmt: skip
        env = worker_env(stack.airflow_env(dags, project), workdir / "faults.json")
        env.update(AIRFLOW_HOME=str(workdir / "airflow"), AWS_ENDPOINT_URL=stack.aws_endpoint)
        env.update(lineage_env(workdir))  # OpenLineage events in workdir/lineage/events.jsonl
        prepare_airflow(env, workdir / "airflow-setup.log")
        local = Local(stack, project, {f.feed: f for f in result.feeds}, dags, env, workdir)
        try:
            yield local
        finally:
            local.stop()


@pytest.fixture
def lake(local: Any) -> Any:
    """The local stack with an empty lake, empty tables and ledger, and no faults."""
    local.reset()
    return local
