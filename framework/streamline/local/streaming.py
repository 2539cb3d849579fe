"""The edge generator (generator/streamline_edge) streaming through the local stack's Firehose.

It runs in a thread of the local runtime; a stop event ends it as Ctrl-C would (its buffers are
flushed, its stats returned). Only the feeds the generator knows (`GENERATED_FEEDS`, the shipped
customers and orders) are streamed; any other feed runs on what you land yourself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamline.local.stack import REGION, Stack
from streamline.model import Feed
from streamline_edge.feeds import FEED_COLUMNS

GENERATED_FEEDS = tuple(FEED_COLUMNS)
"""Feeds the edge generator emits; their `updated_at` is the moment it made the event."""


def firehose_config(
    stack: Stack,
    feeds: Sequence[Feed],
    *,
    rate: float,
    duration: float | None,
    seed: int | None,
    duplicate_rate: float,
    malformed_rate: float = 0.0,
    progress_seconds: float = 0.0,
) -> Any:
    """Edge generator settings (streamline_edge.GeneratorConfig): the generated feeds among feeds,
    rate events/s in all, for duration seconds (None: until stopped), through the stack's Firehose
    streams, flushed every second."""
    from streamline_edge import GeneratorConfig

    return GeneratorConfig(
        target="firehose",
        feeds=",".join(f.feed for f in feeds if f.feed in GENERATED_FEEDS),
        seed=seed,
        rate=rate,
        duration=duration,
        duplicate_rate=duplicate_rate,
        malformed_rate=malformed_rate,
        endpoint_url=stack.aws_endpoint,
        region=REGION,
        flush_seconds=1.0,
        progress_seconds=progress_seconds,
    )


class _StoppableClock:
    """The system clock whose waits end the generator (as Ctrl-C would) once told to stop."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.interrupted = False

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self.interrupted:  # flushing after the stop: retries keep their real back-off
            time.sleep(max(0.0, seconds))
        elif self.stop.wait(max(0.0, seconds)):
            self.interrupted = True
            raise KeyboardInterrupt  # the runner flushes its buffers and returns its stats


@dataclass
class Streaming:
    """A generator thread: set `stop` to end it; `outcome` gets "lines" (so far), then "stats"
    (streamline_edge.GeneratorStats) or "error"."""

    thread: threading.Thread
    stop: threading.Event
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return not self.thread.is_alive()

    @property
    def lines(self) -> int:
        """Lines sent so far: the final count once the generator has returned."""
        stats = self.outcome.get("stats")
        return int(stats.lines if stats is not None else self.outcome.get("lines", 0))

    def end(self, timeout: float = 30.0) -> None:
        """Stop the generator and wait for its flush."""
        self.stop.set()
        self.thread.join(timeout=timeout)


def start_generator(config: Any) -> Streaming:
    """Stream events as config (firehose_config) says, in a thread, until its duration ends or
    Streaming.stop is set."""
    from streamline_edge import run as run_generator

    streaming = Streaming(threading.Thread(), threading.Event())

    def progress(stats: Any) -> None:
        streaming.outcome["lines"] = stats.lines

    def stream() -> None:
        try:
            streaming.outcome["stats"] = run_generator(
                config, clock=_StoppableClock(streaming.stop), on_progress=progress
            )
        except Exception as exc:  # reported by the runtime's loop
            streaming.outcome["error"] = exc

    streaming.thread = threading.Thread(target=stream, name="generator", daemon=True)
    streaming.thread.start()
    return streaming
