"""Recognise a `calicc build` with nothing to do without loading the models or the templates.

A build's output is a function of its input files (the cluster file and the policy files its
globs match), its lock file, and calicc's own code and libraries. index.json records the
digests of the inputs and the lock it was built from, and of every file it wrote; what it
cannot record is the code: the version string stays the same across a checkout's edits. So
after each successful build a small entry in the user's cache (`$XDG_CACHE_HOME/calicc`, else
`~/.cache/calicc`) remembers, for that exact command (working directory, cluster file, `-o`):
the input files in the order the build digested them, what each policy glob matched, the
warnings printed, the digest of the index.json written, and a fingerprint of calicc's files,
the Python version and the installed distributions.

The next build of the same command is skipped only when all of it holds again: the same
fingerprint; each glob matching the same files (the same link targets); the inputs' digest
and the lock's digest equal to index.json's; index.json the one recorded; every file it
lists a regular file (no link as a file or a directory above it) whose size, modification
time and inode are the ones recorded right after the build wrote it (a digest of all of them
is kept: stat costs a fraction of reading 30,000 files; an edit that keeps a file's size,
inode and nanosecond mtime goes unseen, as it does for git). Whatever else (ICP inputs,
bird_snippets that a real BIRD checks, an unreadable cache) gets a full build, which is
always correct; so does a cache that cannot be written.

Not covered: a library installed in development mode elsewhere and edited in place (its
distribution name does not change); remove the cache file after such an edit.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

import calicc
from calicc.compiler.errors import CaliccError
from calicc.compiler.outdir import INDEX, check_output_dir, index_files, read_index

CACHE_ENTRIES = 64  # commands remembered; the oldest is forgotten first


@dataclass(frozen=True)
class Command:
    """A build command as typed: the key of its cache entry."""

    cluster: Path
    out: Path | None

    @property
    def target(self) -> Path:
        """Return the output directory (rendered/ beside the cluster file by default)."""
        return self.out if self.out is not None else self.cluster.parent / "rendered"

    def key(self) -> str:
        """Return the entry's key: the working directory and the paths as given."""
        parts = [os.getcwd(), str(self.cluster), str(self.out)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_file() -> Path:
    """Return the cache file (one per user, all commands in it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "calicc" / "builds.json"


def _walk_files(root: str) -> Iterator[str]:
    for directory, subdirs, names in os.walk(root, followlinks=True):
        subdirs[:] = sorted(name for name in subdirs if name != "__pycache__")
        yield from (os.path.join(directory, name) for name in sorted(names))


def code_fingerprint() -> str:
    """Return a digest of calicc's files, the Python version and the installed distributions.

    Every file of the calicc package counts (its parts are linked in, so they are followed),
    not only the compiler's: any edit means one full build. Distributions count by name and
    version (their dist-info directories), so an upgrade of jinja2 or pydantic does too.
    """
    sha = hashlib.sha256(sys.version.encode() + b"\0")
    root = os.path.dirname(calicc.__file__)
    for path in _walk_files(root):
        with open(path, "rb") as handle:
            sha.update(os.path.relpath(path, root).encode() + b"\0" + handle.read() + b"\0")
    for entry in sys.path:
        if os.path.basename(entry) in ("site-packages", "dist-packages") and os.path.isdir(entry):
            names = sorted(n for n in os.listdir(entry) if n.endswith((".dist-info", ".egg-info")))
            sha.update("\0".join([entry, *names]).encode() + b"\0")
    return sha.hexdigest()


def file_digest(path: Path) -> str:
    """Return the sha256 of a file's bytes, in index.json's notation."""
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()


def input_digest(files: Sequence[Path]) -> str:
    """Return the digest of the input files index.json records (same as build.input_digest)."""
    sha = hashlib.sha256()
    for path in files:
        sha.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + sha.hexdigest()


def glob_matches(patterns: Sequence[str], base_dir: Path) -> list[list[list[str]]]:
    """Return, per policy glob, each file it matches with where it leads (links resolved)."""
    return [
        [[str(p), str(p.resolve())] for p in sorted(base_dir.glob(pattern)) if p.is_file()]
        for pattern in patterns
    ]


def _read_cache() -> dict[str, Any]:
    try:
        with open(cache_file(), "rb") as handle:
            data = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _real_dirs(base: str, dirs: set[str]) -> bool:
    """Return whether each of `dirs` (relative to `base`) is a directory, not a link to one.

    Each directory's entries are read once (their types come with the listing), so a tree of
    5,000 node directories costs 5,000 listings instead of 30,000 lstat calls.
    """
    by_parent: dict[str, set[str]] = {}
    for rel in dirs:
        parent, _, name = rel.rpartition("/")
        by_parent.setdefault(parent, set()).add(name)
    for parent, names in by_parent.items():
        with os.scandir(base + parent) as entries:
            real = {e.name for e in entries if e.name in names and e.is_dir(follow_symlinks=False)}
        if real != names:
            return False
    return True


def tree_stat_digest(target: Path, listed: Iterable[str]) -> str | None:
    """Return a digest of each listed file's size, mtime and inode.

    None when one is missing, is not a regular file, or lies below a link.
    """
    base = os.fspath(target) + "/"
    parts = []
    dirs: set[str] = set()
    lstat, is_reg = os.lstat, stat.S_ISREG
    try:
        for rel in sorted(listed):
            st = lstat(base + rel)
            if not is_reg(st.st_mode):
                return None
            parts.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n")
            parent = rel.rpartition("/")[0]
            while parent and parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]
        if not _real_dirs(base, dirs):
            return None
    except OSError:
        return None
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def listed_files(index: dict[str, Any]) -> list[str]:
    """Return the paths index.json lists, unchecked.

    Only an index whose digest a successful build recorded is read this way; outdir.index_files
    checks every other one.
    """
    files = [INDEX, *index["cluster_files"]]
    files += [f"nodes/{node}/{rel}" for node, rels in index["nodes"].items() for rel in rels]
    return files


def _tree_is(target: Path, index: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Return whether the tree is, file for file, the one the recorded build left."""
    if file_digest(target / INDEX) != entry["index"]:
        return False
    return bool(tree_stat_digest(target, listed_files(index)) == entry["stats"])


def _holds(command: Command, entry: dict[str, Any]) -> bool:
    if entry["code"] != code_fingerprint():
        return False
    if glob_matches(entry["globs"], command.cluster.parent) != entry["matched"]:
        return False
    check_output_dir(command.target)
    index = read_index(command.target / INDEX)
    inputs = [Path(path) for path in entry["inputs"]]
    if index.get("input_digest") != input_digest(inputs):
        return False
    if index.get("lock_digest") != file_digest(Path(entry["lock"])):
        return False
    return _tree_is(command.target, index, entry)


def find_noop(command: Command) -> tuple[str, ...] | None:
    """Return the warnings to print when the build has nothing to do; None: build in full."""
    entry = _read_cache().get(command.key())
    if not isinstance(entry, dict):
        return None
    try:
        holds = _holds(command, entry)
    except (OSError, CaliccError, LookupError, TypeError, ValueError, AttributeError):
        return None  # a damaged entry or tree: the full build says what is wrong
    return tuple(entry["warnings"]) if holds else None


def _store(key: str, entry: dict[str, Any]) -> None:
    entries = _read_cache()
    entries.pop(key, None)
    entries[key] = entry
    kept = dict(list(entries.items())[-CACHE_ENTRIES:])
    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".builds-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(kept))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def record(
    command: Command,
    inputs: Sequence[Path],
    globs: Sequence[str],
    lock: Path,
    warnings: Sequence[str],
) -> None:
    """Remember a build that succeeded and left its tree current (best effort).

    `inputs` are the files the build digested into index.json, in its order. A policy file
    that a glob matches now but the build did not read (it appeared meanwhile) means no entry.
    """
    read = [str(path) for path in inputs]
    try:
        matched = glob_matches(globs, command.cluster.parent)
        if any(path not in read for files in matched for path, _ in files):
            return
        index = read_index(command.target / INDEX)
        stats = tree_stat_digest(command.target, index_files(index, command.target / INDEX))
        if stats is None:
            return
        entry = {
            "code": code_fingerprint(),
            "stats": stats,
            "inputs": read,
            "globs": list(globs),
            "matched": matched,
            "lock": str(lock),
            "index": file_digest(command.target / INDEX),
            "warnings": list(warnings),
        }
        _store(command.key(), entry)
    except (OSError, CaliccError):
        return  # a read-only or full home: the next build is a full one, nothing worse
