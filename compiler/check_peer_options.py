"""Checks of the per-peer options of `bgp.peers[]` that need several fields or the nodes.

A single field's range is its model's (model/bgp_peer.py); here: timers that BIRD would refuse
together, contradictory next-hop settings, TTL security beside multihop, an import limit action
without a limit, two node peers that both wait for the other (passive on both ends), a
reachable_by gateway the node cannot reach directly or a peer that needs none, the mesh's
restart time without a mesh, two entries that give one node two sessions with one peer, and
an entry peering two nodes that the mesh or the reflectors already peer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address

from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.model.bgp_peer import BIRD_DEFAULT_HOLD
from calicc.compiler.model.spec import BgpPeer, ClusterSpec, Node
from calicc.compiler.peering import needs_bgp
from calicc.compiler.pools import PoolPlan, node_address
from calicc.compiler.selector import parse_selector

Check = Callable[[ClusterSpec, tuple[PoolPlan, ...], Source], Iterator[Problem]]
Loc = tuple[str | int, ...]


def _loc(i: int, field: str) -> Loc:
    return ("bgp", "peers", i, field)


def selects(peer: BgpPeer, node: Node) -> bool:
    """Return whether `peer`'s entry gives `node` a session (its selector picks the node)."""
    return peer.node_selector is None or parse_selector(peer.node_selector).matches(node.labels)


def check_timers(spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source) -> Iterator[Problem]:
    """Keepalives come more often than the hold time; a hold time of 0 sends none."""
    for i, peer in enumerate(spec.bgp.peers):
        keepalive, hold = peer.keepalive_time, peer.hold_time
        if keepalive is None:
            continue
        if hold == 0:
            yield src.problem(
                _loc(i, "keepalive_time"),
                "hold_time 0 turns keepalives off: leave keepalive_time out, or set a hold time "
                "of 3 or more",
            )
        elif keepalive >= (hold or BIRD_DEFAULT_HOLD):
            said = f"hold_time {hold}" if hold else f"BIRD's default hold time {BIRD_DEFAULT_HOLD}"
            yield src.problem(
                _loc(i, "keepalive_time"),
                f"keepalive_time {keepalive} is not below {said}: the peer would drop the "
                f"session between keepalives; use at most {(hold or BIRD_DEFAULT_HOLD) - 1} "
                "(a third of the hold time is usual)",
            )


def check_next_hop(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """One way of setting the next hop: next_hop_mode, or one of the older flags."""
    for i, peer in enumerate(spec.bgp.peers):
        older = [k for k in ("next_hop_self", "keep_next_hop") if getattr(peer, k)]
        if peer.next_hop_mode is not None and older:
            yield src.problem(
                _loc(i, "next_hop_mode"),
                f"next_hop_mode replaces {' and '.join(older)}: keep one of them "
                "(next_hop_mode: Self for next_hop_self, Keep for keep_next_hop)",
            )
        elif len(older) == len(("next_hop_self", "keep_next_hop")):
            yield src.problem(
                _loc(i, "keep_next_hop"),
                "next_hop_self and keep_next_hop contradict each other: set one, or "
                "next_hop_mode: Self | Keep",
            )


def check_single_options(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """TTL security sets the hop count itself; an import limit action needs a limit."""
    for i, peer in enumerate(spec.bgp.peers):
        if peer.ttl_security is not None and peer.multihop is not None:
            yield src.problem(
                _loc(i, "ttl_security"),
                f"ttl_security {peer.ttl_security} sets the hop count (BIRD's multihop) itself: "
                f"remove multihop {peer.multihop}",
            )
        if peer.import_limit_action is not None and peer.import_limit is None:
            yield src.problem(
                _loc(i, "import_limit_action"),
                "import_limit_action applies past import_limit: set import_limit (a number of "
                "routes) or remove the action",
            )
    reflectors = [n.name for n in spec.nodes if n.route_reflector_cluster_id is not None]
    if spec.bgp.node_mesh_max_restart_time is not None and (
        reflectors or not spec.bgp.node_to_node_mesh
    ):
        why = f"in-cluster reflectors ({reflectors[0]}) replace" if reflectors else "is off"
        yield src.problem(
            ("bgp", "node_mesh_max_restart_time"),
            f"node_mesh_max_restart_time applies to the node-to-node mesh, which {why}: "
            "remove it, or set max_restart_time on the peers",
        )


def _node_at(spec: ClusterSpec) -> dict[IPv4Address | IPv6Address, Node]:
    return {a.ip: node for node in spec.nodes for a in (node.address, node.address_v6) if a}


def check_passive_ends(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Two entries peering node X with node Y and Y with X may not both be passive.

    A peer entry whose peer_ip is a cluster node (with a node_selector) is one end of a
    session between two nodes; when the entry for the other end is passive too, neither
    node ever connects and the session never comes up.
    """
    if not any(p.passive for p in spec.bgp.peers):
        return
    nodes = _node_at(spec)
    ends = [
        (i, peer, nodes[peer.peer_ip])
        for i, peer in enumerate(spec.bgp.peers)
        if peer.passive and peer.peer_ip in nodes
    ]
    for n, (i, peer, target) in enumerate(ends):
        for j, other, other_target in ends[n + 1 :]:
            if selects(peer, other_target) and selects(other, target):
                yield src.problem(
                    _loc(j, "passive"),
                    f"both ends of the session between nodes {target.name} and "
                    f"{other_target.name} are passive (bgp.peers[{i}] and bgp.peers[{j}]): "
                    "neither would connect; make one of them active (passive: false)",
                )


def check_local_as(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A local AS only toward a speaker outside the cluster.

    A node's peer that is a cluster node expects the node's own AS (its sessions know no
    other), so another AS there would never establish.
    """
    if all(p.local_as_number is None for p in spec.bgp.peers):
        return
    nodes = _node_at(spec)
    for i, peer in enumerate(spec.bgp.peers):
        if peer.local_as_number is not None and peer.peer_ip in nodes:
            yield src.problem(
                _loc(i, "local_as_number"),
                f"{peer.peer_ip} is node {nodes[peer.peer_ip].name}, whose session expects "
                "this node's own AS: local_as_number is for peers outside the cluster; "
                "remove it, or set the node's as_number",
            )


def check_reachable_by(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """reachable_by: a gateway on each selected node's subnet, toward a peer off that subnet."""
    for i, peer in enumerate(spec.bgp.peers):
        gateway = peer.reachable_by
        if gateway is None:
            continue
        if gateway.version != peer.peer_ip.version or gateway == peer.peer_ip:
            yield src.problem(
                _loc(i, "reachable_by"),
                f"reachable_by {gateway} must be a gateway of the peer's family (IPv"
                f"{peer.peer_ip.version}) other than the peer {peer.peer_ip} itself",
            )
            continue
        yield from _reachable_from_nodes(spec, src, i, peer, gateway)


def _reachable_from_nodes(
    spec: ClusterSpec, src: Source, i: int, peer: BgpPeer, gateway: IPv4Address | IPv6Address
) -> Iterator[Problem]:
    for node in spec.nodes:
        address = node_address(node, gateway.version)
        if address is None or not selects(peer, node) or address.ip == peer.peer_ip:
            continue
        if peer.peer_ip in address.network:
            why = (
                f"peer {peer.peer_ip} is on node {node.name}'s own subnet {address.network} "
                "and needs no gateway: remove reachable_by"
            )
        elif gateway not in address.network or gateway == address.ip:
            why = (
                f"gateway {gateway} is not another address on node {node.name}'s subnet "
                f"{address.network}: the static route to the peer needs a gateway the node "
                "reaches directly (or a node_selector that picks only nodes of its subnet)"
            )
        else:
            continue
        yield src.problem(_loc(i, "reachable_by"), why)
        return


def check_one_session_per_peer(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Two entries may not give one node two sessions with one peer (address and port).

    Both would be one BIRD protocol name (Global_/Node_ and the address), which BIRD refuses;
    entries for one peer with disjoint node selectors (options per group of nodes) are fine.
    """
    if len(spec.bgp.peers) < 2:  # noqa: PLR2004
        return
    matchers = [
        None if p.node_selector is None else parse_selector(p.node_selector) for p in spec.bgp.peers
    ]
    reported: set[tuple[int, int]] = set()
    for node in spec.nodes:
        own = {a.ip for a in (node.address, node.address_v6) if a}
        first: dict[tuple[IPv4Address | IPv6Address, int], int] = {}
        for j, peer in enumerate(spec.bgp.peers):
            chosen = matchers[j]
            if peer.peer_ip in own or (chosen is not None and not chosen.matches(node.labels)):
                continue
            i = first.setdefault((peer.peer_ip, peer.port or 179), j)
            if i != j and (i, j) not in reported:
                reported.add((i, j))
                yield src.problem(
                    _loc(j, "peer_ip"),
                    f"node {node.name} would peer with {peer.peer_ip} twice (bgp.peers[{i}] "
                    f"and bgp.peers[{j}]): give the entries node selectors that pick "
                    "different nodes, or merge them",
                )


def _in_cluster(spec: ClusterSpec, reflected: bool, a: Node, b: Node, v: int) -> str:
    """Return how nodes `a` and `b` already peer in family `v` ("" when they do not).

    `reflected`: the family's in-cluster BGP runs through reflectors (False: the mesh, if on).
    """
    if node_address(a, v) is None or node_address(b, v) is None:
        return ""
    if reflected:
        either = a.route_reflector_cluster_id or b.route_reflector_cluster_id
        return "the in-cluster route reflector sessions" if either else ""
    return "the node-to-node mesh" if spec.bgp.node_to_node_mesh else ""


def check_node_peers_outside_the_mesh(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """An entry peering two nodes may not duplicate their mesh or reflector session.

    BIRD would hold two protocols with one neighbor, and only one of them would come up.
    """
    nodes = _node_at(spec) if any(p.node_selector for p in spec.bgp.peers) else {}
    for i, peer in enumerate(spec.bgp.peers):
        target = nodes.get(peer.peer_ip)
        version = peer.peer_ip.version
        if target is None or not needs_bgp(pools, version):
            continue
        reflected = any(
            n.route_reflector_cluster_id and node_address(n, version) for n in spec.nodes
        )
        for node in spec.nodes:
            how = "" if node is target else _in_cluster(spec, reflected, node, target, version)
            if how and selects(peer, node):
                yield src.problem(
                    _loc(i, "peer_ip"),
                    f"node {node.name} already peers with node {target.name} ({peer.peer_ip}) "
                    f"over {how}: a second session would not come up; remove this entry, or "
                    "turn node_to_node_mesh off and peer the nodes with entries",
                )
                break


PEER_OPTION_CHECKS: tuple[Check, ...] = (
    check_node_peers_outside_the_mesh,
    check_one_session_per_peer,
    check_timers,
    check_next_hop,
    check_single_options,
    check_passive_ends,
    check_local_as,
    check_reachable_by,
)
