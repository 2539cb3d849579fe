"""Where lines go: buffered per feed, shipped as Firehose batches, S3 objects or local files.

This module holds what every target shares (the `Target` interface, per-feed buffers with a
flush deadline, the landing key layout, the retry policy) and the local-folder target. It imports
only the standard library, so a local run never loads boto3; the AWS targets live in `aws.py`.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from streamline_edge.clock import Clock
from streamline_edge.errors import ConfigError, DeliveryError
from streamline_edge.stats import DeliveryStats

LANDING = "landing"


class Target(Protocol):
    """A sink for CSV lines of several feeds; `run()` drives it."""

    stats: DeliveryStats
    destination: str

    def add(self, feed: str, data: bytes, now: float) -> None:
        """Buffer one line of `feed` (monotonic `now`), shipping a buffer once it is full."""
        ...

    def next_deadline(self) -> float:
        """Monotonic time at which a buffer must be flushed; infinity when nothing is buffered."""
        ...

    def flush_due(self, now: float) -> None:
        """Ship every buffer whose flush deadline is at or before monotonic `now`."""
        ...

    def close(self) -> None:
        """Ship everything still buffered."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff: retry n waits half to all of min(cap, base * 2^(n-1))."""

    max_retries: int = 8
    base_delay: float = 0.1
    max_delay: float = 5.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1-based); jittered, never below half."""
        delay = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return delay / 2 + rng.random() * delay / 2


def landing_key(prefix: str, wall_time: float, name: str) -> str:
    """`landing/<prefix>/YYYY/MM/DD/HH/<name>` for a UTC wall time, like Firehose's S3 layout."""
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(wall_time))
    return f"{LANDING}/{prefix}/{hour}/{name}"


def object_name(feed: str, wall_time: float, run_id: str, sequence: int) -> str:
    """A unique, time-sortable object name: `streamline-edge-<feed>-<UTC time>-<run>-<seq>.csv`."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(wall_time))
    return f"streamline-edge-{feed}-{stamp}-{run_id}-{sequence:06d}.csv"


def feed_prefix(template: str, feed: str) -> str:
    """The lake prefix of a feed from a template such as `{feed}`."""
    try:
        prefix = template.format(feed=feed).strip("/")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"bad prefix template {template!r}: only {{feed}} is known") from error
    if not prefix:
        raise ConfigError(f"prefix template {template!r} gives an empty prefix")
    return prefix


class Buffer:
    """Lines of one feed waiting to be shipped, and when the first one arrived."""

    __slots__ = ("chunks", "opened_at", "opened_wall", "size")

    def __init__(self, opened_at: float, opened_wall: float) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.opened_at = opened_at
        self.opened_wall = opened_wall


class BufferedTarget:
    """Per-feed buffers that are shipped when full (subclass rule) or `flush_seconds` old."""

    def __init__(self, *, clock: Clock, flush_seconds: float) -> None:
        if not flush_seconds > 0:
            raise ConfigError("flush seconds must be > 0")
        self.stats = DeliveryStats()
        self._clock = clock
        self.flush_seconds = flush_seconds
        self._buffers: dict[str, Buffer] = {}
        self._deadline = math.inf

    def next_deadline(self) -> float:
        """Monotonic time of the oldest buffer's flush; infinity when nothing is buffered."""
        return self._deadline

    def flush_due(self, now: float) -> None:
        """Ship every buffer that is at least `flush_seconds` old."""
        if now < self._deadline:
            return
        for feed, buffer in list(self._buffers.items()):
            if buffer.opened_at + self.flush_seconds <= now:
                self.flush(feed)

    def close(self) -> None:
        """Ship every buffer."""
        for feed in list(self._buffers):
            self.flush(feed)

    def flush(self, feed: str) -> None:
        """Ship one feed's buffer now (nothing happens when it is empty)."""
        buffer = self._buffers.pop(feed, None)
        self._deadline = min(
            (b.opened_at + self.flush_seconds for b in self._buffers.values()), default=math.inf
        )
        if buffer is not None and buffer.size:
            self._ship(feed, buffer)

    def _buffer(self, feed: str, now: float) -> Buffer:
        buffer = self._buffers.get(feed)
        if buffer is None:
            buffer = self._buffers[feed] = Buffer(now, self._clock.time())
            self._deadline = min(self._deadline, now + self.flush_seconds)
        return buffer

    def _ship(self, feed: str, buffer: Buffer) -> None:
        raise NotImplementedError


class ObjectTarget(BufferedTarget):
    """Lines become objects under `landing/<prefix>/YYYY/MM/DD/HH/`: one per flush and feed."""

    def __init__(
        self,
        *,
        clock: Clock,
        flush_seconds: float,
        flush_bytes: int,
        prefix_template: str,
        run_id: str,
    ) -> None:
        super().__init__(clock=clock, flush_seconds=flush_seconds)
        if flush_bytes < 1:
            raise ConfigError("flush bytes must be >= 1")
        self.flush_bytes = flush_bytes
        self.prefix_template = prefix_template
        self.run_id = run_id
        self._sequence = 0
        self._prefixes: dict[str, str] = {}

    def add(self, feed: str, data: bytes, now: float) -> None:
        """Buffer a line; write the feed's object once it holds `flush_bytes`."""
        buffer = self._buffer(feed, now)
        buffer.chunks.append(data)
        buffer.size += len(data)
        if buffer.size >= self.flush_bytes:
            self.flush(feed)

    def key_for(self, feed: str, wall_time: float) -> str:
        """The next object key for `feed`, partitioned by the hour of `wall_time` (UTC)."""
        prefix = self._prefixes.get(feed)
        if prefix is None:
            prefix = self._prefixes[feed] = feed_prefix(self.prefix_template, feed)
        self._sequence += 1
        return landing_key(
            prefix, wall_time, object_name(feed, wall_time, self.run_id, self._sequence)
        )

    def _ship(self, feed: str, buffer: Buffer) -> None:
        # The hour partition is that of the buffer's first line, as with Firehose.
        key = self.key_for(feed, buffer.opened_wall)
        self._write(key, b"".join(buffer.chunks))
        self.stats.objects += 1

    def _write(self, key: str, data: bytes) -> None:
        raise NotImplementedError


class LocalTarget(ObjectTarget):
    """Objects as files under a folder, with the lake's layout: `<root>/landing/<prefix>/...`.

    Each file is written under `<root>/.inflight/` and renamed into place, so a reader of
    `landing/` never sees a partial file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        clock: Clock,
        flush_seconds: float = 1.0,
        flush_bytes: int = 8 * 1024 * 1024,
        prefix_template: str = "{feed}",
        run_id: str,
    ) -> None:
        super().__init__(
            clock=clock,
            flush_seconds=flush_seconds,
            flush_bytes=flush_bytes,
            prefix_template=prefix_template,
            run_id=run_id,
        )
        self.root = Path(root)
        self.destination = str(self.root)
        self._inflight = self.root / ".inflight"
        self._made: set[Path] = set()

    def _write(self, key: str, data: bytes) -> None:
        path = self.root / key
        temporary = self._inflight / path.name
        try:
            for folder in (self._inflight, path.parent):
                if folder not in self._made:
                    folder.mkdir(parents=True, exist_ok=True)
                    self._made.add(folder)
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError as error:
            raise DeliveryError(f"cannot write {path}: {error}") from error
        self.stats.api_calls += 1
