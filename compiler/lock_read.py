"""Read cluster.lock.yaml as input: located, strictly shaped, never trusted.

The lock is committed and can be edited by hand, so it is read like cluster.yaml: through the
located YAML loader (which refuses duplicate keys and alias bombs), every problem reported at
once as `cluster.lock.yaml:LINE:COL: FIELD: ...`. A lock exactly as calicc writes it is read by
a line parser that accepts nothing else (a tenth of the loader's time at 5,000 nodes); its
positions are composed only when a problem needs one. Its size is capped below the loader's own
limit: composing YAML costs about 55 bytes of memory per byte of input. A lock in the written
form may be larger (MAX_WRITTEN_BYTES: the `adopted:` entries of many running pods, from
`calicc import`); it is never composed, so its problems name their field without a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calicc.compiler.emit import digest
from calicc.compiler.errors import LockError, Problem, SpecError
from calicc.compiler.load import Loc, Source, parse_yaml, read_input
from calicc.compiler.lock import LOCK_VERSION, Lock, yaml_scalar
from calicc.compiler.lock_shape import shape_lock

MAX_LOCK_BYTES = 2 * 2**20  # about 20,000 nodes: what the YAML loader is given
MAX_WRITTEN_BYTES = 8 * 2**20  # in the form calicc writes (adopted pods: about 50,000 more)
MAX_SHOWN = 40  # problems printed; the rest are counted


class LockProblems(LockError):
    """The lock file is unreadable, misshapen or inconsistent; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.field, p.message))
        count = len(self.problems)
        files = sorted({p.file for p in self.problems})
        head = f"{count} problem{'s' if count != 1 else ''} in {', '.join(files)}"
        lines = [f"  {p}" for p in self.problems[:MAX_SHOWN]]
        if count > MAX_SHOWN:
            lines.append(f"  ... and {count - MAX_SHOWN} more")
        super().__init__("\n".join([head + ":", *lines]))


@dataclass(frozen=True)
class LockFile:
    """A lock as read from disk: the allocations, their positions and the file's digest."""

    path: Path
    lock: Lock
    source: Source
    digest: str | None  # sha256 of the text on disk; None when there is no lock file yet


def _text(path: Path) -> str:
    """Read the lock as text, refusing sizes no cluster's lock reaches before parsing."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        problem = Problem(str(path), None, None, "", f"cannot read: {exc.strerror}")
        raise LockProblems([problem]) from exc
    if size > MAX_WRITTEN_BYTES:
        raise LockProblems([_too_large(path, MAX_WRITTEN_BYTES)])
    try:
        return read_input(path)
    except SpecError as exc:
        raise LockProblems(exc.problems) from exc


def _too_large(path: Path, limit: int) -> Problem:
    message = (
        f"larger than {limit // 2**20} MiB, far more than the lock of any cluster calicc "
        "builds: restore it from git"
    )
    if limit < MAX_WRITTEN_BYTES:
        message += f" (a lock of up to {MAX_WRITTEN_BYTES // 2**20} MiB is read in the form "
        message += "calicc writes it, without hand edits)"
    return Problem(str(path), None, None, "", message)


def read_lock(path: Path) -> LockFile:
    """Read and shape-check a lock file; a missing file is an empty lock."""
    if not path.exists() and not path.is_symlink():
        return LockFile(path, Lock(), Source(path, None), None)
    text = _text(path)
    data = _written_data(text)
    if data is None and len(text) > MAX_LOCK_BYTES:  # composing costs ~55 bytes per byte
        raise LockProblems([_too_large(path, MAX_LOCK_BYTES)])
    try:
        source = (
            parse_yaml(text, path)
            if data is None
            else Source(path, data, lines=_DeferredLines(text, path))
        )
    except SpecError as exc:
        raise LockProblems(exc.problems) from exc
    lock, problems = shape_lock(source)
    if problems:
        raise LockProblems(problems)
    return LockFile(path, lock, source, digest(text))


class _DeferredLines(Mapping[Loc, tuple[int, int]]):
    """Positions of a lock the line parser read: composed only if a problem needs one."""

    def __init__(self, text: str, path: Path) -> None:
        self._text: str | None = text
        self._path = path
        self._table: Mapping[Loc, tuple[int, int]] = {}

    def _lines(self) -> Mapping[Loc, tuple[int, int]]:
        if self._text is not None and len(self._text) <= MAX_LOCK_BYTES:
            self._table = parse_yaml(self._text, self._path).lines
        self._text = None  # a larger lock's problems name their field, not their line
        return self._table

    def __getitem__(self, key: Loc) -> tuple[int, int]:
        return self._lines()[key]

    def __iter__(self) -> Iterator[Loc]:
        return iter(self._lines())

    def __len__(self) -> int:
        return len(self._lines())


class _NotWritten(Exception):
    """The text is not in the exact form Lock.to_yaml writes."""


_LOCK_LINE = re.compile(
    r"  (?P<node>[^ :][^ ]*):"
    r"|    blocks:(?P<blocks>)"
    r"|    blocks: \{\}(?P<no_blocks>)"
    r"|      (?P<pool>[^ :-][^ ]*):"
    r"|      (?P<empty_pool>[^ :-][^ ]*): \[\]"
    r"|      - (?P<block>[^ ]+)"
    r"|    tunnel_address: (?P<tunnel_address>[^ ]+)"
    r"|    tunnel_address_v6: (?P<tunnel_address_v6>[^ ]+)"
    r"|    vtep_mac: (?P<vtep_mac>[^ ]+)"
    r"|    vtep_mac_v6: (?P<vtep_mac_v6>[^ ]+)"
    r"|    adopted:(?P<adopted>)"
    r"|    - address: (?P<a_address>[^ ]+)"
    r"|      container_id: (?P<a_container_id>[^ ]+)"
    r"|      ifname: (?P<a_ifname>[^ ]+)"
    r"|      pod: (?P<a_pod>[^ ]+)"
)
_ENTRY_NEXT = {  # an adopted entry's keys, in the order yaml.dump writes them
    "a_address": "a_container_id",
    "a_container_id": "a_ifname",
    "a_ifname": "a_pod a_address blocks no_blocks",
    "a_pod": "a_address blocks no_blocks",
}


def _value(token: str) -> str:
    """Return the value of a scalar written as yaml.dump writes it (plain or single-quoted)."""
    value = token[1:-1] if len(token) > 1 and token[0] == token[-1] == "'" else token
    if yaml_scalar(value) != token:
        raise _NotWritten
    return value


def _new(mapping: dict[str, Any], key: str, value: Any) -> Any:
    if key in mapping:  # a duplicate key: the loader reports it
        raise _NotWritten
    mapping[key] = value
    return value


class _WrittenForm:
    """Reads the node lines of a lock in Lock.to_yaml's form, one line at a time.

    A key whose value is a nested block ("blocks:", a pool) must be followed by at least one
    line of that block: YAML reads an empty one as null, which this form never holds.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.node: dict[str, Any] | None = None
        self.pools: dict[str, list[str]] | None = None  # the open "blocks:" mapping
        self.blocks: list[str] | None = None  # the open pool's list
        self.adopted: list[dict[str, str]] | None = None  # the open adopted list
        self.wanting = ""  # the kind of line the previous one requires next

    def _kind(self, line: str) -> tuple[str, str]:
        """Return the line's kind and value, if the previous line allows that kind."""
        match = _LOCK_LINE.fullmatch(line)
        if match is None or match.lastgroup is None:
            raise _NotWritten
        kind = match.lastgroup
        if self.wanting and kind not in self.wanting.split():
            raise _NotWritten
        self.wanting = ""
        return kind, _value(match.group(kind)) if match.group(kind) else ""

    def line(self, line: str) -> None:
        kind, value = self._kind(line)
        if kind == "node":
            self.node, self.pools, self.blocks = _new(self.nodes, value, {}), None, None
            self.adopted = None
            self.wanting = "adopted blocks no_blocks"
            return
        if self.node is None:
            raise _NotWritten
        if kind == "adopted" or kind in _ENTRY_NEXT:
            self.adopted_line(self.node, kind, value)
        elif kind in ("blocks", "no_blocks"):
            self.adopted = None  # the list is closed: an entry line after it is not this form
            pools: dict[str, list[str]] = _new(self.node, "blocks", {})
            self.pools = pools if kind == "blocks" else None
            self.wanting = "pool empty_pool" if kind == "blocks" else ""
        elif kind in ("pool", "empty_pool"):
            if self.pools is None:
                raise _NotWritten
            blocks: list[str] = _new(self.pools, value, [])
            self.blocks = blocks if kind == "pool" else None
            self.wanting = "block" if kind == "pool" else ""
        elif kind == "block":
            if self.blocks is None:
                raise _NotWritten
            self.blocks.append(value)
        else:  # tunnel_address(_v6), vtep_mac(_v6)
            _new(self.node, kind, value)
            self.pools = self.blocks = None

    def adopted_line(self, node: dict[str, Any], kind: str, value: str) -> None:
        """Read a line of the node's `adopted:` list (it comes before `blocks`)."""
        if kind == "adopted":
            self.adopted = _new(node, "adopted", [])
            self.wanting = "a_address"
            return
        if self.adopted is None:
            raise _NotWritten
        if kind == "a_address":
            self.adopted.append({})
        self.adopted[-1][kind.removeprefix("a_")] = value
        self.wanting = _ENTRY_NEXT[kind]

    def done(self) -> dict[str, dict[str, Any]]:
        if self.wanting:
            raise _NotWritten
        return self.nodes


def _written_data(text: str) -> dict[str, Any] | None:
    """Return the data of a lock in exactly the form Lock.to_yaml writes, else None.

    Every scalar must be written as yaml.dump writes it (lock.yaml_scalar), so the data equals
    what the YAML loader reads; any other form (a hand edit, a comment inside, flow style, a
    duplicate key) returns None, and the YAML loader reads the file with all its checks.
    """
    lines = text.split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    if lines[-2:] != [f"version: {LOCK_VERSION}", ""] or not lines[:-2]:
        return None
    head, body = lines[0], lines[1:-2]
    if head == "nodes: {}" and not body:
        return {"nodes": {}, "version": LOCK_VERSION}
    if head != "nodes:":
        return None
    form = _WrittenForm()
    try:
        for line in body:
            form.line(line)
        nodes = form.done()
    except _NotWritten:
        return None
    return {"nodes": nodes, "version": LOCK_VERSION}
