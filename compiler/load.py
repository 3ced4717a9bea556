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


def _documents(text: str, path: Path, single: bool) -> list[tuple[yaml.Node, Any]]:
    """Compose and construct each document once; syntax errors carry line and column."""
    loader = SafeLoader(text)
    pairs: list[tuple[yaml.Node, Any]] = []
    try:
        if single:
            node = loader.get_single_node()
            if node is not None:
                pairs.append((node, loader.construct_document(node)))
        else:
            while loader.check_node():
                each = loader.get_node()
                if each is not None:
                    pairs.append((each, loader.construct_document(each)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or str(exc)
        problem = Problem(str(path), line, column, "", f"YAML syntax error: {reason}")
        raise SpecError([problem]) from exc
    finally:
        loader.dispose()
    return pairs


def _source(path: Path, node: yaml.Node, data: Any) -> Source:
    lines: dict[Loc, tuple[int, int]] = {}
    _walk(node, (), lines)
    return Source(path=path, data=data, lines=lines)


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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            [Problem(str(path), None, None, "", f"cannot read file: {exc.strerror}")]
        ) from exc
    return parse_yaml(text, path)
