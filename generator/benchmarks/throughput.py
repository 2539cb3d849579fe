"""Throughput benchmark: how fast the edge generator goes, unpaced, to each kind of target.

Runs `streamline_edge.run` as fast as it can (no --rate) and prints lines/s and MB/s for:

- events: the event stream alone (no target);
- local: files under a throw-away folder in $TMPDIR;
- firehose (moto): moto's in-process Firehose delivering to in-process S3, one record per line
  and with lines packed into 5,000-byte records;
- s3 (moto): moto's in-process S3.

moto keeps everything in memory and runs in this process, so its figures measure the generator
plus moto's request handling, not AWS. Needs the dev dependencies (moto):

    uv run python generator/benchmarks/throughput.py [--count 300000] [--aws-count 100000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import boto3
from moto import mock_aws

from streamline_edge import GeneratorConfig, GeneratorStats, SystemClock, iter_events, run

REGION = "us-east-1"


def bench_events(count: int) -> tuple[float, float]:
    stream = iter_events(seed=1, clock=SystemClock())
    started = time.perf_counter()
    size = sum(len(event.line.encode()) for event in itertools.islice(stream, count))
    elapsed = time.perf_counter() - started
    return count / elapsed, size / 1e6 / elapsed


def bench_local(count: int) -> GeneratorStats:
    folder = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    try:
        return run(GeneratorConfig(target="local", out=str(folder), count=count, seed=1))
    finally:
        shutil.rmtree(folder)


def bench_firehose(count: int, pack_bytes: int) -> GeneratorStats:
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="lake")
        client = boto3.client("firehose", region_name=REGION)
        for feed in ("customers", "orders"):
            client.create_delivery_stream(
                DeliveryStreamName=f"streamline-{feed}",
                DeliveryStreamType="DirectPut",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                    "BucketARN": "arn:aws:s3:::lake",
                    "Prefix": f"landing/{feed}/",
                },
            )
        config = GeneratorConfig(target="firehose", count=count, seed=1, pack_bytes=pack_bytes)
        return run(config, client=client)


def bench_s3(count: int) -> GeneratorStats:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="lake")
        config = GeneratorConfig(
            target="s3", bucket="lake", count=count, seed=1, flush_bytes=1024 * 1024
        )
        return run(config, client=s3)


def report(name: str, stats: GeneratorStats) -> None:
    d = stats.delivery
    print(
        f"{name:<28}{stats.lines:>10,} lines {stats.lines_per_second:>12,.0f} lines/s "
        f"{stats.mb_per_second:>8.2f} MB/s  {d.api_calls:>6,} calls  {d.objects:>5,} objects"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300_000, help="lines for events and local")
    parser.add_argument("--aws-count", type=int, default=100_000, help="lines for moto targets")
    args = parser.parse_args()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    print(f"cpus: {os.cpu_count()}, counts: {args.count:,} / {args.aws_count:,} lines")
    lines_per_second, mb_per_second = bench_events(args.count)
    print(f"{'events (no target)':<28}{args.count:>10,} lines {lines_per_second:>12,.0f} lines/s "
          f"{mb_per_second:>8.2f} MB/s")  # fmt: skip
    report("local folder", bench_local(args.count))
    report("firehose (moto), 1 line/rec", bench_firehose(args.aws_count, 0))
    report("firehose (moto), 5 KB recs", bench_firehose(args.aws_count, 5000))
    report("s3 (moto), 1 MiB objects", bench_s3(args.aws_count))


if __name__ == "__main__":
    main()
