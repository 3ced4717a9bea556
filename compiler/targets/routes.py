"""Tunnel devices, routes, neighbours and FDB entries of one node (routes/routes.sh, node.json).

Route ownership (DESIGN: one owner per kernel route; see compiler/targets/bird.py):
- the blackhole of each of the node's own blocks: routes.sh / the agent;
- VXLAN pools: the route to every remote block, plus the permanent neighbour entry (remote
  tunnel address -> remote VTEP MAC) and FDB entry (remote VTEP MAC -> remote node address)
  behind it: routes.sh / the agent. The compiler knows every node, so no control plane is needed;
- IPIP and unencapsulated pools: block routes of remote nodes are learned over BGP and are
  BIRD's; this module never lists them.
Every route carries protocol ROUTE_PROTOCOL, so the agent can tell its routes from anyone else's.

A node gets `vxlan.calico` only when it has a VTEP (a VXLAN pool serves it, so the lock holds its
VTEP MAC and tunnel address); only such nodes send or receive VXLAN. When both IPIP and VXLAN
pools serve a node, its one tunnel address is put on both devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Interface, IPv4Network

from calicc.compiler.model.spec import Node
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.pools import PoolPlan, encap_between
from calicc.contract.manifest import FdbEntry, Link, Neighbor, Route
from calicc.contract.names import (
    ROUTE_PROTOCOL,
    TUNNEL_DEVICE,
    VXLAN_DEVICE,
    VXLAN_PORT,
    VXLAN_VNI,
)


@dataclass(frozen=True)
class Dataplane:
    """Everything routes.sh programs on one node, as manifest data (each tuple sorted)."""

    links: tuple[Link, ...]
    routes: tuple[Route, ...]
    vteps: tuple[Vtep, ...]

    @property
    def neighbors(self) -> tuple[Neighbor, ...]:
        """Return the permanent neighbour entries, sorted by address."""
        return tuple(sorted((v.neighbor for v in self.vteps), key=lambda n: n.address))

    @property
    def fdb(self) -> tuple[FdbEntry, ...]:
        """Return the permanent FDB entries, sorted by remote node address."""
        return tuple(sorted((v.fdb for v in self.vteps), key=lambda f: f.dst))


@dataclass(frozen=True)
class Vtep:
    """A remote node's VXLAN endpoint, as this node's neighbour and FDB entries."""

    node: str
    neighbor: Neighbor
    fdb: FdbEntry


def _tunnel_interface(node: NodePlan) -> IPv4Interface | None:
    if node.tunnel_address is None:
        return None
    return IPv4Interface(f"{node.tunnel_address}/32")


def _enabled(cluster: ClusterPlan, encap: str) -> tuple[PoolPlan, ...]:
    return tuple(p for p in cluster.pools if not p.disabled and p.encap == encap)


def tunnel_links(cluster: ClusterPlan, node: NodePlan) -> tuple[Link, ...]:
    """Return the node's tunnel devices, sorted by name.

    tunl0 exists when any enabled pool uses IPIP (BIRD routes remote IPIP blocks through it,
    even on a node no IPIP pool serves); vxlan.calico when the node has a VTEP.
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
                local=node.address.ip,
                parent=node.interface,
            )
        )
    return tuple(sorted(links, key=lambda link: link.name))


def has_vtep(cluster: ClusterPlan, node: NodePlan) -> bool:
    """Return whether the node takes part in VXLAN (a VXLAN pool exists and serves it)."""
    return bool(_enabled(cluster, "vxlan")) and bool(node.vtep_mac and node.tunnel_address)


def blackholes(node: NodePlan) -> tuple[Route, ...]:
    """Return a blackhole route for each block of the node (pods get /32s inside them)."""
    return tuple(
        Route(
            dst=block.cidr,
            type="blackhole",
            comment=f"pool {block.pool}: block of this node ({node.name})",
        )
        for block in node.blocks
    )


@lru_cache(maxsize=2)
def _over_vxlan(cluster: ClusterPlan) -> dict[tuple[str, str], tuple[tuple[Route, ...], Vtep]]:
    """Per (pool, peer): the routes to the peer's blocks over VXLAN and its VTEP entries.

    The same for every node that reaches the peer through the tunnel, so built once per
    cluster; a VXLAN node's state is O(nodes) by nature, its construction need not be.
    """
    entries: dict[tuple[str, str], tuple[tuple[Route, ...], Vtep]] = {}
    for pool in _enabled(cluster, "vxlan"):
        for peer in cluster.spec.nodes:
            alloc = cluster.lock.nodes[peer.name]
            blocks = alloc.blocks.get(pool.name, ())
            if not blocks or alloc.tunnel_address is None or alloc.vtep_mac is None:
                continue
            text = f"pool {pool.name}: node {peer.name} over VXLAN"
            routes = tuple(
                Route(
                    dst=b,
                    type="unicast",
                    via=alloc.tunnel_address,
                    dev=VXLAN_DEVICE,
                    onlink=True,
                    comment=text,
                )
                for b in blocks
            )
            vtep = Vtep(
                node=peer.name,
                neighbor=Neighbor(
                    dev=VXLAN_DEVICE, address=alloc.tunnel_address, lladdr=alloc.vtep_mac
                ),
                fdb=FdbEntry(dev=VXLAN_DEVICE, lladdr=alloc.vtep_mac, dst=peer.address.ip),
            )
            entries[(pool.name, peer.name)] = (routes, vtep)
    return entries


def _direct(pool: PoolPlan, me: Node, peer: Node, blocks: tuple[IPv4Network, ...]) -> list[Route]:
    text = f"pool {pool.name}: node {peer.name}, same subnet (CrossSubnet): direct"
    return [
        Route(dst=b, type="unicast", via=peer.address.ip, dev=me.interface, comment=text)
        for b in blocks
    ]


def _vxlan_state(cluster: ClusterPlan, node: NodePlan) -> tuple[list[Route], list[Vtep]]:
    """Routes to remote blocks of VXLAN pools; O(nodes), so only computed for VXLAN clusters."""
    pools = _enabled(cluster, "vxlan")
    if not pools or not has_vtep(cluster, node):
        return [], []
    me = next(n for n in cluster.spec.nodes if n.name == node.name)
    tunnelled = _over_vxlan(cluster)
    routes: list[Route] = []
    vteps: dict[str, Vtep] = {}
    for peer in cluster.spec.nodes:
        if peer.name == node.name:
            continue
        for pool in pools:
            blocks = cluster.lock.nodes[peer.name].blocks.get(pool.name, ())
            if not blocks:
                continue
            if encap_between(pool, me, peer) is None:
                routes += _direct(pool, me, peer, blocks)
            elif (pool.name, peer.name) in tunnelled:
                peer_routes, vtep = tunnelled[(pool.name, peer.name)]
                routes += peer_routes
                vteps[peer.name] = vtep
    return routes, list(vteps.values())


def dataplane(cluster: ClusterPlan, node: NodePlan) -> Dataplane:
    """Return the links, routes and remote VTEPs of `node`, each sorted."""
    remote, vteps = _vxlan_state(cluster, node)
    return Dataplane(
        links=tunnel_links(cluster, node),
        routes=tuple(sorted([*blackholes(node), *remote], key=lambda r: r.dst)),
        vteps=tuple(sorted(vteps, key=lambda v: v.node)),
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


def routes_view(cluster: ClusterPlan, node: NodePlan) -> dict[str, object]:
    """Return the template context of routes/routes.sh."""
    plane = dataplane(cluster, node)
    return {
        "cluster": cluster.name,
        "node": node.name,
        "proto": ROUTE_PROTOCOL,
        "ipip_links": [link for link in plane.links if link.kind == "ipip"],
        "vxlan_links": [link for link in plane.links if link.kind == "vxlan"],
        "vxlan_device": VXLAN_DEVICE,
        "routes": [(route.comment, route_words(route)) for route in plane.routes],
        "keep_routes": [str(route.dst) for route in plane.routes],
        "vteps": plane.vteps,
    }
