"""One error hierarchy: spec errors are values, everything else derives from StreamlineError."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class SpecError:
    """A problem in a spec file, located at a line and column (1-based)."""

    file: str
    line: int
    col: int
    json_path: str
    message: str
    hint: str | None = None

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


def format_errors(errors: list[SpecError]) -> str:
    """Format errors sorted by file and line, followed by the `N errors in M files` count."""
    ordered = sorted(errors)
    lines = [error.format() for error in ordered]
    files = len({error.file for error in ordered})
    lines.append(f"{_plural(len(ordered), 'error')} in {_plural(files, 'file')}")
    return "\n".join(lines)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
