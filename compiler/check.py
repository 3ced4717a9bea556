"""Semantic checks across fields, run after the models validated; each returns Problems."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.model.spec import ClusterSpec, EncapMode
from calicc.compiler.pools import OVERHEAD, PoolPlan, link_mtu, node_pools, resolve_pools
from calicc.compiler.selector import parse_selector

Check = Callable[[ClusterSpec, tuple[PoolPlan, ...], Source], Iterator[Problem]]
MIN_PREFIX_WITH_BROADCAST = 30
SHOW_NODES = 5


def check_pool_overlaps(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Pools overlapping each other, the service range, or a node's subnet."""
    for i, pool in enumerate(pools):
        for other in pools[i + 1 :]:
            if pool.cidr.overlaps(other.cidr):
                yield src.problem(
                    other.spec_loc,
                    f"pool {other.name} ({other.cidr}) overlaps pool {pool.name} ({pool.cidr})",
                )
        if pool.cidr.overlaps(spec.service_cluster_ip_range):
            yield src.problem(
                pool.spec_loc,
                f"pool {pool.name} ({pool.cidr}) overlaps service_cluster_ip_range "
                f"({spec.service_cluster_ip_range}); pick a pool outside it",
            )
        for n, node in enumerate(spec.nodes):
            if pool.cidr.overlaps(node.address.network):
                yield src.problem(
                    ("nodes", n, "address"),
                    f"node subnet {node.address.network} overlaps pool {pool.name} ({pool.cidr})",
                )


def check_block_sizes(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A block must fit inside its pool."""
    for pool in pools:
        if pool.block_size < pool.cidr.prefixlen:
            loc = (*pool.spec_loc, "block_size") if pool.index else ("block_size",)
            yield src.problem(
                loc,
                f"block size /{pool.block_size} is larger than pool {pool.name} ({pool.cidr}); "
                f"use /{pool.cidr.prefixlen} to /32",
            )


def check_encapsulation(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """IPIP and VXLAN on one pool; CrossSubnet with nodes that have no subnet prefix."""
    for pool in pools:
        loc = pool.spec_loc if pool.index else ("ipip_mode",)
        if EncapMode.NEVER not in (pool.ipip_mode, pool.vxlan_mode):
            yield src.problem(
                loc,
                f"pool {pool.name} enables both IPIP ({pool.ipip_mode}) and VXLAN "
                f"({pool.vxlan_mode}); set one of them to Never",
            )
        if pool.encap_mode != EncapMode.CROSS_SUBNET:
            continue
        for n, node in enumerate(spec.nodes):
            if pool.selects(node) and node.address.network.prefixlen == 32:  # noqa: PLR2004
                yield src.problem(
                    ("nodes", n, "address"),
                    f"pool {pool.name} uses CrossSubnet but node {node.name} has no subnet "
                    f"prefix ({node.address}); write the address with its prefix, e.g. "
                    f"{node.address.ip}/24",
                )


def check_one_tunnel_per_node(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """IPIP and VXLAN pools may not be mixed in one cluster.

    A node has one tunnel address (from its first encapsulated block), and every node holds
    tunl0 when any pool uses IPIP, so mixing would put one /32 on two devices.
    """
    kinds = {p.encap: p for p in pools if p.encap and not p.disabled}
    if len(kinds) > 1:
        vxlan = kinds["vxlan"]
        yield src.problem(
            vxlan.spec_loc,
            f"pool {vxlan.name} uses VXLAN while pool {kinds['ipip'].name} uses IPIP; calicc "
            "gives each node one tunnel address, so a cluster uses one encapsulation "
            "(set the other pool's mode to Never, or disable it)",
        )


def check_nodes(spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source) -> Iterator[Problem]:
    """Duplicate names or addresses; addresses that are their subnet's network or broadcast."""
    seen_names: dict[str, int] = {}
    seen_addrs: dict[str, int] = {}
    for n, node in enumerate(spec.nodes):
        if node.name in seen_names:
            yield src.problem(
                ("nodes", n, "name"),
                f"duplicate node name {node.name!r} (also nodes[{seen_names[node.name]}])",
            )
        seen_names.setdefault(node.name, n)
        addr = str(node.address.ip)
        if addr in seen_addrs:
            yield src.problem(
                ("nodes", n, "address"),
                f"duplicate node address {addr} (also nodes[{seen_addrs[addr]}])",
            )
        seen_addrs.setdefault(addr, n)
        net = node.address.network
        edges = {net.network_address, net.broadcast_address}
        if net.prefixlen <= MIN_PREFIX_WITH_BROADCAST and node.address.ip in edges:
            yield src.problem(
                ("nodes", n, "address"),
                f"{node.address} is not a host address inside its own subnet {net}; "
                f"use one of {net.network_address + 1} to {net.broadcast_address - 1}",
            )


def check_mtu(spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source) -> Iterator[Problem]:
    """A configured MTU plus the encapsulation overhead must fit every node's link."""
    if spec.mtu is None:
        return
    misfits: defaultdict[tuple[int, str, int], list[str]] = defaultdict(list)
    for node in spec.nodes:
        encaps = sorted({p.encap for p in node_pools(pools, node) if p.encap})
        extra = max((OVERHEAD[e] for e in encaps), default=0)
        if spec.mtu + extra > link_mtu(spec, node):
            misfits[(link_mtu(spec, node), "/".join(encaps) or "no", extra)].append(node.name)
    for (link, kinds, extra), names in sorted(misfits.items()):
        more = len(names) - SHOW_NODES
        shown = ", ".join(names[:SHOW_NODES]) + (f" and {more} more" if more > 0 else "")
        yield src.problem(
            ("mtu",),
            f"MTU {spec.mtu} plus {kinds} overhead ({extra}) does not fit the link MTU "
            f"{link} of node{'s' if len(names) > 1 else ''} {shown}; use at most {link - extra}",
        )


def check_selectors(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Every node selector must match at least one node."""
    labelled = [node.labels for node in spec.nodes]
    targets: list[tuple[tuple[str | int, ...], str | None]] = [
        (("pools", i, "node_selector"), p.node_selector) for i, p in enumerate(spec.pools)
    ]
    targets += [
        (("bgp", "peers", i, "node_selector"), p.node_selector)
        for i, p in enumerate(spec.bgp.peers)
    ]
    for loc, text in targets:
        if text is not None and not any(parse_selector(text).matches(lab) for lab in labelled):
            yield src.problem(loc, f"selector {text!r} matches no node; check the node labels")


def check_pool_capacity(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A pool must hold the blocks of every node it serves."""
    need: defaultdict[str, int] = defaultdict(int)
    for node in spec.nodes:
        for pool in node_pools(pools, node):
            need[pool.name] += blocks_needed(pool, node.max_pods)
    for pool in pools:
        have = pool.cidr.num_addresses // (2 ** (32 - pool.block_size))
        if pool.block_size >= pool.cidr.prefixlen and need[pool.name] > have:
            yield src.problem(
                pool.spec_loc,
                f"pool {pool.name} ({pool.cidr}) holds {have} blocks of /{pool.block_size} but "
                f"its nodes need {need[pool.name]}; use a larger pool or a smaller max_pods",
            )


def check_peers(spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source) -> Iterator[Problem]:
    """An external peer must not be a cluster node (in-cluster reflectors are node settings)."""
    addresses = {node.address.ip for node in spec.nodes}
    for i, peer in enumerate(spec.bgp.peers):
        if peer.peer_ip in addresses and peer.node_selector is None:
            yield src.problem(
                ("bgp", "peers", i, "peer_ip"),
                f"{peer.peer_ip} is a cluster node; in-cluster reflectors are set with "
                "route_reflector_cluster_id on the node, not as a peer",
            )


def blocks_needed(pool: PoolPlan, max_pods: int) -> int:
    """Blocks of `pool` a node needs for `max_pods` pods plus its tunnel address."""
    size: int = 2 ** (32 - pool.block_size)
    return max(1, -(-(max_pods + 1) // size))


CHECKS: tuple[Check, ...] = (
    check_pool_overlaps,
    check_block_sizes,
    check_encapsulation,
    check_one_tunnel_per_node,
    check_nodes,
    check_mtu,
    check_selectors,
    check_pool_capacity,
    check_peers,
)


def run_checks(spec: ClusterSpec, src: Source) -> list[Problem]:
    """Run every semantic check and return all problems found."""
    pools = resolve_pools(spec)
    return [problem for check in CHECKS for problem in check(spec, pools, src)]
