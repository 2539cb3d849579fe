"""What a run did: lines per feed (events, duplicates, malformed), bytes, calls, retries, rate."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FeedStats:
    """Counts for one feed; `lines` = `events` + `duplicates` + `malformed`."""

    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    bytes: int = 0

    @property
    def lines(self) -> int:
        """Every line sent for this feed, faults included."""
        return self.events + self.duplicates + self.malformed


@dataclass
class DeliveryStats:
    """What a target did: API calls (or file writes), objects written, records retried."""

    api_calls: int = 0
    objects: int = 0
    retried_records: int = 0
    failed_calls: int = 0
    retry_sleep_seconds: float = 0.0


@dataclass
class GeneratorStats:
    """The summary of one run; `to_dict()` is what `--json` prints."""

    target: str
    destination: str
    seed: int
    feeds: dict[str, FeedStats] = field(default_factory=dict)
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    elapsed_seconds: float = 0.0
    interrupted: bool = False

    @property
    def lines(self) -> int:
        """Every line sent, over all feeds."""
        return sum(feed.lines for feed in self.feeds.values())

    @property
    def bytes(self) -> int:
        """Every byte sent, over all feeds."""
        return sum(feed.bytes for feed in self.feeds.values())

    @property
    def duplicates(self) -> int:
        """Duplicate lines injected, over all feeds."""
        return sum(feed.duplicates for feed in self.feeds.values())

    @property
    def malformed(self) -> int:
        """Malformed lines injected, over all feeds."""
        return sum(feed.malformed for feed in self.feeds.values())

    @property
    def lines_per_second(self) -> float:
        """Achieved rate in lines (events, faults included) per second."""
        return self.lines / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def mb_per_second(self) -> float:
        """Achieved rate in MB (10^6 bytes) per second."""
        return self.bytes / 1e6 / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, totals and rates included."""
        return {
            "target": self.target,
            "destination": self.destination,
            "seed": self.seed,
            "feeds": {
                name: {"lines": feed.lines, **asdict(feed)} for name, feed in self.feeds.items()
            },
            "lines": self.lines,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "bytes": self.bytes,
            **asdict(self.delivery),
            "elapsed_seconds": round(self.elapsed_seconds, 6),
            "lines_per_second": round(self.lines_per_second, 1),
            "mb_per_second": round(self.mb_per_second, 4),
            "interrupted": self.interrupted,
        }

    def to_json(self) -> str:
        """`to_dict()` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def format_text(self) -> str:
        """A human summary: one row per feed, a total row, delivery counters and rates."""
        head = f"{'feed':<12}{'lines':>12}{'events':>12}{'duplicates':>12}{'malformed':>12}"
        head += f"{'bytes':>15}"
        rows = [head]
        for name, feed in self.feeds.items():
            rows.append(_row(name, feed))
        total = FeedStats(
            events=sum(feed.events for feed in self.feeds.values()),
            duplicates=self.duplicates,
            malformed=self.malformed,
            bytes=self.bytes,
        )
        rows.append(_row("total", total))
        d = self.delivery
        status = " (interrupted)" if self.interrupted else ""
        return "\n".join(
            [
                f"{self.target} -> {self.destination}, seed {self.seed}{status}",
                *rows,
                f"api calls {d.api_calls:,}, objects {d.objects:,}, "
                f"retried records {d.retried_records:,}, failed calls {d.failed_calls:,}, "
                f"retry sleep {d.retry_sleep_seconds:.3f} s",
                f"elapsed {self.elapsed_seconds:.3f} s, achieved {self.lines_per_second:,.1f} "
                f"lines/s, {self.mb_per_second:.3f} MB/s",
            ]
        )


def _row(name: str, feed: FeedStats) -> str:
    return (
        f"{name:<12}{feed.lines:>12,}{feed.events:>12,}{feed.duplicates:>12,}"
        f"{feed.malformed:>12,}{feed.bytes:>15,}"
    )
