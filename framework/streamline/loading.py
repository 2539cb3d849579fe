"""Load spec files as YAML documents that remember where every key and value sits."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from streamline.errors import SpecError, json_path

SPEC_SUFFIXES = (".yaml", ".yml")

_MISSING = object()


@dataclass(frozen=True)
class LoadedSpec:
    """A parsed spec: its display path, the position-aware document and a plain copy.

    document is None when the spec was loaded without positions (load_spec(positions=False)):
    it is parsed from text the first time a position is asked for (positioned).
    """

    file: str
    path: Path
    document: CommentedMap | None
    data: dict[str, Any]
    text: str | None = field(default=None, repr=False, compare=False)

    def locate(self, json_path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """The 1-based (line, col) of the node at json_path, or of its nearest present parent.

        With key=True and a mapping entry, point at the key rather than the value.
        """
        return locate(self.positioned(), json_path, key=key)

    def positioned(self) -> CommentedMap:
        """The position-aware document, parsed from text on first use when loaded without."""
        if self.document is None:
            document = _round_trip(self.text or "")
            object.__setattr__(self, "document", document)  # a cache: data is the same either way
            return document
        return self.document


def display_path(path: Path, base: Path | None = None) -> str:
    """Path as users know it: relative to base (default: the working directory) when below it."""
    try:
        return str(path.resolve().relative_to((base or Path.cwd()).resolve()))
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
                    if p.suffix in SPEC_SUFFIXES
                    and p.is_file()
                    and not p.name.startswith((".", "_"))
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            missing.append(str(path))
    return found, missing


def load_spec(
    path: Path, base: Path | None = None, *, positions: bool = True
) -> LoadedSpec | SpecError:
    """Parse one spec file; a syntax error, duplicate key or empty file becomes a SpecError.

    With positions=False, a spec that libyaml's C parser reads to the very data ruamel would
    (plain_by_libyaml) is loaded without positions, which are parsed when first asked for
    (LoadedSpec.positioned): ruamel's round-trip parser, in pure Python, is about 20 times slower,
    and the positions serve only to name where an error is. Any other spec, and every spec that
    is not valid YAML, is read by ruamel as with positions=True, so errors are the same.
    """
    file = display_path(path, base)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return SpecError(file, 1, 1, "$", f"cannot read file: {exc.strerror}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(raw, exc.start)
        return SpecError(
            file, line, col, "$", f"not UTF-8 text: {exc.reason}", hint="save the file as UTF-8"
        )
    if not positions:
        data = plain_by_libyaml(text)
        if data is not None:
            return LoadedSpec(file=file, path=path, document=None, data=data, text=text)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        return _yaml_error(file, text, exc)
    except YAMLError as exc:
        return SpecError(file, 1, 1, "$", f"YAML error: {' '.join(str(exc).split())}")
    if document is None:
        return SpecError(
            file,
            1,
            1,
            "$",
            "empty spec",
            hint="a spec needs feed, source, columns, key, ordering, raw and mart",
        )
    if not isinstance(document, CommentedMap):
        lc = getattr(document, "lc", None)
        line, col = (lc.line + 1, lc.col + 1) if lc is not None and lc.line is not None else (1, 1)
        return SpecError(
            file, line, col, "$", f"a spec must be a mapping, not {_yaml_kind(document)}"
        )
    try:
        data = to_plain(document)
    except SpecTooLarge as exc:
        return SpecError(
            file, 1, 1, "$", str(exc), "a spec this large is a mistake: check its YAML aliases (*)"
        )
    return LoadedSpec(file=file, path=path, document=document, data=data)


def _round_trip(text: str) -> CommentedMap:
    """text through ruamel's round-trip loader, as load_spec reads it; an empty mapping (every
    position 1:1) should ruamel refuse what libyaml read."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except YAMLError:
        return CommentedMap()
    return document if isinstance(document, CommentedMap) else CommentedMap()


# --- the fast path: libyaml, where it reads the same data as ruamel ------------------------------

_PLAIN, _QUOTED, _COLLECTION = "streamline:plain", "streamline:quoted", "streamline:collection"
_WORDS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~", ""), None),
}
"""Plain scalars that YAML 1.2 (ruamel's default) reads as booleans and null. Not yes/no/on/off,
which PyYAML's YAML 1.1 resolver would read as booleans."""
_CLAIMED = frozenset("0123456789+-.<=")
"""First characters of the plain scalars ruamel may read as anything but a string (its implicit
resolvers: numbers, timestamps, merge keys, values), bool and null words aside."""
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\.[0-9]+(?:[eE][-+]?[0-9]+)?")


class _Unsure(Exception):
    """The libyaml read may differ from ruamel's: let ruamel read the spec."""


class _Resolver(pyyaml.resolver.BaseResolver):
    """Marks how each node was written instead of typing it: the typing is _plain's, YAML 1.2's."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is pyyaml.ScalarNode:
            plain, quoted = implicit
            return _PLAIN if plain else _QUOTED if quoted else "streamline:unsure"
        return _COLLECTION


_Composer: Any = None
try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml: every spec is read by ruamel
    pass
else:

    class _LibYamlComposer(CParser, _Resolver):
        """libyaml's C parser and composer, with _Resolver's marks."""

    _Composer = _LibYamlComposer


def _compose(text: str) -> Any:
    """The one document of text as PyYAML nodes, composed by libyaml with _Resolver's marks."""
    composer = _Composer(text)
    try:
        return composer.get_single_node()
    finally:
        composer.dispose()


def plain_by_libyaml(text: str) -> dict[str, Any] | None:
    """The spec's plain data (as to_plain gives it from ruamel's document), read with libyaml's C
    parser; None where that read might differ from ruamel's or the text is not one mapping:
    anything not plainly written (tags, merge keys, directives, duplicate, complex or typed keys,
    recursive aliases) and any plain scalar whose type ruamel might read otherwise (a number with
    leading zeros, underscores or an exponent, a timestamp, ...). None also for every YAML error,
    so that ruamel reports it with its position and hints. Aliases are copied, as to_plain does."""
    if _Composer is None or text.startswith("%") or "\n%" in text:
        return None  # a %YAML directive may change the scalars' types
    try:
        root = _compose(text)
    except (pyyaml.YAMLError, ValueError):
        return None
    if not isinstance(root, pyyaml.MappingNode):
        return None
    try:
        data = _plain(root, [0])
    except (_Unsure, RecursionError):  # RecursionError: nested deeper than Python recurses
        return None
    return data if isinstance(data, dict) else None


def _plain(node: Any, count: list[int], within: frozenset[int] = frozenset()) -> Any:
    """node as plain data, the types ruamel's round-trip loader and to_plain give; or _Unsure.

    within: the collections node is inside (a node among them is a recursive alias)."""
    count[0] += 1  # an alias's node is met again: a copy each time, counted, as in to_plain
    if count[0] > MAX_VALUES:  # ruamel reports it (SpecTooLarge)
        raise _Unsure
    if isinstance(node, pyyaml.ScalarNode):
        if node.tag == _QUOTED:
            return node.value
        if node.tag != _PLAIN:
            raise _Unsure
        value: str = node.value
        if value in _WORDS:
            return _WORDS[value]
        if value[:1] in _CLAIMED:
            if _INT.fullmatch(value):
                return int(value)
            if _FLOAT.fullmatch(value):
                return float(value)
            raise _Unsure
        return value
    if node.tag != _COLLECTION or id(node) in within:
        raise _Unsure
    within = within | {id(node)}
    if isinstance(node, pyyaml.SequenceNode):
        return [_plain(item, count, within) for item in node.value]
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, pyyaml.ScalarNode):
            raise _Unsure
        key = _plain(key_node, count)
        if not isinstance(key, str) or key in out:  # a key ruamel types, or one it refuses
            raise _Unsure  # as a duplicate, with both positions
        out[key] = _plain(value_node, count, within)
    return out


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset whose line start decodes."""
    before = raw[:offset]
    line_start = before.rfind(b"\n") + 1
    column = len(before[line_start:].decode("utf-8", errors="replace"))
    return before.count(b"\n") + 1, column + 1


_CONTEXT_HINTS = {
    "while parsing a flow sequence": "close the [ list opened at line {line} with ]",
    "while parsing a flow mapping": "close the { mapping opened at line {line} with }",
    "while scanning a quoted scalar": "close the quote opened at line {line}",
}


def _yaml_error(file: str, text: str, exc: MarkedYAMLError) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = " ".join((exc.problem or "invalid YAML").split())
    if "duplicate key" in problem:
        return _duplicate_key_error(file, text, exc, line, col, problem)
    if "found another document" in problem:
        return SpecError(
            file,
            line,
            col,
            "$",
            "YAML syntax error: a spec is one YAML document, but a second one starts here",
            hint="put each feed in its own file",
        )
    message = f"YAML syntax error: {problem}"
    context_line = exc.context_mark.line + 1 if exc.context_mark is not None else None
    if exc.context and context_line is not None:
        message += f" ({exc.context} at line {context_line})"
    hint = None
    if "'\\t'" in problem:
        hint = "YAML indentation uses spaces, not tabs"
    elif "mapping values are not allowed here" in problem:
        hint = "quote a value that contains ': '"
    elif exc.context in _CONTEXT_HINTS and context_line is not None:
        hint = _CONTEXT_HINTS[exc.context].format(line=context_line)
    return SpecError(file, line, col, "$", message, hint=hint)


def _duplicate_key_error(
    file: str, text: str, exc: MarkedYAMLError, line: int, col: int, problem: str
) -> SpecError:
    key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
    message = f"duplicate key '{key}'"
    found = _first_occurrence(text, exc.context_mark, key)
    if found is None:
        return SpecError(file, line, col, "$", message, hint="each key may appear once")
    path, first_line = found
    hint = f"'{key}' is first set at line {first_line}; keep one of them"
    return SpecError(file, line, col, json_path([*path, key]), message, hint=hint)


def _first_occurrence(text: str, mapping_mark: Any, key: str) -> tuple[list[str | int], int] | None:
    """JSON path of the mapping starting at mapping_mark and the 1-based line of key's first use."""
    if mapping_mark is None:
        return None
    try:
        root = YAML(typ="rt").compose(text)
    except YAMLError:
        return None
    stack: list[tuple[Node, list[str | int]]] = [(root, [])] if root is not None else []
    while stack:
        node, path = stack.pop()
        if isinstance(node, MappingNode):
            start = node.start_mark
            if (start.line, start.column) == (mapping_mark.line, mapping_mark.column):
                for key_node, _ in node.value:
                    if isinstance(key_node, ScalarNode) and key_node.value == key:
                        return path, key_node.start_mark.line + 1
                return None
            stack.extend(
                (value, [*path, str(k.value)])
                for k, value in node.value
                if isinstance(k, ScalarNode)
            )
        elif isinstance(node, SequenceNode):
            stack.extend((item, [*path, index]) for index, item in enumerate(node.value))
    return None


def _yaml_kind(node: Any) -> str:
    if isinstance(node, list):
        return "a list"
    if isinstance(node, bool):
        return "a boolean"
    if isinstance(node, int | float):
        return "a number"
    if isinstance(node, dt.date):
        return "a date"
    return "a string"


MAX_VALUES = 100_000
"""Most values a spec may expand to: YAML aliases can make a small file expand without bound
(a 'billion laughs'), which would stall the DAG processor on every parse for every feed."""


class SpecTooLarge(ValueError):
    """The spec expands to more than MAX_VALUES values."""


def to_plain(node: Any, _count: list[int] | None = None) -> Any:
    """Convert ruamel's round-trip types into plain dict/list/str/int/float/bool values.

    Raises SpecTooLarge past MAX_VALUES values (aliases expanded)."""
    count = _count if _count is not None else [0]
    count[0] += 1
    if count[0] > MAX_VALUES:
        raise SpecTooLarge(f"the spec expands to more than {MAX_VALUES:,} values")
    if isinstance(node, dict):
        return {str(k): to_plain(v, count) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v, count) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node  # dates stay dates, so the schema reports they are not strings


def locate(document: Any, json_path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
    """Line and column (1-based) of the deepest node along json_path that exists in document.

    A value that is a non-empty block collection is located at its first entry; an empty value
    (`key:` with nothing after it) at its key, since YAML gives it no position of its own.
    """
    node = document
    line, col = _start(node)
    for index, part in enumerate(json_path):
        last = index == len(json_path) - 1
        if isinstance(node, CommentedMap):
            actual = _find_key(node, part)
            if actual is _MISSING:
                break
            child = node[actual]
            try:
                if (key and last) or child is None:
                    line, col = node.lc.key(actual)
                elif isinstance(child, CommentedMap | CommentedSeq) and child and _is_block(child):
                    line, col = _start(child)
                else:
                    line, col = node.lc.value(actual)
            except (KeyError, TypeError):  # a key from a merge (<<: *anchor) has no position
                break  # of its own here: point at the mapping that merges it
            node = child
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            child = node[part]
            if isinstance(child, CommentedMap | CommentedSeq) and child and _is_block(child):
                line, col = _start(child)
            else:
                line, col = node.lc.item(part)
            node = child
        else:
            break
    return line + 1, col + 1


def _find_key(node: CommentedMap, part: str | int) -> Any:
    """The key of node that part names: to_plain turned keys like 1 or 2024-01-01 into text."""
    if part in node:
        return part
    for candidate in node:
        if str(candidate) == str(part):
            return candidate
    return _MISSING


def _is_block(node: CommentedMap | CommentedSeq) -> bool:
    return not node.fa.flow_style()


def _start(node: Any) -> tuple[int, int]:
    """0-based (line, col) where a collection's first entry starts (0, 0 for anything else)."""
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return 0, 0
    if isinstance(node, CommentedMap) and node:
        try:
            line, col = node.lc.key(next(iter(node)))
        except (KeyError, TypeError):  # the first key came from a merge (<<: *anchor)
            return lc.line, lc.col
        return line, col
    if isinstance(node, CommentedSeq) and node:
        line, col = node.lc.item(0)
        return line, col
    return lc.line, lc.col
