"""calicc diff: what a change does to the rendered trees, as Markdown for a PR comment.

A cluster-level change is reported once, from the cluster part: nodes and VXLAN peers (from
nodes.tsv), pools and NAT outgoing (cluster.json), policies (policy.json) and ipsets
(ipsets.restore). Then each node whose files changed: its bundle is read into facts (BGP peers
from bird.conf, blocks, routes and MTU from node.json, chains from iptables.rules) and the facts
of two snapshots are compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from calicc.compiler.gitdiff import Snapshot, rendered_trees, repo_top, tree_nodes
from calicc.contract.names import BIRD_CONFIG as BIRD
from calicc.contract.names import (
    CLUSTER_IPSETS,
    CLUSTER_POLICY,
    CLUSTER_SETTINGS,
    MANIFEST,
    NODES_TABLE,
)
from calicc.contract.names import IPTABLES_FILE as IPTABLES
from calicc.contract.nodes_table import NodesTableError, parse_table

SEMANTIC = (BIRD, MANIFEST, IPTABLES)
BGP_PROTOCOL = re.compile(r"^protocol bgp (\S+)[^{\n]*\{\n(.*?)^\}", re.M | re.S)
NEIGHBOR = re.compile(r"^\s*neighbor (\S+)(?: port \d+)? as (\d+);", re.M)
DESCRIPTION = re.compile(r'^\s*description "([^"]*)";', re.M)
Facts = dict[str, dict[str, str]]


def bird_peers(text: str) -> dict[str, str]:
    """Return {protocol name: "IP AS n (description)"} of the `protocol bgp` blocks.

    The value carries the block's body after a NUL (not shown), so that any other change to a
    peer (password, passive, filters) shows as "changed".
    """
    peers: dict[str, str] = {}
    for match in BGP_PROTOCOL.finditer(text):
        body = match.group(2)
        neighbor = NEIGHBOR.search(body)
        what = f"{neighbor.group(1)} AS {neighbor.group(2)}" if neighbor else "?"
        described = DESCRIPTION.search(body)
        peers[match.group(1)] = what + (f" ({described.group(1)})" if described else "")
        peers[match.group(1)] += "\0" + body  # the body makes any other change visible
    return peers


def iptables_chains(text: str) -> dict[str, str]:
    """Return {"table/chain": "(n rules)" NUL its rules} of an iptables-restore file."""
    table = ""
    chains: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            chains.setdefault(f"{table}/{line[1:].split()[0]}", [])
        elif line.startswith(("-A ", "-I ")):
            chain = line.split()[1]
            chains.setdefault(f"{table}/{chain}", []).append(line)
    return {
        name: f"({len(rules)} rule{'s' if len(rules) != 1 else ''})\0" + "\n".join(rules)
        for name, rules in sorted(chains.items())
    }


def manifest_facts(text: str) -> Facts:
    """Return blocks, routes and MTU facts of a node.json."""
    data = json.loads(text)
    mtu = {"link": str(data.get("link_mtu")), "pod": str(data.get("pod_mtu"))}
    mtu |= {f"device {link['name']}": str(link.get("mtu")) for link in data.get("links", [])}
    return {
        "blocks": {b["cidr"]: f"pool {b['pool']}" for b in data.get("blocks", [])},
        "routes": {r["dst"]: _route_text(r) for r in data.get("routes", [])},
        "MTU": mtu,
    }


def table_facts(text: str) -> Facts:
    """Return the nodes and VXLAN peers of a nodes.tsv (an unreadable one is one fact)."""
    try:
        rows = parse_table(text)
    except NodesTableError as exc:
        return {"nodes": {"nodes.tsv": f"unreadable: {exc}"}}
    return {
        "nodes": {
            r.name: f"{r.address}, {len(r.blocks)} block{'s' if len(r.blocks) != 1 else ''}"
            + "\0"
            + r.line()
            for r in rows
        },
        "VXLAN peers": {
            r.name: f"VTEP {r.vtep_mac} at {r.address.ip}" for r in rows if r.vtep_mac is not None
        },
    }


def settings_facts(text: str) -> Facts:
    """Return the pools and their NAT outgoing of a cluster.json."""
    pools = json.loads(text).get("pools", [])
    return {
        "pools": {
            p["name"]: f"{p['cidr']} {p['encapsulation']} {p['mode']}"
            + (" (disabled)" if p.get("disabled") else "")
            for p in pools
        },
        "NAT outgoing": {
            f"pool {p['name']}": "on" if p.get("nat_outgoing") else "off" for p in pools
        },
    }


def policy_facts(text: str) -> Facts:
    """Return the policies of a policy.json."""
    return {
        "policies": {
            f"{b['namespace']}/{b['name']}": "\0" + json.dumps(b, sort_keys=True)
            for b in json.loads(text).get("policies", [])
        }
    }


def ipset_facts(text: str) -> Facts:
    """Return {set: "(n members)"} of an ipsets.restore (static sets' members, as filled)."""
    sets: dict[str, list[str]] = {}
    temps: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split()
        if line.startswith("create ") and not words[1].startswith("cali4t"):
            sets.setdefault(words[1], [])
        elif line.startswith("swap "):
            temps[words[1]] = words[2]
        elif line.startswith("add "):
            sets.setdefault(words[1], []).append(" ".join(words[2:]))
    members: dict[str, list[str]] = {name: [] for name in sets if not name.startswith("cali4t")}
    for temp, live in temps.items():
        members[live] = sets.get(temp, [])
    return {
        "ipsets": {
            name: f"({len(m)} member{'s' if len(m) != 1 else ''})\0" + "\n".join(m)
            for name, m in sorted(members.items())
        }
    }


CLUSTER_FACTS = {
    NODES_TABLE: table_facts,
    CLUSTER_SETTINGS: settings_facts,
    CLUSTER_POLICY: policy_facts,
    CLUSTER_IPSETS: ipset_facts,
}


def cluster_facts(texts: Mapping[str, str]) -> Facts:
    """Return every cluster-level fact from the texts of the cluster part's files."""
    facts: Facts = {}
    for rel, read in CLUSTER_FACTS.items():
        if rel in texts:
            facts |= read(texts[rel])
    return facts


def _route_text(route: Mapping[str, object]) -> str:
    words = [str(route.get("type", ""))]
    words += [f"{key} {route[key]}" for key in ("via", "dev") if route.get(key)]
    return " ".join(words + (["onlink"] if route.get("onlink") else []))


def node_facts(texts: Mapping[str, str]) -> Facts:
    """Return every fact of one node's bundle from the texts of its semantic files."""
    facts: Facts = {"BGP peers": {}, "blocks": {}, "routes": {}, "policy chains": {}}
    if BIRD in texts:
        facts["BGP peers"] = bird_peers(texts[BIRD])
    if MANIFEST in texts:
        facts |= manifest_facts(texts[MANIFEST])
    if IPTABLES in texts:
        facts["policy chains"] = iptables_chains(texts[IPTABLES])
    return facts


@dataclass
class NodeChange:
    """How one node's bundle changes: added, removed or changed, with Markdown bullets."""

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


def _fact_order(kind: str) -> tuple[int, str]:
    order = [
        "nodes",
        "VXLAN peers",
        "pools",
        "BGP peers",
        "blocks",
        "routes",
        "policies",
        "policy chains",
        "ipsets",
        "NAT outgoing",
        "MTU",
    ]
    return (order.index(kind) if kind in order else len(order), kind)


def _change(key: str, before: str, after: str) -> str:
    if _shown(before) == _shown(after):
        return f"`{key}`"
    return f"`{key}` {_shown(before)} → {_shown(after)}"


@dataclass
class TreeDiff:
    """The changes of one rendered tree (its directory relative to the repository).

    The cluster part's, once, and each node's.
    """

    tree: str
    changes: list[NodeChange]
    cluster: list[str] = field(default_factory=list)


def _texts(snap: Snapshot, tree: str, node: str, files: Mapping[str, str]) -> dict[str, str]:
    base = f"{tree}/nodes/{node}/" if tree else f"nodes/{node}/"
    read = snap.read(base + rel for rel in SEMANTIC if rel in files)
    return {path.removeprefix(base): text for path, text in read.items()}


def node_change(
    snaps: tuple[Snapshot, Snapshot], tree: str, node: str, files: tuple[dict[str, str], ...]
) -> NodeChange:
    """Compare one node's bundle in two snapshots ({path in bundle: blob id} each)."""
    before, after = files
    status = "added" if not before else "removed" if not after else "changed"
    old = node_facts(_texts(snaps[0], tree, node, before))
    new = node_facts(_texts(snaps[1], tree, node, after))
    lines = compare_facts(old, new)
    changed = sorted(r for r in before.keys() | after.keys() if before.get(r) != after.get(r))
    if status == "changed":
        lines.append(f"- files changed: {', '.join(f'`{r}`' for r in changed)}")
    return NodeChange(node, status, lines)


def _cluster_texts(snap: Snapshot, tree: str, blobs: Mapping[str, str]) -> dict[str, str]:
    base = f"{tree}/" if tree else ""
    read = snap.read(base + rel for rel in CLUSTER_FACTS if base + rel in blobs)
    return {path.removeprefix(base): text for path, text in read.items()}


def cluster_change(
    snaps: tuple[Snapshot, Snapshot], tree: str, blobs: tuple[Mapping[str, str], ...]
) -> list[str]:
    """Compare the cluster part of one tree in two snapshots; bullets, empty when the same."""
    base = f"{tree}/" if tree else ""
    paths = [base + rel for rel in CLUSTER_FACTS]
    if all(blobs[0].get(p) == blobs[1].get(p) for p in paths):
        return []
    old = cluster_facts(_cluster_texts(snaps[0], tree, blobs[0]))
    new = cluster_facts(_cluster_texts(snaps[1], tree, blobs[1]))
    return compare_facts(old, new)


def diff_snapshots(old: Snapshot, new: Snapshot, prefix: str = "") -> list[TreeDiff]:
    """Return the changes of every rendered tree that differs between two snapshots."""
    trees = sorted(
        set(rendered_trees(old.paths(), prefix)) | set(rendered_trees(new.paths(), prefix))
    )
    old_blobs, new_blobs = old.blobs(trees), new.blobs(trees)
    result = []
    for tree in trees:
        before, after = tree_nodes(old_blobs, tree), tree_nodes(new_blobs, tree)
        changes = [
            node_change((old, new), tree, node, (before.get(node, {}), after.get(node, {})))
            for node in sorted(before.keys() | after.keys())
            if before.get(node) != after.get(node)
        ]
        shared = cluster_change((old, new), tree, (old_blobs, new_blobs))
        if changes or shared:
            result.append(TreeDiff(tree, changes, shared))
    return result


def to_markdown(diffs: list[TreeDiff], old_label: str, new_label: str) -> str:
    """Render the changes as Markdown for a pull-request comment."""
    lines = [f"## calicc diff: `{old_label}` → `{new_label}`", ""]
    if not diffs:
        return "\n".join([*lines, "No change to any rendered tree.", ""])
    for diff in diffs:
        lines += [f"### `{diff.tree or '.'}`", ""]
        if diff.cluster:
            lines += ["#### cluster (every node)", *diff.cluster, ""]
        if not diff.changes:
            lines += ["No node's own files changed.", ""]
            continue
        lines += ["| node | change |", "| --- | --- |"]
        lines += [f"| `{c.node}` | {c.status} |" for c in diff.changes]
        for change in diff.changes:
            lines += ["", f"#### `{change.node}` ({change.status})", *change.lines]
        lines.append("")
    return "\n".join(lines)


def diff_command(repo: Path, old_rev: str, new_rev: str | None, prefix: str = "") -> str:
    """Compare `old_rev` with `new_rev` (None: the working tree) and return the Markdown."""
    top = repo_top(repo)
    old, new = Snapshot(top, old_rev), Snapshot(top, new_rev)
    return to_markdown(diff_snapshots(old, new, prefix), old.label, new.label)
