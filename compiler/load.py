"""Read YAML and keep where each value came from.

The data and its positions are kept apart: `Source.data` is plain Python, and
`Source.lines` maps a path such as ("nodes", 2, "as_number") to its (line, column),
so strict models never see marker keys. The table is built from the composed document the
first time a position is asked for: a valid 5,000-node file never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml is ~10x faster; positions (marks) are the same
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader  # type: ignore[assignment]

from calicc.compiler.errors import Problem, SpecError
from calicc.contract.text import cut

__all__ = [
    "Loc",
    "SafeLoader",
    "Source",
    "cut",
    "format_loc",
    "parse_yaml",
    "read_input",
    "read_yaml",
]

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """A parsed YAML document with a side table of positions (1-based line and column)."""

    path: Path
    data: Any
    lines: Mapping[Loc, tuple[int, int]] = field(default_factory=dict)
    files: dict[Loc, str] = field(default_factory=dict)

    def position(self, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
        """Return the position of the deepest known prefix of `loc`."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), (None, None))

    def file_of(self, loc: Sequence[str | int]) -> str:
        """Return the file a value came from (merged inputs such as ICP config + hosts)."""
        key = tuple(loc)
        while key:
            if key in self.files:
                return self.files[key]
            key = key[:-1]
        return str(self.path)

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        """Build a Problem at `loc`, in the file the value came from."""
        line, column = self.position(loc)
        return Problem(self.file_of(loc), line, column, format_loc(loc), message)


def format_loc(loc: Sequence[str | int]) -> str:
    """Render ("nodes", 2, "as_number") as nodes[2].as_number."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


MAX_INPUT_BYTES = 8 * 2**20  # a 5,000-node cluster.yaml is about 1 MB
MAX_NODES = 320_000  # YAML values in a file (~400 bytes of memory each while composed)
COUNT_NODES_FROM = 256 * 1024  # a smaller file cannot hold MAX_NODES values
MAX_VALUES = 1_000_000  # values after alias expansion (a "billion laughs" expands to 10**9)
NODE_EVENTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent)
MERGE_TAG = "tag:yaml.org,2002:merge"


def read_input(path: Path) -> str:
    """Read an input file as UTF-8 text: bounded size, located decode errors, BOM dropped."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = b"" if size > MAX_INPUT_BYTES else handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecError(
            [Problem(str(path), None, None, "", f"cannot read file: {reason}")]
        ) from exc
    if size > MAX_INPUT_BYTES or len(raw) > MAX_INPUT_BYTES:
        message = f"file is larger than {MAX_INPUT_BYTES // 2**20} MiB; is this the right file?"
        raise SpecError([Problem(str(path), None, None, "", message)])
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"byte 0x{raw[exc.start]:02x} is not UTF-8 text; save the file as UTF-8"
        raise SpecError([Problem(str(path), line, column, "", message)]) from exc


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _problem_at(path: Path, node: yaml.Node, message: str) -> SpecError:
    line, column = _mark(node)
    return SpecError([Problem(str(path), line, column, "", message)])


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_keys(node: yaml.MappingNode, path: Path) -> None:
    """Refuse a key written twice in one mapping (YAML says keys are unique; last-wins hides it)."""
    seen: dict[str, yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
            continue
        first = seen.setdefault(str(key_node.value), key_node)
        if first is not key_node:
            where = _mark(first)[0]
            message = f"duplicate key {cut(key_node.value)!r} (first at line {where}); keep one"
            raise _problem_at(path, key_node, message)


def _size(node: yaml.Node, sizes: dict[int, int]) -> int:
    return 1 if isinstance(node, yaml.ScalarNode) else sizes[id(node)]


def _check_tree(root: yaml.Node, path: Path) -> None:
    """Refuse duplicate keys, recursive aliases and alias expansions past MAX_VALUES.

    Each distinct collection is visited once (aliases share nodes) and scalars are counted
    where they stand, so this is linear in the file.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            sizes[key] = 1 + sum(_size(child, sizes) for child in _children(node))
            if sizes[key] > MAX_VALUES:
                message = f"aliases expand to more than {MAX_VALUES} values; write them out"
                raise _problem_at(path, node, message)
            continue
        if key in sizes or isinstance(node, yaml.ScalarNode):
            continue
        if key in active:
            raise _problem_at(path, node, "an alias refers to the value that contains it")
        active.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, path)
        stack.append((node, True))
        stack.extend(
            (child, False)
            for child in _children(node)
            if not isinstance(child, yaml.ScalarNode) and id(child) not in sizes
        )


def _walk(root: yaml.Node) -> dict[Loc, tuple[int, int]]:
    """Record the position of each value once; an alias's content keeps its anchor's positions.

    Paths below an alias resolve to the alias itself (Source.position takes the deepest known
    prefix), so the table stays linear in the file however far aliases expand.
    """
    lines: dict[Loc, tuple[int, int]] = {}
    keys: dict[Loc, tuple[int, int]] = {}  # a key's position wins over its value's
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        lines[loc] = _mark(node)
        if id(node) in walked:
            continue
        walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:  # merged keys first, own keys last
                if isinstance(key_node, yaml.ScalarNode):
                    here = (*loc, str(key_node.value))
                    keys[here] = _mark(key_node)
                    if not isinstance(value_node, yaml.ScalarNode):
                        stack.append((value_node, here))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                if isinstance(item, yaml.ScalarNode):
                    lines[(*loc, index)] = _mark(item)
                else:
                    stack.append((item, (*loc, index)))
    lines.update(keys)
    return lines


def _compose(loader: SafeLoader, single: bool) -> list[yaml.Node]:
    if single:
        node = loader.get_single_node()
        return [] if node is None else [node]
    nodes = []
    while loader.check_node():
        each = loader.get_node()
        if each is not None:
            nodes.append(each)
    return nodes


def _count_nodes(text: str, path: Path) -> None:
    """Refuse a file with more than MAX_NODES values before composing it (bounded memory)."""
    if len(text) < COUNT_NODES_FROM:
        return
    count = 0
    for event in yaml.parse(text, Loader=SafeLoader):
        count += isinstance(event, NODE_EVENTS)
        if count > MAX_NODES:
            mark = event.start_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
            message = f"more than {MAX_NODES} values in one file; split it or write less"
            raise SpecError([Problem(str(path), line, column, "", message)])


def _documents(text: str, path: Path, single: bool) -> list[tuple[yaml.Node, Any]]:
    """Count, compose, check, then construct each document; errors carry line and column."""
    loader = SafeLoader(text)
    try:
        _count_nodes(text, path)
        nodes = _compose(loader, single)
        for node in nodes:
            _check_tree(node, path)
        return [(node, loader.construct_document(node)) for node in nodes]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or str(exc)
        problem = Problem(str(path), line, column, "", f"YAML syntax error: {cut(reason)}")
        raise SpecError([problem]) from exc
    except (yaml.YAMLError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else cut(str(exc))
        raise SpecError([Problem(str(path), None, None, "", f"YAML error: {reason}")]) from exc
    finally:
        loader.dispose()


class LazyLines(Mapping[Loc, tuple[int, int]]):
    """The position table of a composed document, walked on first use."""

    def __init__(self, root: yaml.Node) -> None:
        self._root: yaml.Node | None = root
        self._table: dict[Loc, tuple[int, int]] = {}

    def _lines(self) -> dict[Loc, tuple[int, int]]:
        if self._root is not None:
            self._table = _walk(self._root)
            self._root = None
        return self._table

    def __getitem__(self, key: Loc) -> tuple[int, int]:
        return self._lines()[key]

    def __iter__(self) -> Iterator[Loc]:
        return iter(self._lines())

    def __len__(self) -> int:
        return len(self._lines())


def _source(path: Path, node: yaml.Node, data: Any) -> Source:
    return Source(path=path, data=data, lines=LazyLines(node))


def parse_yaml(text: str, path: Path) -> Source:
    """Parse one YAML document; syntax errors become a SpecError with line and column."""
    pairs = _documents(text, path, single=True)
    if not pairs:
        return Source(path=path, data=None)
    return _source(path, *pairs[0])


def parse_yaml_documents(text: str, path: Path) -> list[Source]:
    """Parse a multi-document YAML stream (policy files), one Source per non-empty document."""
    return [
        _source(path, node, data)
        for node, data in _documents(text, path, single=False)
        if data is not None
    ]


def read_yaml(path: Path) -> Source:
    """Read and parse a YAML file, reporting a missing or unreadable file as a SpecError."""
    return parse_yaml(read_input(path), path)
