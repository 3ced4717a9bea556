"""ClusterPlan: everything the renderers need, derived from the spec and the lock. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING

from calicc.compiler.lock import Lock, allocate
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
from calicc.contract.nodes_table import host_networks

if TYPE_CHECKING:
    from calicc.compiler.host.plan import HostPlan


@dataclass(frozen=True)
class Block:
    """A block owned by a node, and the pool it belongs to."""

    cidr: IPv4Network
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
    """Per-node facts: identity, blocks, MTUs and BGP sessions."""

    name: str
    address: IPv4Interface
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

    @property
    def subnet(self) -> IPv4Network:
        """Return the node's subnet (its address's network)."""
        return self.address.network


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

    @cached_property
    def host_networks(self) -> tuple[IPv4Network, ...]:
        """Return every node address as /32s, collapsed into the fewest networks (cached)."""
        return host_networks(n.address for n in self.nodes)

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
    peers: dict[str, Peer],
) -> NodePlan:
    alloc = lock.nodes[node.name]
    mine = node_pools(pools, node)
    blocks = tuple(
        sorted(
            (Block(cidr, pool) for pool, cidrs in alloc.blocks.items() for cidr in cidrs),
            key=lambda b: b.cidr,
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
        sessions=sessions_for(spec, pools, node, reflectors, peers),
        snippets=snippets,
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
    peers = peers_of(spec)
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
        node_subnets=tuple(sorted({n.address.network for n in spec.nodes})),
        lock=lock,
        warnings=tuple(w for w in warnings if w),
        policies=policies,
        cluster_policies=cluster_policies,
    )
