"""`streamline up`: the long-running local mode, with Airflow's own scheduler, until Ctrl-C.

On the local runtime (streamline.local.runtime: the embedded stack and Airflow's components on
127.0.0.1), the edge generator streams events through Firehose for --duration seconds or until
stopped, while every finished batch is printed with its end-to-end latency
(streamline.local.latency) and a status line every 30 s. SIGINT or SIGTERM stops the generator,
then every process by PID, and prints the summary table.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from streamline.local import reports
from streamline.local.runtime import (
    INTERRUPTED,
    LocalRuntimeError,
    Runtime,
    RuntimeOptions,
    check_workdir,
    run_local,
)
from streamline.model import Feed
from streamline.project import Project

__all__ = ["LocalRuntimeError", "RuntimeOptions", "check_workdir", "run_up"]


def run_up(
    project: Project, feeds: Sequence[Feed], options: RuntimeOptions, console: Console
) -> int:
    """Run until SIGINT or SIGTERM; 0 after a clean stop, 1 when a component failed, 2 when the
    workdir is refused."""
    code = run_local(project, feeds, options, console, _stream_until_stopped)
    return 0 if code == INTERRUPTED else code  # Ctrl-C is how `up` ends


def _stream_until_stopped(runtime: Runtime) -> int:
    streaming = runtime.stream()
    code = 1
    try:
        code = runtime.watch(streaming, streamed_note="; Airflow keeps running until Ctrl-C")
    finally:
        # After a death the generator may be stuck flushing to a dead Firehose: do not wait.
        streaming.end(timeout=30.0 if code == 0 else 2.0)
    runtime.console.print("stopping...")
    runtime.poll()
    reports.print_summary(
        runtime.console,
        "streamline up: event written -> visible in the mart",
        list(runtime.summaries.values()),
    )
    stats = streaming.outcome.get("stats")
    if "error" in streaming.outcome and code == 0:  # failed after the watch ended
        runtime.console.print(f"[bold red]generator failed:[/] {streaming.outcome['error']}")
        code = code or 1
    elif stats is not None:
        seconds = stats.elapsed_seconds
        runtime.console.print(f"generator: {stats.lines} lines sent in {seconds:.0f} s")
    return code
