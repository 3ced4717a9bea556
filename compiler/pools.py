"""Effective IP pools: the default pool from network_cidr plus `pools`, with inherited settings."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from calicc.compiler.model.spec import ClusterSpec, EncapMode, Node
from calicc.compiler.selector import parse_selector

DEFAULT_POOL = "default-ipv4-ippool"
OVERHEAD = {"ipip": 20, "vxlan": 50}


@dataclass(frozen=True)
class PoolPlan:
    """A pool with every setting resolved. `index` is its position in the spec (0: default)."""

    index: int
    name: str
    cidr: IPv4Network
    block_size: int
    ipip_mode: EncapMode
    vxlan_mode: EncapMode
    nat_outgoing: bool
    node_selector: str | None
    disabled: bool

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
        return ("network_cidr",) if self.index == 0 else ("pools", self.index - 1)

    def selects(self, node: Node) -> bool:
        """Return whether this pool serves pods on `node`."""
        if self.node_selector is None:
            return True
        return parse_selector(self.node_selector).matches(node.labels)


def resolve_pools(spec: ClusterSpec) -> tuple[PoolPlan, ...]:
    """Return the default pool followed by the listed pools, settings inherited from the spec."""
    pools = [
        PoolPlan(
            0,
            DEFAULT_POOL,
            spec.network_cidr,
            spec.block_size,
            spec.ipip_mode,
            spec.vxlan_mode,
            spec.nat_outgoing,
            None,
            False,
        )
    ]
    for index, pool in enumerate(spec.pools, start=1):
        pools.append(
            PoolPlan(
                index,
                pool.name,
                pool.cidr,
                pool.block_size if pool.block_size is not None else spec.block_size,
                pool.ipip_mode if pool.ipip_mode is not None else spec.ipip_mode,
                pool.vxlan_mode if pool.vxlan_mode is not None else spec.vxlan_mode,
                pool.nat_outgoing if pool.nat_outgoing is not None else spec.nat_outgoing,
                pool.node_selector,
                pool.disabled,
            )
        )
    return tuple(pools)


def node_pools(pools: tuple[PoolPlan, ...], node: Node) -> tuple[PoolPlan, ...]:
    """Return the enabled pools that serve `node`, in spec order."""
    return tuple(p for p in pools if not p.disabled and p.selects(node))


def encap_between(pool: PoolPlan, a: Node, b: Node) -> str | None:
    """Return the encapsulation pool traffic from `a` to `b` uses: 'ipip', 'vxlan' or None."""
    mode = pool.encap_mode
    if mode == EncapMode.NEVER or a.name == b.name:
        return None
    if mode == EncapMode.CROSS_SUBNET and b.address.ip in a.address.network:
        return None
    return pool.encap


def link_mtu(spec: ClusterSpec, node: Node) -> int:
    """Return the MTU of the node's link (per node, else cluster-wide, default 1500)."""
    return node.link_mtu if node.link_mtu is not None else spec.link_mtu


def overhead(pools: tuple[PoolPlan, ...]) -> int:
    """Return the largest encapsulation overhead among `pools` (0 when none encapsulates)."""
    return max((OVERHEAD[p.encap] for p in pools if p.encap), default=0)


def pod_mtu(spec: ClusterSpec, pools: tuple[PoolPlan, ...], node: Node) -> int:
    """Return the pod (and tunnel) MTU: the configured one, or link MTU minus the overhead."""
    if spec.mtu is not None:
        return spec.mtu
    return link_mtu(spec, node) - overhead(node_pools(pools, node))
