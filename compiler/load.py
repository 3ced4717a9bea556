"""Read YAML and keep where each value came from.

The data and its positions are kept apart: `Source.data` is plain Python, and
`Source.lines` maps a path such as ("nodes", 2, "as_number") to its (line, column),
so strict models never see marker keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml is ~10x faster; positions (marks) are the same
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader  # type: ignore[assignment]

from compiler.errors import Problem, SpecError

__all__ = ["Loc", "SafeLoader", "Source", "format_loc", "parse_yaml", "read_yaml"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """A parsed YAML document with a side table of positions (1-based line and column)."""

    path: Path
    data: Any
    lines: dict[Loc, tuple[int, int]] = field(default_factory=dict)
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


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, tuple[int, int]]) -> None:
    lines[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _walk(value_node, (*loc, str(key_node.value)), lines)
                lines[(*loc, str(key_node.value))] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), lines)


def parse_yaml(text: str, path: Path) -> Source:
    """Parse one YAML document; syntax errors become a SpecError with line and column."""
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or str(exc)
        raise SpecError(
            [Problem(str(path), line, column, "", f"YAML syntax error: {reason}")]
        ) from exc
    lines: dict[Loc, tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), lines)
    return Source(path=path, data=data, lines=lines)


def parse_yaml_documents(text: str, path: Path) -> list[Source]:
    """Parse a multi-document YAML stream (policy files), one Source per non-empty document."""
    try:
        nodes = list(yaml.compose_all(text, Loader=SafeLoader))
        docs = list(yaml.load_all(text, Loader=SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or str(exc)
        raise SpecError(
            [Problem(str(path), line, column, "", f"YAML syntax error: {reason}")]
        ) from exc
    sources = []
    for node, data in zip(nodes, docs, strict=True):
        if node is None or data is None:
            continue
        lines: dict[Loc, tuple[int, int]] = {}
        _walk(node, (), lines)
        sources.append(Source(path=path, data=data, lines=lines))
    return sources


def read_yaml(path: Path) -> Source:
    """Read and parse a YAML file, reporting a missing or unreadable file as a SpecError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            [Problem(str(path), None, None, "", f"cannot read file: {exc.strerror}")]
        ) from exc
    return parse_yaml(text, path)
