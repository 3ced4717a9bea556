"""Files the agent reads from a bundle and writes under --root.

Reads are bounded and refuse anything but a regular file (a FIFO, a device or a 10 GB file in a
bundle is an error, not a hang or an out-of-memory). Writes go through a temporary file and a
rename, so a reader never sees half a file; a whole directory (the installed bundle copy) is
staged beside its place and swapped in with one rename, so a reader sees the old tree or the new
one, never a mix.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

AT_FDCWD = -100
RENAME_EXCHANGE = 2  # renameat2(2): swap two paths atomically
MAX_PATH = 1024  # PATH_MAX is 4096; no bundle path comes near 1024


class ReadProblem(Exception):
    """Why a bundle file cannot be read (the caller names the file and field)."""


def under(root: Path, rel: str) -> Path:
    """Return `rel` (an absolute-looking or relative node path) below `root`."""
    return root / rel.lstrip("/")


def path_problem(rel: str) -> str | None:
    """Return why `rel` is not a plain relative path inside its base, or None when it is.

    Examples:
        >>> path_problem("iptables/iptables.rules") is None
        True
        >>> path_problem("../../etc/passwd")
        'must not hold ".." (it would leave its directory)'
        >>> path_problem("/etc/passwd")
        'must be relative, not absolute'
    """
    parts = rel.split("/")
    problems = (
        (not rel, "must not be empty"),
        (len(rel) > MAX_PATH, f"is longer than {MAX_PATH} characters"),
        (any(ord(c) < 0x20 or c == "\x7f" for c in rel), "must not hold control characters"),  # noqa: PLR2004
        (rel.startswith("/"), "must be relative, not absolute"),
        (".." in parts, 'must not hold ".." (it would leave its directory)'),
        ("" in parts or "." in parts, 'must not hold empty or "." components'),
    )
    return next((why for bad, why in problems if bad), None)


def is_inside(base: Path, path: Path) -> bool:
    """Return whether `path`, with every symlink resolved, lies inside `base` (also resolved)."""
    real_base = os.path.realpath(base)
    return os.path.realpath(path).startswith(real_base + os.sep)


def read_bounded(path: Path, limit: int) -> bytes:
    """Return the bytes of the regular file `path`, refusing more than `limit` bytes.

    Raises:
        ReadProblem: missing, unreadable, not a regular file, or larger than `limit`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ReadProblem(f"{path}: cannot be read: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReadProblem(f"{path}: is not a regular file")
        if info.st_size > limit:
            raise ReadProblem(f"{path}: holds {info.st_size} bytes, more than the {limit} allowed")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ReadProblem(f"{path}: cannot be read: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ReadProblem(f"{path}: grew beyond the {limit} bytes allowed while being read")
    return data


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write `data` to `path` through a temporary file and rename; return whether it changed.

    The temporary file is created with `mode` from the start, so a secret is never readable
    by others, not even for a moment.
    """
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.calicc-tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(temp, path)
    return True


def tree_matches(target: Path, files: Mapping[str, bytes]) -> bool:
    """Return whether directory `target` holds exactly `files` (relative path -> bytes)."""
    found: set[str] = set()
    for directory, _, names in os.walk(target):
        for name in names:
            path = Path(directory) / name
            rel = str(path.relative_to(target))
            if path.is_symlink() or rel not in files or path.read_bytes() != files[rel]:
                return False
            found.add(rel)
    return found == set(files)


def replace_tree(target: Path, files: Mapping[str, bytes]) -> bool:
    """Make directory `target` hold exactly `files`, in one atomic swap; return whether it changed.

    The tree is staged as a hidden sibling and exchanged with the old one (renameat2), so a
    reader (the CNI plugin reading node.json) sees either tree, never a mix. On a failure the
    staged tree is removed and the old one stays in place.
    """
    if target.is_dir() and tree_matches(target, files):
        return False
    staged = target.with_name(f".{target.name}.calicc-new")
    try:
        shutil.rmtree(staged, ignore_errors=True)
        for rel, data in files.items():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            (staged / rel).write_bytes(data)
        _swap_in(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # after a swap: the old tree
    return True


def _swap_in(staged: Path, target: Path) -> None:
    if not os.path.lexists(target):
        os.rename(staged, target)
    elif not _exchange(staged, target):  # a filesystem without RENAME_EXCHANGE
        old = target.with_name(f".{target.name}.calicc-old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
        os.rename(staged, target)
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap `a` and `b` atomically; return False when the kernel or filesystem cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    done = int(renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE))
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))
