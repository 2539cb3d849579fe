"""One error hierarchy: spec errors are values, everything else derives from StreamlineError."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import total_ordering

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@total_ordering
@dataclass(frozen=True)
class SpecError:
    """A problem in a spec file, located at a line and column (1-based)."""

    file: str
    line: int
    col: int
    json_path: str
    message: str
    hint: str | None = None

    def sort_key(self) -> tuple[str, int, int, str, str, str]:
        """Order of reports: by file, then line and column (a missing hint sorts first)."""
        return (self.file, self.line, self.col, self.json_path, self.message, self.hint or "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SpecError):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def format(self) -> str:
        """Render as `file:line:col: $.path: message` plus an optional hint line."""
        text = f"{self.file}:{self.line}:{self.col}: {self.json_path}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class StreamlineError(Exception):
    """Root of every error StreamLine raises on purpose."""


class UsageError(StreamlineError):
    """The command line or its environment is wrong (exit code 2)."""


class SpecsInvalid(StreamlineError):
    """One or more specs failed validation; carries every error found."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = sorted(errors)
        super().__init__(format_errors(self.errors))


class BatchError(StreamlineError):
    """A batch cannot be claimed or finalized as asked."""


def json_path(parts: Sequence[str | int]) -> str:
    """Format a JSON path like $.columns[2].name (odd keys as $['a.b'])."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}"
        else:
            text += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return text


def format_errors(errors: list[SpecError]) -> str:
    """Format errors sorted by file and line, followed by the `N errors in M files` count."""
    ordered = sorted(errors)
    lines = [error.format() for error in ordered]
    files = len({error.file for error in ordered})
    lines.append(f"{_plural(len(ordered), 'error')} in {_plural(files, 'file')}")
    return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
