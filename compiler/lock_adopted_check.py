"""What the lock's adopted addresses must satisfy against the cluster (lock_adopted.py: shape).

Each lies in one of its node's blocks of a pool pods get addresses from, is adopted once (one
pod of one node holds it), and is neither one of the node's tunnel addresses nor reserved:
otherwise the node's IPAM would seed an address it also hands out or routes elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from calicc.compiler.errors import Problem
from calicc.compiler.lock import Lock, Network
from calicc.compiler.lock_read import LockFile
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.pools import PoolPlan, resolve_pools
from calicc.compiler.reserve import Reserved


def _pod_blocks(lock: Lock, name: str, pools: Sequence[PoolPlan]) -> list[Network]:
    """Return the node's blocks of pools pods get addresses from."""
    for_pods = {p.name for p in pools if p.for_pods}
    return [b for pool, bs in lock.nodes[name].blocks.items() if pool in for_pods for b in bs]


def _node_problems(
    lf: LockFile, name: str, reserved: Reserved, pools: Sequence[PoolPlan], seen: dict[str, str]
) -> Iterator[Problem]:
    alloc = lf.lock.nodes[name]
    blocks = _pod_blocks(lf.lock, name, pools)
    tunnels = {alloc.tunnel_address, alloc.tunnel_address_v6} - {None}
    for index, entry in enumerate(alloc.adopted):
        loc = ("nodes", name, "adopted", index, "address")
        address = entry.address
        if not any(address in block for block in blocks):
            why = f"{address} is in none of {name}'s blocks of a pool pods get addresses from"
            yield lf.source.problem(loc, why)
        if address in tunnels:
            yield lf.source.problem(loc, f"{address} is {name}'s tunnel address, not a pod's")
        if reserved.holds(address):
            yield lf.source.problem(loc, f"{address} is reserved (cluster.yaml reservations)")
        key = str(address)
        if key in seen:
            yield lf.source.problem(loc, f"{address} is adopted twice (also for {seen[key]})")
        seen.setdefault(key, f"container {entry.container_id} on {name}")


def adopted_problems(lf: LockFile, spec: ClusterSpec) -> list[Problem]:
    """Return a problem for each adopted address that is not a pod address of its node alone."""
    names = sorted(n.name for n in spec.nodes if n.name in lf.lock.nodes)
    if not any(lf.lock.nodes[name].adopted for name in names):
        return []
    reserved = Reserved(r.cidr for r in spec.reservations)
    pools = resolve_pools(spec)
    seen: dict[str, str] = {}
    return [p for name in names for p in _node_problems(lf, name, reserved, pools, seen)]
