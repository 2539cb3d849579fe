"""OpenLineage: the datasets and batch facet each step reports (streamline.lineage)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from streamline import lineage
from streamline.batches import BATCH_ID_RE
from streamline.dagconfig import LINEAGE_PYTHON, build_dag_config
from streamline.gates import GatedSQLExecuteQueryOperator
from streamline.lake import DEFERRED, EMPTY_OBJECT, LOADED, QUARANTINED, Manifest, ManifestEntry
from streamline.layout import LakeLayout
from streamline.model import Feed, TableRef
from streamline.project import find_project
from streamline.validation import validate_paths

ROOT = Path(__file__).resolve().parents[2]
LAKE_BUCKET = "lake"  # the s3 fixture's bucket (conftest.py)
BATCH = "20260101T000000.000001Z"
WAREHOUSE = "snowflake://xy12345.eu-west-1.aws"
LAKE = f"s3://{LAKE_BUCKET}"


@pytest.fixture(scope="module")
def orders() -> Feed:
    result = validate_paths(find_project())
    assert result.ok, result.errors
    return next(f for f in result.feeds if f.feed == "orders")


def _configs(feed: Feed) -> dict[str, dict[str, Any]]:
    """Each step's `lineage` argument, as the DAG config has it, with the bucket rendered."""
    tasks = build_dag_config(feed, Path("/sql"))[feed.dag.dag_id]["tasks"]
    return {
        task: {**spec["lineage"], "bucket": LAKE_BUCKET}
        for task, spec in tasks.items()
        if "lineage" in spec
    }


def _entry(name: str, **kwargs: Any) -> ManifestEntry:
    return ManifestEntry(f"landing/orders/{name}", name, 10, "etag", **kwargs)


CLAIMED = Manifest(
    "orders",
    BATCH,
    "orders",
    (
        _entry("a.csv"),
        _entry("b.csv"),
        ManifestEntry("landing/orders/empty.csv", "empty.csv", 0, "e", QUARANTINED, EMPTY_OBJECT),
        _entry("aside.csv", outcome=QUARANTINED, reason="wrong producer (ticket 9)"),
    ),
)
"""An open batch as the claim leaves it: two files to load, a zero-byte object and a file a
reprocess set aside (neither is read by the load)."""

FINISHED = replace(
    CLAIMED,
    files=(
        _entry("a.csv", outcome=LOADED),
        _entry("b.csv", outcome=QUARANTINED, reason="COPY LOAD_FAILED: bad quoting (line 2)"),
        _entry("c.csv", outcome=DEFERRED, reason="SIZE_LIMIT reached"),
        *CLAIMED.files[2:],
    ),
)
"""The batch as finalize leaves it: one file loaded, one the COPY skipped, one deferred."""


def _names(datasets: tuple[lineage.Dataset, ...]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_dataset_names_follow_the_openlineage_naming_spec() -> None:
    assert lineage.s3_dataset("lake", "processing/B/orders/a.csv") == lineage.Dataset(
        "s3://lake", "processing/B/orders/a.csv"
    )
    table = TableRef("streamline", "raw", "orders")
    assert lineage.snowflake_dataset(WAREHOUSE, table) == lineage.Dataset(
        WAREHOUSE, "STREAMLINE.RAW.ORDERS"
    )
    with pytest.raises(ValueError, match="not one of landing, processing, finished"):
        lineage.files("processed")


def test_each_step_reports_the_batch_files_raw_and_mart_tables(orders: Feed) -> None:
    configs = _configs(orders)
    assert sorted(configs) == ["claim", "finalize", "load", "transform"]
    steps = {
        task: lineage.step_lineage(
            config, BATCH, FINISHED if task == "finalize" else CLAIMED, WAREHOUSE
        )
        for task, config in configs.items()
    }
    processing = [(LAKE, f"processing/{BATCH}/orders/{n}") for n in ("a.csv", "b.csv")]
    raw, mart = (WAREHOUSE, "STREAMLINE.RAW.ORDERS"), (WAREHOUSE, "STREAMLINE.MART.ORDERS")
    assert _names(steps["claim"].inputs) == [(LAKE, "landing/orders/a.csv"),
                                             (LAKE, "landing/orders/b.csv")]  # fmt: skip
    assert _names(steps["claim"].outputs) == processing
    assert _names(steps["load"].inputs) == processing
    assert _names(steps["load"].outputs) == [raw, (WAREHOUSE, "STREAMLINE.RAW.ORDERS_QUARANTINE")]
    assert _names(steps["transform"].inputs) == [raw]
    assert _names(steps["transform"].outputs) == [mart]
    assert _names(steps["finalize"].inputs) == [
        *processing,
        (LAKE, f"processing/{BATCH}/orders/c.csv"),
    ]
    assert _names(steps["finalize"].outputs) == [
        (LAKE, f"processed/{BATCH}/orders/a.csv"),
        (LAKE, f"quarantine/{BATCH}/orders/b.csv"),
        (LAKE, "landing/orders/c.csv"),
    ]
    assert {s.batch_facet()["batch_id"] for s in steps.values()} == {BATCH}
    assert {s.batch_facet()["feed"] for s in steps.values()} == {"orders"}


def test_a_reprocess_claims_no_landed_files_and_an_unfinished_batch_ends_nowhere(
    orders: Feed,
) -> None:
    configs = _configs(orders)
    reclaimed = lineage.step_lineage(configs["claim"], BATCH, replace(CLAIMED, reclaimed=True))
    assert reclaimed.inputs == () and len(reclaimed.outputs) == 2
    # A finalize that failed before the batch finished: its files are still in processing/.
    failed = lineage.step_lineage(configs["finalize"], BATCH, CLAIMED)
    assert len(failed.inputs) == 2 and failed.outputs == ()
    # Without the account, tables are left out rather than named in a made-up namespace.
    assert lineage.step_lineage(configs["transform"], BATCH, None).outputs == ()


def test_operator_lineage_carries_the_batch_facet_its_schema_describes() -> None:
    from openlineage.client.serde import Serde

    step = lineage.StepLineage(
        "orders", BATCH, (lineage.Dataset(LAKE, "k"),), (lineage.Dataset(WAREHOUSE, "T"),)
    )
    result = lineage.operator_lineage(step)
    assert [(d.namespace, d.name) for d in result.inputs] == [(LAKE, "k")]
    assert [(d.namespace, d.name) for d in result.outputs] == [(WAREHOUSE, "T")]
    facet = json.loads(Serde.to_json(result.run_facets[lineage.BATCH_FACET]))
    schema = json.loads((ROOT / "docs" / "batch-run-facet.schema.json").read_text())
    assert facet["_schemaURL"] == schema["$id"] == lineage.BATCH_FACET_SCHEMA
    assert facet["_producer"]
    jsonschema.validate(facet, schema["allOf"][1])
    assert schema["allOf"][1]["properties"]["batch_id"]["pattern"] == BATCH_ID_RE.pattern
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**facet, "batch_id": "yesterday"}, schema["allOf"][1])
    empty = lineage.operator_lineage(None)
    assert (empty.inputs, empty.outputs, empty.run_facets) == ([], [], {})


def _context(conf: dict[str, Any] | None = None) -> dict[str, Any]:
    import datetime as dt

    run = SimpleNamespace(
        conf=conf or {}, run_after=dt.datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    )
    return {"dag_run": run, "params": {}}


def test_the_python_steps_read_the_batch_from_its_manifest(
    orders: Feed, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamline import lake

    monkeypatch.setattr("streamline.tasks.s3_client", lambda aws_conn_id: s3)
    layout = LakeLayout("orders")
    done = replace(FINISHED, run_id="run")
    s3.put_object(Bucket=LAKE_BUCKET, Key=layout.manifest(lake.PROCESSED, BATCH),
                  Body=done.to_json().encode())  # fmt: skip
    finalize = lineage.LineagePythonOperator(
        task_id="finalize", python_callable=lambda: None, lineage=_configs(orders)["finalize"]
    )
    # Before the step ran (the START event), or in a run without a batch: nothing to report.
    assert finalize.get_openlineage_facets_on_start().outputs == []
    assert finalize.get_openlineage_facets_on_complete(None).outputs == []
    finalize.remember_batch(_context())
    result = finalize.get_openlineage_facets_on_complete(None)
    assert [d.name for d in result.outputs] == [
        f"processed/{BATCH}/orders/a.csv",
        f"quarantine/{BATCH}/orders/b.csv",
        "landing/orders/c.csv",
    ]
    assert result.run_facets[lineage.BATCH_FACET].batch_id == BATCH
    # A reprocess run's batch is the one its conf names; no manifest: no batch, no lineage.
    finalize.remember_batch(_context({"batch_id": "20250101T000000Z"}))
    assert finalize.get_openlineage_facets_on_complete(None).run_facets == {}


def _no_s3(aws_conn_id: str) -> Any:
    raise AssertionError("the lineage read S3, though the step handed its batch over")


def test_claim_and_finalize_hand_their_manifest_over_and_load_its_copy_rows(
    orders: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the step did is its lineage: no S3 read after the task (the provider waits for it)."""
    monkeypatch.setattr("streamline.tasks.s3_client", _no_s3)
    configs = _configs(orders)
    claim = lineage.LineagePythonOperator(
        task_id="claim", python_callable=lambda: None, lineage=configs["claim"]
    )
    claim.remember_batch(_context())
    lineage.remember_manifest({"task": claim}, CLAIMED)
    result = claim.get_openlineage_facets_on_complete(None)
    assert [d.name for d in result.inputs] == ["landing/orders/a.csv", "landing/orders/b.csv"]
    lineage.remember_manifest({"task": object()}, CLAIMED)  # another operator: nothing happens

    load = GatedSQLExecuteQueryOperator(
        task_id="load", conn_id="sf", sql="SELECT 1", lineage=configs["load"]
    )
    monkeypatch.setattr(load, "get_db_hook", _Hook)
    load.remember_batch(_context())
    url = f"s3://{LAKE_BUCKET}/processing/{BATCH}/orders/"
    load.remember_copied(
        [
            [(0,)],
            [(url + "a.csv", "LOADED", 2, 2, 1, 0, None, None, None, None)],
            [(url + "b.csv", "LOAD_FAILED", 1, 0, 1, 1, "bad", 2, None, "AMOUNT")],
            [("rejected_rows", "error", True, 0, None)],
        ]
    )
    result = load.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in result.inputs] == [
        (LAKE, f"processing/{BATCH}/orders/a.csv"),
        (LAKE, f"processing/{BATCH}/orders/b.csv"),
    ]
    assert [d.name for d in result.outputs] == [
        "STREAMLINE.RAW.ORDERS",
        "STREAMLINE.RAW.ORDERS_QUARANTINE",
    ]
    # The operator's next run forgets these files: without its own, it reads the lake.
    load.remember_batch(_context({"batch_id": "20250101T000000Z"}))
    with pytest.raises(AssertionError, match="read S3"):
        load.step_lineage()


CONNECTIONS = [
    {"account": "xy12345"},
    {"account": "xy12345", "region": "eu-west-1"},
    {"account": "xy12345.eu-central-1.gcp"},
    {"account": "myorg-myaccount"},
    {"extra__snowflake__account": "XY12345", "extra__snowflake__region": "us-east-2.aws"},
    {"account": "streamline", "host": "127.0.0.1", "port": 8443},  # the local stack's
]


@pytest.mark.parametrize("extra", CONNECTIONS)
def test_tables_are_named_in_the_snowflake_providers_namespace(
    extra: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same namespace as the Snowflake provider's own OpenLineage events for the connection
    (its get_openlineage_database_info), which builds it through snowflake-sqlalchemy."""
    from airflow.models.connection import Connection
    from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

    connection = Connection(conn_id="sf", conn_type="snowflake", login="user",
                            password="secret-pass", extra=json.dumps(extra))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SF", connection.as_json())
    hook = SnowflakeHook(snowflake_conn_id="sf")
    provider = hook.get_openlineage_database_info(hook.get_connection("sf"))
    assert lineage.snowflake_namespace(connection) == f"snowflake://{provider.authority}"
    assert "secret" not in lineage.snowflake_namespace(connection)


class _Hook:
    """A SnowflakeHook stand-in whose connection names an account."""

    def get_connection(self, conn_id: str) -> Any:
        return SimpleNamespace(extra_dejson={"account": "xy12345", "region": "eu-west-1"})


def test_the_sql_steps_report_their_tables(orders: Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    transform = GatedSQLExecuteQueryOperator(
        task_id="transform", conn_id="sf", sql="SELECT 1", lineage=_configs(orders)["transform"]
    )
    assert "lineage" in transform.template_fields
    monkeypatch.setattr(transform, "get_db_hook", _Hook)
    # The SQL parser's guess, which would open a connection, is not run when the task starts.
    assert transform.get_openlineage_facets_on_start().inputs == []
    transform.remember_batch(_context())
    result = transform.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in (*result.inputs, *result.outputs)] == [
        (WAREHOUSE, "STREAMLINE.RAW.ORDERS"),
        (WAREHOUSE, "STREAMLINE.MART.ORDERS"),
    ]
    assert "secret" not in repr(result)


def test_the_claim_and_finalize_steps_use_the_lineage_python_operator(orders: Feed) -> None:
    tasks = build_dag_config(orders, Path("/sql"))["orders"]["tasks"]
    assert {t for t, spec in tasks.items() if spec["operator"] == LINEAGE_PYTHON} == {
        "claim",
        "finalize",
    }
    assert "lineage" in lineage.LineagePythonOperator.template_fields


def test_dags_build_without_the_openlineage_provider(tmp_path: Path) -> None:
    """The provider is optional: with its modules (but the provider list entry Airflow reads
    from every installed provider) and the OpenLineage client unimportable, the operators still
    import and build."""
    script = tmp_path / "no_provider.py"
    script.write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'openlineage' or (\n"
        "            name.startswith('airflow.providers.openlineage.')\n"
        "            and name != 'airflow.providers.openlineage.get_provider_info'\n"
        "        ):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from streamline import lineage\n"
        "from streamline.gates import GatedSQLExecuteQueryOperator\n"
        "GatedSQLExecuteQueryOperator(task_id='load', conn_id='sf', sql='SELECT 1', lineage={})\n"
        "lineage.LineagePythonOperator(task_id='claim', python_callable=print, lineage={})\n"
        "print('built')\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("built")


@pytest.mark.parametrize("version", ["2.10.3", "2.11.0", "2.11.2", "3.0.6", "3.2.1", "3.3.1"])
def test_every_mwaa_bundle_installs_the_provider_at_its_constraint(version: str) -> None:
    from streamline.mwaa import MWAA_IMAGES, constraint_pins, mwaa_target, target_requirements

    assert version in MWAA_IMAGES
    target = mwaa_target(ROOT / "infra" / "mwaa", version)
    assert "apache-airflow-providers-openlineage" in constraint_pins(target.constraints)
    # Named bare: the target's constraint file pins it (1.13.0 on 2.10.3 ... 2.20.0 on 3.3.1).
    assert "apache-airflow-providers-openlineage" in target_requirements(target)
