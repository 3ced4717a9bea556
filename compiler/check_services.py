"""Checks of the service CIDRs (bgp.service_cluster_ips, ...), located in cluster.yaml.

A service CIDR is advertised by every node as a blackhole held in BIRD alone (compiler/
bgp_services.py). It must therefore be one network of its own: no duplicate or overlap with
another service CIDR (an address is a cluster IP, an external IP or a LoadBalancer IP, once),
none with a pool (pod routes; a LoadBalancer pool is the exception, inside the LoadBalancer
CIDRs, as Calico's LoadBalancer IPAM hands out exactly those addresses) nor with a node subnet
(the peers would route the nodes' own addresses to a blackhole). Its family must be one the
nodes have, with an external peer of that family to learn it.
"""

from __future__ import annotations

from collections.abc import Iterator

from calicc.compiler.bgp_services import SERVICE_KEYS
from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.pools import PoolPlan
from calicc.contract.names import V4
from calicc.contract.services import Network

Entry = tuple[str, int, Network]  # (key under bgp, index, CIDR)


def _entries(spec: ClusterSpec) -> list[Entry]:
    return [(key, i, net) for key in SERVICE_KEYS for i, net in enumerate(getattr(spec.bgp, key))]


def _overlap(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def check_service_overlaps(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """No service CIDR repeats or overlaps another one, of any of the three lists."""
    entries = _entries(spec)
    for n, (key, i, net) in enumerate(entries):
        for other_key, j, other in entries[:n]:
            if _overlap(net, other):
                what = "repeats" if net == other else f"overlaps {other}, which"
                yield src.problem(
                    ("bgp", key, i),
                    f"{net} {what} bgp.{other_key}[{j}] holds: each service address belongs to "
                    "one list, once; remove or split one of them",
                )
                break


def check_service_vs_pools(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """No service CIDR overlaps a pool (a LoadBalancer pool may lie in the LoadBalancer CIDRs)."""
    for key, i, net in _entries(spec):
        for pool in pools:
            lb_ok = key == "service_loadbalancer_ips" and pool.load_balancer
            if _overlap(net, pool.cidr) and not lb_ok:
                yield src.problem(
                    ("bgp", key, i),
                    f"{net} overlaps pool {pool.name} ({pool.cidr}), whose routes are the pods' "
                    "(only a pool with allowed_uses [LoadBalancer] may lie in "
                    "service_loadbalancer_ips): use a range outside the pools",
                )
                break


def check_service_vs_nodes(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """No service CIDR overlaps a node subnet: peers would send the nodes' traffic to it."""
    subnets = {a.network for n in spec.nodes for a in (n.address, n.address_v6) if a is not None}
    for key, i, net in _entries(spec):
        hit = next((s for s in sorted(subnets, key=str) if _overlap(net, s)), None)
        if hit is not None:
            yield src.problem(
                ("bgp", key, i),
                f"{net} overlaps the node subnet {hit}: every node advertises it, so its peers "
                "would route node addresses to the Services; use a range outside the nodes'",
            )


def check_service_families(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A service CIDR's family has nodes with an address of it and an external peer of it."""
    nodes = {a.version for n in spec.nodes for a in (n.address, n.address_v6) if a is not None}
    peers = {p.peer_ip.version for p in spec.bgp.peers}
    for key, i, net in _entries(spec):
        v = net.version
        if v not in nodes:
            yield src.problem(
                ("bgp", key, i),
                f"{net} is IPv{v} but no node has an IPv{v} address to advertise it from: use "
                f"a CIDR of the nodes' family, or give the nodes IPv{v} addresses",
            )
        elif v not in peers:
            yield src.problem(
                ("bgp", key, i),
                f"{net} is IPv{v} but bgp.peers has no IPv{v} peer: service IPs are advertised "
                f"to external peers only; add an IPv{v} peer (a ToR) or remove the CIDR",
            )


def _range_of(spec: ClusterSpec, version: int) -> tuple[str, Network | None]:
    if version == V4:
        return "service_cluster_ip_range", spec.service_cluster_ip_range
    return "service_cluster_ip_range_v6", spec.service_cluster_ip_range_v6


def check_service_range(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """Cluster IP CIDRs overlap the Service range; external and LoadBalancer CIDRs do not."""
    for key, i, net in _entries(spec):
        name, served = _range_of(spec, net.version)
        if served is None:
            continue
        cluster = key == "service_cluster_ips"
        if cluster and not _overlap(net, served):
            yield src.problem(
                ("bgp", key, i),
                f"{net} holds no cluster IP: Kubernetes hands them out of {name} ({served}); "
                f"advertise that range (or the part of it in use)",
            )
        elif not cluster and _overlap(net, served):
            yield src.problem(
                ("bgp", key, i),
                f"{net} overlaps {name} ({served}), the cluster IPs' range: external and "
                "LoadBalancer addresses lie outside it (cluster IPs go in service_cluster_ips)",
            )


SERVICE_CHECKS = (
    check_service_range,
    check_service_overlaps,
    check_service_vs_pools,
    check_service_vs_nodes,
    check_service_families,
)
