"""benchmarks/latency.py still runs end to end: its quick mode, as `make bench` runs it in full.

The quick mode replays a few pre-generated objects through the real scheduler and pushes a
couple of seconds through the local Firehose. It measures too little to judge speed, so no figure
is asserted: the test fails when the script no longer measures (an event lost or doubled, a failed
DAG run, no latency), writes no record or plot, or leaves a process running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import process_alive

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_latency_benchmark_runs_in_quick_mode(tmp_path: Path) -> None:
    # Short on purpose: the forkserver's unix socket lives under <workdir>/.../tmp.
    workdir = ROOT / ".scratch" / f"bl-{os.getpid()}"
    out = tmp_path / "out"
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--quick",
             "--workdir", str(workdir), "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        report = done.stdout[-4000:] + done.stderr[-3000:]
        assert done.returncode == 0, report
        assert "Event written -> visible in the mart" in done.stdout, report
        assert "CPU and memory per component" in done.stdout, report
        (record,) = out.glob("latency-*.json")
        assert record.with_suffix(".png").stat().st_size > 0
        data = json.loads(record.read_text())
        sustained = data["figures"]["scenarios"]["sustained"]
        assert sustained["events"] > 0 and sustained["failed_runs"] == 0, sustained
        assert sustained["problems"] == [], sustained
        assert {"scheduler", "warehouse", "moto"} <= set(sustained["usage"]), sustained["usage"]
        assert data["figures"]["firehose"]["events"] > 0
        goals = {g["name"]: g for g in data["goals"]}
        assert any(name.startswith("sustained p50") for name in goals), goals
        # A quick run judges no goal: each is recorded, not measured, what it saw in the note.
        assert all(g["met"] is None and "quick" in g["note"] for g in goals.values()), goals
        assert data["arguments"]["quick"] is True and data["arguments"]["mbps"] == 0.1
        pids = json.loads((workdir / "sustained" / "runtime" / "pids.json").read_text())
        assert not [name for name, pid in pids["children"].items() if process_alive(pid)], pids
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
