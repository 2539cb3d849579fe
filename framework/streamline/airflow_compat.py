"""What differs between the Airflow versions Amazon MWAA offers (2.10, 2.11, 3.0 to 3.3).

StreamLine's DAGs are built at parse time in the environment that runs them, so each choice here
is made from the installed Airflow and providers, never from the build machine's:

- Airflow 3 has the Task SDK (`airflow.sdk`: DAG, Param, Asset) and the standard provider's
  PythonOperator and PythonSensor; Airflow 2 has the same classes in `airflow.models` and
  `airflow.operators` / `airflow.sensors`.
  https://airflow.apache.org/docs/apache-airflow/stable/installation/upgrading_to_airflow3.html
- Event mode schedules a DAG on an asset with a watcher (`AssetWatcher` and the common-messaging
  provider's `MessageQueueTrigger`), which exist only in Airflow 3; no common-messaging release
  installs on Airflow 2. On Airflow 2 a feed in event mode is a spec error (trigger.mode).
  https://airflow.apache.org/docs/apache-airflow/stable/authoring-and-scheduling/event-scheduling.html
- common-messaging 1.0.x (MWAA 3.0.6) takes the queue as `queue=<full queue URL>`; 2.x takes
  `scheme="sqs"` and the queue URL as `sqs_queue=` and deprecates `queue`.
  https://airflow.apache.org/docs/apache-airflow-providers-common-messaging/stable/changelog.html
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import re
from typing import Any

AIRFLOW = "apache-airflow"
EVENT_MODE_AIRFLOW = 3
"""The first Airflow major version with asset watchers, which event mode needs."""
MESSAGE_QUEUE_TRIGGER = "airflow.providers.common.messaging.triggers.msg_queue.MessageQueueTrigger"


def major(version: str) -> int:
    """The major number of a version string such as '2.10.3' or '3.0.6+astro.1'.

    Raises ValueError when the text does not start with a number.
    """
    found = re.match(r"(\d+)\.", version)
    if not found:
        raise ValueError(f"not a version like 3.0.6: {version!r}")
    return int(found[1])


@functools.cache
def installed_airflow() -> str:
    """The version of the installed apache-airflow distribution, e.g. '3.0.6'."""
    return importlib.metadata.version(AIRFLOW)


def installed_major() -> int:
    return major(installed_airflow())


def supports_event_mode(airflow_version: str) -> bool:
    """Whether feeds in event mode can run on this Airflow version (asset watchers)."""
    return major(airflow_version) >= EVENT_MODE_AIRFLOW


def class_paths() -> dict[str, str]:
    """Dotted paths of the classes the DAG config names, for the installed Airflow.

    Keys: 'param', 'python' (PythonOperator), 'sensor' (PythonSensor).
    """
    if installed_major() >= 3:
        return {
            "param": "airflow.sdk.Param",
            "python": "airflow.providers.standard.operators.python.PythonOperator",
            "sensor": "airflow.providers.standard.sensors.python.PythonSensor",
        }
    return {
        "param": "airflow.models.param.Param",
        "python": "airflow.operators.python.PythonOperator",
        "sensor": "airflow.sensors.python.PythonSensor",
    }


def dag_class() -> type[Any]:
    """Airflow's DAG class: airflow.sdk.DAG on Airflow 3, airflow.models.dag.DAG on Airflow 2."""
    try:
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow.models.dag import DAG  # type: ignore[no-redef]
    return DAG


def message_queue_trigger(queue_url: str, aws_conn_id: str, waiter_delay: int) -> dict[str, Any]:
    """dag-factory's `__type__` dict of the SQS MessageQueueTrigger, for the installed provider.

    queue_url is the queue's full URL; waiter_delay is seconds slept after an empty poll.
    """
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    accepts = inspect.signature(MessageQueueTrigger.__init__).parameters
    where = (
        {"scheme": "sqs", "sqs_queue": queue_url} if "scheme" in accepts else {"queue": queue_url}
    )
    return {
        "__type__": MESSAGE_QUEUE_TRIGGER,
        **where,
        "aws_conn_id": aws_conn_id,
        "waiter_delay": waiter_delay,
    }
