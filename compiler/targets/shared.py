"""The files every node of one kind shares, each written once in the cluster part.

A node's iptables rules depend on it only through the encapsulations of the IPv4 pools that
serve it (its ip6tables rules, on a node with IPv6, through those of its IPv6 pools), its kernel
settings only through its tunnel devices and whether it has IPv6, its CNI conflist only through
its pod MTU, and its routes script not at all (the script reads the node's row of the node
table). So
each is rendered once per distinct value, as `cluster/<dir>/<kind><suffix>`
(contract.names.shared_path: cluster/iptables/ipip.rules, cluster/sysctl/vxlan.conf,
cluster/cni/mtu-1450.conflist), and each node's node.json names, for each role, the file of its
kind (`FileEntry.source`); the agent installs it at the role's path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.targets.ip6tables import has_ipv6, node_encaps_v6
from calicc.compiler.targets.iptables import node_encaps
from calicc.compiler.targets.routes import device_kind, tunnel_links
from calicc.contract.names import (
    CLUSTER_ROUTES,
    CONFLIST,
    IP6TABLES_FILE,
    IPTABLES_FILE,
    ROUTES_FILE,
    SYSCTL_FILE,
    shared_path,
)

UNENCAPSULATED = "plain"  # the kind of a node without encapsulation (or tunnel device)


@dataclass(frozen=True)
class SharedFile:
    """One shared file: the role it plays and what its text depends on."""

    role: str
    path: str
    encaps: frozenset[str] = frozenset()  # iptables: the serving pools' encapsulations
    devices: tuple[str, ...] = ()  # sysctl: the tunnel devices, sorted
    mtu: int = 0  # conflist: the pod MTU
    ipv6: bool = False  # sysctl: the node forwards IPv6 (its kind's name ends in -ipv6)


@dataclass(frozen=True)
class SharedPlan:
    """The shared files of a cluster ({path: file}) and each node's ({node: {role: path}})."""

    files: dict[str, SharedFile]
    sources: dict[str, dict[str, str]]


def encap_kind(encaps: Iterable[str]) -> str:
    """Return the kind named by a set of encapsulations: "ipip", "ipip-vxlan", "plain".

    Examples:
        >>> encap_kind({"vxlan", "ipip"}), encap_kind(())
        ('ipip-vxlan', 'plain')
    """
    return "-".join(sorted(set(encaps))) or UNENCAPSULATED


def node_shared(cluster: ClusterPlan, node: NodePlan) -> tuple[SharedFile, ...]:
    """Return the shared files `node` uses, one per role."""
    encaps = node_encaps(node)
    links = tunnel_links(cluster, node)
    devices = tuple(link.name for link in links)
    ipv6 = has_ipv6(node)
    sysctl_kind = encap_kind(device_kind(link) for link in links) + ("-ipv6" if ipv6 else "")
    files = (
        SharedFile(IPTABLES_FILE, shared_path(IPTABLES_FILE, encap_kind(encaps)), encaps=encaps),
        SharedFile(SYSCTL_FILE, shared_path(SYSCTL_FILE, sysctl_kind), devices=devices, ipv6=ipv6),
        SharedFile(CONFLIST, shared_path(CONFLIST, f"mtu-{node.pod_mtu}"), mtu=node.pod_mtu),
    )
    if not ipv6:
        return files
    encaps_v6 = node_encaps_v6(node)
    path = shared_path(IP6TABLES_FILE, encap_kind(encaps_v6))
    return (*files, SharedFile(IP6TABLES_FILE, path, encaps=encaps_v6))


@lru_cache(maxsize=2)
def shared_plan(cluster: ClusterPlan) -> SharedPlan:
    """Return every shared file of the cluster and which each node uses (once per build)."""
    files: dict[str, SharedFile] = {}
    sources: dict[str, dict[str, str]] = {}
    for node in cluster.nodes:
        mine = node_shared(cluster, node)
        for shared in mine:
            if files.setdefault(shared.path, shared) != shared:
                raise AssertionError(f"{shared.path}: two kinds of node share one name")
        sources[node.name] = {ROUTES_FILE: CLUSTER_ROUTES} | {s.role: s.path for s in mine}
    return SharedPlan(files=dict(sorted(files.items())), sources=sources)
