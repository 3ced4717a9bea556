"""The hostile-input corpus: run calicc as a user would, and prove each refusal is clean.

Every case asserts the same four things: the exit code (or CNI code), a message that names the
file, line and field (or the CNI variable), no traceback, and nothing written or left behind
(a snapshot of the directories involved before and after). Bombs run under a memory limit.
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 256 * 2**20  # address space of one calicc run (the bound)
TIME_LIMIT = 60  # seconds of wall clock


@dataclass(frozen=True)
class Outcome:
    """How one run ended."""

    code: int
    stdout: str
    stderr: str


Snapshot = dict[str, tuple[int, bytes]]


def snapshot(*roots: Path) -> Snapshot:
    """Return every entry under `roots`: path -> (mode, bytes or link target), links unfollowed."""
    found: Snapshot = {}
    for root in roots:
        if not os.path.lexists(root):
            continue
        found[str(root)] = _entry(root)
        if root.is_symlink() or not root.is_dir():
            continue
        for directory, dirs, names in os.walk(root):
            for name in dirs + names:
                path = Path(directory) / name
                found[str(path)] = _entry(path)
    return found


def _entry(path: Path) -> tuple[int, bytes]:
    """Mode and content of a regular file; a link's target; nothing more of anything else.

    FIFOs, sockets and devices are never opened (opening a FIFO blocks).
    """
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return mode, os.readlink(path).encode()
    if not stat.S_ISREG(mode):
        return mode, b""
    return mode, path.read_bytes()


def _limits(file_limit: int | None) -> Callable[[], None]:
    def apply() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        if file_limit is not None:  # a full disk, without root: writes fail with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


def run_calicc(
    args: Iterable[str | Path],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    inside: Sequence[str] = (),
    file_limit: int | None = None,
) -> Outcome:
    """Run `python -m calicc ARGS` in `cwd` under the memory and time limits.

    `inside` prefixes the command, e.g. ("ip", "netns", "exec", NS) to run it in a namespace;
    `file_limit` caps the size of any file it writes (a full disk).
    """
    result = subprocess.run(
        [*inside, sys.executable, "-m", "calicc", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        input=stdin,
        capture_output=True,
        timeout=TIME_LIMIT,
        preexec_fn=_limits(file_limit),
        check=False,
    )
    return Outcome(
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def assert_clean_error(
    outcome: Outcome,
    *,
    code: int = 1,
    where: str | None = None,
    field: str | None = None,
    says: Iterable[str] = (),
    never: Iterable[str] = (),
    max_line: int = 2000,
) -> None:
    """The run failed with `code`, no traceback, a located message, short lines, no secret.

    `where` is "file:line" (or "file:line:column") as the message must print it; `field` is the
    field path; `says` are further fragments the message holds; `never` must not appear.
    """
    text = outcome.stderr + outcome.stdout
    assert outcome.code == code, f"exit {outcome.code}, wanted {code}:\n{text}"
    assert "Traceback" not in text, text
    assert "MemoryError" not in text, text
    if where is not None:
        assert where in text, f"no {where!r} in:\n{text}"
    if field is not None:
        assert field in text, f"no field {field!r} in:\n{text}"
    for fragment in says:
        assert fragment in text, f"no {fragment!r} in:\n{text}"
    for fragment in never:
        assert fragment not in text, f"{fragment!r} echoed in:\n{text}"
    longest = max((len(line) for line in text.splitlines()), default=0)
    assert longest <= max_line, f"a line of {longest} characters: long values must be cut"


def assert_unchanged(before: Snapshot, after: Snapshot) -> None:
    """Nothing was written, removed or left behind."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not added, f"left behind: {added}"
    assert not removed, f"removed: {removed}"
    assert not changed, f"changed: {changed}"
