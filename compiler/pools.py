"""Effective IP pools: the default pools (network_cidr, network_cidr_v6) plus `pools`.

Settings are inherited from the cluster; a pool's block size from its family's default
(block_size for IPv4, block_size_v6 for IPv6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from calicc.compiler.model.spec import ClusterSpec, EncapMode, Node
from calicc.compiler.model.uses import DEFAULT_USES, PoolUse
from calicc.compiler.selector import parse_selector
from calicc.contract.names import V4

DEFAULT_POOL = "default-ipv4-ippool"
DEFAULT_POOL_V6 = "default-ipv6-ippool"  # Calico's name
OVERHEAD = {"ipip": 20, "vxlan": 50}
OVERHEAD_V6 = {"vxlan": 70}  # VXLAN over IPv6 (vxlan-v6.calico); IPIP has no IPv6
FAMILY_KEYS = {4: ("network_cidr", "block_size"), 6: ("network_cidr_v6", "block_size_v6")}


@dataclass(frozen=True)
class PoolPlan:
    """A pool with every setting resolved. `index` is its position in the spec (0: default).

    The two default pools (network_cidr, network_cidr_v6) both have index 0; `version` tells
    them apart.
    """

    index: int
    name: str
    cidr: IPv4Network | IPv6Network
    block_size: int
    ipip_mode: EncapMode
    vxlan_mode: EncapMode
    nat_outgoing: bool
    node_selector: str | None
    disabled: bool
    version: int = field(default=4, repr=False)  # the family: 4 or 6 (out of repr: render keys)
    uses: frozenset[PoolUse] = field(default=DEFAULT_USES, repr=False)  # allowed_uses

    @property
    def for_pods(self) -> bool:
        """Return whether pods get addresses from this pool (allowed use Workload)."""
        return PoolUse.WORKLOAD in self.uses

    @property
    def for_tunnels(self) -> bool:
        """Return whether a node's tunnel address may come from this pool (use Tunnel)."""
        return PoolUse.TUNNEL in self.uses

    @property
    def load_balancer(self) -> bool:
        """Return whether the pool is for LoadBalancer addresses (then it is for nothing else).

        Such a pool gives no node a block and stays out of the all-pools NAT set (calico#12857):
        traffic to its addresses is masqueraded like traffic leaving the pools.
        """
        return PoolUse.LOAD_BALANCER in self.uses

    @property
    def encap(self) -> str | None:
        """Return 'ipip', 'vxlan' or None (both set is rejected by the checks)."""
        if self.vxlan_mode != EncapMode.NEVER:
            return "vxlan"
        if self.ipip_mode != EncapMode.NEVER:
            return "ipip"
        return None

    @property
    def encap_mode(self) -> EncapMode:
        """Return the mode of the pool's encapsulation (Never when it has none)."""
        if self.encap == "vxlan":
            return self.vxlan_mode
        return self.ipip_mode

    @property
    def spec_loc(self) -> tuple[str | int, ...]:
        """Where the pool is written in cluster.yaml."""
        return (FAMILY_KEYS[self.version][0],) if self.index == 0 else ("pools", self.index - 1)

    @property
    def block_size_loc(self) -> tuple[str | int, ...]:
        """Where the pool's block size is written (or inherited from) in cluster.yaml."""
        return (*self.spec_loc, "block_size") if self.index else (FAMILY_KEYS[self.version][1],)

    def selects(self, node: Node) -> bool:
        """Return whether this pool serves pods on `node`."""
        if self.node_selector is None:
            return True
        return parse_selector(self.node_selector).matches(node.labels)


def _default_pool(spec: ClusterSpec, name: str, cidr: IPv4Network | IPv6Network) -> PoolPlan:
    ipip = spec.ipip_mode if cidr.version == V4 else EncapMode.NEVER
    return PoolPlan(
        0,
        name,
        cidr,
        family_block_size(spec, cidr.version),
        ipip,
        spec.vxlan_mode,
        spec.nat_outgoing,
        None,
        False,
        cidr.version,
    )


def family_block_size(spec: ClusterSpec, version: int) -> int:
    """Return the cluster's block size for pools of IP `version` (4 or 6)."""
    return spec.block_size if version == V4 else spec.block_size_v6


def resolve_pools(spec: ClusterSpec) -> tuple[PoolPlan, ...]:
    """Return the default pools (IPv4 first) then the listed ones, settings inherited.

    The cluster's ipip_mode is not inherited by IPv6 pools (IPIP has no IPv6): an IPv6 pool
    encapsulates only with vxlan_mode, and one that sets ipip_mode itself is refused.
    """
    pools = []
    if spec.network_cidr is not None:
        pools.append(_default_pool(spec, DEFAULT_POOL, spec.network_cidr))
    if spec.network_cidr_v6 is not None:
        pools.append(_default_pool(spec, DEFAULT_POOL_V6, spec.network_cidr_v6))
    for index, pool in enumerate(spec.pools, start=1):
        v4 = pool.cidr.version == V4
        balancer = PoolUse.LOAD_BALANCER in pool.uses  # inherits no encapsulation
        ipip = spec.ipip_mode if v4 and not balancer else EncapMode.NEVER
        vxlan = EncapMode.NEVER if balancer else spec.vxlan_mode
        pools.append(
            PoolPlan(
                index,
                pool.name,
                pool.cidr,
                pool.block_size
                if pool.block_size is not None
                else family_block_size(spec, pool.cidr.version),
                pool.ipip_mode if pool.ipip_mode is not None else ipip,
                pool.vxlan_mode if pool.vxlan_mode is not None else vxlan,
                pool.nat_outgoing if pool.nat_outgoing is not None else spec.nat_outgoing,
                pool.node_selector,
                pool.disabled,
                pool.cidr.version,
                pool.uses,
            )
        )
    return tuple(pools)


def node_address(node: Node, version: int) -> IPv4Interface | IPv6Interface | None:
    """Return the node's address of IP `version` (4 or 6), None when it has none."""
    return node.address if version == V4 else node.address_v6


def node_pools(pools: tuple[PoolPlan, ...], node: Node) -> tuple[PoolPlan, ...]:
    """Return the enabled pools that serve `node` (none for LoadBalancer), in spec order."""
    return tuple(p for p in pools if not p.disabled and not p.load_balancer and p.selects(node))


def tunnel_pool(mine: tuple[PoolPlan, ...], version: int) -> PoolPlan | None:
    """Return the pool of `mine` (a node's pools) its tunnel address of `version` comes from.

    An encapsulated pool of the family that allows Tunnel, as calico-node picks the pools its
    tunnel address may come from: the first that is for tunnels only (a pool made for them),
    else the first that allows Tunnel; None when there is none (no tunnel address).
    """
    able = [p for p in mine if p.version == version and p.encap and p.for_tunnels]
    return next((p for p in able if not p.for_pods), able[0] if able else None)


def encap_between(pool: PoolPlan, a: Node, b: Node) -> str | None:
    """Return the encapsulation pool traffic from `a` to `b` uses: 'ipip', 'vxlan' or None."""
    mode = pool.encap_mode
    if mode == EncapMode.NEVER or a.name == b.name:
        return None
    mine, theirs = node_address(a, pool.version), node_address(b, pool.version)
    if mode == EncapMode.CROSS_SUBNET and mine and theirs and theirs.ip in mine.network:
        return None
    return pool.encap


def link_mtu(spec: ClusterSpec, node: Node) -> int:
    """Return the MTU of the node's link (per node, else cluster-wide, default 1500)."""
    return node.link_mtu if node.link_mtu is not None else spec.link_mtu


def pool_overhead(pool: PoolPlan) -> int:
    """Return the bytes the pool's encapsulation adds (0 when it has none)."""
    if pool.encap is None:
        return 0
    return (OVERHEAD if pool.version == V4 else OVERHEAD_V6)[pool.encap]


def overhead(pools: tuple[PoolPlan, ...]) -> int:
    """Return the largest encapsulation overhead among `pools` (0 when none encapsulates)."""
    return max((pool_overhead(p) for p in pools), default=0)


def pod_mtu(spec: ClusterSpec, pools: tuple[PoolPlan, ...], node: Node) -> int:
    """Return the pod (and tunnel) MTU: the configured one, or link MTU minus the overhead."""
    if spec.mtu is not None:
        return spec.mtu
    return link_mtu(spec, node) - overhead(node_pools(pools, node))
