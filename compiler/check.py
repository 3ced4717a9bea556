"""Semantic checks across fields, run after the models validated; each returns Problems."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from calicc.compiler.check_bgp_filters import BGP_FILTER_CHECKS
from calicc.compiler.check_family import FAMILY_CHECKS
from calicc.compiler.check_peer_options import PEER_OPTION_CHECKS
from calicc.compiler.check_services import SERVICE_CHECKS
from calicc.compiler.check_uses import USE_CHECKS
from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.model.spec import V4_BLOCK, V6_BLOCK, ClusterSpec, EncapMode
from calicc.compiler.pools import (
    PoolPlan,
    link_mtu,
    node_address,
    node_pools,
    pool_overhead,
    resolve_pools,
    tunnel_pool,
)
from calicc.compiler.reserve import Reserved
from calicc.compiler.selector import parse_selector
from calicc.contract.names import V4

Check = Callable[[ClusterSpec, tuple[PoolPlan, ...], Source], Iterator[Problem]]
SHOW_NODES = 5


def check_pool_overlaps(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Pools overlapping each other, the service range, or a node's subnet (per family)."""
    services: dict[int, tuple[str, IPv4Network | IPv6Network]] = {
        4: ("service_cluster_ip_range", spec.service_cluster_ip_range)
    }
    if spec.service_cluster_ip_range_v6 is not None:
        services[6] = ("service_cluster_ip_range_v6", spec.service_cluster_ip_range_v6)
    for i, pool in enumerate(pools):
        for other in pools[i + 1 :]:
            if other.version == pool.version and pool.cidr.overlaps(other.cidr):
                yield src.problem(
                    other.spec_loc,
                    f"pool {other.name} ({other.cidr}) overlaps pool {pool.name} ({pool.cidr})",
                )
        key, service = services.get(pool.version, ("", None))
        if service is not None and pool.cidr.overlaps(service):
            yield src.problem(
                pool.spec_loc,
                f"pool {pool.name} ({pool.cidr}) overlaps {key} ({service}); "
                "pick a pool outside it",
            )
        field = "address" if pool.version == V4 else "address_v6"
        for n, node in enumerate(spec.nodes):
            address = node_address(node, pool.version)
            if address is not None and pool.cidr.overlaps(address.network):
                yield src.problem(
                    ("nodes", n, field),
                    f"node subnet {address.network} overlaps pool {pool.name} ({pool.cidr})",
                )


def check_block_sizes(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A block size must be in its family's range and the block must fit inside its pool."""
    for pool in pools:
        low, high = V4_BLOCK if pool.version == V4 else V6_BLOCK
        if not low <= pool.block_size <= high:
            yield src.problem(
                pool.block_size_loc,
                f"block size /{pool.block_size} is outside the IPv{pool.version} range of pool "
                f"{pool.name} ({pool.cidr}); use /{low} to /{high}",
            )
        elif pool.block_size < pool.cidr.prefixlen:
            yield src.problem(
                pool.block_size_loc,
                f"block size /{pool.block_size} is larger than pool {pool.name} ({pool.cidr}); "
                f"use /{max(pool.cidr.prefixlen, low)} to /{high}",
            )


def check_encapsulation(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """IPIP and VXLAN on one pool; CrossSubnet with nodes that have no subnet prefix."""
    for pool in pools:
        loc = pool.spec_loc if pool.index else ("ipip_mode",)
        both = EncapMode.NEVER not in (pool.ipip_mode, pool.vxlan_mode)
        if both and pool.version == V4:  # IPv6 with IPIP: check_ipv6_ipip
            yield src.problem(
                loc,
                f"pool {pool.name} enables both IPIP ({pool.ipip_mode}) and VXLAN "
                f"({pool.vxlan_mode}); set one of them to Never",
            )
        if pool.encap_mode != EncapMode.CROSS_SUBNET:
            continue
        field, example = ("address", 24) if pool.version == V4 else ("address_v6", 64)
        for n, node in enumerate(spec.nodes):
            address = node_address(node, pool.version)
            if address is None or not pool.selects(node):
                continue
            if address.network.prefixlen == address.max_prefixlen:
                yield src.problem(
                    ("nodes", n, field),
                    f"pool {pool.name} uses CrossSubnet but node {node.name} has no subnet "
                    f"prefix ({address}); write the address with its prefix, e.g. "
                    f"{address.ip}/{example}",
                )


def check_one_tunnel_per_node(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """IPIP and VXLAN pools may not be mixed in one cluster.

    A node has one tunnel address per family (from its first encapsulated block of the
    family), and every node holds tunl0 when any pool uses IPIP, so mixing would put one /32
    on two devices. IPv6 pools encapsulate only with VXLAN (their own vxlan-v6.calico).
    """
    kinds = {p.encap: p for p in pools if p.encap and not p.disabled and p.version == V4}
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
        for field in ("address", "address_v6"):
            yield from _node_address(src, (n, field), getattr(node, field), seen_addrs)


def _node_address(
    src: Source,
    where: tuple[int, str],
    address: IPv4Interface | IPv6Interface | None,
    seen: dict[str, int],
) -> Iterator[Problem]:
    """A node address must be unique and a host address of its own subnet."""
    if address is None:
        return
    loc = ("nodes", *where)
    addr = str(address.ip)
    if addr in seen:
        yield src.problem(loc, f"duplicate node address {addr} (also nodes[{seen[addr]}])")
    seen.setdefault(addr, where[0])
    net = address.network
    edges = {net.network_address}
    if isinstance(net, IPv4Network):
        edges.add(net.broadcast_address)
    if net.prefixlen <= net.max_prefixlen - 2 and address.ip in edges:
        yield src.problem(
            loc,
            f"{address} is not a host address inside its own subnet {net}; "
            f"use one of {net.network_address + 1} to {net.broadcast_address - 1}",
        )


def check_mtu(spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source) -> Iterator[Problem]:
    """A configured MTU plus the encapsulation overhead must fit every node's link."""
    if spec.mtu is None:
        return
    misfits: defaultdict[tuple[int, str, int], list[str]] = defaultdict(list)
    for node in spec.nodes:
        mine = node_pools(pools, node)
        encaps = sorted({f"{p.encap}{'' if p.version == V4 else '-v6'}" for p in mine if p.encap})
        extra = max((pool_overhead(p) for p in mine), default=0)
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
    """A pool must hold the blocks of every node it serves.

    Wholly reserved blocks are never allocated; a partly reserved one may cost a node another
    block (counted once per such block: an upper bound).
    """
    need: defaultdict[str, int] = defaultdict(int)
    for node in spec.nodes:
        mine = node_pools(pools, node)
        for pool in mine:
            if pool.block_size <= pool.cidr.max_prefixlen:
                need[pool.name] += node_needs(pool, mine, node.max_pods)[0]
    reserved = Reserved(r.cidr for r in spec.reservations)
    for pool in pools:
        have = pool.cidr.num_addresses >> max(0, pool.cidr.max_prefixlen - pool.block_size)
        low, high = V4_BLOCK if pool.version == V4 else V6_BLOCK
        fits = pool.cidr.prefixlen <= pool.block_size and low <= pool.block_size <= high
        whole = 0
        if fits and reserved and need[pool.name]:
            whole, partly = reserved.blocks_of(pool.cidr, pool.block_size)
            need[pool.name] += partly
        if fits and need[pool.name] > have - whole:
            kept = f" ({whole} wholly reserved)" if whole else ""
            yield src.problem(
                pool.spec_loc,
                f"pool {pool.name} ({pool.cidr}) holds {have - whole} blocks of "
                f"/{pool.block_size}{kept} but its nodes need {need[pool.name]}; use a larger "
                "pool, a smaller max_pods" + (" or fewer reservations" if whole else ""),
            )


def check_peers(spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source) -> Iterator[Problem]:
    """An external peer must not be a cluster node (in-cluster reflectors are node settings)."""
    addresses = {a.ip for node in spec.nodes for a in (node.address, node.address_v6) if a}
    for i, peer in enumerate(spec.bgp.peers):
        if peer.peer_ip in addresses and peer.node_selector is None:
            yield src.problem(
                ("bgp", "peers", i, "peer_ip"),
                f"{peer.peer_ip} is a cluster node; in-cluster reflectors are set with "
                "route_reflector_cluster_id on the node, not as a peer",
            )


def node_needs(pool: PoolPlan, mine: tuple[PoolPlan, ...], max_pods: int) -> tuple[int, int]:
    """Return (blocks, addresses) of `pool` a node whose pools are `mine` needs.

    A pool for pods (Workload) holds `max_pods` pods plus, when it allows Tunnel, the tunnel
    address (Calico's default uses: the count calicc always had). A Tunnel-only pool gives one
    block to the nodes whose tunnel address it holds, none to the others.
    """
    if pool.for_pods:
        addresses = max_pods + 1 if pool.for_tunnels else max_pods
    else:
        addresses = 1 if tunnel_pool(mine, pool.version) is pool else 0
    size: int = 2 ** (pool.cidr.max_prefixlen - pool.block_size)
    return (max(1, -(-addresses // size)) if addresses else 0), addresses


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
    *FAMILY_CHECKS,
    *USE_CHECKS,
    *PEER_OPTION_CHECKS,
    *SERVICE_CHECKS,
    *BGP_FILTER_CHECKS,
)


def run_checks(spec: ClusterSpec, src: Source) -> list[Problem]:
    """Run every semantic check and return all problems found."""
    pools = resolve_pools(spec)
    return [problem for check in CHECKS for problem in check(spec, pools, src)]
