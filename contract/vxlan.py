"""A node's routes, neighbours and FDB entries to the other nodes' VXLAN blocks, per family.

Derived from the node table (contract/nodes_table.py): the one place that decides them (the
compiler, the agent and `calicc trace` call it; routes.sh's awk does the same and tests/unit
hold the two to the same answer).

Each family has its own device, as in Calico: IPv4 VXLAN pools go through vxlan.calico between
the nodes' IPv4 addresses (columns address, tunnel_address, vtep_mac), IPv6 ones through
vxlan-v6.calico between their IPv6 addresses (address_v6, tunnel_address_v6, vtep_mac_v6).
For every other node and every enabled VXLAN pool of a family with blocks on it:
- the pool's mode is Never, or CrossSubnet with the peer's address of the family inside this
  node's subnet of the family: a direct route to each block via the peer's address (through
  the node's interface when set);
- otherwise, when the peer has a VTEP of the family: a route to each block via the peer's
  tunnel address, onlink through the family's device, and the peer's neighbour (tunnel address
  -> VTEP MAC) and FDB (VTEP MAC -> peer address) entries on it.
A node without a VTEP of a family takes part in none of that family's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from calicc.contract.manifest import ClusterPool, FdbEntry, Neighbor, Route
from calicc.contract.names import V4, VXLAN_DEVICE, VXLAN_V6_DEVICE
from calicc.contract.nodes_table import NodeRow

DEVICES = {4: VXLAN_DEVICE, 6: VXLAN_V6_DEVICE}  # the VXLAN device of each family


@dataclass(frozen=True)
class VxlanPlane:
    """The VXLAN state one node holds for the others (each tuple sorted, IPv4 first)."""

    routes: tuple[Route, ...]
    neighbors: tuple[Neighbor, ...]
    fdb: tuple[FdbEntry, ...]


@dataclass(frozen=True)
class Vtep:
    """A node's facts of one family: address, tunnel address and VTEP MAC (each may be unset)."""

    address: IPv4Interface | IPv6Interface | None
    tunnel: IPv4Address | IPv6Address | None
    mac: str | None

    @property
    def complete(self) -> bool:
        """Return whether the node has a VTEP of this family (tunnel address and MAC)."""
        return self.tunnel is not None and self.mac is not None


def vtep(row: NodeRow, version: int) -> Vtep:
    """Return the facts of `row` of IP `version` (4 or 6)."""
    if version == V4:
        return Vtep(row.address, row.tunnel_address, row.vtep_mac)
    return Vtep(row.address_v6, row.tunnel_address_v6, row.vtep_mac_v6)


def vxlan_pools(pools: Iterable[ClusterPool], version: int = 4) -> tuple[ClusterPool, ...]:
    """Return the enabled VXLAN pools of IP `version`."""
    return tuple(
        p
        for p in pools
        if p.encapsulation == "vxlan" and not p.disabled and p.cidr.version == version
    )


def direct(pool: ClusterPool, me: NodeRow, peer: NodeRow) -> bool:
    """Return whether `pool`'s traffic from `me` to `peer` goes unencapsulated.

    CrossSubnet compares the addresses of the pool's family: IPv6 subnets are address_v6's.
    """
    if pool.mode == "Never":
        return True
    mine, theirs = vtep(me, pool.cidr.version).address, vtep(peer, pool.cidr.version).address
    if pool.mode != "CrossSubnet" or mine is None or theirs is None:
        return False
    return theirs.ip in mine.network


def _family_plane(
    me: NodeRow,
    interface: str | None,
    pools: tuple[ClusterPool, ...],
    rows: Iterable[NodeRow],
    version: int,
) -> tuple[list[Route], list[Neighbor], list[FdbEntry]]:
    dev = DEVICES[version]
    routes: list[Route] = []
    neighbors: dict[str, Neighbor] = {}
    fdb: dict[str, FdbEntry] = {}
    for peer in rows:
        theirs = vtep(peer, version)
        if peer.name == me.name or theirs.address is None:
            continue
        for pool in pools:
            blocks = peer.blocks_of(pool.name)
            if not blocks:
                continue
            if direct(pool, me, peer):
                text = f"pool {pool.name}: node {peer.name}, same subnet (CrossSubnet): direct"
                routes += (
                    Route(dst=b, type="unicast", via=theirs.address.ip, dev=interface, comment=text)
                    for b in blocks
                )
            elif theirs.tunnel is not None and theirs.mac is not None:
                text = f"pool {pool.name}: node {peer.name} over VXLAN"
                routes += (
                    Route(
                        dst=b, type="unicast", via=theirs.tunnel, dev=dev, onlink=True, comment=text
                    )
                    for b in blocks
                )
                neighbors[peer.name] = Neighbor(dev=dev, address=theirs.tunnel, lladdr=theirs.mac)
                fdb[peer.name] = FdbEntry(dev=dev, lladdr=theirs.mac, dst=theirs.address.ip)
    return routes, list(neighbors.values()), list(fdb.values())


def vxlan_plane(
    me: NodeRow, interface: str | None, pools: Sequence[ClusterPool], rows: Iterable[NodeRow]
) -> VxlanPlane:
    """Return what `me` (whose link is `interface`, if set) holds for the other nodes."""
    rows = tuple(rows)
    routes: list[Route] = []
    neighbors: list[Neighbor] = []
    fdb: list[FdbEntry] = []
    for version in DEVICES:
        tunnelled = vxlan_pools(pools, version)
        if not tunnelled or not vtep(me, version).complete:
            continue
        family = _family_plane(me, interface, tunnelled, rows, version)
        routes += family[0]
        neighbors += family[1]
        fdb += family[2]
    return VxlanPlane(
        routes=tuple(sorted(routes, key=lambda r: (r.dst.version, r.dst))),
        neighbors=tuple(sorted(neighbors, key=lambda n: (n.address.version, n.address))),
        fdb=tuple(sorted(fdb, key=lambda f: (f.dst.version, f.dst))),
    )
