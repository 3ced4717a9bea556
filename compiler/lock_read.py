"""Read cluster.lock.yaml as input: located, strictly shaped, never trusted.

The lock is committed and can be edited by hand, so it is read like cluster.yaml: through the
located YAML loader (which refuses duplicate keys and alias bombs), every problem reported at
once as `cluster.lock.yaml:LINE:COL: FIELD: ...`. Its size is capped below the loader's own
limit: composing YAML costs about 55 bytes of memory per byte of input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calicc.compiler.emit import digest
from calicc.compiler.errors import LockError, Problem, SpecError
from calicc.compiler.load import Source, parse_yaml, read_input
from calicc.compiler.lock import Lock
from calicc.compiler.lock_shape import shape_lock

MAX_LOCK_BYTES = 2 * 2**20  # about 20,000 nodes
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
    if size > MAX_LOCK_BYTES:
        message = (
            f"larger than {MAX_LOCK_BYTES // 2**20} MiB, far more than the lock of any cluster "
            "calicc builds: restore it from git"
        )
        raise LockProblems([Problem(str(path), None, None, "", message)])
    try:
        return read_input(path)
    except SpecError as exc:
        raise LockProblems(exc.problems) from exc


def read_lock(path: Path) -> LockFile:
    """Read and shape-check a lock file; a missing file is an empty lock."""
    if not path.exists() and not path.is_symlink():
        return LockFile(path, Lock(), Source(path, None), None)
    text = _text(path)
    try:
        source = parse_yaml(text, path)
    except SpecError as exc:
        raise LockProblems(exc.problems) from exc
    lock, problems = shape_lock(source)
    if problems:
        raise LockProblems(problems)
    return LockFile(path, lock, source, digest(text))
