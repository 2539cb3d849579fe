"""The benchmarks still run: each in its quick mode, as `make bench` runs it in full. A quick run
measures too little to judge speed (no figure is asserted); it fails when the script no longer
runs end to end, as `make bench` did when event-mode feeds needed a queue URL prefix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_parse_time_runs_in_quick_mode(tmp_path: Path) -> None:
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STREAMLINE_SQS_URL_PREFIX", "STREAMLINE_BENCH_OUT")
    }
    env["TMPDIR"] = str(temp)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "parse_time.py"), "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Parse time per feed, ms" in done.stdout
    assert "One parse of streamline_dags.py" in done.stdout
    assert "parse_time: goals" in done.stdout
    assert list(temp.iterdir()) == []  # its temporary folders are gone
    (record_file,) = out.glob("parse_time-*.json")
    (plot_file,) = out.glob("parse_time-*.png")
    assert plot_file.stem == record_file.stem
    assert plot_file.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    record = json.loads(record_file.read_text())
    assert record["name"] == "parse_time" and record["arguments"]["quick"] is True
    (size,) = record["figures"]["sizes"]
    assert size["feeds"] == 10 and size["ms_per_feed"]["load_dags"] > 0
    goals = {goal["name"]: goal for goal in record["goals"]}
    assert set(goals) == {
        "parse per feed at 500 feeds (first parse, incl. validation)",
        "parse per feed at 500 feeds (next parse, validation kept)",
        "load_dags at 2000 feeds (first parse)",
        "load_dags at 2000 feeds (next parse)",
    }
    for goal in goals.values():  # 10 feeds only: no goal is measured, each is still there
        assert goal["measured"] is None and goal["met"] is None and goal["op"] == "<="
