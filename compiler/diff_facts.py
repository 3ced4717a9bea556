"""The facts calicc diff compares, read from the rendered files of one revision.

Per node: BGP peers (bird.conf), blocks, routes, MTU and the shared file of each role
(node.json). For the cluster: nodes and VXLAN peers (nodes.tsv), pools and NAT outgoing
(cluster.json), policies (policy.json), ipsets (ipsets.restore), the chains of the shared
iptables rules and the shared files themselves. Each reader takes a file's text and returns
{kind: {key: shown value}}; compiler/diff.py compares two revisions' facts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from calicc.contract.names import BIRD_CONFIG as BIRD
from calicc.contract.names import (
    CLUSTER_IPSETS,
    CLUSTER_POLICY,
    CLUSTER_ROUTES,
    CLUSTER_SETTINGS,
    CONFLIST,
    IP6TABLES_FILE,
    IPTABLES_FILE,
    MANIFEST,
    NODES_TABLE,
    ROUTES_FILE,
    SHARED_DIRS,
    SYSCTL_FILE,
)
from calicc.contract.nodes_table import NodeRow, NodesTableError, parse_table

BIRD_V2 = "bird/bird.conf"  # where bundle version 2 kept it: a diff across the upgrade reads both
SEMANTIC = (BIRD, BIRD_V2, MANIFEST)
ROLES = {  # node.json's role -> how a report names it
    IPTABLES_FILE: "iptables rules",
    IP6TABLES_FILE: "ip6tables rules",
    SYSCTL_FILE: "kernel settings",
    CONFLIST: "CNI conflist",
    ROUTES_FILE: "routes script",
}
BGP_PROTOCOL = re.compile(r"^protocol bgp (\S+)[^{\n]*\{\n(.*?)^\}", re.M | re.S)
NEIGHBOR = re.compile(r"^\s*neighbor (\S+)(?: port \d+)? as (\d+);", re.M)
DESCRIPTION = re.compile(r'^\s*description "([^"]*)";', re.M)
Facts = dict[str, dict[str, str]]


def many(count: int, noun: str) -> str:
    """Return "1 node", "3 nodes"."""
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
        name: f"({many(len(rules), 'rule')})\0" + "\n".join(rules)
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
            r.name: f"{_addresses(r)}, {many(len(r.blocks), 'block')}\0{r.line()}" for r in rows
        },
        "VXLAN peers": {r.name: _vteps(r) for r in rows if _vteps(r)},
    }


def _addresses(row: NodeRow) -> str:
    """Return the row's addresses (IPv4, IPv6), as many as it has."""
    return ", ".join(str(a) for a in (row.address, row.address_v6) if a is not None)


def _vteps(row: NodeRow) -> str:
    """Return the row's VTEPs (vxlan.calico, vxlan-v6.calico) as the diff names them."""
    vteps = []
    if row.vtep_mac is not None and row.address is not None:
        vteps.append(f"VTEP {row.vtep_mac} at {row.address.ip}")
    if row.vtep_mac_v6 is not None and row.address_v6 is not None:
        vteps.append(f"IPv6 VTEP {row.vtep_mac_v6} at {row.address_v6.ip}")
    return "; ".join(vteps)


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


def _binding_key(binding: dict[str, str]) -> str:
    """Return how the diff names a binding: namespace/name, or the tier and a CNP's name."""
    if binding.get("namespace"):
        return f"{binding['namespace']}/{binding['name']}"
    return f"{binding.get('tier')} ClusterNetworkPolicy {binding['name']}"


def policy_facts(text: str) -> Facts:
    """Return the policies of a policy.json."""
    return {
        "policies": {
            _binding_key(b): "\0" + json.dumps(b, sort_keys=True)
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
            name: f"({many(len(m), 'member')})\0" + "\n".join(m)
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
