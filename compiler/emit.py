"""Write a rendered tree: only files whose content changed, pruning what vanished."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from compiler.errors import CaliccError

INDEX = "index.json"


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


def dump_json(data: object) -> str:
    """Serialise JSON deterministically: sorted keys, 2-space indent, final newline.

    orjson gives the bytes of `json.dumps(indent=2, sort_keys=True, ensure_ascii=False)`
    about ten times faster (the stdlib encoder is pure Python once indent is set).
    """
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def _existing(out: Path) -> set[str]:
    found: set[str] = set()
    for directory, _, names in os.walk(out):
        rel = os.path.relpath(directory, out)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found.update(prefix + name for name in names)
    return found


def same_text(path: Path, text: str) -> bool:
    """Return whether the file at `path` holds exactly `text` (False when unreadable)."""
    try:
        with open(path, "rb") as handle:
            return handle.read() == text.encode()
    except OSError:
        return False


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file through a temporary file and rename, so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_rendered_tree(out: Path) -> set[str]:
    """Return the files under `out`, refusing a non-empty directory calicc did not render."""
    existing = _existing(out)
    if existing and INDEX not in existing:
        raise CaliccError(
            f"{out} exists and is not a calicc rendered tree (no {INDEX}); "
            "choose another output directory with -o"
        )
    return existing


def write_new(path: Path, text: str, mode: int) -> None:
    """Write a file that did not exist: nothing can be reading a half of it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def emit(files: dict[str, str], out: Path, check: bool = False) -> EmitReport:
    """Make `out` hold exactly `files`; touch only what differs. `check` writes nothing.

    Changed files are replaced atomically (temporary file and rename); new files are
    written in place, each directory created once.
    """
    existing = ensure_rendered_tree(out)
    report = EmitReport()
    made: set[Path] = set()
    for rel in sorted(files):
        path = out / rel
        if rel in existing and same_text(path, files[rel]):
            continue
        report.written.append(rel)
        if check:
            continue
        mode = 0o755 if rel.endswith(".sh") else 0o644
        if rel in existing:
            write_atomic(path, files[rel], mode)
            continue
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        write_new(path, files[rel], mode)
    for rel in sorted(existing - set(files)):
        report.removed.append(rel)
        if not check:
            (out / rel).unlink()
    if not check and report.removed:
        prune_empty_dirs(out)
    return report


def prune_empty_dirs(out: Path) -> None:
    """Remove directories left empty under `out` (after stale files were removed)."""
    if not out.exists():
        return
    for directory in sorted((p for p in out.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            shutil.rmtree(directory)
