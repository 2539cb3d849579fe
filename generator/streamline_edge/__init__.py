"""StreamLine's edge event generator: synthetic CSV feeds to Firehose, S3 or a local folder.

Needs only the Python standard library (plus boto3 for the AWS targets), so it runs on an edge box.

    from streamline_edge import GeneratorConfig, run
    stats = run(GeneratorConfig(target="local", out="lake", count=10_000, seed=42))

`iter_events` is the event stream alone; `run` paces it and ships it to a target.
"""

from __future__ import annotations

__version__ = "0.1.0"

from streamline_edge.clock import Clock, FakeClock, SystemClock, format_timestamp
from streamline_edge.errors import ConfigError, DeliveryError, EdgeError
from streamline_edge.events import DUPLICATE, EVENT, MALFORMED, Event, EventStream, iter_events
from streamline_edge.feeds import FEED_COLUMNS, FeedMix, parse_feed_mix
from streamline_edge.pacing import RateLimiter
from streamline_edge.runner import GeneratorConfig, open_target, run
from streamline_edge.stats import DeliveryStats, FeedStats, GeneratorStats
from streamline_edge.targets import LocalTarget, RetryPolicy, Target, landing_key

__all__ = [
    "DUPLICATE",
    "EVENT",
    "FEED_COLUMNS",
    "MALFORMED",
    "Clock",
    "ConfigError",
    "DeliveryError",
    "DeliveryStats",
    "EdgeError",
    "Event",
    "EventStream",
    "FakeClock",
    "FeedMix",
    "FeedStats",
    "GeneratorConfig",
    "GeneratorStats",
    "LocalTarget",
    "RateLimiter",
    "RetryPolicy",
    "SystemClock",
    "Target",
    "__version__",
    "format_timestamp",
    "iter_events",
    "landing_key",
    "open_target",
    "parse_feed_mix",
    "run",
]
