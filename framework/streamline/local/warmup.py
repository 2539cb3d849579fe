"""Parse the dags folder once in the LocalExecutor's forkserver, before any task is forked.

Listed last in the forkserver's preload (`AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD`,
streamline.local.airflow_config.PRELOAD), this module's import runs every DAG file of
`AIRFLOW__CORE__DAGS_FOLDER` in a throwaway namespace. Each task process is a fork of the
forkserver's workers and parses its DAG file again at start; it then finds the loader's lazy imports
done, its validators built and its templates compiled: its parse takes about 0.1 s instead of 0.3 s
here, on each of a batch's task processes. Nothing is kept but those warm caches; a DAG file that
fails is logged and left to the task's own parse, which reports it.

It also has every new botocore session of the forkserver and its forks start with AWS's service
models decoded here (share_botocore_loader).
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


SHARED_ENTRIES = ("load_data_with_path", "load_data")
"""The entries of a botocore loader's cache a new session's loader starts with: decoded model
files by name (not the lists of available services, which depend on a loader's search paths)."""


def share_botocore_loader(services: tuple[str, ...] = WARM_SERVICES) -> None:
    """Have every new botocore session of this process start with the service models read here
    (decoded once, in the forkserver, then inherited by each fork); idempotent.

    Each Airflow hook and the secrets backend make a boto3 session of their own, and each new
    session reads and decodes the service models (JSON: endpoints, partitions, the service's
    API, paginators) through a new `botocore.loaders.Loader`, whose cache is its own: 0.1-0.25 s
    per client in a fresh task process here, about 0.4 s a task (an S3 client, then a Secrets
    Manager client to look up the Snowflake connection). Each session still gets a loader of its
    own (its own search paths, which boto3 appends to, and its own list of services); the loader
    starts with the decoded model files (SHARED_ENTRIES) of the first loader of its data path,
    warmed here, and a forked task makes each client in about 0.03-0.06 s. A model file of the same
    name added later in another search path (`~/.aws/models`, AWS_DATA_PATH) is not read by
    these sessions. https://docs.aws.amazon.com/botocore/latest/reference/loaders.html
    """
    import botocore.loaders
    import botocore.session

    if getattr(botocore.session.Session._register_data_loader, "shared", False):
        return
    warm: dict[object, botocore.loaders.Loader] = {}

    def register(session: botocore.session.Session) -> None:
        def loader() -> botocore.loaders.Loader:
            path = session.get_config_variable("data_path")
            fresh = botocore.loaders.create_loader(path)
            first = warm.setdefault(path, fresh)
            if first is not fresh:
                cache = first._cache  # botocore.loaders.instance_cache keeps it there
                fresh._cache.update((k, v) for k, v in cache.items() if k[0] in SHARED_ENTRIES)
            return fresh

        session._components.lazy_register_component("data_loader", loader)

    register.shared = True  # type: ignore[attr-defined]
    botocore.session.Session._register_data_loader = register
    session = botocore.session.Session()
    for service in services:  # no request is made: a client reads its models when made
        session.create_client(service, region_name="us-east-1", aws_access_key_id="warm-up",
                              aws_secret_access_key="warm-up")  # fmt: skip


share_botocore_loader()
parse_dags_folder(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER"))
