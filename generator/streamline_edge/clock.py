"""Time as an injected dependency: the real clock on an edge box, a fake one in tests.

Every timestamp and every wait in the generator goes through a `Clock`, so a seeded run with a
`FakeClock` produces the same events every time and never sleeps for real.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time for timestamps, monotonic time for pacing, and a way to wait."""

    def time(self) -> float:
        """Seconds since the Unix epoch (UTC wall clock)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (a no-op for zero or less)."""
        ...


class SystemClock:
    """The real clock: `time.time`, `time.monotonic` and `time.sleep`."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on the process's monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when slept on (or advanced): deterministic and instant.

    Every call to `sleep` is recorded in `sleeps`, so tests can assert what a real run would wait.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01 00:00:00 UTC
        self._wall_start = start
        # Whole nanoseconds, so sums of sleeps land exactly on schedule times like 2.0.
        self._elapsed_ns = 0
        self.sleeps: list[float] = []

    def time(self) -> float:
        """The start time plus everything slept or advanced so far."""
        return self._wall_start + self._elapsed_ns / 1e9

    def monotonic(self) -> float:
        """Seconds slept or advanced since the clock was made."""
        return self._elapsed_ns / 1e9

    def sleep(self, seconds: float) -> None:
        """Record the wait and move time forward by it, at once: by at least 1 ns, as a real
        sleep always takes some time (a wait of under half a ns would otherwise round to nothing,
        and a caller waiting for a deadline that close would wait forever)."""
        self.sleeps.append(seconds)
        if seconds > 0:
            self._elapsed_ns += max(1, round(seconds * 1e9))

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep (time spent working)."""
        self._elapsed_ns += round(seconds * 1e9)


class TimestampFormatter:
    """Format epoch milliseconds as `YYYY-MM-DD HH:MM:SS.fff` (UTC), caching the seconds part.

    The cache matters: formatting is on the hot path, and consecutive events share their second.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, epoch_ms: int) -> str:
        second, millis = divmod(epoch_ms, 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{millis:03d}"


def format_timestamp(epoch_ms: int) -> str:
    """Format epoch milliseconds as `YYYY-MM-DD HH:MM:SS.fff` in UTC."""
    return TimestampFormatter()(epoch_ms)
