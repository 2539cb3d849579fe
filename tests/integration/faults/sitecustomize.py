"""Test-only fault injection for DAG worker processes (imported at start-up via PYTHONPATH).

When STREAMLINE_FAULT_PLAN names a JSON file, every S3 call (botocore) and every Snowflake
statement (the connector's cursor) in this process is checked against the plan, re-read whenever
the file changes:

    {"faults": [{"id": "kill-mid-claim", "on": "s3", "op": "CopyObject", "match": "landing/",
                 "after": 2, "times": 1, "action": "kill"}]}

`on` is "s3" (`op` an S3 operation, `match` a regex on its Key or CopySource) or "sql" (`match`
a regex on the statement). The first `after` matches pass; the next `times` fire: "raise" raises
the service's own error type, "kill" ends the process with SIGKILL, as a crashed worker would.
Each firing is appended to <plan>.fired (one fault id per line) before it acts, so a test can
prove its fault happened.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

_PLAN = os.environ.get("STREAMLINE_FAULT_PLAN")
_state: dict[str, Any] = {"stamp": None, "faults": [], "seen": []}


def _faults() -> list[dict[str, Any]]:
    path = Path(_PLAN or "")
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return []
    if stamp != _state["stamp"]:
        _state["stamp"] = stamp
        _state["faults"] = json.loads(path.read_text()).get("faults", [])
        _state["seen"] = [0] * len(_state["faults"])
    faults: list[dict[str, Any]] = _state["faults"]
    return faults


def _fire(on: str, op: str, text: str) -> str | None:
    """The action of the first fault this call triggers, after recording it; else None."""
    for index, fault in enumerate(_faults()):
        if fault["on"] != on or fault.get("op", op) != op:
            continue
        if not re.search(fault.get("match", ""), text, re.IGNORECASE | re.MULTILINE):
            continue
        _state["seen"][index] += 1
        after, times = fault.get("after", 0), fault.get("times", 1)
        if after < _state["seen"][index] <= after + times:
            with open(f"{_PLAN}.fired", "a", encoding="utf-8") as fired:
                fired.write(fault["id"] + "\n")
            if fault["action"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            return str(fault["action"])
    return None


def _install() -> None:
    import botocore.client
    from botocore.exceptions import ClientError

    make_call = botocore.client.BaseClient._make_api_call

    def make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "s3":
            source = api_params.get("CopySource")
            key = source.get("Key", "") if isinstance(source, dict) else str(source or "")
            text = f"{api_params.get('Key', '')} {key}"
            if _fire("s3", operation_name, text):
                error = {"Error": {"Code": "InternalError", "Message": "injected S3 fault"}}
                raise ClientError(error, operation_name)
        return make_call(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]

    from snowflake.connector.cursor import SnowflakeCursor
    from snowflake.connector.errors import ProgrammingError

    execute = SnowflakeCursor.execute

    def execute_with_faults(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if _fire("sql", "execute", command or ""):
            raise ProgrammingError(msg="injected warehouse fault", errno=603, sqlstate="XX000")
        return execute(self, command, *args, **kwargs)

    SnowflakeCursor.execute = execute_with_faults  # type: ignore[method-assign]


if _PLAN:
    _install()
