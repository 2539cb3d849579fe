"""The embedded stack: moto for AWS, fakesnow for Snowflake, real Airflow, all on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "STREAMLINE_CACHE_DIR"


def cache_dir() -> Path:
    """What StreamLine keeps between runs on this machine (the MWAA check's environments, migrated
    metadata databases): $STREAMLINE_CACHE_DIR, else $XDG_CACHE_HOME/streamline, else
    ~/.cache/streamline."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamline"
