"""Checks of pools' allowed uses and of reservations, located in cluster.yaml.

Calico's own IPPool rules (LoadBalancer alone, without encapsulation or node selector) and what
calicc adds because it allocates at build time: every family of pools has one pods may use,
a node whose pools encapsulate has one its tunnel address may come from, a Tunnel-only pool
encapsulates (else nothing would use it), and a reservation lies inside one pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.model.spec import ClusterSpec, EncapMode
from calicc.compiler.pools import PoolPlan, node_pools, tunnel_pool
from calicc.contract.names import V4

Check = Callable[[ClusterSpec, tuple[PoolPlan, ...], Source], Iterator[Problem]]
SHOW_NODES = 5


def check_load_balancer_pools(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A LoadBalancer pool has no encapsulation and no node selector (Calico's rules)."""
    for pool in pools:
        if not pool.load_balancer or not pool.index:
            continue
        written = spec.pools[pool.index - 1]
        for key in ("ipip_mode", "vxlan_mode"):
            if getattr(written, key) not in (None, EncapMode.NEVER):
                yield src.problem(
                    (*pool.spec_loc, key),
                    f"pool {pool.name} is for LoadBalancer addresses, which are not "
                    "encapsulated (as in Calico): leave the mode out or set it to Never",
                )
        if written.node_selector not in (None, "all()"):
            yield src.problem(
                (*pool.spec_loc, "node_selector"),
                f"pool {pool.name} is for LoadBalancer addresses, which belong to no node (as "
                "in Calico, its selector is all()): leave node_selector out",
            )


def check_tunnel_only_pools(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A Tunnel-only pool encapsulates: tunnel addresses come only from encapsulated pools."""
    for pool in pools:
        if pool.for_tunnels and not pool.for_pods and pool.encap is None:
            yield src.problem(
                (*pool.spec_loc, "allowed_uses"),
                f"pool {pool.name} allows only Tunnel but uses neither IPIP nor VXLAN: no "
                "tunnel address comes from it and no pod may use it; set ipip_mode or "
                "vxlan_mode, or add Workload",
            )


def check_pods_have_a_pool(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A family with enabled pools has one that pods may use (allowed use Workload)."""
    for version in (4, 6):
        mine = [p for p in pools if p.version == version and not p.disabled]
        if mine and not any(p.for_pods for p in mine):
            first = next((p for p in mine if p.index), mine[0])
            where = (*first.spec_loc, "allowed_uses") if first.index else first.spec_loc
            names = ", ".join(p.name for p in mine)
            yield src.problem(
                where,
                f"no IPv{version} pool allows Workload ({names}): pods would get no "
                f"IPv{version} address; add Workload to one of them, or add a pool for pods",
            )


def _names(names: list[str]) -> str:
    more = len(names) - SHOW_NODES
    return ", ".join(names[:SHOW_NODES]) + (f" and {more} more" if more > 0 else "")


def check_tunnel_pools(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A node whose pools encapsulate has a pool allowing Tunnel for its tunnel address.

    Without one the node would get no tunnel address (tunl0's, or its VXLAN VTEP's, which the
    other nodes route through): refused rather than half-working.
    """
    if all(p.for_tunnels for p in pools):
        return  # every encapsulated pool may hold tunnel addresses: no node to look at
    lacking: dict[tuple[int, str], list[str]] = {}
    for node in spec.nodes:
        mine = node_pools(pools, node)
        for version in (4, 6):
            encap = [p for p in mine if p.version == version and p.encap]
            if encap and tunnel_pool(mine, version) is None:
                lacking.setdefault((version, encap[0].name), []).append(node.name)
    for (version, name), nodes in sorted(lacking.items()):
        pool = next(p for p in pools if p.name == name and p.version == version)
        where = (*pool.spec_loc, "allowed_uses") if pool.index else pool.spec_loc
        kind = "IPIP" if pool.encap == "ipip" and version == V4 else "VXLAN"
        yield src.problem(
            where,
            f"pool {pool.name} uses {kind} but no {kind} pool serving node"
            f"{'s' if len(nodes) > 1 else ''} {_names(nodes)} allows Tunnel: "
            f"{'they' if len(nodes) > 1 else 'it'} would get no IPv{version} tunnel address; "
            "add Tunnel to this pool's allowed_uses, or add a Tunnel pool",
        )


def check_reservations(
    spec: ClusterSpec, pools: tuple[PoolPlan, ...], src: Source
) -> Iterator[Problem]:
    """A reservation lies inside one pool of its family (else it reserves nothing of calicc's)."""
    for i, reservation in enumerate(spec.reservations):
        cidr = reservation.cidr
        same = [p for p in pools if p.version == cidr.version]
        if any(cidr.subnet_of(p.cidr) for p in same):  # type: ignore[arg-type]  # one family
            continue
        touched = [p for p in same if cidr.overlaps(p.cidr)]
        if touched:
            why = f"reaches outside pool {touched[0].name} ({touched[0].cidr})"
            hint = "split it into one reservation per pool, inside each"
        else:
            listed = ", ".join(f"{p.name} ({p.cidr})" for p in same) or "none"
            why = f"is outside every pool (IPv{cidr.version} pools: {listed})"
            hint = "reserve addresses of a pool, or remove it"
        yield src.problem(
            ("reservations", i, "cidr"),
            f"reservation {cidr} {why}: a reservation keeps a pool's addresses from pods and "
            f"tunnels; {hint}",
        )


USE_CHECKS: tuple[Check, ...] = (
    check_load_balancer_pools,
    check_tunnel_only_pools,
    check_pods_have_a_pool,
    check_tunnel_pools,
    check_reservations,
)
