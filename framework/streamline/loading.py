"""Load spec files as YAML documents that remember where every key and value sits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from streamline.errors import SpecError

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedSpec:
    """A parsed spec: its display path, the position-aware document and a plain copy."""

    file: str
    path: Path
    document: CommentedMap
    data: dict[str, Any]

    def locate(self, json_path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """Return the 1-based (line, col) of the node at json_path, or of its nearest present parent.

        With key=True and a mapping entry, point at the key rather than the value.
        """
        return locate(self.document, json_path, key=key)


def display_path(path: Path) -> str:
    """Path as users typed it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def find_spec_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """Expand files and folders into spec files; also return the paths that do not exist."""
    found: list[Path] = []
    missing: list[str] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in SPEC_SUFFIXES and p.is_file() and not p.name.startswith((".", "_"))
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            missing.append(str(path))
    return found, missing


def load_spec(path: Path) -> LoadedSpec | SpecError:
    """Parse one spec file; a syntax error, duplicate key or empty file becomes a SpecError."""
    file = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return SpecError(file, 1, 1, "$", f"not UTF-8 text: {exc.reason}")
    except OSError as exc:
        return SpecError(file, 1, 1, "$", f"cannot read file: {exc.strerror}")
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        return _yaml_error(file, exc)
    except YAMLError as exc:
        return SpecError(file, 1, 1, "$", f"YAML error: {exc}")
    if document is None:
        return SpecError(
            file, 1, 1, "$", "empty spec", hint="copy pipelines/orders.yaml as a starting point"
        )
    if not isinstance(document, CommentedMap):
        line, col = locate(document, [])
        return SpecError(
            file, line, col, "$", f"a spec must be a mapping, not a {_yaml_kind(document)}"
        )
    return LoadedSpec(file=file, path=path, document=document, data=to_plain(document))


def _yaml_error(file: str, exc: MarkedYAMLError) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    if "duplicate key" in problem:
        key = problem.split('"')[1] if '"' in problem else "?"
        first = exc.context_mark
        message = f"duplicate key '{key}'"
        hint = "each key may appear once in a mapping"
        if first is not None:
            hint = f"the mapping starting at line {first.line + 1} already has '{key}'"
        return SpecError(file, line, col, "$", message, hint=hint)
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    hint = None
    if "'\\t'" in problem:
        hint = "YAML indentation uses spaces, not tabs"
    return SpecError(file, line, col, "$", message, hint=hint)


def _yaml_kind(node: Any) -> str:
    if isinstance(node, CommentedSeq | list):
        return "list"
    return type(node).__name__


def to_plain(node: Any) -> Any:
    """Convert ruamel's round-trip types into plain dict/list/str/int/float/bool values."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.date):
        return node  # left as is so the schema reports it is not a string
    return node


def locate(document: Any, json_path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
    """Line and column (1-based) of the deepest node along json_path that exists in document."""
    node = document
    line, col = _start(node)
    for index, part in enumerate(json_path):
        last = index == len(json_path) - 1
        if isinstance(node, CommentedMap) and part in node:
            pos = node.lc.key(part) if (key and last) else node.lc.value(part)
            child = node[part]
            if not (key and last) and isinstance(child, CommentedMap | CommentedSeq) and child:
                # Block collections report their own first item more usefully than the colon.
                pos = _start(child) if _is_block(child) else pos
            line, col = pos[0] + 1, pos[1] + 1
            node = child
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.lc.item(part)
            line, col = pos[0] + 1, pos[1] + 1
            node = node[part]
        else:
            break
    return line, col


def _is_block(node: CommentedMap | CommentedSeq) -> bool:
    return not node.fa.flow_style()


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return 1, 1
    if isinstance(node, CommentedMap) and node:
        first = next(iter(node))
        pos = node.lc.key(first)
        return pos[0] + 1, pos[1] + 1
    if isinstance(node, CommentedSeq) and node:
        pos = node.lc.item(0)
        return pos[0] + 1, pos[1] + 1
    return lc.line + 1, lc.col + 1
