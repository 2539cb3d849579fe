"""The feeds the generator knows: their columns (in spec order), value domains and the mix.

Column lists mirror pipelines/customers.yaml and pipelines/orders.yaml; the generator cannot read
those specs on an edge box, so tests compare the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamline_edge.errors import ConfigError

FEED_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "email",
        "full_name",
        "country",
        "tier",
        "created_at",
        "updated_at",
    ),
    "orders": (
        "order_id",
        "customer_id",
        "status",
        "quantity",
        "amount",
        "currency",
        "ordered_at",
        "updated_at",
    ),
}

# About one customer event per five order events.
DEFAULT_WEIGHTS: Mapping[str, float] = {"customers": 1.0, "orders": 5.0}

TIERS = ("free", "plus", "pro")
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
CURRENCIES = ("EUR", "USD", "GBP")
COUNTRIES = (
    "DE", "FR", "GB", "IE", "NL", "BE", "ES", "PT", "IT", "AT", "CH", "SE", "NO", "DK", "FI",
    "PL", "CZ", "US", "CA", "MX", "BR", "AR", "JP", "KR", "IN", "SG", "AU", "NZ", "ZA", "NG",
)  # fmt: skip
FIRST_NAMES = (
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Edsger", "Frances",
    "Sophie", "Lucas", "Amélie", "Jörg", "Zoë", "Søren", "Chloé", "José", "Aoife", "Niamh",
    "Mei", "Hiro", "Priya", "Arjun", "Fatima", "Omar", "Olga", "Ivan", "Lena", "Mateo",
)  # fmt: skip
# Some names carry commas, quotes and apostrophes so the CSV quoting path is always exercised.
LAST_NAMES = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
    "Dijkstra", "Allen", "Müller", "García", "O'Brien", "Núñez", "Kowalski", "Nakamura",
    "Smith, Jr.", 'Van "the Man" Dyke', "Okafor", "Petrov", "Rossi", "Dubois", "Jensen",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "edge.example")


@dataclass(frozen=True)
class FeedMix:
    """Which feeds to emit and their relative weights (e.g. customers 1, orders 5)."""

    weights: tuple[tuple[str, float], ...]

    @property
    def feeds(self) -> tuple[str, ...]:
        """Feed names in the order given."""
        return tuple(name for name, _ in self.weights)


def parse_feed_mix(text: str | Sequence[str]) -> FeedMix:
    """Parse `customers,orders` or `customers:1,orders:5` (or a list of such items) into a mix."""
    items = text.split(",") if isinstance(text, str) else list(text)
    weights: dict[str, float] = {}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        name, _, weight_text = item.partition(":")
        name = name.strip()
        if name not in FEED_COLUMNS:
            known = ", ".join(sorted(FEED_COLUMNS))
            raise ConfigError(f"unknown feed {name!r} (known feeds: {known})")
        if name in weights:
            raise ConfigError(f"feed {name!r} is listed twice")
        if weight_text:
            try:
                weight = float(weight_text)
            except ValueError:
                raise ConfigError(f"feed weight {weight_text!r} is not a number") from None
            if not weight > 0:
                raise ConfigError(f"feed weight for {name!r} must be > 0")
        else:
            weight = DEFAULT_WEIGHTS[name]
        weights[name] = weight
    if not weights:
        raise ConfigError("no feeds given")
    return FeedMix(tuple(weights.items()))
