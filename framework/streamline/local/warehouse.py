"""The local warehouse: fakesnow's server over HTTPS on 127.0.0.1, standing in for Snowflake.

It runs the same rendered SQL as production. `compat.install` bridges the fakesnow gaps that SQL
hits, and COPY reads the lake from the S3 endpoint given (moto locally).

    python -m streamline.local.warehouse --port 0 --certfile C --keyfile K --s3-endpoint-url URL

prints one JSON line on stdout, {"port": P, "pid": N}, once it accepts connections, and runs until
SIGTERM or SIGINT, then exits 0. Clients connect with `connect_options(port)` and the environment
variable REQUESTS_CA_BUNDLE set to the bundle from `streamline.local.tls.make_certificate`.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from streamline.local import compat

HOST = "127.0.0.1"
ACCOUNT = "streamline"
DATABASE = "streamline"
"""The Airflow connection's default database and warehouse (the rendered SQL names its own)."""
WAREHOUSE = "local"

ENGINE_SETTINGS: dict[str, str] = {
    # Snowflake sorts NULL as the highest value: last under ASC, first under DESC
    # (https://docs.snowflake.com/en/sql-reference/constructs/order-by). fakesnow's transpiling
    # spells NULLS FIRST/LAST out where it rewrites an ORDER BY; this covers every other one.
    "default_null_order": "nulls_last_on_asc_first_on_desc",
    # Snowflake's TIMEZONE default is America/Los_Angeles; fakesnow sets UTC. The pipeline writes
    # and compares TIMESTAMP_LTZ values (instants) and UTC batch ids, so the session time zone
    # changes only how times print; UTC prints them as the batch ids and the ledger show them.
    "TimeZone": "UTC",
}
"""DuckDB settings of the warehouse, where Snowflake's defaults matter to the pipeline's SQL.
Identifier case (unquoted names upper-cased, quoted ones kept,
https://docs.snowflake.com/en/sql-reference/identifiers-syntax) and the timestamp types
(TIMESTAMP_NTZ as DuckDB TIMESTAMP, TIMESTAMP_LTZ/TZ as TIMESTAMP WITH TIME ZONE) are fakesnow's
own; the fidelity probes (streamline.local.fidelity) check all of them."""

CONNECT_OPTIONS: dict[str, Any] = {
    "account": ACCOUNT,
    "user": "streamline",
    "password": "fakesnow-local-pw",  # any: fakesnow checks none; Airflow masks it in logs
    "host": HOST,
    # OCSP checks cannot reach the internet here, and the certificate is self-signed: trust comes
    # from REQUESTS_CA_BUNDLE instead. (Airflow's hook spells it insecure_mode, now deprecated.)
    "disable_ocsp_checks": True,
    # The connector retries failed logins and HTTP errors until these run out (network_timeout is
    # unlimited by default). The server answers SQL errors as ordinary failures, so these only
    # bound a dead or stuck server.
    "login_timeout": 10,
    "network_timeout": 60,
}
"""Keyword arguments for snowflake.connector.connect, without the port."""


def connect_options(port: int) -> dict[str, Any]:
    """Keyword arguments for snowflake.connector.connect to reach the local warehouse."""
    return {**CONNECT_OPTIONS, "port": port}


def connect(port: int, ca_bundle: Path, **overrides: Any) -> Any:
    """A snowflake.connector connection to the local warehouse on port: the one way to connect
    (the stack, the tests and the tools use it); overrides replace connect_options' values.

    The connector verifies TLS against the bundle named by REQUESTS_CA_BUNDLE, read at each
    connect: it is set here to this warehouse's CA (streamline.local.tls), so one process can talk
    to two warehouses in turn. Raises the connector's errors (e.g. OperationalError when nothing
    listens on the port).
    """
    import snowflake.connector

    os.environ["REQUESTS_CA_BUNDLE"] = str(ca_bundle)
    return snowflake.connector.connect(**{**connect_options(port), **overrides})


def airflow_connection(port: int, **defaults: str) -> dict[str, Any]:
    """The Airflow connection (JSON form of AIRFLOW_CONN_<ID>) for the local warehouse; defaults
    adds extra fields such as database and warehouse.

    SnowflakeHook takes host, port and insecure_mode from the extra but passes no timeouts: the
    server's errors are ordinary query failures, so none are retried.
    """
    extra = {"account": ACCOUNT, "host": HOST, "port": port, "insecure_mode": True,
             "database": DATABASE, "warehouse": WAREHOUSE, **defaults}  # fmt: skip
    return {
        "conn_type": "snowflake",
        "login": CONNECT_OPTIONS["user"],
        "password": CONNECT_OPTIONS["password"],
        "extra": extra,
    }


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after shutdown, so the exit code is 0."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(signum: int, frame: object) -> None:
            self.force_exit = self.should_exit  # a second signal skips the graceful wait
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(
    *,
    certfile: Path,
    keyfile: Path,
    s3_endpoint_url: str,
    region: str = "us-east-1",
    port: int = 0,
    db_path: Path | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve the warehouse over TLS on 127.0.0.1:port (0: a free port) until SIGTERM/SIGINT."""
    compat.install(s3_endpoint_url=s3_endpoint_url, region=region)
    from fakesnow.instance import FakeSnow

    # The module, not fakesnow.server(), the in-process context manager of the same name.
    fakesnow_server: Any = importlib.import_module("fakesnow.server")
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
        fakesnow_server.shared_fs = FakeSnow(db_path=db_path)
    for name, value in ENGINE_SETTINGS.items():
        fakesnow_server.shared_fs.duck_conn.execute(f"SET GLOBAL {name} = '{value}'")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        fakesnow_server.app,
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Clients keep idle TLS connections open; do not wait for them on shutdown.
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(bound_port)
        await task

    try:
        # uvicorn's own loop choice (uvloop when installed): the stdlib loop's TLS transport adds
        # about 45 ms to every request here.
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(run())
    finally:
        sock.close()
        # fakesnow makes a folder for internal stages at import and never removes it.
        stage: Any = importlib.import_module("fakesnow.transforms.stage")
        shutil.rmtree(stage.LOCAL_BUCKET_PATH, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the local warehouse; print {"port", "pid"} as one JSON line once it is ready."""
    parser = argparse.ArgumentParser(prog="python -m streamline.local.warehouse")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--certfile", type=Path, required=True)
    parser.add_argument("--keyfile", type=Path, required=True)
    parser.add_argument("--s3-endpoint-url", required=True, help="the lake's S3 endpoint")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--db-path", type=Path, help="keep databases in this folder, not memory")
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: stacks to stderr

    def ready(port: int) -> None:
        print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)

    serve(
        certfile=args.certfile,
        keyfile=args.keyfile,
        s3_endpoint_url=args.s3_endpoint_url,
        region=args.region,
        port=args.port,
        db_path=args.db_path,
        on_ready=ready,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
