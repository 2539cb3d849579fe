"""Start, provision and stop the embedded stack on 127.0.0.1.

moto's server stands in for S3, Firehose, SQS and Secrets Manager; a fakesnow server (with the
compat bridge, over TLS) stands in for Snowflake. Both run as child processes on free ports and are
stopped by PID. The stack then provisions what production's infrastructure would: the lake bucket
with its three zones, a Firehose delivery stream, an SQS queue with S3 notifications per feed, the
warehouse connection in Secrets Manager, and the warehouse objects from the rendered DDL.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamline.errors import StreamlineError
from streamline.layout import ZONES
from streamline.local.processes import stop_process
from streamline.model import Feed
from streamline.project import Project
from streamline.rendering import RenderSettings

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
BUCKET = "streamline-lake"
SECRET_PREFIX = "airflow/connections"
SNOWFLAKE_CONN_ID = "streamline_snowflake"
AWS_CONN_ID = "streamline_aws"
START_TIMEOUT = 60.0


class StackError(StreamlineError):
    """A local server did not start, or provisioning failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    """A running embedded stack: endpoints, credentials and what was provisioned."""

    workdir: Path
    moto_port: int
    warehouse_port: int
    ca_bundle: Path
    bucket: str = BUCKET
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    streams: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def sqs_url_prefix(self) -> str:
        return f"{self.aws_endpoint}/{ACCOUNT_ID}"

    def boto3_client(self, service: str) -> Any:
        """A boto3 client for one of moto's services."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def snowflake_connection(self) -> dict[str, Any]:
        """The Airflow connection (as stored in Secrets Manager) for the local warehouse."""
        from streamline.local.warehouse import airflow_connection

        return airflow_connection(self.warehouse_port)

    def connect(self) -> Any:
        """A Snowflake connector connection to the local warehouse (over TLS)."""
        from streamline.local.warehouse import connect

        return connect(self.warehouse_port, self.ca_bundle)

    def airflow_env(self, dags_folder: Path, project: Project) -> dict[str, str]:
        """Environment for Airflow processes: connections, secrets backend, variables, paths."""
        aws_conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.aws_endpoint, "region_name": REGION},
        }
        backend_kwargs = {
            "connections_prefix": SECRET_PREFIX,
            "variables_prefix": None,
            "config_prefix": None,
            "endpoint_url": self.aws_endpoint,
            "region_name": REGION,
            # Only the warehouse connection lives there: the lake's (in the environment) would
            # otherwise be looked up in Secrets Manager first, a miss, in every lake task.
            "connections_lookup_pattern": f"^{SNOWFLAKE_CONN_ID}$",
        }
        return {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "1",
            # The lake connection lives in the environment; the warehouse one in Secrets Manager,
            # read through the amazon provider's secrets backend exactly as on MWAA.
            f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}": json.dumps(aws_conn),
            "AIRFLOW__SECRETS__BACKEND": (
                "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
            ),
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(backend_kwargs),
            "AIRFLOW_VAR_STREAMLINE_LAKE_BUCKET": self.bucket,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
            "STREAMLINE_PROJECT_DIR": str(project.root),
            "STREAMLINE_SQS_URL_PREFIX": self.sqs_url_prefix,
            "STREAMLINE_LAKE_URL": f"s3://{self.bucket}",
        }

    def stop(self) -> None:
        """Stop every process this stack started (by PID), newest first."""
        for process in reversed(self.processes):
            stop_process(process)
        self.processes.clear()


STACK_FILE = "stack.json"
"""Written into a running `streamline up`'s workdir: how `streamline status --local` and
`streamline reprocess --local` reach its lake, warehouse and API server."""
_CLIENT_ENV = ("AIRFLOW_CONN_", "AIRFLOW__SECRETS__", "AIRFLOW_VAR_", "AWS_", "REQUESTS_CA_BUNDLE")


def write_stack_file(workdir: Path, env: dict[str, str], api_url: str | None) -> Path:
    """Record how to reach a running local stack (local-only credentials; no real secret)."""
    client_env = {k: v for k, v in env.items() if k.startswith(_CLIENT_ENV)}
    body = {"pid": os.getpid(), "api_url": api_url, "env": client_env}
    path = workdir / STACK_FILE
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def read_stack_file(workdir: Path) -> dict[str, Any]:
    """The stack file of a running `streamline up` in workdir; StackError when there is none."""
    path = workdir / STACK_FILE
    try:
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        pid = int(body["pid"])
    except FileNotFoundError:
        reason = f"no {path}"
    except (OSError, ValueError, KeyError) as exc:
        reason = f"{path} is unreadable: {exc}"
    else:
        try:
            os.kill(pid, 0)
            return body
        except ProcessLookupError:
            reason = f"the `up` that wrote {path} (pid {pid}) has exited"
        except OSError as exc:
            reason = f"cannot check process {pid}: {exc}"
    raise StackError(
        f"no running `streamline up` in {workdir}: {reason}; start one (`streamline up`), or "
        "give --workdir the folder of the one that runs"
    )


def _wait_http(url: str, process: subprocess.Popen[bytes], what: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{what} exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"{what} did not answer at {url} within {START_TIMEOUT:.0f} s; see {log_path}")


def start_moto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """moto's server on a free 127.0.0.1 port, as a child process."""
    port = free_port()
    log_path = workdir / "moto.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C must not stop the lake before Airflow
        )
    with _stopped_on_failure(process):
        _wait_http(f"http://127.0.0.1:{port}/moto-api/", process, "moto server", log_path)
    return process, port


@contextmanager
def _stopped_on_failure(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """While a server starts: stop it if the wait fails or is interrupted (Ctrl-C, SIGTERM), since
    nobody else holds it yet and its own session outlives this process."""
    try:
        yield
    except BaseException:
        stop_process(process)
        raise


def start_warehouse(workdir: Path, aws_endpoint: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    """The fakesnow server with the compat bridge, over TLS, as a child process."""
    from streamline.local.tls import make_certificate

    cert, key, bundle = make_certificate(workdir / "tls")
    log_path = workdir / "warehouse.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with log_path.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "streamline.local.warehouse",
                "--port", "0",
                "--certfile", str(cert),
                "--keyfile", str(key),
                "--s3-endpoint-url", aws_endpoint,
                "--region", REGION,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,  # as moto: stopped by PID, after Airflow
        )  # fmt: skip
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    with (
        _stopped_on_failure(process),
        selectors.DefaultSelector() as selector,  # its ready line, or its death, or time out
    ):
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.1) and (line := process.stdout.readline()):
                return process, int(json.loads(line)["port"]), bundle
    if process.poll() is None:
        process.kill()
        process.wait()
    tail = log_path.read_text(errors="replace")[-2000:]
    raise StackError(
        f"warehouse did not report ready (exit {process.returncode}); see {log_path}:\n{tail}"
    )


@contextmanager
def embedded_stack(workdir: Path) -> Iterator[Stack]:
    """Run moto and the warehouse for the duration of the block; always stop both."""
    workdir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        moto, moto_port = start_moto(workdir)
        processes.append(moto)
        warehouse, warehouse_port, bundle = start_warehouse(
            workdir, f"http://127.0.0.1:{moto_port}"
        )
        processes.append(warehouse)
        stack = Stack(workdir, moto_port, warehouse_port, bundle, processes=processes)
        yield stack
    finally:
        for process in reversed(processes):
            stop_process(process)


def provision(stack: Stack, project: Project, feeds: Sequence[Feed]) -> None:
    """Create what production's infrastructure would, for these feeds, in the local stack."""
    s3 = stack.boto3_client("s3")
    s3.create_bucket(Bucket=stack.bucket)
    for zone in ZONES:  # folder markers, as the S3 console makes them; never claimed
        s3.put_object(Bucket=stack.bucket, Key=f"{zone}/", Body=b"")
    firehose = stack.boto3_client("firehose")
    sqs = stack.boto3_client("sqs")
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/streamline-firehose"
    notifications = []
    for feed in feeds:
        layout = feed.layout
        name = layout.firehose_stream
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": role,
                "BucketARN": f"arn:aws:s3:::{stack.bucket}",
                "Prefix": layout.lake.landing,
                "ErrorOutputPrefix": layout.lake.errors,
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
                "CompressionFormat": "UNCOMPRESSED",
            },
        )
        stack.streams[feed.feed] = name
        queue_url = sqs.create_queue(QueueName=layout.queue)["QueueUrl"]
        stack.queues[feed.feed] = queue_url
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        notifications.append(
            {
                "QueueArn": arn["Attributes"]["QueueArn"],
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {
                    "Key": {"FilterRules": [{"Name": "prefix", "Value": layout.lake.landing}]}
                },
            }
        )
    s3.put_bucket_notification_configuration(
        Bucket=stack.bucket, NotificationConfiguration={"QueueConfigurations": notifications}
    )
    secrets = stack.boto3_client("secretsmanager")
    secrets.create_secret(
        Name=f"{SECRET_PREFIX}/{SNOWFLAKE_CONN_ID}",
        SecretString=json.dumps(stack.snowflake_connection()),
    )
    create_warehouse_objects(stack, project, feeds)


def create_warehouse_objects(
    stack: Stack, project: Project, feeds: Sequence[Feed]
) -> dict[str, int]:
    """Plan and apply every feed's warehouse objects, as `streamline apply` does: {feed: its
    schema version}. Raises StackError when a plan refuses a change (a warehouse kept from an
    earlier run whose tables the specs no longer match)."""
    from streamline.ledger import ConnectionRunner
    from streamline.schema_versions import apply_feeds, plan_feeds

    settings = RenderSettings(lake_url=f"s3://{stack.bucket}")
    with stack.connect() as conn:
        runner = ConnectionRunner(conn)
        planned = plan_feeds(lambda _: runner, project, feeds, feeds, settings)
        if refused := [(f, c) for f, _, plan in planned for c in plan.refused]:
            feed, change = refused[0]
            raise StackError(
                f"feed {feed.feed}: {change.kind}: {change.detail} ({change.hint}); "
                "`streamline plan --local` lists every refused change"
            )
        return apply_feeds(lambda _: runner, planned)
