"""Pace a stream to a target rate of events or bytes per second, on an injected clock.

The limiter keeps a schedule rather than sleeping a fixed gap after each event: unit n is due at
`start + n / rate`. Sleep overshoot and slow sends are made up by the next events, so the average
rate stays exact; a generator that falls behind by more than `max_lag` seconds drops the backlog
instead of bursting to catch up, and the achieved rate in the stats shows it could not keep up.
"""

from __future__ import annotations

from streamline_edge.errors import ConfigError


class RateLimiter:
    """A schedule of `per_second` units (events or bytes) per second from monotonic `start`."""

    def __init__(
        self,
        per_second: float,
        *,
        start: float,
        max_lag: float = 1.0,
        min_sleep: float = 0.0005,
    ) -> None:
        if not per_second > 0:
            raise ConfigError("the rate must be > 0")
        self.per_second = per_second
        self._start = start
        self._consumed = 0.0
        self._max_lag = max_lag
        self._min_sleep = min_sleep

    def due(self) -> float:
        """Monotonic time at which the next unit may go."""
        return self._start + self._consumed / self.per_second

    def delay(self, now: float) -> float:
        """Seconds to wait before the next unit; 0 when due or too short to be worth a sleep."""
        wait = self.due() - now
        return wait if wait >= self._min_sleep else 0.0

    def consume(self, units: float, now: float) -> None:
        """Account for `units` sent at monotonic time `now`."""
        self._consumed += units
        due = self.due()
        if now - due > self._max_lag:
            # Too far behind: forget the backlog rather than burst to make it up.
            self._start += now - due - self._max_lag
