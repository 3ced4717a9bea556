"""File-writing primitives and digests for the rendered tree (write.py is the one writer).

Atomic replacement, exclusive creation without following links, deterministic JSON. The
output directory's rules (what calicc owns, links never followed) live in outdir.py.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from calicc.compiler.outdir import (
    INDEX,
    writing,
)

__all__ = [
    "INDEX",
    "EmitReport",
    "digest",
    "dump_json",
    "same_text",
    "stage_beside",
    "write_atomic",
    "write_new",
]


@dataclass
class EmitReport:
    """What a write did (or, with check=True, would do)."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Return whether anything was (or would be) written or removed."""
        return bool(self.written or self.removed)


def digest(text: str) -> str:
    """Return the sha256 of a text file's UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path) -> str:
    """Return digest() of the file at `path`, or "" when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return "sha256:" + hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return ""


def dump_json(data: object) -> str:
    """Serialise JSON deterministically: sorted keys, 2-space indent, final newline.

    orjson gives the bytes of `json.dumps(indent=2, sort_keys=True, ensure_ascii=False)`
    about ten times faster (the stdlib encoder is pure Python once indent is set).
    """
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def same_text(path: Path, text: str) -> bool:
    """Return whether the file at `path` holds exactly `text` (False when unreadable)."""
    try:
        with open(path, "rb") as handle:
            return handle.read() == text.encode()
    except OSError:
        return False


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file through a temporary file and rename, so readers never see half of it."""
    tmp = stage_beside(path, text, mode)
    with writing(path):
        os.replace(tmp, path)


def stage_beside(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write `text` to a new temporary file beside `path` and return it (nothing half-left)."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(name)
    try:
        with writing(path), os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_new(path: Path, text: str, mode: int, shown: Path | str | None = None) -> None:
    """Write a file that did not exist: nothing can be reading a half of it.

    `shown` is the path an error names (the tree path of a staged file).
    """
    with writing(shown or path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
