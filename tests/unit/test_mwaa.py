"""The MWAA support matrix: per-target requirements, Airflow 2/3 differences, the wheel check of
the bundle's loader, S3 conditions on an old boto3, and the pieces of `deploy --check`."""

from __future__ import annotations

import csv
import gzip
import io
import re
import runpy
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streamline import airflow_compat, dagconfig, lake
from streamline.cli import main
from streamline.errors import UsageError
from streamline.generation import write_bundle_loader
from streamline.local.mwaa_check import ProbeResult, local_requirements, sample_object
from streamline.mwaa import (
    MWAA_IMAGES,
    constraint_pins,
    mwaa_target,
    target_requirements,
    wheel_requires,
)
from streamline.project import find_project
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "infra" / "mwaa"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/streamline-customers"


def _target(version: str) -> Any:
    return mwaa_target(CONSTRAINTS, version)


@pytest.mark.parametrize("version", list(MWAA_IMAGES))
def test_requirements_pin_only_what_the_target_constraints_leave_open(version: str) -> None:
    target = _target(version)
    pinned = constraint_pins(target.constraints)
    lines = target_requirements(target)
    for line in lines:
        name, _, pin = line.partition("==")
        key = name.lower().replace("_", "-").replace(".", "-")
        # Bare: the target's constraint line pins it. Pinned here: the constraints do not.
        assert (key in pinned) == (not pin), line
    names = {line.partition("==")[0] for line in lines}
    airflow3_only = {
        "apache-airflow-providers-standard",
        "apache-airflow-providers-common-messaging",
    }
    if version.startswith("2."):
        assert not names & airflow3_only  # no common-messaging release installs on Airflow 2
    else:
        assert airflow3_only <= names


def test_sqlglot_follows_the_constraints_of_3_3_1_and_is_pinned_elsewhere() -> None:
    assert "sqlglot" in target_requirements(_target("3.3.1"))  # constraints: sqlglot==30.15.0
    assert any(line.startswith("sqlglot==") for line in target_requirements(_target("3.0.6")))


def test_a_constraint_below_what_the_framework_needs_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mwaa"
    shutil.copytree(CONSTRAINTS, folder)
    path = folder / "airflow_constraints-3.0.6.txt"
    path.write_text(path.read_text().replace("jsonschema==4.25.1", "jsonschema==4.0.0"))
    with pytest.raises(UsageError, match=r"pin jsonschema==4\.0\.0, but StreamLine needs"):
        target_requirements(mwaa_target(folder, "3.0.6"))


def test_constraint_lines_are_read_in_any_spelling(tmp_path: Path) -> None:
    path = tmp_path / "constraints.txt"
    path.write_text(
        "# header\nJsonSchema == 4.0.0\nruamel.yaml==0.18.1 ; python_version>'3'\n-c x\n"
    )
    assert constraint_pins(path) == {"jsonschema": "4.0.0", "ruamel-yaml": "0.18.1"}


def test_unknown_versions_and_missing_constraint_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=re.escape("2.10.3, 2.11.0, 2.11.2, 3.0.6, 3.2.1, 3.3.1")):
        mwaa_target(CONSTRAINTS, "2.9.2")
    with pytest.raises(UsageError, match="is missing: copy it from aws/amazon-mwaa-docker-images"):
        mwaa_target(tmp_path, "3.0.6")
    assert mwaa_target(CONSTRAINTS, "2.10.3").python_version == "3.11"  # the image's Python


def test_the_wheel_requires_airflow_2_10_and_no_exact_pins() -> None:
    requires = wheel_requires()
    assert requires[0] == "apache-airflow>=2.10"
    assert not [r for r in requires if "==" in r]
    assert not [r for r in requires if "common-messaging" in r or "standard" in r]


def test_the_terraform_variable_accepts_exactly_the_supported_versions() -> None:
    text = (ROOT / "infra" / "variables.tf").read_text()
    listed = text.split('variable "airflow_version"')[1].split("contains([")[1].split("]")[0]
    assert [v.strip(' "') for v in listed.split(",")] == list(MWAA_IMAGES)


# ---- Airflow 2 and 3 ---------------------------------------------------------------------------


def test_class_paths_follow_the_installed_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    assert airflow_compat.class_paths()["param"] == "airflow.sdk.Param"
    monkeypatch.setattr(airflow_compat, "installed_airflow", lambda: "2.10.3")
    assert airflow_compat.class_paths() == {
        "param": "airflow.models.param.Param",
        "python": "airflow.operators.python.PythonOperator",
        "sensor": "airflow.sensors.python.PythonSensor",
    }


def _feed(name: str = "customers", mode: str = "poll") -> Any:
    project = find_project(ROOT)
    feed = next(f for f in validate_paths(project).feeds if f.feed == name)
    if mode != "poll":
        import dataclasses

        feed = dataclasses.replace(feed, trigger=dataclasses.replace(feed.trigger, mode=mode))
    return feed


def test_airflow_2_dag_config_uses_airflow_2_classes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(airflow_compat, "installed_airflow", lambda: "2.11.2")
    config = next(iter(dagconfig.build_dag_config(_feed(), tmp_path).values()))
    assert config["tasks"]["detect"]["operator"] == "airflow.sensors.python.PythonSensor"
    assert config["params"]["batch_id"]["__type__"] == "airflow.models.param.Param"
    with pytest.raises(ValueError, match="needs Airflow 3's asset watchers"):
        dagconfig.build_dag_config(_feed(mode="event"), tmp_path, "https://sqs.x/1")


def test_the_message_queue_trigger_takes_the_form_the_installed_provider_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # common-messaging 2.x (locked here): scheme and sqs_queue.
    current = airflow_compat.message_queue_trigger(QUEUE, "aws_default", 5)
    assert current["scheme"] == "sqs" and current["sqs_queue"] == QUEUE
    assert "queue" not in current

    class Trigger105:  # common-messaging 1.0.5 (MWAA 3.0.6): the full queue URL as queue=
        def __init__(self, *, queue: str, **kwargs: Any) -> None: ...

    import airflow.providers.common.messaging.triggers.msg_queue as msg_queue

    monkeypatch.setattr(msg_queue, "MessageQueueTrigger", Trigger105)
    old = airflow_compat.message_queue_trigger(QUEUE, "aws_default", 5)
    assert old["queue"] == QUEUE and "scheme" not in old and "sqs_queue" not in old
    assert old["aws_conn_id"] == "aws_default" and old["waiter_delay"] == 5


def test_event_mode_on_airflow_2_is_a_spec_error_at_the_trigger_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    for folder in ("schemas", "templates", "pipelines"):
        shutil.copytree(ROOT / folder, project / folder)
    spec = project / "pipelines" / "customers.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("  mode: poll", "  mode: event"))
    line = text.splitlines().index("  mode: poll") + 1
    args = ["--project", str(project), "validate", "--airflow-version"]
    assert main([*args, "2.10.3"]) == 1
    err = capsys.readouterr().err
    assert f"pipelines/customers.yaml:{line}:9" in err
    assert "event mode needs Airflow 3's asset watchers, which Airflow 2.10.3 does not have" in err
    assert "set trigger.mode to poll" in err
    assert main([*args, "3.0.6"]) == 0
    assert main(["--project", str(project), "validate"]) == 0


# ---- the bundle's loader checks the wheel ------------------------------------------------------


class _Dist:
    def __init__(self, version: str, direct_url: str | None = None) -> None:
        self.version = version
        self._direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        return self._direct_url if name == "direct_url.json" else None


def _run_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dist: _Dist) -> None:
    from importlib import metadata

    monkeypatch.setattr(metadata, "distribution", lambda name: dist)
    loaded: list[Any] = []
    monkeypatch.setattr("streamline.dagloader.load_dags", lambda *a, **k: loaded.append(a))
    path = write_bundle_loader(tmp_path, built_for="0.1.0+gnew")
    runpy.run_path(str(path))
    assert loaded


def test_the_loader_refuses_workers_with_another_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ImportError) as caught:
        _run_loader(tmp_path, monkeypatch, _Dist("0.1.0+gold"))
    message = str(caught.value)
    assert "built for the streamline wheel 0.1.0+gnew, but the workers have 0.1.0+gold" in message
    assert "update the MWAA environment" in message


def test_the_loader_runs_on_its_own_wheel_and_on_an_editable_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_loader(tmp_path, monkeypatch, _Dist("0.1.0+gnew"))
    editable = '{"url":"file:///src","dir_info":{"editable":true}}'  # as uv and pip write it
    _run_loader(tmp_path, monkeypatch, _Dist("0.1.0", editable))


# ---- S3 conditions with a boto3 that predates them ---------------------------------------------


def _sent_headers(client: Any, operation: str) -> list[dict[str, str]]:
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        sent.append({"url": request.url, **headers})

    client.meta.events.register(f"before-send.s3.{operation}", record)
    return sent


def test_conditions_the_model_lacks_are_sent_as_headers(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake, "knows", lambda client, shape, member: False)
    etags = {}
    for key in ("landing/a b.csv", "landing/rewritten.csv", "landing/plain.csv"):
        etags[key] = s3.put_object(Bucket="lake", Key=key, Body=key.encode())["ETag"].strip('"')
    sent = _sent_headers(s3, "DeleteObject")
    conditions = {"landing/a b.csv": etags["landing/a b.csv"], "landing/rewritten.csv": "stale"}
    failed = lake.delete_keys(s3, "lake", list(etags), conditions)
    assert failed == []  # a key written again since is left, not an error
    # One by one with If-Match, only the conditional keys; the other in one DeleteObjects.
    assert [h.get("If-Match") for h in sent] == [f'"{etags["landing/a b.csv"]}"', '"stale"']
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="lake").get("Contents", [])]
    assert left == ["landing/rewritten.csv"]  # moto honours If-Match on DeleteObject
    # A key another mover deleted first counts as deleted, as DeleteObjects reports it.
    assert lake.delete_keys(s3, "lake", ["landing/a b.csv"], conditions) == []


def test_request_headers_reach_only_the_named_key(s3: Any) -> None:
    sent = _sent_headers(s3, "PutObject")
    with lake.request_headers(s3, "PutObject", "claims/customers.json", {"If-None-Match": "*"}):
        s3.put_object(Bucket="lake", Key="claims/customers.json", Body=b"{}")
        s3.put_object(Bucket="lake", Key="processing/x.json", Body=b"{}")
    s3.put_object(Bucket="lake", Key="claims/customers.json", Body=b"{}")
    assert [h.get("If-None-Match") for h in sent] == ["*", None, None]


def test_the_locked_boto3_knows_every_condition_the_lake_uses(s3: Any) -> None:
    assert lake.knows(s3, "PutObjectRequest", "IfMatch")
    assert lake.knows(s3, "PutObjectRequest", "IfNoneMatch")
    assert lake.knows(s3, "ObjectIdentifier", "ETag")


# ---- deploy --check pieces ---------------------------------------------------------------------


def test_sample_objects_follow_the_feed_format_and_its_checks() -> None:
    orders = _feed("orders")
    data = sample_object(orders)
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert len(rows) == 3 and all(len(row) == len(orders.columns) for row in rows)
    status = [c.name for c in orders.columns].index("status")
    allowed = next(c for c in orders.checks if c.column == "status").values
    assert {row[status] for row in rows} <= set(allowed)

    import dataclasses

    fmt = dataclasses.replace(orders.source.format, header=True, delimiter="|", compression="gzip")
    gz = dataclasses.replace(orders, source=dataclasses.replace(orders.source, format=fmt))
    lines = gzip.decompress(sample_object(gz)).decode().splitlines()
    assert lines[0] == "|".join(c.name for c in orders.columns)
    assert len(lines) == 4


def test_local_requirements_point_at_the_local_constraints_and_plugins(tmp_path: Path) -> None:
    target = _target("3.0.6")
    (tmp_path / "requirements.txt").write_text(
        textwrap.dedent(
            f"""\
            # comment
            --constraint "{target.constraints_url}"
            --find-links /usr/local/airflow/plugins
            streamline==0.1.0+gabc
            """
        )
    )
    plugins = tmp_path / "check" / "plugins"
    plugins.mkdir(parents=True)
    text = local_requirements(tmp_path, target, plugins).read_text()
    assert f'--constraint "{target.constraints}"' in text
    assert f"--find-links {plugins}" in text
    assert "raw.githubusercontent.com" not in text and "/usr/local/airflow" not in text


def _probe(warehouse_host: bool, **run: Any) -> ProbeResult:
    tasks = dict.fromkeys(("detect", "claim", "load", "transform", "finalize"), "success")
    base = {"state": "success", "seconds": 1.0, "warehouse_reached": True, "tasks": tasks}
    return ProbeResult(
        "2.10.3", "5.8.0", warehouse_host, {}, {}, {"customers": base | run}, Path("probe.log")
    )


def test_probe_verdicts() -> None:
    assert _probe(True).ok
    stopped = {"detect": "success", "claim": "success", "load": "failed"}
    at_warehouse = _probe(False, state="failed", tasks=stopped)
    assert at_warehouse.verdict("customers") == "passed up to the warehouse connection"
    assert at_warehouse.ok
    # The load failed before it reached the warehouse (a template error, say): not a pass.
    assert not _probe(False, state="failed", tasks=stopped, warehouse_reached=False).ok
    # Where the local warehouse is reachable, every task must succeed.
    assert _probe(True, state="failed", tasks=stopped).verdict("customers").startswith("FAILED")
    lake_failed = {"detect": "success", "claim": "failed"}
    assert not _probe(False, state="failed", tasks=lake_failed).ok
    with_errors = ProbeResult("3.0.6", "6.4.0", True, {"x.py": "boom"}, {}, {}, Path("p"))
    assert not with_errors.ok


def test_deploy_check_refuses_an_unknown_airflow_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "--build-only", "--airflow-version", "2.9.0"]) == 2
    assert "invalid choice: '2.9.0'" in capsys.readouterr().err


def test_a_python_other_than_the_images_is_refused() -> None:
    with pytest.raises(UsageError, match=re.escape("image runs Python 3.11, not 3.12")):
        mwaa_target(CONSTRAINTS, "2.10.3", "3.12")
    assert mwaa_target(CONSTRAINTS, "2.10.3", "3.11").python_version == "3.11"


def test_check_without_the_local_stack_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline.local import mwaa_check

    monkeypatch.setattr(mwaa_check, "_importable", lambda name: name != "moto")
    with pytest.raises(mwaa_check.CheckError, match=r"needs moto: install .*uv sync --group local"):
        mwaa_check.check_bundle(
            find_project(ROOT), [], tmp_path, _target("3.0.6"), tmp_path / "check"
        )


def test_one_check_per_cached_environment_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    from streamline.local import mwaa_check

    monkeypatch.setenv("STREAMLINE_CACHE_DIR", str(tmp_path))
    order: list[str] = []
    entered = threading.Event()

    def second() -> None:
        entered.wait()
        with mwaa_check.environment_lock(_target("3.0.6")):
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with mwaa_check.environment_lock(_target("3.0.6")):
        entered.set()
        thread.join(timeout=1)  # the second check waits for the first
        order.append("first")
        with mwaa_check.environment_lock(_target("3.3.1")):  # another version: no wait
            order.append("other version")
    thread.join(timeout=10)
    assert order == ["first", "other version", "second"]
    assert "waiting for another check of Airflow 3.0.6" in capsys.readouterr().out


def test_the_wheel_leaves_out_the_local_stack_and_the_bundled_project_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamline import deploy

    names = [name for name, _ in deploy._package_files()]
    assert "streamline/dagloader.py" in names
    assert not [n for n in names if n.startswith(("streamline/local/", "streamline/_bundled/"))]


def test_sample_values_fit_each_type_and_follow_references_and_row_counts() -> None:
    import dataclasses

    from streamline.local.mwaa_check import _sample_value, sample_rows
    from streamline.model import Check, Column, Reference

    orders = _feed("orders")
    fmt = dataclasses.replace(
        orders.source.format, date_format="DD/MM/YYYY", timestamp_format="YYYY-MM-DD HH24:MI:SS"
    )
    feed = dataclasses.replace(
        orders,
        source=dataclasses.replace(orders.source, format=fmt),
        references=(Reference("buyer_id", "customers", "customer_id", 0.0),),
        checks=(Check("row_count", min=5),),
    )

    def value(type_: str, name: str = "flag", row: int = 0) -> str:
        return _sample_value(feed, Column(name, type_, True, ""), row)

    assert value("CHAR") == "0"  # CHAR without a length is CHAR(1)
    assert value("CHAR(3)") == "lé0"
    assert value("DEC(12,2)") == "1" and value("DOUBLE PRECISION") == "1"
    assert value("DATETIME") == "2026-01-01 12:00:00"  # a timestamp, not the date format
    assert value("DATE") == "01/01/2026"
    assert value("VARCHAR(16)", "buyer_id", row=4) == "cué1"  # customers' customer_id, row 1
    assert value("VARCHAR(16)", "customer_id", row=1) == "cué1"
    assert sample_rows(feed) == 5


def test_check_connections_cover_every_connection_id_the_feeds_name() -> None:
    import dataclasses

    from streamline.local.mwaa_check import feed_connections

    orders = _feed("orders")
    custom = dataclasses.replace(
        orders,
        dag=dataclasses.replace(orders.dag, aws_conn_id="lake_eu", snowflake_conn_id="sf_orders"),
    )
    stack = SimpleNamespace(snowflake_connection=lambda: {"conn_type": "snowflake"})
    env = {"AIRFLOW_CONN_STREAMLINE_AWS": '{"conn_type": "aws"}'}
    extra = feed_connections(stack, [_feed("customers"), custom], env)
    assert extra == {
        "AIRFLOW_CONN_LAKE_EU": '{"conn_type": "aws"}',
        "AIRFLOW_CONN_SF_ORDERS": '{"conn_type": "snowflake"}',
        "AIRFLOW_CONN_STREAMLINE_SNOWFLAKE": '{"conn_type": "snowflake"}',
    }
