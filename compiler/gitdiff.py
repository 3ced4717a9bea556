"""Rendered trees as they are in a git revision or in the working tree, read through git.

A rendered tree is a directory holding `index.json`, `nodes/<node>/...` (each node's own files)
and `cluster/...` (the cluster part, shared files included). Files are compared by git blob id,
so a revision and the working tree compare without reading unchanged files.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from calicc.compiler.errors import CaliccError

INDEX = "index.json"


class GitError(CaliccError):
    """git failed: not a repository, or an unknown revision."""


def git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    """Run git in `repo` and return its stdout; raise GitError with git's message."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=data,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args[:3])}: {message}")
    return proc.stdout


def blob_id(content: bytes) -> str:
    """Return the git blob id of `content` (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """The files of a repository at a revision (`rev`), or in the working tree (rev None)."""

    repo: Path
    rev: str | None

    @property
    def label(self) -> str:
        """Return how the snapshot is named in reports."""
        return self.rev if self.rev is not None else "working tree"

    def paths(self) -> list[str]:
        """Return every file path (relative to the repository top), sorted."""
        return sorted(self._listing())

    def blobs(self, under: Iterable[str]) -> dict[str, str]:
        """Return {path: blob id} of the files inside the directories `under` ("" is all)."""
        bases = tuple(f"{d}/" if d else "" for d in under)
        listing = self._listing()
        chosen = sorted(p for p in listing if bases and p.startswith(bases))
        if self.rev is not None:
            return {p: listing[p] for p in chosen}
        return {p: blob_id((self.repo / p).read_bytes()) for p in chosen}

    def _listing(self) -> dict[str, str]:
        """Return {path: blob id} at a revision, {path: ""} in the working tree."""
        if self.rev is not None:
            out = git(self.repo, "ls-tree", "-r", "-z", "--full-tree", self.rev)
            entries = (line.split("\t", 1) for line in out.decode().split("\0") if line)
            return {path: meta.split()[2] for meta, path in entries if meta.split()[1] == "blob"}
        out = git(self.repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        return {p: "" for p in out.decode().split("\0") if p and (self.repo / p).is_file()}

    def read(self, paths: Iterable[str]) -> dict[str, str]:
        """Return the text of each of `paths` (which must exist in the snapshot)."""
        wanted = sorted(set(paths))
        if self.rev is None:
            return {p: (self.repo / p).read_text(encoding="utf-8") for p in wanted}
        return _cat_files(self.repo, [f"{self.rev}:{p}" for p in wanted], wanted)

    def read_under(self, base: str, rels: Iterable[str]) -> dict[str, str]:
        """Return {rel: text} of the files `base`/rel ("" is the top)."""
        read = self.read(tree_path(base, rel) for rel in rels)
        return {path.removeprefix(tree_path(base, "")): text for path, text in read.items()}


def _cat_files(repo: Path, specs: list[str], paths: list[str]) -> dict[str, str]:
    """Read many blobs with one `git cat-file --batch` (as `git show REV:path` would)."""
    if not specs:
        return {}
    out = git(repo, "cat-file", "--batch", data="".join(f"{s}\n" for s in specs).encode())
    texts: dict[str, str] = {}
    pos = 0
    for path in paths:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if len(header) != 3:  # noqa: PLR2004 - "<id> <type> <size>", else "<spec> missing"
            raise GitError(f"git cat-file: {out[pos:header_end].decode(errors='replace')}")
        size = int(header[2])
        texts[path] = out[header_end + 1 : header_end + 1 + size].decode("utf-8")
        pos = header_end + 1 + size + 1
    return texts


def repo_top(path: Path) -> Path:
    """Return the top directory of the git repository holding `path`."""
    return Path(git(path, "rev-parse", "--show-toplevel").decode().strip())


def rendered_trees(paths: Iterable[str], prefix: str = "") -> list[str]:
    """Return the directories holding a rendered tree (index.json beside nodes/), sorted."""
    paths = list(paths)
    roots = {p.removesuffix(INDEX).rstrip("/") for p in paths if p.rsplit("/", 1)[-1] == INDEX}
    return sorted(
        root
        for root in roots
        if root.startswith(prefix) and any(p.startswith(tree_path(root, "nodes/")) for p in paths)
    )


def tree_path(root: str, rel: str) -> str:
    """Return the path of `rel` inside the tree at `root` ("" is the repository top)."""
    return f"{root}/{rel}" if root else rel


def tree_nodes(blobs: Mapping[str, str], root: str) -> dict[str, dict[str, str]]:
    """Return {node: {path inside the node's bundle: blob id}} of one rendered tree."""
    base = tree_path(root, "nodes/")
    nodes: dict[str, dict[str, str]] = {}
    for path, blob in blobs.items():
        if path.startswith(base) and "/" in path[len(base) :]:
            node, rel = path[len(base) :].split("/", 1)
            nodes.setdefault(node, {})[rel] = blob
    return {node: dict(sorted(files.items())) for node, files in sorted(nodes.items())}


def tree_part(blobs: Mapping[str, str], root: str, part: str) -> dict[str, str]:
    """Return {path relative to the tree: blob id} of the files under `part` of one tree."""
    base = tree_path(root, f"{part}/")
    tree = tree_path(root, "")
    return {path.removeprefix(tree): blob for path, blob in blobs.items() if path.startswith(base)}
