"""Parse the dags folder once in the LocalExecutor's forkserver, before any task is forked.

Listed last in the forkserver's preload (`AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD`,
streamline.local.airflow_config.PRELOAD), this module's import runs every DAG file of
`AIRFLOW__CORE__DAGS_FOLDER` in a throwaway namespace. Each task process is a fork of the
forkserver's workers and parses its DAG file again at start; it then finds the loader's lazy imports
done, its validators built and its templates compiled: its parse takes about 0.1 s instead of 0.3 s
here, on each of a batch's task processes. Nothing is kept but those warm caches; a DAG file that
fails is logged and left to the task's own parse, which reports it.

It also has every botocore session of the forkserver and its forks read AWS's service models
through one loader, warmed here (share_botocore_loader).
"""

from __future__ import annotations

import logging
import os
import runpy
from pathlib import Path

log = logging.getLogger(__name__)


def parse_dags_folder(folder: str | None) -> int:
    """Run each .py file directly in folder; the number that ran without an error."""
    if not folder or not Path(folder).is_dir():
        return 0
    parsed = 0
    for path in sorted(Path(folder).glob("*.py")):
        try:
            runpy.run_path(str(path), run_name="streamline_warmup")
        except Exception:  # the task's own parse reports it where the user looks
            log.warning("warm-up parse of %s failed", path, exc_info=True)
            continue
        parsed += 1
    return parsed


WARM_SERVICES = ("s3", "secretsmanager", "sqs", "sts")
"""The AWS services a task's hooks and the Secrets Manager backend make clients for."""


def share_botocore_loader(services: tuple[str, ...] = WARM_SERVICES) -> None:
    """Give every botocore session of this process one data loader per data path, its service
    models read once here; idempotent.

    Each Airflow hook and the secrets backend make a boto3 session of their own, and each new
    session reads and decodes the service models (JSON: endpoints, partitions, the service's
    API, paginators) through a new `botocore.loaders.Loader`, whose cache is its own: 0.1-0.25 s
    per client in a fresh task process here, about 0.4 s a task (an S3 client, then a Secrets
    Manager client to look up the Snowflake connection). Forked from a process whose loader has
    read them, a task makes each client in about 0.02 s. The loader only reads files shipped with
    botocore (or AWS_DATA_PATH's, whose sessions get a loader of their own), so sharing it shares
    no credentials, configuration or connection: https://docs.aws.amazon.com/botocore/latest/reference/loaders.html
    """
    import botocore.loaders
    import botocore.session

    if getattr(botocore.session.Session._register_data_loader, "shared", False):
        return
    loaders: dict[object, botocore.loaders.Loader] = {}

    def register(session: botocore.session.Session) -> None:
        def loader() -> botocore.loaders.Loader:
            path = session.get_config_variable("data_path")
            if path not in loaders:
                loaders[path] = botocore.loaders.create_loader(path)
            return loaders[path]

        session._components.lazy_register_component("data_loader", loader)

    register.shared = True  # type: ignore[attr-defined]
    botocore.session.Session._register_data_loader = register
    session = botocore.session.Session()
    for service in services:  # no request is made: a client reads its models when made
        session.create_client(service, region_name="us-east-1", aws_access_key_id="warm-up",
                              aws_secret_access_key="warm-up")  # fmt: skip


share_botocore_loader()
parse_dags_folder(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER"))
