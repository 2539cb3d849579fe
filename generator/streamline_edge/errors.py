"""One error hierarchy: everything the generator raises on purpose derives from EdgeError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamline_edge.stats import GeneratorStats


class EdgeError(Exception):
    """Root of every error the generator raises on purpose."""


class ConfigError(EdgeError):
    """The configuration (flags, feeds, target settings) is wrong; the CLI exits 2."""


class DeliveryError(EdgeError):
    """Records could not be delivered after every retry; the CLI exits 1.

    `stats` holds what was sent before the failure when the error escapes `run()`.
    """

    def __init__(self, message: str, stats: GeneratorStats | None = None) -> None:
        super().__init__(message)
        self.stats = stats
