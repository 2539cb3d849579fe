"""The Amazon MWAA versions StreamLine targets, and what a bundle's requirements.txt pins on each.

MWAA installs requirements.txt as, in effect,
`pip install --constraint mwaa_essential_constraints-<v>.txt -r requirements.txt`, where
requirements.txt carries its own `--constraint <Apache Airflow constraint URL>` line: a package
the Apache constraint file pins must not be pinned to anything else, and MWAA's essential
constraints (Airflow, Flask, Celery, SQLAlchemy...) cannot be overridden.
https://docs.aws.amazon.com/mwaa/latest/userguide/working-dags-dependencies.html

Both files of every version MWAA offers are kept in infra/mwaa/ and bundled in the package (from
the public repository aws/amazon-mwaa-docker-images, images/airflow/<version>/): the constraint
URLs cannot be assumed reachable where a deploy is built or checked.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from streamline import airflow_compat
from streamline.errors import UsageError

DEFAULT_AIRFLOW_VERSION = "3.0.6"
"""The first Airflow 3 release on MWAA (October 2025); every feature of StreamLine runs there."""
MWAA_IMAGES = {
    # Airflow version: the Python of MWAA's image (aws/amazon-mwaa-docker-images).
    "2.10.3": "3.11",
    "2.11.0": "3.12",
    "2.11.2": "3.12",
    "3.0.6": "3.12",
    "3.2.1": "3.12",
    "3.3.1": "3.12",
}
"""The Airflow versions MWAA offers, with each image's Python (major.minor)."""
CONSTRAINTS_URL = "https://raw.githubusercontent.com/apache/airflow/constraints-{airflow}/constraints-{python}.txt"

REQUIREMENTS = (
    # (requirement, the first Airflow major that needs it): what the framework imports.
    ("apache-airflow-providers-amazon", 2),
    ("apache-airflow-providers-common-sql", 2),
    ("apache-airflow-providers-snowflake", 2),
    # Lineage (streamline.lineage): every Apache constraint file MWAA uses pins it (1.13.0 on
    # 2.10.3 to 2.20.0 on 3.3.1); it stays off until an environment sets openlineage.transport.
    ("apache-airflow-providers-openlineage", 2),
    # Airflow 3 moved PythonOperator/PythonSensor here; event mode's MessageQueueTrigger.
    ("apache-airflow-providers-standard", 3),
    ("apache-airflow-providers-common-messaging", 3),
    ("boto3>=1.35", 2),
    ("dag-factory>=1.1", 2),
    ("jinja2>=3.1", 2),
    ("jsonschema>=4.23", 2),
    ("rich>=13", 2),
    ("rich-argparse>=1.4", 2),
    ("ruamel.yaml>=0.18", 2),
    ("sqlglot>=30.15", 2),
)
"""The framework's runtime requirements. On a target, one the Apache constraint file pins is
named bare (the constraint line pins it); one it does not pin is pinned to the version installed
where the bundle is built (the locked, tested one)."""


@dataclass(frozen=True)
class MwaaTarget:
    """An MWAA environment's Airflow and Python versions, and its constraint files."""

    airflow_version: str
    python_version: str
    constraints: Path
    """Apache Airflow's constraint file for this Airflow and the image's Python."""
    essential_constraints: Path
    """MWAA's pins that a customer's requirements may not override."""

    @property
    def constraints_url(self) -> str:
        return CONSTRAINTS_URL.format(airflow=self.airflow_version, python=self.python_version)

    @property
    def major(self) -> int:
        return airflow_compat.major(self.airflow_version)


def mwaa_target(
    constraints_dir: Path, airflow_version: str, python_version: str | None = None
) -> MwaaTarget:
    """The target for an MWAA Airflow version, with its image's Python.

    constraints_dir holds each version's two constraint files (Project.constraints_dir).
    Raises UsageError for a version MWAA does not offer (or whose constraint files are missing),
    and for a python_version other than the image's.
    """
    if airflow_version not in MWAA_IMAGES:
        raise UsageError(
            f"--airflow-version {airflow_version!r} is not an Airflow version Amazon MWAA offers; "
            f"StreamLine knows {', '.join(MWAA_IMAGES)}"
        )
    python = python_version or MWAA_IMAGES[airflow_version]
    if python != MWAA_IMAGES[airflow_version]:
        raise UsageError(
            f"MWAA's Airflow {airflow_version} image runs Python {MWAA_IMAGES[airflow_version]}, "
            f"not {python}: its constraint files in infra/mwaa/ are for that Python"
        )
    folder = constraints_dir
    target = MwaaTarget(
        airflow_version,
        python,
        folder / f"airflow_constraints-{airflow_version}.txt",
        folder / f"mwaa_essential_constraints-{airflow_version}.txt",
    )
    for path in (target.constraints, target.essential_constraints):
        if not path.is_file():
            raise UsageError(
                f"{path} is missing: copy it from aws/amazon-mwaa-docker-images, "
                f"images/airflow/{airflow_version}/ (infra/mwaa/README.md)"
            )
    return target


def constraint_pins(path: Path) -> dict[str, str]:
    """{canonical distribution name: version} of a pip constraint file's `name==version` lines."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        requirement = Requirement(text)  # any spelling: 'JsonSchema == 4.0.0', extras, markers
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact:
            pins[canonicalize_name(requirement.name)] = exact[0]
    return pins


def target_requirements(target: MwaaTarget) -> list[str]:
    """requirements.txt lines for the framework's dependencies on target (wheel excluded).

    Raises UsageError when the target pins a dependency below what the framework needs, or when
    a dependency the target does not pin is not installed here to take its version from.
    """
    pinned = constraint_pins(target.constraints) | constraint_pins(target.essential_constraints)
    lines = []
    for text, first_major in REQUIREMENTS:
        if target.major < first_major:
            continue
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in pinned:
            if pinned[name] not in requirement.specifier:
                raise UsageError(
                    f"Airflow {target.airflow_version}'s constraints pin {requirement.name}=="
                    f"{pinned[name]}, but StreamLine needs {requirement}"
                )
            lines.append(requirement.name)
            continue
        try:
            here = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise UsageError(
                f"{requirement.name} is not installed here, so its version for Airflow "
                f"{target.airflow_version} (whose constraints do not pin it) is unknown"
            ) from None
        lines.append(f"{requirement.name}=={here}")
    return lines


def wheel_requires() -> Sequence[str]:
    """Requires-Dist of the framework wheel: what every target needs, with lower bounds only
    (each target's requirements.txt pins the versions)."""
    return (
        "apache-airflow>=2.10",
        *(text for text, first_major in REQUIREMENTS if first_major <= 2),
    )
