"""Generated dag-factory configs: golden files, task layout and triggers."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from streamline.dagconfig import TASKS, build_dag_config
from streamline.generation import dump_yaml
from streamline.model import Feed
from streamline.project import find_project
from streamline.validation import validate_paths

SQL_DIR = Path("/opt/airflow/dags/streamline_sql")


@pytest.fixture(scope="module")
def feeds() -> list[Feed]:
    result = validate_paths(find_project())
    assert result.ok, result.errors
    return result.feeds


def _feed(feeds: list[Feed], name: str) -> Feed:
    return next(f for f in feeds if f.feed == name)


@pytest.mark.parametrize("name", ["customers", "orders"])
def test_golden_dag_config(feeds: list[Feed], golden, name: str) -> None:  # type: ignore[no-untyped-def]
    """As generate and the loader build it: with the fingerprint of the feed's DDL, which its
    claim checks (a change of the DDL shows here too)."""
    from streamline.schema_versions import feed_contract

    feed = _feed(feeds, name)
    schema = feed_contract(find_project(), feed, feeds).fingerprint
    golden(f"{name}/dag.yaml", dump_yaml(build_dag_config(feed, SQL_DIR, None, schema)))


def test_tasks_run_in_step_order(feeds: list[Feed]) -> None:
    config = build_dag_config(_feed(feeds, "orders"), SQL_DIR)["orders"]
    assert tuple(config["tasks"]) == TASKS
    for before, after in itertools.pairwise(TASKS):
        assert config["tasks"][after]["dependencies"] == [before]
    assert config["template_searchpath"] == str(SQL_DIR / "orders")
    for step in ("load", "transform"):
        assert config["tasks"][step]["sql"] == f"{step}.sql"


def test_poll_mode_runs_continuously_with_a_soft_failing_sensor(feeds: list[Feed]) -> None:
    config = build_dag_config(_feed(feeds, "orders"), SQL_DIR)["orders"]
    assert config["schedule"] == "@continuous"
    assert config["max_active_runs"] == 1
    detect = config["tasks"]["detect"]
    assert detect["python_callable"] == "streamline.tasks.detect_batch"
    assert detect["op_kwargs"]["prefix"] == "orders"
    assert detect["soft_fail"] is True
    assert detect["poke_interval"] == 2


def test_event_mode_schedules_on_an_sqs_asset_watcher(feeds: list[Feed]) -> None:
    feed = _feed(feeds, "orders")
    event = dataclasses.replace(feed, trigger=dataclasses.replace(feed.trigger, mode="event"))
    prefix = "https://sqs.eu-west-1.amazonaws.com/123456789012"
    schedule = build_dag_config(event, SQL_DIR, prefix)["orders"]["schedule"]
    watcher = schedule[0]["watchers"][0]
    assert schedule[0]["__type__"] == "airflow.sdk.Asset"
    assert watcher["trigger"]["scheme"] == "sqs"
    assert watcher["trigger"]["sqs_queue"] == f"{prefix}/streamline-orders"
    assert watcher["trigger"]["waiter_delay"] == 2


def test_event_mode_config_builds_airflow_objects(feeds: list[Feed]) -> None:
    from airflow.sdk import Asset
    from dagfactory.utils import cast_with_type

    feed = _feed(feeds, "orders")
    event = dataclasses.replace(feed, trigger=dataclasses.replace(feed.trigger, mode="event"))
    config = cast_with_type(
        build_dag_config(event, SQL_DIR, "https://sqs.eu-west-1.amazonaws.com/1")
    )
    asset = config["orders"]["schedule"][0]
    assert isinstance(asset, Asset)
    assert asset.watchers[0].name == "streamline_orders_queue"


def test_event_mode_needs_a_queue_url_prefix(feeds: list[Feed]) -> None:
    feed = _feed(feeds, "orders")
    event = dataclasses.replace(feed, trigger=dataclasses.replace(feed.trigger, mode="event"))
    with pytest.raises(ValueError, match="STREAMLINE_SQS_URL_PREFIX"):
        build_dag_config(event, SQL_DIR)
