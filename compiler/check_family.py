"""Checks of the two IP families: which pools, addresses, peers and router ids go together.

The per-family versions of the older checks (overlaps, block sizes, duplicates) live in
check.py; these are the ones dual stack adds. Each returns Problems located in cluster.yaml.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.model.spec import ClusterSpec, EncapMode, Node
from calicc.compiler.pools import PoolPlan, node_address
from calicc.compiler.router_id import router_id
from calicc.compiler.selector import parse_selector
from calicc.contract.names import V4, V6

Check = Callable[[ClusterSpec, tuple[PoolPlan, ...], Source], Iterator[Problem]]
FIELD = {4: "address", 6: "address_v6"}
SHOW_NODES = 5


def check_default_pools(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A cluster has network_cidr, network_cidr_v6 or both."""
    if spec.network_cidr is None and spec.network_cidr_v6 is None:
        yield src.problem(
            ("network_cidr",),
            "give network_cidr (the default IPv4 pool, e.g. 10.244.0.0/16), network_cidr_v6 "
            "(the default IPv6 pool, e.g. fd00:244::/56) or both",
        )


def check_ipv6_ipip(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """IPIP carries only IPv4: an IPv6 pool with ipip_mode other than Never is refused."""
    for pool in pools:
        if pool.version == V6 and pool.ipip_mode != EncapMode.NEVER:
            yield src.problem(
                (*pool.spec_loc, "ipip_mode"),
                f"pool {pool.name} ({pool.cidr}) is IPv6 and IPIP has no IPv6: use vxlan_mode "
                "or Never",
            )
    explicit = "ipip_mode" in spec.model_fields_set or spec.calico_ipip_enabled
    if explicit and spec.ipip_mode != EncapMode.NEVER and all(p.version == V6 for p in pools):
        yield src.problem(
            ("ipip_mode",),
            f"ipip_mode {spec.ipip_mode} in a cluster with no IPv4 pool: IPIP has no IPv6; "
            "use vxlan_mode or Never",
        )


def _names(nodes: list[Node]) -> str:
    more = len(nodes) - SHOW_NODES
    return ", ".join(n.name for n in nodes[:SHOW_NODES]) + (f" and {more} more" if more > 0 else "")


def check_pool_addresses(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A node a pool serves has an address of the pool's family (BGP and tunnels use it).

    A pool whose nodes have none at all is reported once, at the pool; otherwise each node
    that lacks one, at the node.
    """
    for pool in pools:
        if pool.disabled or pool.load_balancer:  # gives no node a block
            continue
        served = [(n, node) for n, node in enumerate(spec.nodes) if pool.selects(node)]
        lacking = [(n, node) for n, node in served if node_address(node, pool.version) is None]
        field = FIELD[pool.version]
        if served and len(lacking) == len(served):
            yield src.problem(
                pool.spec_loc,
                f"IPv{pool.version} pool {pool.name} ({pool.cidr}) serves nodes of which none "
                f"has an IPv{pool.version} address ({_names([node for _, node in served])}); "
                f"give them {field}",
            )
            continue
        for n, node in lacking:
            yield src.problem(
                ("nodes", n),
                f"node {node.name} is served by IPv{pool.version} pool {pool.name} but has no "
                f"{field}; give it one, or keep the pool off it with a node_selector",
            )


def check_family_without_pool(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A node address of a family no pool has: nothing would use it (a typo, or a missing pool)."""
    families = {p.version for p in pools}
    if not families:
        return  # no pool at all: check_default_pools says so once
    for version, pool_key in ((4, "network_cidr"), (6, "network_cidr_v6")):
        if version in families:
            continue
        for n, node in enumerate(spec.nodes):
            if node_address(node, version) is not None:
                hint = " (set router_id for BGP's id)" if version == V4 else ""
                yield src.problem(
                    ("nodes", n, FIELD[version]),
                    f"node {node.name} has an IPv{version} address but the cluster has no "
                    f"IPv{version} pool: add {pool_key} (or a pool) or remove the address{hint}",
                )


def check_peer_families(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """What a peer exports is of the peer's family (a session carries one family).

    A peer also needs a node that can reach it: one it selects with an address of its family.
    """
    for i, peer in enumerate(spec.bgp.peers):
        version = peer.peer_ip.version
        selector = parse_selector(peer.node_selector) if peer.node_selector else None
        nodes = [n for n in spec.nodes if selector is None or selector.matches(n.labels)]
        if nodes and all(node_address(n, version) is None for n in nodes):
            yield src.problem(
                ("bgp", "peers", i, "peer_ip"),
                f"peer {peer.peer_ip} is IPv{version} but none of the nodes it peers with has "
                f"an IPv{version} address (nodes[].{FIELD[version]})",
            )
        for j, prefix in enumerate(peer.export):
            if prefix.version != peer.peer_ip.version:
                yield src.problem(
                    ("bgp", "peers", i, "export", j),
                    f"{prefix} is IPv{prefix.version} but peer {peer.peer_ip} is "
                    f"IPv{peer.peer_ip.version}: a session carries its peer's family; list "
                    f"IPv{prefix.version} prefixes under a peer with an IPv{prefix.version} "
                    "peer_ip",
                )


def check_router_ids(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Two nodes may not share a BGP router id (explicit, IPv4 address or derived)."""
    seen: dict[str, int] = {}
    for n, node in enumerate(spec.nodes):
        rid = str(router_id(node))
        if rid not in seen:
            seen[rid] = n
            continue
        first = seen[rid]
        other = spec.nodes[first]
        if _id_loc(other, first)[-1] == _id_loc(node, n)[-1] == "address":
            continue  # the same IPv4 address: check_nodes reports the duplicate
        line, _ = src.position(_id_loc(other, first))
        where = f"{src.file_of(_id_loc(other, first))}:{line}" if line else f"nodes[{first}]"
        yield src.problem(
            _id_loc(node, n),
            f"node {node.name} has BGP router id {rid}, as has node {other.name} "
            f"({where}); give one of them another router_id",
        )


def _id_loc(node: Node, n: int) -> tuple[str | int, ...]:
    """Where a node's router id comes from in cluster.yaml."""
    if node.router_id is not None:
        return ("nodes", n, "router_id")
    return ("nodes", n, "address") if node.address is not None else ("nodes", n, "name")


FAMILY_CHECKS: tuple[Check, ...] = (
    check_default_pools,
    check_ipv6_ipip,
    check_pool_addresses,
    check_family_without_pool,
    check_peer_families,
    check_router_ids,
)
