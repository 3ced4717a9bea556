"""What each node's kernel table must hold for BGP-learned blocks, as the pool's mode demands.

Pure functions over the plan and the lab topology; `calicc lab check` and the real-daemon tests
compare these against `ip -j route`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_network

from calicc.compiler.model.spec import EncapMode
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.pools import PoolPlan
from calicc.contract.names import TUNNEL_DEVICE, V4
from calicc.lab.topology import Address, Interface, Network, Topology

LINK_DEVICE = "eth0"


@dataclass(frozen=True)
class ExpectedRoute:
    """A block route BIRD must install: `<dst> via <gateway> dev <dev> proto bird [onlink]`."""

    dst: Network
    gateway: Address
    dev: str
    onlink: bool
    owner: str  # the node whose block this is

    @property
    def key(self) -> tuple[str, str, str, str, bool]:
        """Return the key that lab.bird.route_key gives the matching kernel route."""
        return (str(self.dst), str(self.gateway), self.dev, "bird", self.onlink)

    @property
    def text(self) -> str:
        """Return the route as `ip route` prints it."""
        tail = " onlink" if self.onlink else ""
        return f"{self.dst} via {self.gateway} dev {self.dev} proto bird{tail}"


def _tunnelled(pool: PoolPlan, me: NodePlan, peer: NodePlan) -> bool:
    if pool.encap != "ipip":
        return False
    if pool.ipip_mode == EncapMode.CROSS_SUBNET:
        return peer.ipv4.ip not in me.subnet
    return pool.ipip_mode == EncapMode.ALWAYS


def expected_routes(
    plan: ClusterPlan,
    me: NodePlan,
    gateway: IPv4Address | None,
    gateway_v6: IPv6Address | None = None,
) -> tuple[ExpectedRoute, ...]:
    """Return the BGP-learned block routes node `me` must hold, sorted by family and destination.

    IPIP routes go via the owner over tunl0 onlink; direct routes go via the owner's address of
    the block's family on the node's link when it shares that subnet, else via the node's
    default router of that family (`gateway`, `gateway_v6`), which is how BIRD resolves a
    recursive next hop. IPv6 blocks travel over IPv6 sessions, so a node without an IPv6
    address (or whose owner has none) expects none. VXLAN and disabled pools are not BIRD's.
    """
    routes = _family_routes(plan, me, 4, gateway) if gateway else []
    routes += _family_routes(plan, me, 6, gateway_v6) if gateway_v6 else []
    return tuple(sorted(routes, key=lambda r: (r.dst.version, r.dst)))


def lab_routes(plan: ClusterPlan, topo: Topology, node: str) -> tuple[ExpectedRoute, ...]:
    """Return the block routes node `node` of the lab `topo` must hold (both families)."""
    gateways = topo.gateways(node)
    return expected_routes(plan, plan.node(node), gateways.get(4), gateways.get(6))  # type: ignore[arg-type]


def _address(node: NodePlan, version: int) -> Interface | None:
    return node.address if version == V4 else node.address_v6


def _family_routes(
    plan: ClusterPlan, me: NodePlan, version: int, gateway: Address
) -> list[ExpectedRoute]:
    """Return the routes to other nodes' blocks of family `version` (none without an address)."""
    mine = _address(me, version)
    if mine is None:
        return []
    pools = {p.name: p for p in plan.pools if p.version == version}
    routes: list[ExpectedRoute] = []
    for peer in plan.nodes:
        owner = _address(peer, version)
        if peer.name == me.name or owner is None:
            continue
        for block in peer.blocks if version == V4 else peer.blocks_v6:
            pool = pools[block.pool]
            if pool.disabled or pool.encap == "vxlan":
                continue
            if _tunnelled(pool, me, peer):
                route = ExpectedRoute(block.cidr, owner.ip, TUNNEL_DEVICE, True, peer.name)
            else:
                via = owner.ip if owner.ip in mine.network else gateway
                route = ExpectedRoute(block.cidr, via, LINK_DEVICE, False, peer.name)
            routes.append(route)
    return routes


def own_block_leaks(plan_node: NodePlan, kernel: list[dict[str, object]]) -> list[str]:
    """Return the node's own blocks (or prefixes inside them) that BIRD installed."""
    leaks = []
    for route in kernel:
        if route.get("protocol") != "bird":
            continue
        dst = ip_network(str(route.get("dst")))
        own: list[Network] = [b.cidr for b in plan_node.blocks]
        own += [b.cidr for b in plan_node.blocks_v6]
        if any(dst.version == b.version and dst.subnet_of(b) for b in own):  # type: ignore[arg-type]
            leaks.append(str(dst))
    return sorted(leaks)


def needs_tunnel_device(plan: ClusterPlan) -> bool:
    """Return whether any enabled pool uses IPIP (a tunl0 device is needed)."""
    return any(p.encap == "ipip" and not p.disabled for p in plan.pools)
