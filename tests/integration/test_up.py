"""`streamline up` end to end: real Airflow components, a batch per feed, a clean Ctrl-C.

Starts `streamline up` as a subprocess, waits (bounded) until its batches journal (written by its
run monitor from Airflow's REST API) shows one successful batch per feed, then sends SIGINT: the
command must exit 0 and leave none of the processes it started (nor their process groups) alive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from harness import process_alive

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FEEDS = {"customers", "orders"}
BATCH_TIMEOUT = 180.0
EXIT_TIMEOUT = 60.0


def _feeds_with_a_batch(journal: Path) -> set[str]:
    """Feeds with a successful batch (rows counted, latency measured) in batches.jsonl."""
    if not journal.exists():
        return set()
    lines = journal.read_text(encoding="utf-8").splitlines()
    runs = [json.loads(line) for line in lines if line.endswith("}")]  # a line being written
    return {
        r["feed"]
        for r in runs
        if r["state"] == "success" and r["batch_id"] and r["rows"] > 0 and r.get("latency_p50")
    }


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(up: subprocess.Popen[bytes], workdir: Path) -> None:
    """However the test ended: Ctrl-C to `up`, then SIGKILL to whatever it left running (its
    components run in process groups of their own, which outlive a killed `up`)."""
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
    try:
        pids = json.loads((workdir / "pids.json").read_text())
    except (OSError, ValueError):
        return
    for pgid in pids.get("groups", []):
        if pgid != os.getpgid(0) and _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    for pid in pids.get("children", {}).values():  # moto and the warehouse: in up's group
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(none)"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streamline.cli", "--project", str(ROOT), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def _status_and_reprocess(workdir: Path, env: dict[str, str]) -> None:
    """`status --local` reads the running stack's ledger and lake; `reprocess --local` starts a
    DAG run with the batch in its conf through the API server."""
    status = _cli(env, "status", "--local", "--workdir", str(workdir), "--json")
    assert status.returncode == 0, (status.stdout[-2000:], status.stderr[-2000:])
    report = json.loads(status.stdout)
    published = {
        feed["feed"]: [b["batch_id"] for b in feed["batches"] if b["status"] == "published"]
        for feed in report["feeds"]
    }
    assert all(published.values()), report
    batch_id = published["customers"][0]
    triggered = _cli(
        env, "reprocess", "customers", batch_id, "--local", "--workdir", str(workdir), "--no-wait"
    )
    assert triggered.returncode == 0, triggered.stderr[-2000:]
    assert f"for batch {batch_id}" in triggered.stdout
    api_url = json.loads((workdir / "stack.json").read_text())["api_url"]
    with urllib.request.urlopen(f"{api_url}/api/v2/dags/customers/dagRuns?limit=100") as answer:
        confs = [run["conf"] for run in json.loads(answer.read())["dag_runs"]]
    assert {"batch_id": batch_id} in confs, confs


def test_up_runs_batches_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    # Short on purpose: the forkserver's unix socket lives under <workdir>/tmp.
    workdir = ROOT / ".scratch" / f"up-test-{os.getpid()}"
    output = tmp_path / "up.out"
    env = {**os.environ, "TMPDIR": str(tmp_path), "DO_NOT_TRACK": "1"}
    command = [
        sys.executable, "-m", "streamline.cli", "--project", str(ROOT),
        "up", "--duration", "20", "--rate", "100", "--seed", "3", "--workdir", str(workdir),
    ]  # fmt: skip
    with output.open("wb") as out:
        up = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    pids: dict[str, object] = {}
    try:
        journal = workdir / "batches.jsonl"
        deadline = time.monotonic() + BATCH_TIMEOUT
        done: set[str] = set()
        while done != FEEDS and time.monotonic() < deadline and up.poll() is None:
            time.sleep(1)
            done = _feeds_with_a_batch(journal) & FEEDS
        assert up.poll() is None, f"streamline up exited early:\n{_tail(output)}"
        assert done == FEEDS, (
            f"batches finished only for {sorted(done)} within {BATCH_TIMEOUT:.0f} s:\n"
            f"{_tail(output)}\nscheduler log:\n{_tail(workdir / 'logs' / 'scheduler.log')}"
        )
        pids = json.loads((workdir / "pids.json").read_text())
        _status_and_reprocess(workdir, env)

        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=EXIT_TIMEOUT)
        assert code == 0, f"exit {code}:\n{_tail(output)}"
    finally:
        _stop(up, workdir)
    children = pids["children"]
    assert isinstance(children, dict)
    assert {"api-server", "scheduler", "dag-processor", "triggerer", "moto", "warehouse"} <= set(
        children
    )
    still = {name: pid for name, pid in children.items() if process_alive(pid)}
    groups = [pgid for pgid in pids["groups"] if _group_alive(pgid)]  # type: ignore[attr-defined]
    assert not still and not groups, f"left running: {still}, process groups {groups}"
    text = output.read_text(errors="replace")
    assert "Airflow UI" in text and "stopped every process" in text
    shutil.rmtree(workdir, ignore_errors=True)  # kept when the test fails, for its logs
