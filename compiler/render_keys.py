"""Render keys: one digest per node of everything its files are rendered from.

A node's files are a function of its own plan (NodePlan: address, blocks, pools, BGP sessions,
snippets...) and of cluster-wide inputs that are not about other nodes: the cluster file's
settings (everything but the node list), the set of node subnets (BIRD's filters), the cluster
settings node.json names, calicc's version and its templates. Policies are not among them: they
live in the cluster part only (policy.json, the shared iptables rules), so a policy change
renders no node. index.json records each node's key (`node_inputs`); a rebuild re-renders only
the nodes whose key changed (or whose files are missing) and keeps the others' files and
digests as they are. A node joining therefore renders that node and the reflectors whose
sessions changed, not the cluster.
"""

from __future__ import annotations

import hashlib
from functools import cache, lru_cache
from importlib import resources

from calicc import __version__
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.render import cluster_entries

# Keys no node's files are rendered from: the pods and intents files are the trace's inputs.
TRACE_KEYS = frozenset({"pods", "intents"})
# Keys of the IPv6 inputs: left out of the spec's part of the key while unset, so an
# IPv4-only cluster keeps the keys it had before IPv6 existed (no node re-rendered).
V6_KEYS = frozenset(
    {"network_cidr_v6", "block_size_v6", "ip6_autodetection_method", "service_cluster_ip_range_v6"}
)
# Keys added later, left out while unset for the same reason (pools' allowed_uses likewise).
LATER_KEYS = frozenset({"reservations"})


@cache
def templates_digest() -> str:
    """Return a digest of every template's bytes (a checkout's edits change no version)."""
    digest = hashlib.sha256()
    stack = [("", resources.files("calicc") / "templates")]
    found = []
    while stack:
        where, here = stack.pop()
        for item in here.iterdir():
            if item.is_dir():
                stack.append((f"{where}{item.name}/", item))
            elif item.name.endswith(".j2"):
                found.append((where + item.name, item))
    for name, item in sorted(found, key=lambda pair: pair[0]):
        digest.update(name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=2)
def shared_key(cluster: ClusterPlan) -> bytes:
    """Return the digest of the cluster-wide inputs every node's files are rendered from."""
    digest = hashlib.sha256()
    v6_subnets = repr(cluster.node_subnets_v6) if cluster.node_subnets_v6 else ""
    for part in (
        __version__,
        templates_digest(),
        spec_part(cluster),
        repr(cluster.node_subnets) + v6_subnets,
        repr(sorted((rel, e.digest) for rel, e in cluster_entries(cluster).items())),
    ):
        digest.update(part.encode() + b"\0")
    return digest.digest()


def spec_part(cluster: ClusterPlan) -> str:
    """Return the spec's part of the shared key: all but the nodes, trace and unset new keys."""
    spec = cluster.spec
    exclude: dict[str, object] = dict.fromkeys(
        {"nodes"} | TRACE_KEYS | ((V6_KEYS | LATER_KEYS) - spec.model_fields_set), True
    )
    unset_uses = {i: {"allowed_uses"} for i, p in enumerate(spec.pools) if p.allowed_uses is None}
    if unset_uses:
        exclude["pools"] = unset_uses
    return spec.model_dump_json(exclude=exclude)  # type: ignore[arg-type]  # pydantic's IncEx


def render_key(cluster: ClusterPlan, node: NodePlan) -> str:
    """Return the key of `node`'s files: equal keys, equal files."""
    own = repr(node) + node.family_key() + (repr(node.adopted) if node.adopted else "")
    return "sha256:" + hashlib.sha256(shared_key(cluster) + own.encode()).hexdigest()
