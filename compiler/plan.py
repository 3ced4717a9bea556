"""ClusterPlan: everything the renderers need, derived from the spec and the lock. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import TYPE_CHECKING

from calicc.compiler.lock import Adopted, Lock, allocate
from calicc.compiler.model.spec import BirdSnippets, ClusterSpec, Node
from calicc.compiler.peering import (
    Peer,
    Session,
    mesh_warning,
    node_as,
    peers_of,
    reflectors_of,
    sessions_for,
)
from calicc.compiler.policy.cnp import CompiledCnp, cnp_api_warnings
from calicc.compiler.policy.rules import CompiledPolicy, api_warnings
from calicc.compiler.pools import PoolPlan, link_mtu, node_pools, pod_mtu, resolve_pools
from calicc.compiler.router_id import router_id
from calicc.contract.names import V4, V6
from calicc.contract.nodes_table import host_networks

if TYPE_CHECKING:
    from calicc.compiler.host.plan import HostPlan


@dataclass(frozen=True)
class Block:
    """An IPv4 block owned by a node, and the pool it belongs to."""

    cidr: IPv4Network
    pool: str


@dataclass(frozen=True)
class BlockV6:
    """An IPv6 block owned by a node, and the pool it belongs to."""

    cidr: IPv6Network
    pool: str


@dataclass(frozen=True)
class SnippetSource:
    """BIRD snippets and whose they are: a node's name, or None for the cluster-wide ones."""

    owner: str | None
    text: BirdSnippets

    @property
    def origin(self) -> str:
        """Return what bird.conf's snippet marker adds after `bird_snippets.top`: the owner."""
        return "" if self.owner is None else f" of node {self.owner}"


@dataclass(frozen=True)
class NodePlan:
    """Per-node facts: identity, blocks, MTUs and BGP sessions, per family.

    The IPv4 facts keep their names (address, blocks, tunnel_address, vtep_mac, sessions);
    the IPv6 ones are beside them with `_v6` (address_v6, blocks_v6, tunnel_address_v6,
    vtep_mac_v6, sessions_v6). An IPv6-only node has no address, blocks or sessions of IPv4.
    The IPv6 facts and the router id are left out of repr(), which is the node's render key
    (render_keys.py): an IPv4-only node keeps its key; family_key() adds them when they exist.
    """

    name: str
    address: IPv4Interface | None
    interface: str | None
    as_number: int
    labels: tuple[tuple[str, str], ...]
    rr_cluster_id: str | None
    pools: tuple[PoolPlan, ...]
    blocks: tuple[Block, ...]
    tunnel_address: IPv4Address | None
    vtep_mac: str | None
    link_mtu: int
    pod_mtu: int
    sessions: tuple[Session, ...]
    snippets: tuple[SnippetSource, ...]
    router_id: IPv4Address = field(repr=False)  # BGP's 32-bit id (router_id.py)
    address_v6: IPv6Interface | None = field(default=None, repr=False)
    blocks_v6: tuple[BlockV6, ...] = field(default=(), repr=False)
    tunnel_address_v6: IPv6Address | None = field(default=None, repr=False)
    vtep_mac_v6: str | None = field(default=None, repr=False)
    sessions_v6: tuple[Session, ...] = field(default=(), repr=False)
    adopted: tuple[Adopted, ...] = field(default=(), repr=False)  # in render keys when set

    @property
    def subnet(self) -> IPv4Network:
        """Return the node's IPv4 subnet (its address's network)."""
        return self.ipv4.network

    @property
    def ipv4(self) -> IPv4Interface:
        """Return the node's IPv4 address, for what exists only on nodes that have one.

        Raises:
            ValueError: an IPv6-only node (a caller that may meet one reads `address`).
        """
        if self.address is None:
            raise ValueError(f"node {self.name} is IPv6-only: it has no IPv4 address")
        return self.address

    def family_key(self) -> str:
        """Return what render keys add to repr(): IPv6 facts and a set router id ('' if none)."""
        own_id = self.address is not None and self.router_id == self.address.ip
        if self.address_v6 is None and not self.blocks_v6 and not self.sessions_v6 and own_id:
            return ""
        v6 = (self.address_v6, self.blocks_v6, self.tunnel_address_v6, self.vtep_mac_v6)
        return repr((self.router_id, *v6, self.sessions_v6))


@dataclass(frozen=True, eq=False)
class ClusterPlan:
    """The whole cluster, nodes sorted by name.

    Compared and hashed by identity, so per-cluster results can be cached for one build.
    """

    name: str
    spec: ClusterSpec
    pools: tuple[PoolPlan, ...]
    nodes: tuple[NodePlan, ...]
    node_subnets: tuple[IPv4Network, ...]
    lock: Lock
    warnings: tuple[str, ...]
    policies: tuple[CompiledPolicy, ...] = ()
    host: HostPlan | None = None  # host protection (compiler/host/build.py attaches it)
    cluster_policies: tuple[CompiledCnp, ...] = ()
    node_subnets_v6: tuple[IPv6Network, ...] = ()

    @property
    def pools_v4(self) -> tuple[PoolPlan, ...]:
        """Return the IPv4 pools, in spec order."""
        return tuple(p for p in self.pools if p.version == V4)

    @property
    def pools_v6(self) -> tuple[PoolPlan, ...]:
        """Return the IPv6 pools, in spec order."""
        return tuple(p for p in self.pools if p.version == V6)

    @cached_property
    def host_networks(self) -> tuple[IPv4Network, ...]:
        """Return every node IPv4 address as /32s, collapsed into the fewest networks (cached)."""
        return host_networks(n.address for n in self.nodes if n.address is not None)

    def node(self, name: str) -> NodePlan:
        """Return the plan of the node called `name`."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _node_plan(
    spec: ClusterSpec,
    pools: tuple[PoolPlan, ...],
    node: Node,
    lock: Lock,
    *,
    reflectors: tuple[Node, ...],
    peers: dict[int, dict[str, Peer]],
) -> NodePlan:
    alloc = lock.nodes[node.name]
    mine = node_pools(pools, node)
    owned = [(cidr, pool) for pool, cidrs in alloc.blocks.items() for cidr in cidrs]
    blocks = tuple(
        sorted((Block(c, p) for c, p in owned if isinstance(c, IPv4Network)), key=lambda b: b.cidr)
    )
    blocks_v6 = tuple(
        sorted(
            (BlockV6(c, p) for c, p in owned if isinstance(c, IPv6Network)), key=lambda b: b.cidr
        )
    )
    snippets = tuple(
        SnippetSource(owner, text)
        for owner, text in ((None, spec.bird_snippets), (node.name, node.bird_snippets))
        if text is not None
    )
    return NodePlan(
        name=node.name,
        address=node.address,
        interface=node.interface,
        as_number=node_as(spec, node),
        labels=tuple(sorted(node.labels.items())),
        rr_cluster_id=node.route_reflector_cluster_id,
        pools=mine,
        blocks=blocks,
        tunnel_address=alloc.tunnel_address,
        vtep_mac=alloc.vtep_mac,
        link_mtu=link_mtu(spec, node),
        pod_mtu=pod_mtu(spec, pools, node),
        sessions=sessions_for(spec, pools, node, reflectors, peers[4]),
        snippets=snippets,
        router_id=router_id(node),
        address_v6=node.address_v6,
        blocks_v6=blocks_v6,
        tunnel_address_v6=alloc.tunnel_address_v6,
        vtep_mac_v6=alloc.vtep_mac_v6,
        sessions_v6=sessions_for(spec, pools, node, reflectors, peers[6], version=6),
        adopted=alloc.adopted,
    )


def build_plan(
    spec: ClusterSpec,
    old_lock: Lock,
    policies: tuple[CompiledPolicy, ...] = (),
    cluster_policies: tuple[CompiledCnp, ...] = (),
) -> ClusterPlan:
    """Derive the plan. The spec (and policies) must already have passed the checks."""
    pools = resolve_pools(spec)
    lock = allocate(spec, pools, old_lock)
    reflectors = reflectors_of(spec)
    peers = {4: peers_of(spec), 6: peers_of(spec, 6)}
    nodes = tuple(
        _node_plan(spec, pools, node, lock, reflectors=reflectors, peers=peers)
        for node in sorted(spec.nodes, key=lambda n: n.name)
    )
    warnings = [mesh_warning(spec, pools)]
    if spec.kubernetes is None:
        warnings += api_warnings(policies) + cnp_api_warnings(cluster_policies)
    return ClusterPlan(
        name=spec.name,
        spec=spec,
        pools=pools,
        nodes=nodes,
        node_subnets=tuple(sorted({n.address.network for n in spec.nodes if n.address})),
        node_subnets_v6=tuple(sorted({n.address_v6.network for n in spec.nodes if n.address_v6})),
        lock=lock,
        warnings=tuple(w for w in warnings if w),
        policies=policies,
        cluster_policies=cluster_policies,
    )
