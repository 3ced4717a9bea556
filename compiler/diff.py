"""calicc diff: what a change does to the rendered trees, as Markdown for a PR comment.

A cluster-level change is reported once, from the cluster part: nodes and VXLAN peers (from
nodes.tsv), pools and NAT outgoing (cluster.json), policies (policy.json), ipsets
(ipsets.restore), the chains of the shared iptables rules (cluster/iptables/*.rules: a chain
the same in every rules file is one fact) and the shared files added, removed or changed. Then
each node whose own files changed (nodes/<node>/bird.conf and node.json): BGP peers from
bird.conf; blocks, routes, MTU and the shared file of each role from node.json. A node whose
node.json changed only by the digest of a cluster file it names is counted in the cluster
section, not listed: that change is the cluster's. Last, when the cluster file beside the tree
names a pods or intents file, the reachability section (compiler/diff_reach.py): the intents and
pod pairs whose verdict, path or path MTU change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from calicc.compiler.diff_facts import (
    CLUSTER_FACTS,
    SEMANTIC,
    Facts,
    cluster_facts,
    many,
    node_facts,
    shared_facts,
    shared_role,
)
from calicc.compiler.diff_reach import reach_section
from calicc.compiler.gitdiff import (
    Snapshot,
    rendered_trees,
    repo_top,
    tree_nodes,
    tree_part,
    tree_path,
)
from calicc.contract.names import (
    CLUSTER_DIR,
    IPTABLES_FILE,
    MANIFEST,
    is_cluster_file,
)


def digests_only(old: str, new: str) -> list[str] | None:
    """Return the cluster files whose digests are all that differ between two node.json texts.

    None when anything else differs (a node whose node.json changed only so is the cluster's
    change, reported once).
    """
    (old_digests, old_rest), (new_digests, new_rest) = _split_digests(old), _split_digests(new)
    if old_rest != new_rest:
        return None
    return sorted(r for r in old_digests | new_digests if old_digests.get(r) != new_digests.get(r))


def _split_digests(text: str) -> tuple[dict[str, str], object]:
    data = json.loads(text)
    digests = {}
    for rel, entry in data.get("files", {}).items():
        if is_cluster_file(rel) and isinstance(entry, dict) and "digest" in entry:
            digests[rel] = str(entry.pop("digest"))
    return digests, data


@dataclass
class NodeChange:
    """How one node's files change: added, removed or changed, with Markdown bullets.

    Status "cluster": only the digests of the cluster files its node.json names changed; the
    lines are those files (reported in the cluster section, not as a node).
    """

    node: str
    status: str
    lines: list[str] = field(default_factory=list)


def _shown(value: str) -> str:
    return value.split("\0", 1)[0]


def compare_facts(old: Facts, new: Facts) -> list[str]:
    """Return one bullet per kind of fact that differs (added, removed, changed items)."""
    bullets: list[str] = []
    for kind in sorted(set(old) | set(new), key=_fact_order):
        before, after = old.get(kind, {}), new.get(kind, {})
        parts = []
        added = [f"`{k}` {_shown(after[k])}".rstrip() for k in sorted(after.keys() - before)]
        removed = [f"`{k}` {_shown(before[k])}".rstrip() for k in sorted(before.keys() - after)]
        changed = [
            _change(k, before[k], after[k])
            for k in sorted(before.keys() & after)
            if before[k] != after[k]
        ]
        for label, items in (("added", added), ("removed", removed), ("changed", changed)):
            if items:
                parts.append(f"  - {label}: {', '.join(items)}")
        if parts:
            bullets += [f"- {kind}", *parts]
    return bullets


FACT_ORDER = (
    *("nodes", "VXLAN peers", "pools", "BGP peers", "blocks", "routes", "policies"),
    *("policy chains", "ipsets", "NAT outgoing", "MTU", "shared files"),
)


def _fact_order(kind: str) -> tuple[int, str]:
    return (FACT_ORDER.index(kind) if kind in FACT_ORDER else len(FACT_ORDER), kind)


def _change(key: str, before: str, after: str) -> str:
    if _shown(before) == _shown(after):
        return f"`{key}`"
    return f"`{key}` {_shown(before)} → {_shown(after)}"


@dataclass
class TreeDiff:
    """The changes of one rendered tree (its directory relative to the repository).

    The cluster part's, once, and each node's; then the reachability section's lines
    (compiler/diff_reach.py), when the cluster names pods or intents.
    """

    tree: str
    changes: list[NodeChange]
    cluster: list[str] = field(default_factory=list)
    reach: list[str] = field(default_factory=list)


def node_change(
    snaps: tuple[Snapshot, Snapshot], tree: str, node: str, files: tuple[dict[str, str], ...]
) -> NodeChange:
    """Compare one node's own files in two snapshots ({path in its directory: blob id} each)."""
    before, after = files
    status = "added" if not before else "removed" if not after else "changed"
    base = tree_path(tree, f"nodes/{node}")
    old_texts = snaps[0].read_under(base, [rel for rel in SEMANTIC if rel in before])
    new_texts = snaps[1].read_under(base, [rel for rel in SEMANTIC if rel in after])
    changed = sorted(r for r in before.keys() | after.keys() if before.get(r) != after.get(r))
    if status == "changed" and changed == [MANIFEST]:
        digests = digests_only(old_texts[MANIFEST], new_texts[MANIFEST])
        if digests:  # [] when only its formatting changed: listed, as any other change
            return NodeChange(node, "cluster", digests)
    lines = compare_facts(node_facts(old_texts), node_facts(new_texts))
    if status == "changed":
        lines.append(f"- files changed: {', '.join(f'`{r}`' for r in changed)}")
    return NodeChange(node, status, lines)


def _cluster_texts(snap: Snapshot, tree: str, blobs: Mapping[str, str]) -> dict[str, str]:
    wanted = [rel for rel in blobs if rel in CLUSTER_FACTS or shared_role(rel) == IPTABLES_FILE]
    return snap.read_under(tree, wanted)


def cluster_change(
    snaps: tuple[Snapshot, Snapshot], tree: str, blobs: tuple[Mapping[str, str], ...]
) -> list[str]:
    """Compare the cluster part of one tree in two snapshots; bullets, empty when the same."""
    old_blobs, new_blobs = (tree_part(b, tree, CLUSTER_DIR) for b in blobs)
    if old_blobs == new_blobs:
        return []
    old = cluster_facts(_cluster_texts(snaps[0], tree, old_blobs)) | shared_facts(old_blobs)
    new = cluster_facts(_cluster_texts(snaps[1], tree, new_blobs)) | shared_facts(new_blobs)
    return compare_facts(old, new)


def _renamed(changes: list[NodeChange]) -> list[str]:
    """Return the cluster section's line for the nodes changed only by a cluster file's digest."""
    named = sorted({rel for c in changes if c.status == "cluster" for rel in c.lines})
    count = sum(c.status == "cluster" for c in changes)
    if not count:
        return []
    files = ", ".join(f"`{rel}`" for rel in named)
    return [
        f"- node.json names the new digest of {files}: {many(count, 'node')} changed by that alone"
    ]


def diff_snapshots(old: Snapshot, new: Snapshot, prefix: str = "") -> list[TreeDiff]:
    """Return the changes of every rendered tree that differs between two snapshots."""
    paths = (set(old.paths()), set(new.paths()))
    trees = sorted(set(rendered_trees(paths[0], prefix)) | set(rendered_trees(paths[1], prefix)))
    old_blobs, new_blobs = old.blobs(trees), new.blobs(trees)
    result = []
    for tree in trees:
        before, after = tree_nodes(old_blobs, tree), tree_nodes(new_blobs, tree)
        changes = [
            node_change((old, new), tree, node, (before.get(node, {}), after.get(node, {})))
            for node in sorted(before.keys() | after.keys())
            if before.get(node) != after.get(node)
        ]
        shared = cluster_change((old, new), tree, (old_blobs, new_blobs)) + _renamed(changes)
        changes = [c for c in changes if c.status != "cluster"]
        tree_changed = _under(old_blobs, tree) != _under(new_blobs, tree)
        reach = reach_section((old, new), tree, paths, tree_changed)
        if changes or shared or reach:
            result.append(TreeDiff(tree, changes, shared, reach))
    return result


def _under(blobs: Mapping[str, str], tree: str) -> dict[str, str]:
    base = tree_path(tree, "")
    return {path: blob for path, blob in blobs.items() if path.startswith(base)}


def to_markdown(diffs: list[TreeDiff], old_label: str, new_label: str) -> str:
    """Render the changes as Markdown for a pull-request comment."""
    lines = [f"## calicc diff: `{old_label}` → `{new_label}`", ""]
    if not diffs:
        return "\n".join([*lines, "No change to any rendered tree.", ""])
    for diff in diffs:
        lines += [f"### `{diff.tree or '.'}`", ""]
        if diff.cluster:
            lines += ["#### cluster (every node)", *diff.cluster, ""]
        lines += _node_lines(diff.changes)
        if diff.reach:
            lines += ["#### reachability", "", *diff.reach, ""]
    return "\n".join(lines)


def _node_lines(changes: list[NodeChange]) -> list[str]:
    if not changes:
        return ["No node's own files changed.", ""]
    lines = ["| node | change |", "| --- | --- |"]
    lines += [f"| `{c.node}` | {c.status} |" for c in changes]
    for change in changes:
        lines += ["", f"#### `{change.node}` ({change.status})", *change.lines]
    return [*lines, ""]


def diff_command(repo: Path, old_rev: str, new_rev: str | None, prefix: str = "") -> str:
    """Compare `old_rev` with `new_rev` (None: the working tree) and return the Markdown."""
    top = repo_top(repo)
    old, new = Snapshot(top, old_rev), Snapshot(top, new_rev)
    return to_markdown(diff_snapshots(old, new, prefix), old.label, new.label)
