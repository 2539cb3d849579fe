"""`streamline` commands for the integration harness, from a process that imported them once.

`python tests/integration/preloaded.py` imports the CLI and what its commands import (Airflow,
the Amazon and Snowflake providers, the connector: about 8 s of CPU here), then reads one JSON
request a line on stdin: {"argv": [...], "env": {...}, "cwd": "...", "stdout": path, "stderr":
path}. For each it forks; the child takes the request's environment, working directory and
output files and runs `streamline.cli.main(argv)`, as `python -m streamline.cli` would; the
parent answers {"code": exit code} on stdout once the child has exited. A command run this way
is the same code with the same arguments, environment and Airflow configuration (read from this
process's environment at import, which the harness makes the stack's), minus the imports.

The imports happen before any connection is opened, as Airflow's own LocalExecutor preloads
modules in its forkserver: a child opens its own connections.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback


def preload() -> None:
    """Import what the commands import, without connecting anywhere; Airflow as the CLI imports
    it (streamline.cli._quiet_airflow): logging at WARNING, its log stream stderr, as the CLI's
    stdout holds only the report."""
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    with contextlib.redirect_stdout(sys.stderr):
        _imports()


def _imports() -> None:
    import snowflake.connector  # noqa: F401
    import sqlglot  # noqa: F401
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401
    from airflow.providers.amazon.aws.secrets.secrets_manager import (  # noqa: F401
        SecretsManagerBackend,
    )
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook  # noqa: F401

    import streamline.cli  # noqa: F401


def run_child(request: dict[str, object]) -> int:
    """In the forked child: the command's exit code."""
    from streamline import cli

    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    os.chdir(str(request["cwd"]))
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    try:
        return cli.main([str(a) for a in request["argv"]])  # type: ignore[attr-defined]
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1


def main() -> int:
    preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_child(request)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
