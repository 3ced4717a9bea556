"""A node's routes, neighbours and FDB entries to the other nodes' VXLAN blocks.

Derived from the node table (contract/nodes_table.py): the one place that decides them (the
compiler, the agent and `calicc trace` call it; routes.sh's awk does the same and tests/unit
hold the two to the same answer).

For every other node and every enabled VXLAN pool with blocks on it:
- the pool's mode is Never, or CrossSubnet with the peer's address inside this node's subnet:
  a direct route to each block via the peer's address (through the node's interface when set);
- otherwise, when the peer has a VTEP: a route to each block via the peer's tunnel address,
  onlink through vxlan.calico, and the peer's neighbour (tunnel address -> VTEP MAC) and FDB
  (VTEP MAC -> peer address) entries.
A node without a VTEP of its own takes part in none of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from calicc.contract.manifest import ClusterPool, FdbEntry, Neighbor, Route
from calicc.contract.names import VXLAN_DEVICE
from calicc.contract.nodes_table import NodeRow


@dataclass(frozen=True)
class VxlanPlane:
    """The VXLAN state one node holds for the others (each tuple sorted)."""

    routes: tuple[Route, ...]
    neighbors: tuple[Neighbor, ...]
    fdb: tuple[FdbEntry, ...]


def vxlan_pools(pools: Iterable[ClusterPool]) -> tuple[ClusterPool, ...]:
    """Return the enabled IPv4 VXLAN pools.

    VXLAN over IPv6 (vxlan-v6.calico) is not derived here yet: the node table has no IPv6
    address, tunnel address or VTEP MAC.
    """
    return tuple(
        p
        for p in pools
        if p.encapsulation == "vxlan" and not p.disabled and p.cidr.version == 4  # noqa: PLR2004
    )


def direct(pool: ClusterPool, me: NodeRow, peer: NodeRow) -> bool:
    """Return whether `pool`'s traffic from `me` to `peer` goes unencapsulated."""
    if pool.mode == "Never":
        return True
    return pool.mode == "CrossSubnet" and peer.address.ip in me.address.network


def vxlan_plane(
    me: NodeRow, interface: str | None, pools: Sequence[ClusterPool], rows: Iterable[NodeRow]
) -> VxlanPlane:
    """Return what `me` (whose link is `interface`, if set) holds for the other nodes."""
    tunnelled = vxlan_pools(pools)
    if not tunnelled or me.vtep_mac is None or me.tunnel_address is None:
        return VxlanPlane((), (), ())
    routes: list[Route] = []
    neighbors: dict[str, Neighbor] = {}
    fdb: dict[str, FdbEntry] = {}
    for peer in rows:
        if peer.name == me.name:
            continue
        for pool in tunnelled:
            blocks = peer.blocks_of(pool.name)
            if not blocks:
                continue
            if direct(pool, me, peer):
                text = f"pool {pool.name}: node {peer.name}, same subnet (CrossSubnet): direct"
                routes += (
                    Route(dst=b, type="unicast", via=peer.address.ip, dev=interface, comment=text)
                    for b in blocks
                )
            elif peer.tunnel_address is not None and peer.vtep_mac is not None:
                text = f"pool {pool.name}: node {peer.name} over VXLAN"
                routes += (
                    Route(
                        dst=b,
                        type="unicast",
                        via=peer.tunnel_address,
                        dev=VXLAN_DEVICE,
                        onlink=True,
                        comment=text,
                    )
                    for b in blocks
                )
                neighbors[peer.name] = Neighbor(
                    dev=VXLAN_DEVICE, address=peer.tunnel_address, lladdr=peer.vtep_mac
                )
                fdb[peer.name] = FdbEntry(
                    dev=VXLAN_DEVICE, lladdr=peer.vtep_mac, dst=peer.address.ip
                )
    return VxlanPlane(
        routes=tuple(sorted(routes, key=lambda r: r.dst)),
        neighbors=tuple(sorted(neighbors.values(), key=lambda n: n.address)),
        fdb=tuple(sorted(fdb.values(), key=lambda f: f.dst)),
    )
