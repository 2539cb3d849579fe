"""The event stream: a seeded simulation of customers and orders, rendered as CSV lines.

One `Event` is one headerless CSV line (RFC 4180 quoting by the csv module, `\\n` line end) with
its columns in spec order. The stream keeps just enough state to be realistic:

- customers are created, then updated (tier, email, country) with later `updated_at` values;
- orders reference only customers whose first line was already emitted, and move through
  placed -> paid -> shipped -> delivered (or cancelled) in later events for the same `order_id`;
- `updated_at` is the clock's wall time when the event is produced, nudged 1 ms forward when a
  key's previous event already carries that millisecond, so the marts' "latest `updated_at` wins"
  never sees a tie for one key.

Faults are injected on request: a duplicate re-sends an earlier line of the same feed unchanged
(Firehose delivers at least once); a malformed line has the wrong column count or, for orders, a
non-numeric amount. Fault draws use their own random stream, seeded from the same seed.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

from streamline_edge.clock import Clock, TimestampFormatter
from streamline_edge.errors import ConfigError
from streamline_edge.feeds import (
    COUNTRIES,
    CURRENCIES,
    EMAIL_DOMAINS,
    FEED_COLUMNS,
    FIRST_NAMES,
    LAST_NAMES,
    TIERS,
    FeedMix,
    parse_feed_mix,
)

EVENT, DUPLICATE, MALFORMED = "event", "duplicate", "malformed"
MALFORMED_KINDS = ("missing_column", "extra_column", "bad_amount")

NEW_CUSTOMER_SHARE = 0.35  # of customer events; the rest update an existing customer
NEW_ORDER_SHARE = 0.30  # of order events; the rest move an open order on
MAX_OPEN_ORDERS = 20_000  # beyond this, order events only move open orders on
HISTORY_SIZE = 10_000  # lines per feed that a duplicate can be drawn from
# Next status and its probability; what is left over goes to "cancelled".
_NEXT_STATUS = {"placed": ("paid", 0.9), "paid": ("shipped", 0.95), "shipped": ("delivered", 1.0)}
_TERMINAL = frozenset({"delivered", "cancelled"})
_NOT_DECOMPOSED = str.maketrans({"ø": "o", "ß": "ss", "æ": "ae", "œ": "oe"})


class Event(NamedTuple):
    """One CSV line for one feed; `kind` is "event", "duplicate" or "malformed"."""

    feed: str
    line: str
    kind: str


class _Customer:
    __slots__ = (
        "country", "created_at", "customer_id", "email", "full_name", "last_ms", "slug", "tier",
    )  # fmt: skip

    def __init__(
        self, customer_id: str, slug: str, email: str, full_name: str, country: str, tier: str
    ) -> None:
        self.customer_id = customer_id
        self.slug = slug
        self.email = email
        self.full_name = full_name
        self.country = country
        self.tier = tier
        self.created_at = ""
        self.last_ms = 0


class _Order:
    __slots__ = (
        "amount", "currency", "customer_id", "last_ms", "order_id", "ordered_at", "quantity",
        "status",
    )  # fmt: skip

    def __init__(
        self, order_id: str, customer_id: str, quantity: int, amount: str, currency: str
    ) -> None:
        self.order_id = order_id
        self.customer_id = customer_id
        self.status = "placed"
        self.quantity = quantity
        self.amount = amount
        self.currency = currency
        self.ordered_at = ""
        self.last_ms = 0


class _LineCapture:
    """A write target for csv.writer: `writerow` hands over each whole line in one write."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line = ""

    def write(self, text: str) -> int:
        self.line = text
        return len(text)


class EventStream(Iterator[Event]):
    """An endless, seeded iterator of events; see the module docstring for what it simulates."""

    def __init__(
        self,
        feeds: FeedMix | str = "customers,orders",
        *,
        seed: int,
        clock: Clock,
        duplicate_rate: float = 0.0,
        malformed_rate: float = 0.0,
        bootstrap_customers: int = 10,
    ) -> None:
        mix = parse_feed_mix(feeds) if isinstance(feeds, str) else feeds
        if not 0.0 <= duplicate_rate <= 1.0 or not 0.0 <= malformed_rate <= 1.0:
            raise ConfigError("duplicate and malformed rates must be between 0 and 1")
        if duplicate_rate + malformed_rate > 1.0:
            raise ConfigError("duplicate rate + malformed rate must not exceed 1")
        if bootstrap_customers < 0:
            raise ConfigError("bootstrap customers must be >= 0")
        self.mix = mix
        self._clock = clock
        self._rng = random.Random(seed)
        self._faults = random.Random(f"{seed}/faults")
        self._duplicate_rate = duplicate_rate
        self._fault_rate = duplicate_rate + malformed_rate
        self._feeds = mix.feeds
        total = sum(weight for _, weight in mix.weights)
        cumulative, running = [], 0.0
        for _, weight in mix.weights:
            running += weight / total
            cumulative.append(running)
        self._cumulative = cumulative
        self._emit_customers = "customers" in self._feeds
        self._bootstrap_left = bootstrap_customers if self._emit_customers else 0
        self._customers: list[_Customer] = []  # every customer that exists (emitted or not)
        self._open_orders: list[_Order] = []
        self._order_count = 0
        self._history: dict[str, list[str]] = {feed: [] for feed in self._feeds}
        self._history_next: dict[str, int] = dict.fromkeys(self._feeds, 0)
        self._last_fields: dict[str, list[str]] = {}
        self._format_ts = TimestampFormatter()
        self._capture = _LineCapture()
        self._writer = csv.writer(self._capture, lineterminator="\n")

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        now_ms = int(self._clock.time() * 1000)
        if self._bootstrap_left > 0:
            self._bootstrap_left -= 1
            return self._fresh("customers", now_ms, new=True)
        feed = self._pick_feed()
        if self._fault_rate:
            draw = self._faults.random()
            if draw < self._duplicate_rate:
                history = self._history[feed]
                if history:
                    line = history[self._faults.randrange(len(history))]
                    return Event(feed, line, DUPLICATE)
            elif draw < self._fault_rate and feed in self._last_fields:
                return Event(feed, self._malformed(feed, now_ms), MALFORMED)
        return self._fresh(feed, now_ms)

    # -- feeds ---------------------------------------------------------------------------------

    def _pick_feed(self) -> str:
        feeds = self._feeds
        if len(feeds) == 1:
            return feeds[0]
        draw = self._rng.random()
        for feed, bound in zip(feeds, self._cumulative, strict=True):
            if draw < bound:
                return feed
        return feeds[-1]

    def _fresh(self, feed: str, now_ms: int, *, new: bool = False) -> Event:
        if feed == "customers":
            fields = self._customer_fields(now_ms, new=new)
        else:
            if not self._customers and self._emit_customers:
                # An order needs a customer that was already emitted: emit one first.
                return self._fresh("customers", now_ms, new=True)
            fields = self._order_fields(now_ms)
        self._writer.writerow(fields)
        line = self._capture.line
        self._last_fields[feed] = fields
        if self._duplicate_rate:
            self._remember(feed, line)
        return Event(feed, line, EVENT)

    def _remember(self, feed: str, line: str) -> None:
        history = self._history[feed]
        if len(history) < HISTORY_SIZE:
            history.append(line)
        else:
            position = self._history_next[feed]
            history[position] = line
            self._history_next[feed] = (position + 1) % HISTORY_SIZE

    # -- customers -----------------------------------------------------------------------------

    def _new_customer(self, now_ms: int) -> _Customer:
        rng = self._rng
        number = len(self._customers) + 1
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        plain = unicodedata.normalize("NFKD", f"{first}.{last}".lower().translate(_NOT_DECOMPOSED))
        slug = "".join(ch for ch in plain if ch == "." or (ch.isascii() and ch.isalnum()))
        customer = _Customer(
            customer_id=f"cus_{number:06d}",
            slug=slug,
            email=f"{slug}{number}@{rng.choice(EMAIL_DOMAINS)}",
            full_name=f"{first} {last}",
            country=rng.choice(COUNTRIES),
            # Most customers start free; upgrades come as updates.
            tier=TIERS[0] if rng.random() < 0.7 else rng.choice(TIERS[1:]),
        )
        customer.created_at = self._format_ts(now_ms)
        customer.last_ms = now_ms
        self._customers.append(customer)
        return customer

    def _customer_fields(self, now_ms: int, *, new: bool) -> list[str]:
        rng = self._rng
        customers = self._customers
        if new or not customers or rng.random() < NEW_CUSTOMER_SHARE:
            customer = self._new_customer(now_ms)
        else:
            customer = customers[rng.randrange(len(customers))]
            change = rng.random()
            if change < 0.6:
                customer.tier = rng.choice([tier for tier in TIERS if tier != customer.tier])
            elif change < 0.9:
                number = customer.customer_id[4:].lstrip("0")
                customer.email = f"{customer.slug}{number}@{rng.choice(EMAIL_DOMAINS)}"
            else:
                customer.country = rng.choice(COUNTRIES)
            customer.last_ms = max(now_ms, customer.last_ms + 1)
        return [
            customer.customer_id,
            customer.email,
            customer.full_name,
            customer.country,
            customer.tier,
            customer.created_at,
            self._format_ts(customer.last_ms),
        ]

    # -- orders --------------------------------------------------------------------------------

    def _order_fields(self, now_ms: int) -> list[str]:
        rng = self._rng
        open_orders = self._open_orders
        if not open_orders or (
            len(open_orders) < MAX_OPEN_ORDERS and rng.random() < NEW_ORDER_SHARE
        ):
            order = self._new_order(now_ms)
        else:
            index = rng.randrange(len(open_orders))
            order = open_orders[index]
            following, chance = _NEXT_STATUS[order.status]
            order.status = following if rng.random() < chance else "cancelled"
            order.last_ms = max(now_ms, order.last_ms + 1)
            if order.status in _TERMINAL:
                # Swap-remove: O(1), and order within the open list does not matter.
                open_orders[index] = open_orders[-1]
                open_orders.pop()
        return [
            order.order_id,
            order.customer_id,
            order.status,
            str(order.quantity),
            order.amount,
            order.currency,
            order.ordered_at,
            self._format_ts(order.last_ms),
        ]

    def _new_order(self, now_ms: int) -> _Order:
        rng = self._rng
        customers = self._customers
        if not self._emit_customers and (not customers or rng.random() < 0.1):
            # Without a customers feed, the population still grows, silently.
            self._new_customer(now_ms)
        customer = customers[rng.randrange(len(customers))]
        self._order_count += 1
        quantity = rng.randint(1, 10)
        cents = quantity * rng.randint(100, 50_000)
        order = _Order(
            order_id=f"ord_{self._order_count:010d}",
            customer_id=customer.customer_id,
            quantity=quantity,
            amount=f"{cents // 100}.{cents % 100:02d}",
            currency=rng.choice(CURRENCIES),
        )
        order.ordered_at = self._format_ts(now_ms)
        order.last_ms = now_ms
        self._open_orders.append(order)
        return order

    # -- faults --------------------------------------------------------------------------------

    def _malformed(self, feed: str, now_ms: int) -> str:
        fields = list(self._last_fields[feed])
        fields[-1] = self._format_ts(now_ms)
        kinds = MALFORMED_KINDS if feed == "orders" else MALFORMED_KINDS[:2]
        kind = self._faults.choice(kinds)
        if kind == "missing_column":
            fields.pop()
        elif kind == "extra_column":
            fields.append("unexpected")
        else:
            fields[FEED_COLUMNS["orders"].index("amount")] = self._faults.choice(
                ("N/A", "12.34.56", "abc", "1e", "--5")
            )
        self._writer.writerow(fields)
        return self._capture.line


def iter_events(
    feeds: FeedMix | str = "customers,orders",
    *,
    seed: int,
    clock: Clock,
    duplicate_rate: float = 0.0,
    malformed_rate: float = 0.0,
    bootstrap_customers: int = 10,
) -> Iterator[Event]:
    """An endless stream of events for `feeds`, the same for the same seed and clock readings."""
    return EventStream(
        feeds,
        seed=seed,
        clock=clock,
        duplicate_rate=duplicate_rate,
        malformed_rate=malformed_rate,
        bootstrap_customers=bootstrap_customers,
    )
