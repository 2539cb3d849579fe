"""Shared test set-up: scratch folders, telemetry off, and the --update-golden switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".scratch"

# Airflow reads these when first imported: set them before any test module imports it.
os.environ.setdefault("AIRFLOW_HOME", str(SCRATCH / "airflow"))
os.environ.setdefault("TMPDIR", str(SCRATCH / "tmp"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY"] = "False"
os.environ["DO_NOT_TRACK"] = "1"
for folder in (os.environ["AIRFLOW_HOME"], os.environ["TMPDIR"]):
    Path(folder).mkdir(parents=True, exist_ok=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current output instead of comparing",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse --dist loadgroup where pytest-xdist cannot group (it would not say so).

    xdist groups tests by a "@group" suffix it writes into each node id; pytest 9.2 keeps node
    ids where xdist 3.8 cannot write (https://github.com/pytest-dev/pytest-xdist/issues/1386), so
    the tests of one xdist_group spread over the workers and each worker starts its own local
    stack: the suite still passes, in twice the time. uv.lock pins a pytest below 9.2.
    """
    from importlib.metadata import version

    from packaging.version import Version

    if getattr(config.option, "dist", None) != "loadgroup":
        return
    if Version(pytest.__version__) >= Version("9.2") and Version(version("pytest-xdist")) < Version(
        "3.9"
    ):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} with pytest-xdist {version('pytest-xdist')} does not "
            "group --dist loadgroup tests (pytest-xdist#1386); run the locked versions (make test)"
        )


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Compare text with a golden file, or rewrite it under --update-golden."""
    update = request.config.getoption("--update-golden")

    def check(relative: str, actual: str) -> None:
        path = ROOT / "tests" / "golden" / relative
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, (
            f"{relative} differs from its golden file (pytest --update-golden)"
        )

    return check


@pytest.fixture
def project_root() -> Path:
    return ROOT
