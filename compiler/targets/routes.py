"""Tunnel devices, routes, neighbours and FDB entries of one node (node.json; cluster/routes.sh).

Route ownership (DESIGN: one owner per kernel route; see compiler/targets/bird.py):
- the blackhole of each of the node's own blocks: routes.sh / the agent;
  (cluster/routes.sh, run as `routes.sh NODE`, derives all of it from the node table alone)
- VXLAN pools: the route to every remote block, plus the permanent neighbour entry (remote
  tunnel address -> remote VTEP MAC) and FDB entry (remote VTEP MAC -> remote node address)
  behind it: routes.sh / the agent, derived on the node from the cluster's node table
  (cluster/nodes.tsv, contract/vxlan.py), so no control plane is needed and no node's files
  list the others;
- IPIP and unencapsulated pools: block routes of remote nodes are learned over BGP and are
  BIRD's; this module never lists them.
Every route carries protocol ROUTE_PROTOCOL, so the agent can tell its routes from anyone else's.

A node gets `vxlan.calico` only when it has a VTEP (a VXLAN pool serves it, so the lock holds its
VTEP MAC and tunnel address); only such nodes send or receive VXLAN. When both IPIP and VXLAN
pools serve a node, its one tunnel address is put on both devices. VXLAN over IPv6 is the same
per family: `vxlan-v6.calico` when an IPv6 VXLAN pool serves the node (IPv6 VTEP MAC and tunnel
address), sending between the nodes' IPv6 addresses, with the same VNI and port as Calico.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface

from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.pools import PoolPlan
from calicc.compiler.targets.cluster import cluster_pools, node_blocks, node_rows
from calicc.contract.manifest import FdbEntry, Link, Neighbor, Route
from calicc.contract.names import (
    ROUTE_PROTOCOL,
    TUNNEL_DEVICE,
    VXLAN_DEVICE,
    VXLAN_PORT,
    VXLAN_V6_DEVICE,
    VXLAN_VNI,
)
from calicc.contract.vxlan import vxlan_plane


@dataclass(frozen=True)
class Dataplane:
    """Everything one node programs for pod traffic, as manifest data (each tuple sorted)."""

    links: tuple[Link, ...]
    routes: tuple[Route, ...]
    neighbors: tuple[Neighbor, ...]
    fdb: tuple[FdbEntry, ...]


def _tunnel_interface(node: NodePlan) -> IPv4Interface | None:
    if node.tunnel_address is None:
        return None
    return IPv4Interface(f"{node.tunnel_address}/32")


def _enabled(cluster: ClusterPlan, encap: str, version: int = 4) -> tuple[PoolPlan, ...]:
    """Return the enabled pools of IP `version` using `encap` (IPIP pools are all IPv4)."""
    pools = cluster.pools
    return tuple(p for p in pools if not p.disabled and p.encap == encap and p.version == version)


def tunnel_links(cluster: ClusterPlan, node: NodePlan) -> tuple[Link, ...]:
    """Return the node's tunnel devices, sorted by name.

    tunl0 exists when any enabled pool uses IPIP (BIRD routes remote IPIP blocks through it,
    even on a node no IPIP pool serves); vxlan.calico when the node has an IPv4 VTEP,
    vxlan-v6.calico (IPv6 local and /128 address, Calico's) when it has an IPv6 one.
    """
    links = []
    if _enabled(cluster, "ipip"):
        links.append(
            Link(name=TUNNEL_DEVICE, kind="ipip", mtu=node.pod_mtu, address=_tunnel_interface(node))
        )
    if has_vtep(cluster, node):
        links.append(
            Link(
                name=VXLAN_DEVICE,
                kind="vxlan",
                mtu=node.pod_mtu,
                address=_tunnel_interface(node),
                vni=VXLAN_VNI,
                port=VXLAN_PORT,
                mac=node.vtep_mac,
                local=node.ipv4.ip,
                parent=node.interface,
            )
        )
    if has_vtep_v6(cluster, node) and node.address_v6 is not None:
        links.append(
            Link(
                name=VXLAN_V6_DEVICE,
                kind="vxlan",
                mtu=node.pod_mtu,
                address=IPv6Interface(f"{node.tunnel_address_v6}/128"),
                vni=VXLAN_VNI,
                port=VXLAN_PORT,
                mac=node.vtep_mac_v6,
                local=node.address_v6.ip,
                parent=node.interface,
            )
        )
    return tuple(sorted(links, key=lambda link: link.name))


def device_kind(link: Link) -> str:
    """Return the word naming `link` in a kind of node: its kind, vxlan6 for vxlan-v6.calico.

    Examples:
        >>> device_kind(Link(name="vxlan-v6.calico", kind="vxlan", mtu=1430))
        'vxlan6'
    """
    return "vxlan6" if link.name == VXLAN_V6_DEVICE else link.kind


def has_vtep(cluster: ClusterPlan, node: NodePlan) -> bool:
    """Return whether the node takes part in IPv4 VXLAN (an IPv4 VXLAN pool serves it)."""
    return bool(_enabled(cluster, "vxlan")) and bool(node.vtep_mac and node.tunnel_address)


def has_vtep_v6(cluster: ClusterPlan, node: NodePlan) -> bool:
    """Return whether the node takes part in IPv6 VXLAN (an IPv6 VXLAN pool serves it)."""
    return bool(_enabled(cluster, "vxlan", 6)) and bool(node.vtep_mac_v6 and node.tunnel_address_v6)


def blackholes(node: NodePlan) -> tuple[Route, ...]:
    """Return a blackhole route for each block of the node, IPv4 then IPv6.

    Pods get /32s (and /128s) inside them, so only addresses no pod holds hit the blackhole.
    """
    return tuple(
        Route(
            dst=block.cidr,
            type="blackhole",
            comment=f"pool {block.pool}: block of this node ({node.name})",
        )
        for block in node_blocks(node)
    )


def dataplane(cluster: ClusterPlan, node: NodePlan) -> Dataplane:
    """Return the links, routes and remote VTEPs of `node`, each sorted.

    The node's own routes (its blackholes) are in its node.json; the routes to the other
    nodes' VXLAN blocks derive from the node table (contract/vxlan.py), as the agent derives
    them. For the tests, the lab and `calicc trace`: rendering never needs them.
    """
    rows = node_rows(cluster)
    me = next(row for row in rows if row.name == node.name)
    plane = vxlan_plane(me, node.interface, cluster_pools(cluster), rows)
    return Dataplane(
        links=tunnel_links(cluster, node),
        routes=tuple(
            sorted([*blackholes(node), *plane.routes], key=lambda r: (r.dst.version, r.dst))
        ),
        neighbors=plane.neighbors,
        fdb=plane.fdb,
    )


def route_args(route: Route) -> str:
    """Return the `ip route replace` arguments of `route`, protocol included.

    Examples:
        >>> from ipaddress import IPv4Network
        >>> route_args(Route(dst=IPv4Network("10.244.0.0/26"), type="blackhole"))
        'blackhole 10.244.0.0/26 proto 81'
    """
    return " ".join(route_words(route))


def route_words(route: Route) -> tuple[str, ...]:
    """Return the `ip route replace` arguments of `route` as words (the template quotes them)."""
    words = ["blackhole", str(route.dst)] if route.type == "blackhole" else [str(route.dst)]
    if route.via is not None:
        words += ["via", str(route.via)]
    if route.dev is not None:
        words += ["dev", route.dev]
    if route.onlink:
        words.append("onlink")
    return (*words, "proto", str(ROUTE_PROTOCOL))
