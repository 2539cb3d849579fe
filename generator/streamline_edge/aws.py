"""The AWS targets: Kinesis Data Firehose `PutRecordBatch` and S3 `PutObject`, with retries.

Only this module imports boto3/botocore. Clients are injectable (tests pass stubs or moto-backed
clients); `make_client` builds a real one from an endpoint URL and a region, and boto3 also
honours AWS_ENDPOINT_URL / AWS_REGION / AWS_DEFAULT_REGION from the environment by itself.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoRegionError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from streamline_edge.clock import Clock
from streamline_edge.errors import ConfigError, DeliveryError
from streamline_edge.targets import Buffer, BufferedTarget, ObjectTarget, RetryPolicy

# PutRecordBatch limits (https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html).
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024

# Whole-call errors worth another try; anything else (no such stream, access denied) is final.
RETRYABLE_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
    }
)
_TRANSIENT = (BotoConnectionError, HTTPClientError)


class FirehoseClient(Protocol):
    """The part of a boto3 Firehose client the generator uses."""

    def put_record_batch(self, **kwargs: Any) -> Mapping[str, Any]: ...


class S3Client(Protocol):
    """The part of a boto3 S3 client the generator uses."""

    def put_object(self, **kwargs: Any) -> Mapping[str, Any]: ...


def make_client(service: str, *, endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 client for `service`; None values fall back to boto3's own environment lookup."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=4,
    )
    try:
        return boto3.client(service, endpoint_url=endpoint_url, region_name=region, config=config)
    except NoRegionError:
        raise ConfigError("no AWS region: pass --region or set AWS_REGION") from None


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


class FirehoseTarget(BufferedTarget):
    """One delivery stream per feed, named from a template such as `streamline-{feed}`.

    Lines are batched per stream within PutRecordBatch's limits (500 records, 4 MiB per call,
    1,000 KiB per record). With `pack_bytes` > 0, consecutive lines share a record of up to that
    many bytes (Firehose bills records in 5 KB steps); every record holds whole lines. Only the
    records a call reports as failed are sent again, with capped exponential backoff.
    """

    def __init__(
        self,
        client: FirehoseClient,
        *,
        clock: Clock,
        stream_template: str = "streamline-{feed}",
        flush_seconds: float = 1.0,
        pack_bytes: int = 0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(clock=clock, flush_seconds=flush_seconds)
        if not 0 <= pack_bytes <= MAX_RECORD_BYTES:
            raise ConfigError(f"pack bytes must be between 0 and {MAX_RECORD_BYTES}")
        try:
            stream_template.format(feed="x")
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"bad stream template {stream_template!r}") from error
        self.client = client
        self.stream_template = stream_template
        self.destination = f"firehose:{stream_template}"
        self.pack_bytes = pack_bytes
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        # Per feed: the open packed record's parts and size (empty without packing).
        self._pack: dict[str, list[bytes]] = {}
        self._pack_size: dict[str, int] = {}

    def stream_for(self, feed: str) -> str:
        """The delivery stream name of a feed."""
        return self.stream_template.format(feed=feed)

    def add(self, feed: str, data: bytes, now: float) -> None:
        """Buffer a line; send the batch first when the line would break a batch limit."""
        size = len(data)
        if size > MAX_RECORD_BYTES:
            raise DeliveryError(f"a {feed} line of {size} bytes exceeds Firehose's record limit")
        buffer = self._buffer(feed, now)
        pack_size = self._pack_size.get(feed, 0)
        joins_pack = self.pack_bytes > 0 and pack_size > 0 and pack_size + size <= self.pack_bytes
        records = len(buffer.chunks) + (1 if pack_size else 0)
        if buffer.size + size > MAX_BATCH_BYTES or (
            not joins_pack and records >= MAX_BATCH_RECORDS
        ):
            self.flush(feed)
            buffer = self._buffer(feed, now)
            pack_size, joins_pack = 0, False
        buffer.size += size
        if self.pack_bytes == 0:
            buffer.chunks.append(data)
            if len(buffer.chunks) >= MAX_BATCH_RECORDS:
                self.flush(feed)
            return
        if not joins_pack and pack_size:
            buffer.chunks.append(b"".join(self._pack[feed]))
            pack_size = 0
        if pack_size:
            self._pack[feed].append(data)
        else:
            self._pack[feed] = [data]
        self._pack_size[feed] = pack_size + size

    def flush(self, feed: str) -> None:
        """Seal the open packed record, then send the feed's batch."""
        if self._pack_size.get(feed):
            buffer = self._buffers.get(feed)
            if buffer is not None:
                buffer.chunks.append(b"".join(self._pack[feed]))
            self._pack_size[feed] = 0
            self._pack[feed] = []
        super().flush(feed)

    def _ship(self, feed: str, buffer: Buffer) -> None:
        self.put_batch(self.stream_for(feed), buffer.chunks)
        self.stats.objects += 1

    def put_batch(self, stream: str, records: Sequence[bytes]) -> None:
        """Send records in one PutRecordBatch, then again only those that failed, until done."""
        pending = list(records)
        attempt = 0
        while True:
            try:
                self.stats.api_calls += 1
                response = self.client.put_record_batch(
                    DeliveryStreamName=stream, Records=[{"Data": data} for data in pending]
                )
            except ClientError as error:
                code = _error_code(error)
                if code not in RETRYABLE_CODES:
                    raise DeliveryError(_call_failed(f"firehose {stream}", code, error)) from error
                self.stats.failed_calls += 1
                reason = code
            except _TRANSIENT as error:
                self.stats.failed_calls += 1
                reason = type(error).__name__
            else:
                if not response.get("FailedPutCount"):
                    return
                results = response["RequestResponses"]
                failed = [
                    data for data, result in zip(pending, results, strict=True)
                    if result.get("ErrorCode")
                ]  # fmt: skip
                codes = sorted({str(r["ErrorCode"]) for r in results if r.get("ErrorCode")})
                reason = f"{len(failed)} of {len(pending)} records failed ({', '.join(codes)})"
                pending = failed
            attempt += 1
            if attempt > self.retry.max_retries:
                raise DeliveryError(
                    f"firehose {stream}: {len(pending)} records undelivered after "
                    f"{self.retry.max_retries} retries: {reason}"
                )
            self.stats.retried_records += len(pending)
            delay = self.retry.backoff(attempt, self._rng)
            self.stats.retry_sleep_seconds += delay
            self._clock.sleep(delay)


class S3Target(ObjectTarget):
    """Objects written straight to `s3://<bucket>/landing/<prefix>/YYYY/MM/DD/HH/<name>`."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        clock: Clock,
        flush_seconds: float = 1.0,
        flush_bytes: int = 8 * 1024 * 1024,
        prefix_template: str = "{feed}",
        run_id: str,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            clock=clock,
            flush_seconds=flush_seconds,
            flush_bytes=flush_bytes,
            prefix_template=prefix_template,
            run_id=run_id,
        )
        if not bucket:
            raise ConfigError("the s3 target needs a bucket")
        self.client = client
        self.bucket = bucket
        self.destination = f"s3://{bucket}/{self.prefix_template}"
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()

    def _write(self, key: str, data: bytes) -> None:
        attempt = 0
        while True:
            try:
                self.stats.api_calls += 1
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, ContentType="text/csv"
                )
                return
            except ClientError as error:
                code = _error_code(error)
                if code not in RETRYABLE_CODES:
                    raise DeliveryError(_call_failed(f"s3://{self.bucket}", code, error)) from error
                reason = code
            except _TRANSIENT as error:
                reason = type(error).__name__
            self.stats.failed_calls += 1
            attempt += 1
            if attempt > self.retry.max_retries:
                raise DeliveryError(
                    f"s3://{self.bucket}/{key}: not written after "
                    f"{self.retry.max_retries} retries: {reason}"
                )
            delay = self.retry.backoff(attempt, self._rng)
            self.stats.retry_sleep_seconds += delay
            self._clock.sleep(delay)


def _call_failed(where: str, code: str, error: ClientError) -> str:
    message = error.response.get("Error", {}).get("Message", "")
    hint = {
        "ResourceNotFoundException": " (check --stream-template, --region and --endpoint-url)",
        "NoSuchBucket": " (check --bucket, --region and --endpoint-url)",
    }.get(code, "")
    return f"{where}: {code}: {message}{hint}"
