"""The benchmarks still run: each in its quick mode, as `make bench` runs it in full. A quick run
measures too little to judge speed (no figure is asserted); it fails when the script no longer
runs end to end, as `make bench` did when event-mode feeds needed a queue URL prefix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_parse_time_runs_in_quick_mode(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STREAMLINE_SQS_URL_PREFIX"}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "parse_time.py"), "--quick"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Parse time per feed, ms" in done.stdout
    assert "One parse of streamline_dags.py" in done.stdout
    assert list(tmp_path.iterdir()) == []  # its temporary folders are gone
