"""Whether `calicc diff` traces a rendered tree's reachability, and with which files.

A tree gets a reachability section when its cluster file (cluster.yaml beside the tree, where
`calicc build` writes `rendered/` by default) names a pods file or an intents file (`pods:`,
`intents:`, relative to the cluster file) in either revision, and the tree, the pods file or
the intents file differs between the two. The pods and intents files alone do not change the
tree, so a change to only them is traced too. The tracing is calicc.trace's
(trace/reach_diff.py), imported only then: a diff of trees without such files loads no part of
the trace, nor a YAML parser.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection
from dataclasses import dataclass

from calicc.compiler.gitdiff import INDEX, Snapshot, tree_path

CLUSTER_FILE = "cluster.yaml"
NAMES_TRACE_FILES = re.compile(r"^(pods|intents)\s*:", re.MULTILINE)
TRACE_KEYS = ("pods", "intents")


@dataclass(frozen=True)
class ReachFiles:
    """The files a tree's cluster file names in one snapshot (paths from the repository top).

    `problem`: why one of them cannot be used (a YAML error, a path outside the repository, a
    missing file), and `refused` the keys it is about (both for a YAML error): those are not
    compared, the others are.
    """

    cluster: str
    pods: str | None = None
    intents: str | None = None
    problem: str | None = None
    refused: frozenset[str] = frozenset()

    def named(self) -> tuple[str, ...]:
        """Return the paths of the pods and intents files it names that exist."""
        return tuple(p for p in (self.pods, self.intents) if p is not None)


def reach_files(snap: Snapshot, paths: Collection[str], tree: str) -> ReachFiles | None:
    """Return the pods and intents files of the tree's cluster file in `snap`.

    None when the tree has no cluster file beside it, or the cluster file names neither.
    `paths` are the snapshot's files (Snapshot.paths(), as a set for speed).
    """
    if not tree:  # a tree at the repository top has no directory beside it
        return None
    parent = posixpath.dirname(tree)
    cluster = tree_path(parent, CLUSTER_FILE)
    if cluster not in paths:
        return None
    data = _cluster_keys(snap.read([cluster])[cluster])
    if isinstance(data, str):
        return ReachFiles(cluster, problem=f"{cluster}: {data}", refused=frozenset(TRACE_KEYS))
    named: dict[str, str] = {}
    problems: dict[str, str] = {}
    for key, rel in data.items():
        found = _named_path(rel, parent, paths)
        if isinstance(found, tuple):
            named[key] = found[0]
        else:
            problems[key] = f"{cluster}: `{key}`: {found}"
    if not named and not problems:
        return None
    problem = "; ".join(problems.values()) or None
    return ReachFiles(
        cluster, named.get("pods"), named.get("intents"), problem, frozenset(problems)
    )


def _cluster_keys(text: str) -> dict[str, object] | str:
    """Return the `pods:` and `intents:` values the cluster file gives, or its YAML error.

    A file that mentions neither key at the start of a line is not parsed (nor yaml imported).
    """
    if NAMES_TRACE_FILES.search(text) is None:
        return {}
    import yaml  # noqa: PLC0415 - only for cluster files that name pods or intents

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return str(exc).replace("\n", " ")
    if not isinstance(data, dict):
        return {}
    return {key: data[key] for key in TRACE_KEYS if data.get(key) is not None}


def _named_path(rel: object, parent: str, paths: Collection[str]) -> tuple[str] | str:
    """Return (the repository path of `rel`,), or why it is refused."""
    if not isinstance(rel, str) or not rel:
        return "expected a file name"
    path = posixpath.normpath(posixpath.join(parent, rel))
    if rel.startswith("/") or path == ".." or path.startswith("../"):
        return f"{rel!r} is outside the repository"
    if path not in paths:
        return f"{path} does not exist"
    return (path,)


def reach_section(
    snaps: tuple[Snapshot, Snapshot],
    tree: str,
    paths: tuple[Collection[str], Collection[str]],
    tree_changed: bool,
) -> list[str]:
    """Return the Markdown lines of the tree's reachability section (empty: no section).

    `tree_changed`: whether any file of the tree differs between the snapshots. With the same
    tree and pods file, pod pairs cannot change: only the intents are traced.
    """
    files = (reach_files(snaps[0], paths[0], tree), reach_files(snaps[1], paths[1], tree))
    if files == (None, None):
        return []
    pods_changed = tree_changed or _differs(snaps, files, "pods")
    if not pods_changed and not _differs(snaps, files, "intents"):
        return []
    present = [tree_path(tree, INDEX) in p for p in paths]
    if not all(present):
        only = snaps[present.index(True)].label if any(present) else "neither revision"
        return [f"Not traced: the tree is only in `{only}`."]
    from calicc.trace.reach_diff import reach_lines  # noqa: PLC0415 - only when traced

    return reach_lines(snaps, tree, files, pairs=pods_changed)


def _differs(
    snaps: tuple[Snapshot, Snapshot], files: tuple[ReachFiles | None, ReachFiles | None], key: str
) -> bool:
    """Return whether the file named by `key` (pods, intents) differs: path, refusal or text."""
    old, new = (None if f is None else f.pods if key == "pods" else f.intents for f in files)
    refused = [f is not None and key in f.refused for f in files]
    if old != new or refused[0] != refused[1]:
        return True
    return old is not None and snaps[0].read([old]) != snaps[1].read([old])
