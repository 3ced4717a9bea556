"""Find and read the files of a bundle, each checked against the digest listed for it.

node.json lists the node's own files (relative to its directory) with their digests, and for
each role a shared file plays (routes script, sysctl, conflist, iptables rules) its `source`, a
cluster file; cluster/index.json lists the cluster part's files (`cluster/...`) with their
digests. A role is not a file of its own: its bytes are its source's, read (once) as the
cluster file they are. Where the cluster part is (`cluster_base`):
- a self-contained bundle (a pushed bundle, the installed copy) holds it in `<bundle>/cluster/`;
- a node directory of a rendered tree (`rendered/nodes/<node>`) finds it in `rendered/cluster/`.

Every file is read once, bounded, as a regular file inside its base once symlinks are resolved,
and must be UTF-8 of its listed digest. A cluster file of another digest than cluster/index.json
names means the cluster files come from different builds (a torn copy): the bundle is refused,
naming the file and both digests.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from calicc.agent.bundle_checks import problems_error, quote_field
from calicc.agent.files import ReadProblem, is_inside, read_bounded
from calicc.contract.manifest import FileEntry
from calicc.contract.names import CLUSTER_DIR, CLUSTER_INDEX, MANIFEST, is_cluster_file

MAX_FILE_BYTES = 4 * 2**20
MAX_BUNDLE_BYTES = 16 * 2**20


def file_digest(data: bytes) -> str:
    """Return the digest in the compiler's format ("sha256:<hex>")."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cluster_base(directory: Path) -> Path:
    """Return the directory the bundle's `cluster/...` paths are relative to.

    The bundle itself when it holds `cluster/` (self-contained), else the rendered tree the
    bundle is a node directory of (`<bundle>/../..`, symlinks resolved).
    """
    if (directory / CLUSTER_DIR).is_dir():
        return directory
    return Path(os.path.realpath(directory)).parent.parent


def where_missing(directory: Path, base: Path) -> str:
    """Return what to add to "<cluster file> is missing": where the agent looked, and why."""
    if base == directory:
        return " (the bundle's cluster/ directory lacks it)"
    return (
        f" (the bundle has no {CLUSTER_DIR}/ directory, so the cluster files are read from the "
        "rendered tree it is a node directory of)"
    )


def read_one(base: Path, rel: str, missing: str = "") -> bytes:
    """Return a listed file's bytes, checked to be a regular UTF-8 file inside `base`.

    Raises:
        ReadProblem: missing (`missing` says more), outside `base`, not a regular UTF-8 file,
            or larger than MAX_FILE_BYTES.
    """
    path = base / rel
    if not path.is_symlink() and not path.exists():
        raise ReadProblem(f"{path} is missing{missing}")
    if not is_inside(base, path):
        what = "rendered tree or bundle" if is_cluster_file(rel) else "bundle"
        raise ReadProblem(f"{path} resolves outside the {what} (a symlink out of it)")
    data = read_bounded(path, MAX_FILE_BYTES)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadProblem(f"{path} is not UTF-8 text (offset {exc.start})") from exc
    return data


def _mismatch(path: Path, rel: str, actual: str, listed: str) -> str:
    if is_cluster_file(rel):
        return (
            f"{path} has digest {actual}, but {CLUSTER_INDEX} names {listed[:80]}: the cluster "
            "files come from different builds (copy the cluster part of one build whole)"
        )
    return (
        f"{path} has digest {actual}, not the listed {listed[:80]} "
        "(the bundle was changed after the build; rebuild or recopy)"
    )


class _Reader:
    """Reads the files of one bundle, collecting every problem."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.base = cluster_base(directory)
        self.problems: list[str] = []
        self.total = 0

    def read(self, rel: str, digest: str) -> bytes | None:
        """Return the file's bytes, or None after recording why they cannot be used."""
        cluster = is_cluster_file(rel)
        base = self.base if cluster else self.directory
        lister = self.base / CLUSTER_INDEX if cluster else self.directory / MANIFEST
        field = f"{lister}: files.{quote_field(rel)}"
        try:
            data = read_one(base, rel, where_missing(self.directory, base) if cluster else "")
        except ReadProblem as exc:
            self.problems.append(f"{field}: {exc}")
            return None
        self.total += len(data)
        actual = file_digest(data)
        if actual != digest:
            wrong = _mismatch(base / rel, rel, actual, digest)
            self.problems.append(f"{field}.digest: {wrong}")
        return data


def read_files(directory: Path, files: dict[str, FileEntry]) -> dict[str, bytes]:
    """Return every file of `files` (node files and cluster files), each of its listed digest.

    A role's entry (with a `source`, no digest) is no file: its source is read as the cluster
    file it is, so the result holds each file once, under its own path.

    Raises:
        AgentError: listing every problem found, naming the file, and for a digest both digests.
    """
    reader = _Reader(directory)
    contents: dict[str, bytes] = {}
    for rel, entry in sorted(files.items()):
        if entry.digest is None:  # a role: its source is one of the cluster files
            continue
        data = reader.read(rel, entry.digest)
        if reader.total > MAX_BUNDLE_BYTES:
            reader.problems.append(
                f"{directory / MANIFEST}: files: more than {MAX_BUNDLE_BYTES} bytes in all"
            )
            break
        if data is not None:
            contents[rel] = data
    if reader.problems:
        raise problems_error(directory, reader.problems)
    return contents
