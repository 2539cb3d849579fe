"""What every task of a DAG run pays before its work: imports and provider clients.

Measured with py-spy on `benchmarks/latency.py --scenarios poll` (docs/benchmarks.md): each
claim imported sqlglot (about 0.8 s) without parsing any SQL, and each S3 client cost about
0.2 s in the provider's inspect.stack() walk. These tests keep both out of a task's path.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from typing import Any

import pytest
from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from streamline.tasks import _caller_class, _executor_class, s3_client

CONN = "streamline_test_aws"


@pytest.fixture
def aws_connection(monkeypatch: pytest.MonkeyPatch) -> str:
    extra = {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9"}
    value = {"conn_type": "aws", "login": "key-id", "password": "not-a-secret", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(value))
    return CONN


def _count_stack_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """inspect.stack(), counting its calls (the provider swallows any error raised while it looks
    for its caller, so a call has to be seen, not made to fail)."""
    calls: list[int] = []
    stack = inspect.stack

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return stack(*args, **kwargs)

    monkeypatch.setattr(inspect, "stack", counted)
    return calls


def test_task_modules_do_not_import_sqlglot() -> None:
    """The modules a task runs (the DAG file's loader and the steps) leave sqlglot unimported."""
    code = (
        "import sys\n"
        "import streamline.dagloader, streamline.tasks, streamline.schema_versions\n"
        "import streamline.lineage, streamline.gates, streamline.lake, streamline.ledger\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlglot'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


class _Operator:
    def execute(self) -> Any:
        return self.helper()

    def helper(self) -> Any:
        return _Probe().poke()


class _Probe:
    def poke(self) -> Any:
        return {
            target: (
                _caller_class(target),
                AwsGenericHook._find_operator_class_name(target),
            )
            for target in ("execute", "poke", "no_such_function")
        }


def test_caller_class_is_the_providers_answer() -> None:
    found = _Operator().execute()
    assert found == {
        "execute": ("_Operator", "_Operator"),
        "poke": ("_Probe", "_Probe"),
        "no_such_function": (None, None),
    }


def test_caller_class_reads_self_dot_class_as_the_provider() -> None:
    class Real:
        pass

    class Disguised:
        @property  # type: ignore[misc]
        def __class__(self) -> type:  # a proxy's or a mock's class
            return Real

        def execute(self) -> tuple[str | None, str | None]:
            return (
                _caller_class("execute"),
                AwsGenericHook._find_operator_class_name("execute"),
            )

    assert Disguised().execute() == ("Real", "Real")


def test_executor_class_is_the_providers_answer() -> None:
    """The provider's fallback when no operator is on the stack: an executor's module's class."""
    code = (
        "class BaseExecutor:\n    pass\n"
        "class LocalExecutor(BaseExecutor):\n    pass\n"
        "def run(find, provider):\n    return find(), provider()\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(code, "executor_module.py", "exec"), namespace)
    provider = AwsGenericHook._find_executor_class_name
    assert namespace["run"](_executor_class, provider) == ("LocalExecutor", "LocalExecutor")
    assert (_executor_class(), provider()) == (None, None)


def test_caller_class_without_self_fails_as_the_providers() -> None:
    def execute() -> None:
        for find in (_caller_class, AwsGenericHook._find_operator_class_name):
            with pytest.raises(KeyError):
                find("execute")

    execute()


def test_s3_client_is_the_hooks_client_without_inspect_stack(
    aws_connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Operator:
        def execute(self) -> Any:
            return S3Hook(aws_conn_id=aws_connection).get_conn()

    class FastOperator:
        def execute(self) -> Any:
            return s3_client(aws_connection)

    expected = Operator().execute()

    calls = _count_stack_calls(monkeypatch)
    client = FastOperator().execute()
    assert calls == []
    config, want = client._client_config, expected._client_config
    assert config.user_agent_extra == want.user_agent_extra.replace(
        "Caller/Operator", "Caller/FastOperator"
    )
    assert "Caller/FastOperator" in config.user_agent_extra
    assert client.meta.endpoint_url == expected.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == expected.meta.region_name == "eu-west-1"
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("key-id", "not-a-secret")


def test_s3_client_outside_an_operator_without_inspect_stack(
    aws_connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A callback or the CLI: no `execute` on the stack; the provider's executor fallback runs."""
    expected = S3Hook(aws_conn_id=aws_connection).get_conn()._client_config.user_agent_extra
    assert "Caller/Unknown" in expected

    calls = _count_stack_calls(monkeypatch)
    assert s3_client(aws_connection)._client_config.user_agent_extra == expected
    assert calls == []


def test_s3_client_logs_as_the_providers_hook() -> None:
    from streamline.tasks import _s3_hook_class

    hook = _s3_hook_class()(aws_conn_id=None)
    assert isinstance(hook, S3Hook)
    assert hook.log.name == S3Hook(aws_conn_id=None).log.name
