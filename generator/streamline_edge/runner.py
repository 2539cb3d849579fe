"""Run the generator: configuration in, stats out.

`run(GeneratorConfig(...))` builds the event stream and the target, paces the stream, ships it
and returns a `GeneratorStats`. Every dependency with a side effect (clock, AWS client, target)
can be passed in, which is how tests and the local demo drive it.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamline_edge.clock import Clock, SystemClock
from streamline_edge.errors import ConfigError, DeliveryError
from streamline_edge.events import DUPLICATE, EVENT, EventStream
from streamline_edge.feeds import parse_feed_mix
from streamline_edge.pacing import RateLimiter
from streamline_edge.stats import FeedStats, GeneratorStats
from streamline_edge.targets import LocalTarget, RetryPolicy, Target

TARGETS = ("firehose", "s3", "local")


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything a run needs; the CLI flags map one to one onto these fields.

    Stop after `count` lines or `duration` seconds, whichever comes first (neither: until
    interrupted). Pace to `rate` lines/s or `mbps` MB/s (10^6 bytes), or neither: as fast as
    possible. Every line counts towards `count` and the rates, duplicates and malformed included.
    """

    target: str = "local"
    feeds: str = "customers,orders"
    seed: int | None = None
    rate: float | None = None
    mbps: float | None = None
    duration: float | None = None
    count: int | None = None
    duplicate_rate: float = 0.0
    malformed_rate: float = 0.0
    bootstrap_customers: int = 10
    # firehose
    stream_template: str = "streamline-{feed}"
    pack_bytes: int = 0
    # s3 and local
    bucket: str | None = None
    out: str | None = None
    prefix_template: str = "{feed}"
    flush_bytes: int = 8 * 1024 * 1024
    # every target
    flush_seconds: float = 1.0
    max_retries: int = 8
    endpoint_url: str | None = None
    region: str | None = None
    run_id: str | None = None
    progress_seconds: float = 0.0

    def check(self) -> None:
        """Raise ConfigError for settings that cannot work together."""
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r} (one of {', '.join(TARGETS)})")
        if self.rate is not None and self.mbps is not None:
            raise ConfigError("give --rate or --mbps, not both")
        for name in ("rate", "mbps", "duration"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0")
        if self.count is not None and self.count < 0:
            raise ConfigError("count must be >= 0")
        if self.max_retries < 0:
            raise ConfigError("max retries must be >= 0")
        if self.target == "s3" and not self.bucket:
            raise ConfigError("the s3 target needs --bucket")
        if self.target == "local" and not self.out:
            raise ConfigError("the local target needs --out")
        parse_feed_mix(self.feeds)


def open_target(
    config: GeneratorConfig, *, clock: Clock, seed: int, run_id: str, client: Any = None
) -> Target:
    """Build the target `config` names; `client` replaces the boto3 client for AWS targets."""
    retry = RetryPolicy(max_retries=config.max_retries)
    rng = random.Random(f"{seed}/retry")
    if config.target == "local":
        return LocalTarget(
            config.out or ".",
            clock=clock,
            flush_seconds=config.flush_seconds,
            flush_bytes=config.flush_bytes,
            prefix_template=config.prefix_template,
            run_id=run_id,
        )
    # Imported here so a local run never needs boto3.
    from streamline_edge import aws

    if config.target == "s3":
        return aws.S3Target(
            client or aws.make_client("s3", endpoint_url=config.endpoint_url, region=config.region),
            config.bucket or "",
            clock=clock,
            flush_seconds=config.flush_seconds,
            flush_bytes=config.flush_bytes,
            prefix_template=config.prefix_template,
            run_id=run_id,
            retry=retry,
            rng=rng,
        )
    return aws.FirehoseTarget(
        client
        or aws.make_client("firehose", endpoint_url=config.endpoint_url, region=config.region),
        clock=clock,
        stream_template=config.stream_template,
        flush_seconds=config.flush_seconds,
        pack_bytes=config.pack_bytes,
        retry=retry,
        rng=rng,
    )


def run(
    config: GeneratorConfig,
    *,
    clock: Clock | None = None,
    target: Target | None = None,
    client: Any = None,
    on_progress: Callable[[GeneratorStats], None] | None = None,
) -> GeneratorStats:
    """Generate, pace and ship events as `config` says; return what was sent.

    Ctrl-C (KeyboardInterrupt) ends the run cleanly: buffers are flushed and the stats say
    `interrupted`. A DeliveryError carries the stats so far in its `stats` attribute.
    """
    config.check()
    clock = clock or SystemClock()
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    run_id = config.run_id or secrets.token_hex(4)
    mix = parse_feed_mix(config.feeds)
    if target is None:
        target = open_target(config, clock=clock, seed=seed, run_id=run_id, client=client)
    events = EventStream(
        mix,
        seed=seed,
        clock=clock,
        duplicate_rate=config.duplicate_rate,
        malformed_rate=config.malformed_rate,
        bootstrap_customers=config.bootstrap_customers,
    )
    feed_stats = {feed: FeedStats() for feed in mix.feeds}
    stats = GeneratorStats(
        target=config.target,
        destination=target.destination,
        seed=seed,
        feeds=feed_stats,
        delivery=target.stats,
    )
    start = clock.monotonic()
    end = start + config.duration if config.duration is not None else math.inf
    limiter: RateLimiter | None = None
    by_bytes = config.mbps is not None
    if config.rate is not None:
        limiter = RateLimiter(config.rate, start=start)
    elif config.mbps is not None:
        limiter = RateLimiter(config.mbps * 1e6, start=start)
    progress_every = config.progress_seconds if on_progress else 0.0
    next_progress = start + progress_every if progress_every > 0 else math.inf
    remaining = config.count if config.count is not None else -1
    try:
        while remaining != 0:
            now = clock.monotonic()
            if limiter is not None:
                wait = limiter.delay(now)
                if wait:
                    now = _idle(clock, target, min(now + wait, end))
            if now >= end:
                break
            event = next(events)
            data = event.line.encode()
            target.add(event.feed, data, now)
            counts = feed_stats[event.feed]
            kind = event.kind
            if kind == EVENT:
                counts.events += 1
            elif kind == DUPLICATE:
                counts.duplicates += 1
            else:
                counts.malformed += 1
            counts.bytes += len(data)
            if limiter is not None:
                limiter.consume(len(data) if by_bytes else 1, now)
            target.flush_due(now)
            remaining -= 1
            if now >= next_progress and on_progress is not None:
                stats.elapsed_seconds = now - start
                on_progress(stats)
                next_progress += progress_every
        target.close()
    except KeyboardInterrupt:
        stats.interrupted = True
        target.close()
    except DeliveryError as error:
        stats.elapsed_seconds = clock.monotonic() - start
        error.stats = stats
        raise
    stats.elapsed_seconds = clock.monotonic() - start
    return stats


def _idle(clock: Clock, target: Target, until: float) -> float:
    """Wait until monotonic `until`, flushing buffers whose deadline falls on the way."""
    while True:
        now = clock.monotonic()
        if until - now < 1e-6:  # a shorter sleep is lost in the sleep call's own overhead
            return now
        target.flush_due(now)
        wake = min(until, target.next_deadline())
        clock.sleep(wake - now)
