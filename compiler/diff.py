"""calicc diff: what a change does to the rendered trees, as Markdown for a PR comment.

A cluster-level change is reported once, from the cluster part: nodes and VXLAN peers (from
nodes.tsv), pools and NAT outgoing (cluster.json), policies (policy.json), ipsets
(ipsets.restore), the chains of the shared iptables rules (cluster/iptables/*.rules: a chain
the same in every rules file is one fact) and the shared files added, removed or changed. Then
each node whose own files changed (nodes/<node>/bird.conf and node.json): BGP peers from
bird.conf; blocks, routes, MTU and the shared file of each role from node.json. A node whose
node.json changed only by the digest of a cluster file it names is counted in the cluster
section, not listed: that change is the cluster's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from calicc.compiler.gitdiff import (
    Snapshot,
    rendered_trees,
    repo_top,
    tree_nodes,
    tree_part,
    tree_path,
)
from calicc.contract.names import BIRD_CONFIG as BIRD
from calicc.contract.names import (
    CLUSTER_DIR,
    CLUSTER_IPSETS,
    CLUSTER_POLICY,
    CLUSTER_ROUTES,
    CLUSTER_SETTINGS,
    CONFLIST,
    IPTABLES_FILE,
    MANIFEST,
    NODES_TABLE,
    ROUTES_FILE,
    SHARED_DIRS,
    SYSCTL_FILE,
    is_cluster_file,
)
from calicc.contract.nodes_table import NodesTableError, parse_table

BIRD_V2 = "bird/bird.conf"  # where bundle version 2 kept it: a diff across the upgrade reads both
SEMANTIC = (BIRD, BIRD_V2, MANIFEST)
ROLES = {  # node.json's role -> how a report names it
    IPTABLES_FILE: "iptables rules",
    SYSCTL_FILE: "kernel settings",
    CONFLIST: "CNI conflist",
    ROUTES_FILE: "routes script",
}
BGP_PROTOCOL = re.compile(r"^protocol bgp (\S+)[^{\n]*\{\n(.*?)^\}", re.M | re.S)
NEIGHBOR = re.compile(r"^\s*neighbor (\S+)(?: port \d+)? as (\d+);", re.M)
DESCRIPTION = re.compile(r'^\s*description "([^"]*)";', re.M)
Facts = dict[str, dict[str, str]]


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


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
        name: f"({_many(len(rules), 'rule')})\0" + "\n".join(rules)
        for name, rules in sorted(chains.items())
    }


def manifest_facts(text: str) -> Facts:
    """Return blocks, routes, MTU and shared-file facts of a node.json."""
    data = json.loads(text)
    mtu = {"link": str(data.get("link_mtu")), "pod": str(data.get("pod_mtu"))}
    mtu |= {f"device {link['name']}": str(link.get("mtu")) for link in data.get("links", [])}
    files = data.get("files", {})
    return {
        "blocks": {b["cidr"]: f"pool {b['pool']}" for b in data.get("blocks", [])},
        "routes": {r["dst"]: _route_text(r) for r in data.get("routes", [])},
        "MTU": mtu,
        "shared files": {
            ROLES.get(role, role): str(entry["source"])
            for role, entry in files.items()
            if entry.get("source")
        },
    }


def table_facts(text: str) -> Facts:
    """Return the nodes and VXLAN peers of a nodes.tsv (an unreadable one is one fact)."""
    try:
        rows = parse_table(text)
    except NodesTableError as exc:
        return {"nodes": {"nodes.tsv": f"unreadable: {exc}"}}
    return {
        "nodes": {
            r.name: f"{r.address}, {_many(len(r.blocks), 'block')}\0{r.line()}" for r in rows
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
            name: f"({_many(len(m), 'member')})\0" + "\n".join(m)
            for name, m in sorted(members.items())
        }
    }


def shared_role(rel: str) -> str | None:
    """Return the role a cluster file plays in node.json (routes.sh, a kind's file), or None."""
    if rel == CLUSTER_ROUTES:
        return ROUTES_FILE
    for role, (directory, suffix) in SHARED_DIRS.items():
        if rel.startswith(directory + "/") and rel.endswith(suffix):
            return role
    return None


def policy_chains(rules: Mapping[str, str]) -> dict[str, str]:
    """Return the chains of the shared rules files ({path: text}), as iptables_chains.

    A chain with the same rules in every file declaring it is one fact (a policy's chain is
    the same for every kind of node, so a policy change is reported once); one that differs
    between kinds is a fact per file, `table/chain (kind)`.
    """
    variants: dict[str, dict[str, str]] = {}
    for path, text in sorted(rules.items()):
        for chain, value in iptables_chains(text).items():
            variants.setdefault(chain, {})[path] = value
    chains: dict[str, str] = {}
    for chain, by_file in variants.items():
        if len(set(by_file.values())) == 1:
            chains[chain] = next(iter(by_file.values()))
            continue
        for path, value in by_file.items():
            kind = path.rsplit("/", 1)[-1].removesuffix(SHARED_DIRS[IPTABLES_FILE][1])
            chains[f"{chain} ({kind})"] = value
    return dict(sorted(chains.items()))


def shared_facts(blobs: Mapping[str, str]) -> Facts:
    """Return the shared files of a cluster part ({path in the tree: blob id}) with their role."""
    return {
        "shared files": {
            rel: ROLES[role] + "\0" + blob
            for rel, blob in sorted(blobs.items())
            if (role := shared_role(rel)) is not None
        }
    }


CLUSTER_FACTS = {
    NODES_TABLE: table_facts,
    CLUSTER_SETTINGS: settings_facts,
    CLUSTER_POLICY: policy_facts,
    CLUSTER_IPSETS: ipset_facts,
}


def cluster_facts(texts: Mapping[str, str]) -> Facts:
    """Return every cluster-level fact from the texts of the cluster part's files.

    `texts` holds the files of CLUSTER_FACTS and the shared iptables rules files that exist.
    """
    facts: Facts = {}
    for rel, read in CLUSTER_FACTS.items():
        if rel in texts:
            facts |= read(texts[rel])
    rules = {rel: text for rel, text in texts.items() if shared_role(rel) == IPTABLES_FILE}
    if rules:
        facts["policy chains"] = policy_chains(rules)
    return facts


def _route_text(route: Mapping[str, object]) -> str:
    words = [str(route.get("type", ""))]
    words += [f"{key} {route[key]}" for key in ("via", "dev") if route.get(key)]
    return " ".join(words + (["onlink"] if route.get("onlink") else []))


def node_facts(texts: Mapping[str, str]) -> Facts:
    """Return every fact of one node's bundle from the texts of its own files."""
    facts: Facts = {"BGP peers": {}, "blocks": {}, "routes": {}, "shared files": {}}
    bird = texts.get(BIRD, texts.get(BIRD_V2))
    if bird is not None:
        facts["BGP peers"] = bird_peers(bird)
    if MANIFEST in texts:
        facts |= manifest_facts(texts[MANIFEST])
    return facts


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

    The cluster part's, once, and each node's.
    """

    tree: str
    changes: list[NodeChange]
    cluster: list[str] = field(default_factory=list)


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
        f"- node.json names the new digest of {files}: {_many(count, 'node')} changed by that alone"
    ]


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
        shared = cluster_change((old, new), tree, (old_blobs, new_blobs)) + _renamed(changes)
        changes = [c for c in changes if c.status != "cluster"]
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
