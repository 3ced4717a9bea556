"""Who peers with whom: the node-to-node mesh, in-cluster route reflectors, external peers.

Each session is described from one node's side as a Session; the BIRD target turns it into a
`protocol bgp`. Decisions live here (passivity, reflector clients, names); templates only print.
Sessions are per family (docs/ipv6.md): the IPv4 ones between the nodes' IPv4 addresses, the
IPv6 ones between their IPv6 addresses, each carrying its own family's routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from calicc.compiler.bgp_filters import has_communities, session_filters
from calicc.compiler.bgp_services import advertises
from calicc.compiler.model.spec import BgpPeer, ClusterSpec, Node
from calicc.compiler.peer_options import (
    SessionOptions,
    mesh_options,
    next_hop,
    peer_options,
    session_as,
)
from calicc.compiler.pools import PoolPlan, node_address
from calicc.compiler.selector import parse_selector
from calicc.contract.manifest import SecretRef

MESH_WARN_NODES = 100


class Role(StrEnum):
    """The kind of session, from this node's side."""

    MESH = "mesh"  # node-to-node mesh
    REFLECTOR = "reflector"  # to an in-cluster route reflector (from a client or a reflector)
    CLIENT = "client"  # from a reflector to its client
    GLOBAL = "global"  # external peer of every node
    NODE = "node"  # external peer of the nodes its selector picks


@dataclass(frozen=True)
class Session:
    """One BGP session as seen from one node."""

    name: str
    role: Role
    peer_ip: IPv4Address | IPv6Address
    peer_as: int
    peer_node: str | None
    port: int | None
    passive: bool
    rr_cluster_id: str | None
    password: SecretRef | None
    reflects: bool
    next_hop_self: bool
    keep_next_hop: bool
    multihop: int | None
    extra_exports: tuple[IPv4Network | IPv6Network, ...]
    options: SessionOptions | None = None  # per-peer options (peer_options.py)
    import_filters: tuple[str, ...] = ()  # bgp.filters run on import (bgp_filters.py)
    export_filters: tuple[str, ...] = ()  # and on export
    communities: bool = False  # add bgp.prefix_advertisements' communities on export
    internal: bool = False  # iBGP: the peer's AS is the one this side presents (peer_type)
    exports_services: bool = field(default=False, repr=False)  # bgp_services.py

    @property
    def secret_include(self) -> str | None:
        """Relative path of the file holding `password "..."`, written by the agent."""
        return f"secrets/{self.name}.conf" if self.password else None


def node_as(spec: ClusterSpec, node: Node) -> int:
    """Return the node's AS number (its own, else the cluster's)."""
    return node.as_number if node.as_number is not None else spec.bgp.as_number


def _ip_name(ip: IPv4Address | IPv6Address, port: int | None) -> str:
    base = str(ip).replace(".", "_").replace(":", "_")
    return f"{base}_port_{port}" if port else base


@dataclass(frozen=True)
class Peer:
    """A node as its in-cluster BGP peers see it, computed once per build.

    A full mesh of N nodes has N * (N - 1) sessions, but the sessions toward one peer differ
    only by what the other side brings (passive or not, reflector or not, same AS or not):
    `sessions` keeps each kind once, so a build makes about 2 * N Session objects, not N * N.
    """

    name: str
    ip: IPv4Address | IPv6Address
    ip_text: str
    ip_name: str
    as_number: int
    rr_cluster_id: str | None
    sessions: dict[tuple[object, ...], Session] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )


def peers_of(spec: ClusterSpec, version: int = 4) -> dict[str, Peer]:
    """Return every node with an address of IP `version` as a BGP peer of that family, by name."""
    peers = {}
    for node in spec.nodes:
        address = node_address(node, version)
        if address is None:
            continue
        ip = address.ip
        peers[node.name] = Peer(
            name=node.name,
            ip=ip,
            ip_text=str(ip),
            ip_name=_ip_name(ip, None),
            as_number=node_as(spec, node),
            rr_cluster_id=node.route_reflector_cluster_id,
        )
    return peers


_PREFIX = {Role.MESH: "Mesh", Role.REFLECTOR: "RR", Role.CLIENT: "RRClient"}


def _internal(spec: ClusterSpec, me: Peer, peer: Peer, role: Role) -> Session:
    # Calico's rule: the side whose peer has the greater address, compared as strings,
    # waits; one side connects, so graceful restart never races.
    passive = peer.ip_text > me.ip_text
    internal = peer.as_number == me.as_number
    # a reflector's client is an iBGP peer (BIRD: "Only internal neighbor can be RR client");
    # a node in another AS is a plain eBGP peer of the reflector, as in Calico
    rr_cluster_id = me.rr_cluster_id if role == Role.CLIENT and internal else None
    reflects = me.rr_cluster_id is not None
    key = (role, passive, rr_cluster_id, reflects, internal)
    found = peer.sessions.get(key)
    if found is None:
        found = peer.sessions[key] = _new_internal(spec, peer, role, key)
    return found


def _new_internal(
    spec: ClusterSpec, peer: Peer, role: Role, key: tuple[Role, bool, str | None, bool, bool]
) -> Session:
    _, passive, rr_cluster_id, reflects, internal = key
    return Session(
        name=f"{_PREFIX[role]}_{peer.ip_name}",
        role=role,
        peer_ip=peer.ip,
        peer_as=peer.as_number,
        peer_node=peer.name,
        port=spec.bgp.listen_port if spec.bgp.listen_port != 179 else None,  # noqa: PLR2004
        passive=passive,
        rr_cluster_id=rr_cluster_id,
        password=spec.bgp.mesh_password,
        reflects=reflects,
        next_hop_self=False,
        keep_next_hop=False,
        multihop=None,
        extra_exports=(),
        options=mesh_options(spec.bgp.node_mesh_max_restart_time) if role == Role.MESH else None,
        communities=has_communities(spec, peer.ip.version),
        internal=internal,
    )


def _external(spec: ClusterSpec, me: Node, peer: BgpPeer) -> Session:
    role = Role.GLOBAL if peer.node_selector is None else Role.NODE
    prefix = "Global" if role == Role.GLOBAL else "Node"
    self_hop, keep_hop = next_hop(peer, node_as(spec, me))
    filters = session_filters(spec, peer, peer.peer_ip.version)
    options = peer_options(peer)
    return Session(
        name=f"{prefix}_{_ip_name(peer.peer_ip, peer.port)}",
        role=role,
        peer_ip=peer.peer_ip,
        peer_as=peer.as_number,
        peer_node=None,
        port=peer.port,
        passive=peer.passive,
        rr_cluster_id=None,
        password=peer.password,
        reflects=False,
        next_hop_self=self_hop,
        keep_next_hop=keep_hop,
        multihop=peer.multihop,
        extra_exports=peer.export,
        options=options,
        import_filters=filters[0],
        export_filters=filters[1],
        communities=has_communities(spec, peer.peer_ip.version),
        internal=peer.as_number == session_as(options, node_as(spec, me)),
        exports_services=advertises(spec, me.labels, peer.peer_ip.version),
    )


def needs_bgp(pools: tuple[PoolPlan, ...], version: int | None = None) -> bool:
    """In-cluster BGP carries pod routes unless every enabled pool is VXLAN (static routes).

    With `version`, only that family's pools count (its sessions carry only its routes).
    """
    return any(
        p.encap != "vxlan"
        for p in pools
        if not p.disabled and (version is None or p.version == version)
    )


def reflectors_of(spec: ClusterSpec) -> tuple[Node, ...]:
    """Return the in-cluster route reflectors (computed once per build)."""
    return tuple(n for n in spec.nodes if n.route_reflector_cluster_id is not None)


def sessions_for(
    spec: ClusterSpec,
    pools: tuple[PoolPlan, ...],
    me: Node,
    reflectors: tuple[Node, ...],
    peers: dict[str, Peer],
    *,
    version: int = 4,
) -> tuple[Session, ...]:
    """Return every BGP session of `me` of one family, sorted by name.

    `peers` is peers_of(spec, version): the family is theirs (IPv4 unless `version` says).
    """
    sessions: list[Session] = []
    mine = peers.get(me.name)
    if mine is not None:
        sessions += _in_cluster(spec, pools, mine, reflectors, peers, version=version)
    own = {a.ip for a in (me.address, me.address_v6) if a is not None}
    for peer in spec.bgp.peers:
        selected = peer.node_selector is None or parse_selector(peer.node_selector).matches(
            me.labels
        )
        if selected and peer.peer_ip.version == version and peer.peer_ip not in own:
            sessions.append(_external(spec, me, peer))
    return tuple(sorted(sessions, key=lambda s: s.name))


def _in_cluster(
    spec: ClusterSpec,
    pools: tuple[PoolPlan, ...],
    mine: Peer,
    reflectors: tuple[Node, ...],
    peers: dict[str, Peer],
    *,
    version: int,
) -> list[Session]:
    """Return the mesh or route reflector sessions of the node `mine` in one family."""
    sessions: list[Session] = []
    bgp = needs_bgp(pools, version)
    rrs = [rr for rr in reflectors if rr.name in peers]
    if bgp and rrs:
        sessions += [
            _internal(spec, mine, peers[rr.name], Role.REFLECTOR)
            for rr in rrs
            if rr.name != mine.name
        ]
        if mine.rr_cluster_id is not None:
            sessions += [
                _internal(spec, mine, peer, Role.CLIENT)
                for peer in peers.values()
                if peer.rr_cluster_id is None
            ]
    elif bgp and spec.bgp.node_to_node_mesh:
        sessions += [
            _internal(spec, mine, peer, Role.MESH) for peer in peers.values() if peer is not mine
        ]
    return sessions


def mesh_warning(spec: ClusterSpec, pools: tuple[PoolPlan, ...]) -> str | None:
    """Warn when a full mesh grows past 100 nodes, and say how to add reflectors."""
    reflectors = any(n.route_reflector_cluster_id for n in spec.nodes)
    count = len(spec.nodes)
    if (
        needs_bgp(pools)
        and spec.bgp.node_to_node_mesh
        and not reflectors
        and count > MESH_WARN_NODES
    ):
        sessions = count * (count - 1) // 2
        return (
            f"the node-to-node mesh of {count} nodes opens {sessions} BGP sessions "
            f"({count - 1} per node); past {MESH_WARN_NODES} nodes, pick two or three nodes "
            "(one per rack or zone) and give each `route_reflector_cluster_id: 1.0.0.1`: "
            "every other node then peers only with them"
        )
    return None
