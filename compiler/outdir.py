"""The output directory's safety rules: what calicc owns in it, and what it never follows.

calicc owns exactly the files the previous build's index.json lists (index.json itself and
`nodes/<node>/<file>` for every file digest it records); only those are ever pruned, so a
README.md or a local override beside them survives a rebuild. Symbolic links are never
followed: `-o` that is a link is refused, and so is a link at any path calicc would write,
compare or remove, or at any directory above one. Every OSError of a write becomes an
OutputError naming the path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from calicc.compiler.errors import CaliccError

INDEX = "index.json"
MAX_INDEX_BYTES = 64 * 2**20
_RESTORE = "restore it from git (or remove the rendered tree and build again)"


class OutputError(CaliccError):
    """The output directory cannot be used or written (one line, naming the path)."""


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn an OSError inside the block into an OutputError naming `path`."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class TreeState:
    """What the output directory holds before a build (paths relative to it, '/'-separated)."""

    existing: frozenset[str] = frozenset()  # regular files
    links: frozenset[str] = frozenset()  # symbolic links, to files or directories
    listed: frozenset[str] = frozenset()  # files the previous index.json says calicc wrote
    index: Mapping[str, Any] = field(default_factory=dict)  # the previous index.json
    dirs: frozenset[str] = frozenset()  # real directories


def check_output_dir(out: Path) -> None:
    """Refuse an output path that is a link or a file, or lies below a file."""
    if out.is_symlink():
        target = os.readlink(out)
        raise OutputError(
            f"{out} is a symbolic link (to {target}); calicc does not write through links: "
            "give the real directory with -o"
        )
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is not a directory; choose another output directory with -o")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{parent} is not a directory, so {out} cannot be created")
            return


def _walk(out: Path) -> tuple[set[str], set[str], set[str]]:
    """Return the files, links and directories under `out` (links are not followed)."""
    files: set[str] = set()
    links: set[str] = set()
    dirs: set[str] = set()
    for directory, subdirs, names in os.walk(out):
        rel = os.path.relpath(directory, out)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in subdirs + names:
            if os.path.islink(os.path.join(directory, name)):
                links.add(prefix + name)
            else:
                (files if name in names else dirs).add(prefix + name)
    return files, links, dirs


def _safe(rel: str) -> bool:
    parts = rel.split("/")
    return (
        not rel.startswith("/") and "\\" not in rel and all(p not in ("", ".", "..") for p in parts)
    )


def index_files(index: Mapping[str, Any], where: Path) -> set[str]:
    """Return the tree paths an index.json lists: itself, the cluster part and each node's."""
    nodes = index.get("nodes")
    if not isinstance(nodes, dict) or not all(isinstance(v, dict) for v in nodes.values()):
        raise OutputError(f"{where}: `nodes` is not a mapping of node to files; {_RESTORE}")
    shared = index.get("cluster_files", {})
    if not isinstance(shared, dict):
        raise OutputError(
            f"{where}: `cluster_files` is not a mapping of file to digest; {_RESTORE}"
        )
    listed = {INDEX, *shared}
    listed |= {f"nodes/{name}/{rel}" for name, files in nodes.items() for rel in files}
    unsafe = sorted(rel for rel in listed if not _safe(rel))
    if unsafe:
        raise OutputError(
            f"{where}: lists a path outside the tree: {unsafe[0][:200]!r}; {_RESTORE}"
        )
    return listed


def read_index(path: Path) -> dict[str, Any]:
    """Return a rendered tree's index.json (bounded read); errors name the path."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            index = orjson.loads(handle.read()) if size <= MAX_INDEX_BYTES else None
    except OSError as exc:
        raise OutputError(f"{path}: cannot read: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise OutputError(f"{path}: not a calicc index ({exc}); {_RESTORE}") from exc
    if not isinstance(index, dict):
        raise OutputError(f"{path}: not a calicc index (too large or not an object); {_RESTORE}")
    return index


def scan_tree(out: Path) -> TreeState:
    """Return what `out` holds, refusing a non-empty directory calicc did not render."""
    files, links, dirs = _walk(out) if out.is_dir() else (set(), set(), set())
    if INDEX in links:
        raise OutputError(f"{out / INDEX} is a symbolic link; calicc does not follow links")
    if (files or links) and INDEX not in files:
        raise OutputError(
            f"{out} exists and is not a calicc rendered tree (no {INDEX}); "
            "choose another output directory with -o"
        )
    if not files:
        return TreeState(links=frozenset(links), dirs=frozenset(dirs))
    index = read_index(out / INDEX)
    listed = index_files(index, out / INDEX)
    return TreeState(frozenset(files), frozenset(links), frozenset(listed), index, frozenset(dirs))


def _dirs_of(paths: Iterable[str]) -> set[str]:
    dirs: set[str] = set()
    for rel in paths:
        parts = rel.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return dirs


def refuse_unsafe(state: TreeState, out: Path, paths: Iterable[str]) -> None:
    """Refuse, before anything moves, paths that a rename or removal could not handle.

    A link at one of `paths` or at a directory above one would be followed; a directory
    where a file goes, or a file where a directory goes, would fail halfway through a swap.
    """
    wanted = set(paths)
    above = _dirs_of(wanted)
    hit = sorted(state.links & (wanted | above))
    if hit:
        link = out / hit[0]
        raise OutputError(
            f"{link} is a symbolic link (to {os.readlink(link)}); calicc never writes through "
            "links in the output tree: replace it with a real directory or file"
        )
    clash = sorted(state.dirs & wanted)
    if clash:
        raise OutputError(f"{out / clash[0]} is a directory where calicc writes a file")
    clash = sorted(state.existing & above)
    if clash:
        raise OutputError(f"{out / clash[0]} is a file where calicc needs a directory")


def prune(out: Path, removed: Iterable[str]) -> None:
    """Remove stale files, then each directory they leave empty (up to, not including, `out`)."""
    emptied: set[Path] = set()
    for rel in removed:
        path = out / rel
        with writing(path):
            path.unlink(missing_ok=True)
        emptied.update(p for p in path.parents if out in p.parents)
    for directory in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: a file calicc does not own stays
            directory.rmdir()


def missing_dirs(path: Path) -> list[Path]:
    """Return `path` and its ancestors that do not exist yet, outermost first."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    return list(reversed(missing))
