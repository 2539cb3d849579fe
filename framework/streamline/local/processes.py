"""Process supervision for the local runtime: start children by PID, stop them in order.

Every long-running child (an Airflow component) starts in a session and process group of its own,
so a terminal's Ctrl-C reaches only the parent, which stops the children in `STOP_ORDER`: SIGTERM,
then SIGTERM to the whole group after `SIGNAL_AGAIN_AFTER` seconds (workers and task processes of a
component), then SIGKILL to what is left after `STOP_GRACE` seconds. Nothing is ever killed by name.
The PIDs and group ids are written to a JSON file as they start, for whoever must clean up after a
parent that was itself killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

from streamline.errors import StreamlineError

STOP_GRACE = 10.0
"""Seconds a child has, after SIGTERM, before it (and its process group) is killed."""
SIGNAL_AGAIN_AFTER = 2.0
STOP_ORDER = (("scheduler", "triggerer", "dag-processor"), ("api-server",))
"""The API server goes last: tasks that are still finishing report their state through it."""


class SupervisionError(StreamlineError):
    """A child process did not start, failed, or died."""


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_GRACE) -> None:
    """Terminate one child by PID, then kill it if it has not exited within timeout seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class Children:
    """Named child processes, each in its own process group; their PIDs in pid_file (JSON:
    {"up": parent pid, "children": {name: pid}, "groups": [pgid]})."""

    def __init__(self, pid_file: Path) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.pid_file = pid_file
        self.killed: list[str] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        """Start argv as child `name`, output appended to log."""
        with log.open("ab") as out:
            # A session of its own: a terminal's Ctrl-C reaches the parent, which stops them in
            # order.
            self.processes[name] = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.write_pids()

    def adopt(self, name: str, process: subprocess.Popen[bytes]) -> None:
        """Supervise a child started elsewhere (the embedded stack's servers): dead() reports it
        and stop_all stops it, after STOP_ORDER's."""
        self.processes[name] = process
        self.write_pids()

    def write_pids(self) -> None:
        pids = {n: p.pid for n, p in self.processes.items()}
        groups = [p.pid for p in self.processes.values()]
        body = {"up": os.getpid(), "children": pids, "groups": groups}
        self.pid_file.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")

    def dead(self) -> list[str]:
        """Names of children that exited."""
        return [n for n, p in self.processes.items() if p.poll() is not None]

    def check_alive(self) -> None:
        """Raise SupervisionError naming the children that exited."""
        dead = self.dead()
        if dead:
            raise SupervisionError(
                f"{', '.join(dead)} exited; see its log in {self.pid_file.parent / 'logs'}"
            )

    def stop_all(self) -> list[str]:
        """Stop the children in STOP_ORDER, the others last; the names of those killed."""
        known = {n for names in STOP_ORDER for n in names}
        rest = tuple(n for n in self.processes if n not in known)
        killed: list[str] = []
        for names in (*STOP_ORDER, rest):
            killed += _stop_together([(n, self.processes[n]) for n in names if n in self.processes])
        self.killed += killed
        return killed


def _stop_together(children: Sequence[tuple[str, subprocess.Popen[bytes]]]) -> list[str]:
    """SIGTERM each child, then its whole process group, then SIGKILL what is left of it."""
    for _, process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    now = time.monotonic()
    deadline, again = now + STOP_GRACE, now + SIGNAL_AGAIN_AFTER
    while any(p.poll() is None for _, p in children) and time.monotonic() < deadline:
        if again and time.monotonic() >= again:
            again = 0.0
            # Airflow's scheduler waits for its running tasks (a sensor may poke for minutes), even
            # when signalled again: its workers and tasks get the signal too, so they end now.
            for _, process in children:
                if process.poll() is None:
                    _signal_group(process.pid, signal.SIGTERM)
        time.sleep(0.1)
    killed = [name for name, process in children if process.poll() is None]
    for _, process in children:
        # Workers and task processes may outlive their component: its group goes with it.
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    return killed


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM for the duration of the block."""
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_step(
    argv: list[str], env: dict[str, str], log: Path, stopping: threading.Event, what: str
) -> bool:
    """Run a command to completion, output appended to log; False when stopping was set first.

    Raises SupervisionError when it exits non-zero.
    """
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    while process.poll() is None:
        if stopping.wait(0.2):
            stop_process(process)
            return False
    if process.returncode != 0:
        raise SupervisionError(f"{what} exited with {process.returncode}; see {log}")
    return True
