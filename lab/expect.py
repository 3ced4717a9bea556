"""What each node's kernel table must hold for BGP-learned blocks, as the pool's mode demands.

Pure functions over the plan and the lab topology; `calicc lab check` and the real-daemon tests
compare these against `ip -j route`.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from calicc.compiler.model.spec import EncapMode
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.compiler.pools import PoolPlan
from calicc.contract.names import TUNNEL_DEVICE

LINK_DEVICE = "eth0"


@dataclass(frozen=True)
class ExpectedRoute:
    """A block route BIRD must install: `<dst> via <gateway> dev <dev> proto bird [onlink]`."""

    dst: IPv4Network
    gateway: IPv4Address
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
    plan: ClusterPlan, me: NodePlan, gateway: IPv4Address
) -> tuple[ExpectedRoute, ...]:
    """Return the BGP-learned block routes node `me` must hold, sorted by destination.

    IPIP routes go via the owner over tunl0 onlink; direct routes go via the owner on the
    node's link when it shares the subnet, else via `gateway` (the node's default router),
    which is how BIRD resolves a recursive next hop. VXLAN and disabled pools are not BIRD's.
    """
    pools = {p.name: p for p in plan.pools}
    routes: list[ExpectedRoute] = []
    for peer in plan.nodes:
        if peer.name == me.name:
            continue
        for block in peer.blocks:
            pool = pools[block.pool]
            if pool.disabled or pool.encap == "vxlan":
                continue
            if _tunnelled(pool, me, peer):
                route = ExpectedRoute(block.cidr, peer.ipv4.ip, TUNNEL_DEVICE, True, peer.name)
            else:
                via = peer.ipv4.ip if peer.ipv4.ip in me.subnet else gateway
                route = ExpectedRoute(block.cidr, via, LINK_DEVICE, False, peer.name)
            routes.append(route)
    return tuple(sorted(routes, key=lambda r: r.dst))


def own_block_leaks(plan_node: NodePlan, kernel: list[dict[str, object]]) -> list[str]:
    """Return the node's own blocks (or prefixes inside them) that BIRD installed."""
    leaks = []
    for route in kernel:
        if route.get("protocol") != "bird":
            continue
        dst = IPv4Network(str(route.get("dst")))
        if any(dst.subnet_of(b.cidr) for b in plan_node.blocks):
            leaks.append(str(dst))
    return sorted(leaks)


def needs_tunnel_device(plan: ClusterPlan) -> bool:
    """Return whether any enabled pool uses IPIP (a tunl0 device is needed)."""
    return any(p.encap == "ipip" and not p.disabled for p in plan.pools)
