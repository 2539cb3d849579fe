"""The edge generator (generator/streamline_edge): events, faults, pacing, targets, imports.

No network and no real sleeping: a FakeClock stands in for time, stub clients for Firehose
failures, and moto's in-process `mock_aws` for Firehose -> S3 and S3.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from ruamel.yaml import YAML

import streamline_edge
from streamline_edge import (
    DUPLICATE,
    EVENT,
    FEED_COLUMNS,
    MALFORMED,
    ConfigError,
    DeliveryError,
    Event,
    FakeClock,
    GeneratorConfig,
    LocalTarget,
    RateLimiter,
    RetryPolicy,
    iter_events,
    parse_feed_mix,
    run,
)
from streamline_edge.aws import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    FirehoseTarget,
    S3Target,
)
from streamline_edge.feeds import COUNTRIES, CURRENCIES, STATUSES, TIERS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "generator" / "streamline_edge"
REGION = "us-east-1"
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
TS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
NEXT_STATUSES = {
    "placed": {"paid", "cancelled"},
    "paid": {"shipped", "cancelled"},
    "shipped": {"delivered"},
}


# -- helpers ----------------------------------------------------------------------------------


def events_with_clock(
    count: int, *, seed: int = 7, step: float = 0.0007, **options: Any
) -> list[tuple[Event, float]]:
    """`count` events, each with the fake wall time at which it was produced."""
    clock = FakeClock()
    stream = iter_events(seed=seed, clock=clock, **options)
    out = []
    for _ in range(count):
        emitted_at = clock.time()
        out.append((next(stream), emitted_at))
        clock.advance(step)
    return out


def take(count: int, **options: Any) -> list[Event]:
    return [event for event, _ in events_with_clock(count, **options)]


def fields_of(line: str) -> list[str]:
    assert line.endswith("\n") and not line.endswith("\r\n")
    rows = list(csv.reader([line[:-1]]))
    assert len(rows) == 1
    return rows[0]


def parse_ts(text: str) -> datetime:
    assert TS_PATTERN.match(text), text
    return datetime.strptime(text, TS_FORMAT)


def problems(feed: str, fields: list[str]) -> list[str]:
    """Why a row does not fit its feed's spec column types (empty when it fits)."""
    columns = FEED_COLUMNS[feed]
    if len(fields) != len(columns):
        return [f"{len(fields)} columns, expected {len(columns)}"]
    row = dict(zip(columns, fields, strict=True))
    found = []
    if feed == "customers":
        if not re.fullmatch(r"cus_\d{6,12}", row["customer_id"]) or len(row["customer_id"]) > 16:
            found.append("customer_id")
        if not re.fullmatch(r"[a-z0-9.]+@[a-z0-9.]+", row["email"]) or len(row["email"]) > 254:
            found.append("email")
        if not row["full_name"] or len(row["full_name"]) > 200:
            found.append("full_name")
        if row["country"] not in COUNTRIES or not re.fullmatch(r"[A-Z]{2}", row["country"]):
            found.append("country")
        if row["tier"] not in TIERS:
            found.append("tier")
        if parse_ts(row["updated_at"]) < parse_ts(row["created_at"]):
            found.append("updated_at before created_at")
    else:
        if not re.fullmatch(r"ord_\d{10}", row["order_id"]) or len(row["order_id"]) > 20:
            found.append("order_id")
        if not re.fullmatch(r"cus_\d{6,12}", row["customer_id"]):
            found.append("customer_id")
        if row["status"] not in STATUSES:
            found.append("status")
        if not row["quantity"].isdigit() or not 1 <= int(row["quantity"]) <= 10:
            found.append("quantity")
        try:
            amount = Decimal(row["amount"])
        except InvalidOperation:
            return [*found, f"amount {row['amount']!r} is not numeric"]
        # NUMBER(12,2): at most 2 decimals, at most 10 digits before the point, and >= 0.
        exponent = amount.as_tuple().exponent
        if not re.fullmatch(r"\d{1,10}\.\d{2}", row["amount"]) or amount < 0 or exponent != -2:
            found.append("amount")
        if row["currency"] not in CURRENCIES:
            found.append("currency")
        if parse_ts(row["updated_at"]) < parse_ts(row["ordered_at"]):
            found.append("updated_at before ordered_at")
    return found


class StubFirehose:
    """Records every PutRecordBatch; `fail(call_index, records)` decides per-record failures."""

    def __init__(self, fail: Any = None, raise_on: Mapping[int, str] | None = None) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []
        self.delivered: list[bytes] = []
        self._fail = fail
        self._raise_on = dict(raise_on or {})

    def put_record_batch(self, **kwargs: Any) -> Mapping[str, Any]:
        index = len(self.calls)
        records = [record["Data"] for record in kwargs["Records"]]
        self.calls.append((kwargs["DeliveryStreamName"], records))
        if index in self._raise_on:
            code = self._raise_on[index]
            raise ClientError({"Error": {"Code": code, "Message": "stub"}}, "PutRecordBatch")
        failed = self._fail(index, records) if self._fail else set()
        responses = []
        for position, data in enumerate(records):
            if position in failed:
                responses.append(
                    {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
                )
            else:
                self.delivered.append(data)
                responses.append({"RecordId": f"r{index}-{position}"})
        return {"FailedPutCount": len(failed), "RequestResponses": responses}


def lines_in(blobs: list[bytes]) -> list[str]:
    return [line + "\n" for blob in blobs for line in blob.decode().splitlines()]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process, with no real endpoint or credentials anywhere in reach."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


# -- feeds and events -------------------------------------------------------------------------


@pytest.mark.parametrize("feed", sorted(FEED_COLUMNS))
def test_columns_follow_the_spec_order(feed: str) -> None:
    spec = YAML(typ="safe").load(ROOT / "pipelines" / f"{feed}.yaml")
    assert FEED_COLUMNS[feed] == tuple(column["name"] for column in spec["columns"])
    assert spec["source"]["format"]["header"] is False
    assert spec["source"]["format"]["timestamp_format"] == "YYYY-MM-DD HH24:MI:SS.FF3"


def test_same_seed_and_clock_give_the_same_events() -> None:
    options = {"duplicate_rate": 0.05, "malformed_rate": 0.02}
    first = take(3000, seed=11, **options)
    assert first == take(3000, seed=11, **options)
    assert first != take(3000, seed=12, **options)


def test_every_line_parses_into_the_spec_columns_and_types() -> None:
    events = take(20_000)
    assert {event.kind for event in events} == {EVENT}
    for event in events:
        fields = fields_of(event.line)
        assert problems(event.feed, fields) == [], event.line


def test_quoting_follows_rfc_4180() -> None:
    names = [fields_of(e.line)[2] for e in take(5000) if e.feed == "customers"]
    assert any('"' in name for name in names) and any("," in name for name in names)
    lines = [e.line for e in take(5000) if e.feed == "customers" and '"' in fields_of(e.line)[2]]
    assert all('""' in line for line in lines)  # embedded quotes are doubled inside quotes


def test_orders_reference_only_customers_emitted_earlier() -> None:
    for bootstrap in (0, 10):
        emitted: set[str] = set()
        orders = 0
        for event in take(20_000, bootstrap_customers=bootstrap):
            fields = fields_of(event.line)
            if event.feed == "customers":
                emitted.add(fields[0])
            else:
                orders += 1
                assert fields[1] in emitted, f"order for unseen customer {fields[1]}"
        assert orders > 10_000


def test_bootstrap_emits_new_customers_first() -> None:
    events = take(25, bootstrap_customers=20)
    ids = [fields_of(e.line)[0] for e in events[:20]]
    assert ids == [f"cus_{n:06d}" for n in range(1, 21)]


def test_mix_is_about_one_customer_event_per_five_order_events() -> None:
    counts = Counter(event.feed for event in take(30_000))
    assert 4.5 < counts["orders"] / counts["customers"] < 5.5
    only_orders = take(2000, feeds="orders")
    assert {event.feed for event in only_orders} == {"orders"}
    assert parse_feed_mix("customers:1,orders:3").weights == (("customers", 1.0), ("orders", 3.0))
    for bad in ("payments", "orders,orders", "orders:0", "orders:x", ""):
        with pytest.raises(ConfigError):
            parse_feed_mix(bad)


def test_updated_at_is_the_emit_time_and_grows_per_key() -> None:
    last: dict[str, datetime] = {}
    for event, emitted_at in events_with_clock(20_000, step=0.0003):
        fields = fields_of(event.line)
        updated = parse_ts(fields[-1])
        emit = datetime.fromtimestamp(emitted_at, UTC).replace(tzinfo=None)
        # Equal to the emit time, give or take the 1 ms nudges that break ties per key.
        assert abs((updated - emit).total_seconds()) < 0.005
        key = f"{event.feed}:{fields[0]}"
        if key in last:
            assert updated > last[key], f"{key} did not move forward"
        last[key] = updated


def test_customers_change_and_orders_progress() -> None:
    customers: dict[str, list[list[str]]] = {}
    orders: dict[str, list[str]] = {}
    for event in take(30_000):
        fields = fields_of(event.line)
        if event.feed == "customers":
            customers.setdefault(fields[0], []).append(fields)
        else:
            orders.setdefault(fields[0], []).append(fields[2])
    updated = [rows for rows in customers.values() if len(rows) > 1]
    assert len(updated) > 100
    assert any(rows[0][4] != rows[-1][4] for rows in updated)  # tier
    assert any(rows[0][1] != rows[-1][1] for rows in updated)  # email
    for rows in updated:
        assert {row[5] for row in rows} == {rows[0][5]}  # created_at never changes
    for statuses in orders.values():
        assert statuses[0] == "placed"
        for before, after in pairwise(statuses):
            assert after in NEXT_STATUSES[before], statuses
    assert sum(1 for s in orders.values() if s[-1] == "delivered") > 100
    assert sum(1 for s in orders.values() if s[-1] == "cancelled") > 10


def test_faults_are_injected_at_about_their_rates() -> None:
    events = take(40_000, duplicate_rate=0.05, malformed_rate=0.01)
    kinds = Counter(event.kind for event in events)
    assert 0.045 < kinds[DUPLICATE] / len(events) < 0.055
    assert 0.008 < kinds[MALFORMED] / len(events) < 0.012
    seen: dict[str, set[str]] = {"customers": set(), "orders": set()}
    malformed_reasons: Counter[str] = Counter()
    for event in events:
        fields = fields_of(event.line)
        if event.kind == DUPLICATE:
            assert event.line in seen[event.feed], "a duplicate re-sends an earlier line"
        elif event.kind == MALFORMED:
            reasons = problems(event.feed, fields)
            assert reasons, f"malformed line passes: {event.line}"
            malformed_reasons["columns" if "columns" in reasons[0] else "amount"] += 1
        else:
            assert problems(event.feed, fields) == []
            seen[event.feed].add(event.line)
    assert set(malformed_reasons) == {"columns", "amount"}


def test_run_counts_what_it_injected(tmp_path: Path) -> None:
    config = GeneratorConfig(
        target="local",
        out=str(tmp_path),
        count=20_000,
        seed=5,
        duplicate_rate=0.05,
        malformed_rate=0.01,
    )
    stats = run(config, clock=FakeClock())
    assert stats.lines == 20_000
    assert 800 < stats.duplicates < 1200 and 140 < stats.malformed < 260
    files = sorted((tmp_path / "landing").rglob("*.csv"))
    lines = [line for path in files for line in path.read_text().splitlines()]
    assert len(lines) == 20_000 and stats.bytes == sum(p.stat().st_size for p in files)
    bad = [line for line in lines if problems(feed_of(line), fields_of(line + "\n"))]
    assert len(bad) == stats.malformed
    body = json.loads(stats.to_json())
    assert body["duplicates"] == stats.duplicates and body["malformed"] == stats.malformed
    assert body["feeds"]["orders"]["lines"] == stats.feeds["orders"].lines


def feed_of(line: str) -> str:
    return "customers" if line.startswith("cus_") else "orders"


# -- pacing -----------------------------------------------------------------------------------


def test_rate_sleeps_one_gap_per_event(tmp_path: Path) -> None:
    clock = FakeClock()
    stats = run(GeneratorConfig(out=str(tmp_path), rate=10, count=10, seed=1), clock=clock)
    assert clock.sleeps == pytest.approx([0.1] * 9)
    assert stats.elapsed_seconds == pytest.approx(0.9)


def test_duration_bounds_a_paced_run(tmp_path: Path) -> None:
    clock = FakeClock()
    stats = run(GeneratorConfig(out=str(tmp_path), rate=250, duration=2.0, seed=1), clock=clock)
    assert stats.lines == 500
    assert stats.elapsed_seconds == pytest.approx(2.0)
    assert stats.lines_per_second == pytest.approx(250)


def test_mbps_paces_bytes(tmp_path: Path) -> None:
    clock = FakeClock()
    stats = run(GeneratorConfig(out=str(tmp_path), mbps=0.01, duration=3.0, seed=1), clock=clock)
    # 10,000 bytes/s for 3 s: within one line of 30,000 bytes.
    assert 30_000 - 200 < stats.bytes <= 30_000 + 200
    assert sum(clock.sleeps) == pytest.approx(3.0)


def test_a_paced_run_on_the_fake_clock_ends(tmp_path: Path) -> None:
    # Two feeds paced by bytes and flushed each second: a wait can fall within half a ns of a
    # flush deadline, which a sleep rounded to whole ns never reached (the run spun forever).
    clock = FakeClock()
    clock.sleep(1e-10)
    assert clock.monotonic() > 0  # a sleep always moves time
    config = GeneratorConfig(out=str(tmp_path), feeds="customers,orders", mbps=0.1, duration=8.0,
                             flush_seconds=1.0, seed=12)  # fmt: skip
    stats = run(config, clock=FakeClock(start=1_764_562_000.0))
    assert stats.elapsed_seconds == pytest.approx(8.0)
    assert stats.delivery.objects == 16


def test_waits_are_cut_short_to_flush_buffers_on_time(tmp_path: Path) -> None:
    clock = FakeClock()
    config = GeneratorConfig(
        out=str(tmp_path), feeds="orders", rate=1, count=3, flush_seconds=0.5, seed=1
    )
    stats = run(config, clock=clock)
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.5, 0.5])  # each wait broken by a flush
    assert stats.delivery.objects == 3  # one object per event, 0.5 s after it was produced


def test_rate_limiter_schedule_and_backlog() -> None:
    limiter = RateLimiter(100, start=0.0)
    assert limiter.delay(0.0) == 0.0
    limiter.consume(1, 0.0)
    assert limiter.delay(0.0) == pytest.approx(0.01)
    assert limiter.delay(0.0099999) == 0.0  # below the minimum sleep: go now
    limiter.consume(1, 5.0)  # fell 5 s behind: keep at most 1 s of backlog
    assert limiter.due() == pytest.approx(4.0)


# -- firehose ---------------------------------------------------------------------------------


def firehose(client: Any, clock: FakeClock | None = None, **options: Any) -> FirehoseTarget:
    return FirehoseTarget(client, clock=clock or FakeClock(), **options)


def test_firehose_batches_stay_within_the_api_limits() -> None:
    stub = StubFirehose()
    target = firehose(stub, flush_seconds=60)
    sent = []
    for index in range(3000):
        # Small lines fill batches to 500 records; then 300 KiB lines make the 4 MiB limit bite.
        size = 300 * 1024 if index > 1200 and index % 20 == 7 else 80
        line = (f"{index}," + "x" * size + "\n").encode()
        sent.append(line)
        target.add("orders", line, 0.0)
    target.close()
    assert stub.delivered == sent
    assert all(stream == "streamline-orders" for stream, _ in stub.calls)
    for _, records in stub.calls:
        assert len(records) <= MAX_BATCH_RECORDS
        assert sum(len(r) for r in records) <= MAX_BATCH_BYTES
        assert all(len(r) <= MAX_RECORD_BYTES for r in records)
    assert max(len(records) for _, records in stub.calls) == MAX_BATCH_RECORDS
    assert (
        max(sum(len(r) for r in records) for _, records in stub.calls) > MAX_BATCH_BYTES - 310_000
    )
    assert target.stats.api_calls == len(stub.calls) == target.stats.objects


def test_firehose_packs_whole_lines_into_records() -> None:
    stub = StubFirehose()
    target = firehose(stub, flush_seconds=60, pack_bytes=5000)
    lines = [e.line.encode() for e in take(20_000, feeds="orders")]
    for line in lines:
        target.add("orders", line, 0.0)
    target.close()
    records = [record for _, batch in stub.calls for record in batch]
    assert all(len(r) <= 5000 and r.endswith(b"\n") for r in records)
    assert b"".join(records) == b"".join(lines)
    assert len(records) < len(lines) / 40
    assert all(len(batch) <= MAX_BATCH_RECORDS for _, batch in stub.calls)


def test_firehose_retries_only_the_failed_records() -> None:
    # First attempt of every batch: every third record fails; the retry of those succeeds.
    stub = StubFirehose(
        fail=lambda call, records: set(range(0, len(records), 3)) if call == 0 else set()
    )
    clock = FakeClock()
    target = firehose(stub, clock, retry=RetryPolicy(base_delay=0.2))
    lines = [f"line {n}\n".encode() for n in range(300)]
    for line in lines:
        target.add("customers", line, 0.0)
    target.close()
    assert len(stub.calls) == 2
    assert stub.calls[1][1] == lines[0::3]  # only the failures went again, in order
    assert sorted(stub.delivered) == sorted(lines)
    assert target.stats.retried_records == 100
    assert len(clock.sleeps) == 1 and 0.1 <= clock.sleeps[0] <= 0.2


def test_firehose_backs_off_exponentially_then_gives_up() -> None:
    stub = StubFirehose(fail=lambda call, records: {0})
    clock = FakeClock()
    policy = RetryPolicy(max_retries=6, base_delay=0.1, max_delay=1.0)
    target = firehose(stub, clock, retry=policy)
    target.add("orders", b"a\n", 0.0)
    target.add("orders", b"b\n", 0.0)
    with pytest.raises(DeliveryError, match="1 records undelivered after 6 retries"):
        target.close()
    assert len(stub.calls) == 7
    assert stub.delivered == [b"b\n"]
    caps = [min(1.0, 0.1 * 2**n) for n in range(6)]
    assert all(cap / 2 <= slept <= cap for slept, cap in zip(clock.sleeps, caps, strict=True))


def test_firehose_retries_throttled_calls_but_not_missing_streams() -> None:
    stub = StubFirehose(raise_on={0: "ThrottlingException", 1: "ServiceUnavailableException"})
    target = firehose(stub)
    target.add("orders", b"a\n", 0.0)
    target.close()
    assert stub.delivered == [b"a\n"] and target.stats.failed_calls == 2
    missing = firehose(StubFirehose(raise_on={0: "ResourceNotFoundException"}))
    missing.add("orders", b"a\n", 0.0)
    with pytest.raises(DeliveryError, match=r"ResourceNotFoundException.*--stream-template"):
        missing.close()


def test_delivery_error_carries_the_stats(tmp_path: Path) -> None:
    stub = StubFirehose(raise_on={0: "AccessDeniedException"})
    config = GeneratorConfig(target="firehose", count=100, seed=1)
    with pytest.raises(DeliveryError) as caught:
        run(config, clock=FakeClock(), client=stub)
    assert caught.value.stats is not None and caught.value.stats.lines == 100


def test_firehose_to_s3_through_moto(aws_env: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="lake")
    client = boto3.client("firehose", region_name=REGION)
    for feed in FEED_COLUMNS:
        client.create_delivery_stream(
            DeliveryStreamName=f"streamline-{feed}",
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": "arn:aws:s3:::lake",
                "Prefix": f"landing/{feed}/",
            },
        )
    config = GeneratorConfig(target="firehose", count=3000, seed=3, duplicate_rate=0.02)
    stats = run(config, clock=FakeClock(), client=client)
    for feed in FEED_COLUMNS:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
        keys = [key for key in keys if key.startswith(f"landing/{feed}/")]
        assert keys and all(
            re.fullmatch(rf"landing/{feed}/\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/streamline-{feed}-.+", k)
            for k in keys
        )
        bodies = [s3.get_object(Bucket="lake", Key=key)["Body"].read() for key in keys]
        lines = lines_in(bodies)
        assert len(lines) == stats.feeds[feed].lines
        assert all(len(fields_of(line)) == len(FEED_COLUMNS[feed]) for line in lines)
    assert stats.delivery.api_calls >= 2 and stats.delivery.retried_records == 0


# -- s3 and local -----------------------------------------------------------------------------

KEY = re.compile(
    r"landing/(customers|orders)/2026/01/01/00/"
    r"streamline-edge-\1-2026-01-01-00-00-\d\d-run1-\d{6}\.csv"
)


def test_s3_target_writes_the_landing_layout(aws_env: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="lake")
    config = GeneratorConfig(
        target="s3", bucket="lake", rate=200, duration=5, flush_seconds=2, run_id="run1", seed=9
    )
    stats = run(config, clock=FakeClock(), client=s3)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
    assert all(KEY.fullmatch(key) for key in keys), keys
    assert len(keys) == stats.delivery.objects == 6  # 2 feeds x flushes at 2 s, 4 s and the end
    bodies = [s3.get_object(Bucket="lake", Key=key)["Body"].read() for key in keys]
    assert sum(len(body) for body in bodies) == stats.bytes
    assert len(lines_in(bodies)) == stats.lines == 1000


def test_s3_target_reports_a_missing_bucket(aws_env: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    target = S3Target(s3, "nope", clock=FakeClock(), run_id="run1")
    target.add("orders", b"x\n", 0.0)
    with pytest.raises(DeliveryError, match="NoSuchBucket"):
        target.close()


def test_local_target_writes_the_landing_layout(tmp_path: Path) -> None:
    config = GeneratorConfig(
        out=str(tmp_path), count=5000, run_id="run1", seed=2, flush_bytes=64_000
    )
    stats = run(config, clock=FakeClock())
    files = [p.relative_to(tmp_path).as_posix() for p in (tmp_path / "landing").rglob("*.csv")]
    assert files and all(KEY.fullmatch(name) for name in files), files
    assert len(files) == stats.delivery.objects == stats.delivery.api_calls
    assert not any((tmp_path / ".inflight").iterdir())
    sizes = [(tmp_path / name).stat().st_size for name in files]
    assert max(sizes) < 64_000 + 200 and sum(sizes) == stats.bytes


def test_local_target_partitions_by_the_first_line_hour(tmp_path: Path) -> None:
    clock = FakeClock(start=1_767_229_199.5)  # 2026-01-01 00:59:59.5
    target = LocalTarget(tmp_path, clock=clock, flush_seconds=10, run_id="r")
    target.add("orders", b"a\n", clock.monotonic())
    clock.advance(1.0)
    target.flush_due(clock.monotonic())
    assert not list(tmp_path.rglob("*.csv"))  # not yet due
    clock.advance(9.0)
    target.flush_due(clock.monotonic())
    [path] = list(tmp_path.rglob("*.csv"))
    assert path.relative_to(tmp_path).as_posix().startswith("landing/orders/2026/01/01/00/")


def test_interrupt_flushes_and_reports(tmp_path: Path) -> None:
    class InterruptingClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.monotonic() > 1.0:
                raise KeyboardInterrupt

    config = GeneratorConfig(out=str(tmp_path), rate=100, seed=1, flush_seconds=60)
    stats = run(config, clock=InterruptingClock())
    assert stats.interrupted and 95 <= stats.lines <= 105
    written = sum(len(p.read_text().splitlines()) for p in tmp_path.rglob("*.csv"))
    assert written == stats.lines


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target": "s3"}, "--bucket"),
        ({"target": "local"}, "--out"),
        ({"target": "kafka"}, "unknown target"),
        ({"out": "x", "rate": 1, "mbps": 1}, "not both"),
        ({"out": "x", "feeds": "payments"}, "unknown feed"),
    ],
)
def test_bad_configs_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(GeneratorConfig(**options), clock=FakeClock())


# -- packaging --------------------------------------------------------------------------------


def test_package_imports_only_the_standard_library_and_boto3() -> None:
    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore", "streamline_edge"}
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{module.name} imports {name}"


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(ROOT / "generator")
    return subprocess.run(
        [sys.executable, "-m", "streamline_edge", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_runs_from_the_generator_folder_without_boto3(tmp_path: Path) -> None:
    # A local run must not even import boto3: block it and run the module as an edge box would.
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "boto3.py").write_text("raise ImportError('boto3 is not on this edge box')\n")
    env_path = os.pathsep.join([str(blocker), str(ROOT / "generator")])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamline_edge",
            "--target=local",
            "--out=lake",
            "--count=500",
            "--seed=4",
            "--flush-seconds=60",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": env_path},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["lines"] == 500 and body["seed"] == 4 and body["target"] == "local"
    assert len(list((tmp_path / "lake" / "landing").rglob("*.csv"))) == body["objects"] == 2


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run_cli("--target", "s3", "--count", "1", tmp_path=tmp_path)
    assert result.returncode == 2 and "needs --bucket" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("--target", "local", "--rate", "-1", tmp_path=tmp_path)
    assert result.returncode == 2


def test_package_is_importable_from_the_venv() -> None:
    assert Path(streamline_edge.__file__).parent == PACKAGE
