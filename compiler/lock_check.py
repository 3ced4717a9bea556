"""What a lock must satisfy against the cluster: no shared blocks, tunnels and MACs, no moves.

Only the nodes the cluster still has are checked: a removed node's allocations are freed,
whatever they say. A block that no longer fits its pool (the pool's cidr or block size
changed, it was removed or disabled, or it stopped serving the node) would be replaced by a
new one. Pods on the node hold addresses from the old block, so the move is refused unless
the operator asks for it with `calicc build --reallocate`.
"""

from __future__ import annotations

from collections.abc import Iterator

from calicc.compiler.errors import Problem
from calicc.compiler.lock import Lock, Network, NodeAllocation, net_key
from calicc.compiler.lock_adopted_check import adopted_problems
from calicc.compiler.lock_read import LockFile
from calicc.compiler.model.spec import ClusterSpec, Node
from calicc.compiler.pools import PoolPlan, node_pools

Placed = tuple[Network, str, str, int]  # block, node, pool, index in the node's list


def _placed(lock: Lock, names: set[str]) -> Iterator[Placed]:
    for name in sorted(names & set(lock.nodes)):
        for pool, blocks in sorted(lock.nodes[name].blocks.items()):
            for index, block in enumerate(blocks):
                yield block, name, pool, index


def _loc(name: str, pool: str, index: int) -> tuple[str | int, ...]:
    return ("nodes", name, "blocks", pool, index)


def shared_blocks(lf: LockFile, names: set[str]) -> list[Problem]:
    """Return a problem for each block that overlaps an earlier one (sorted by address)."""
    problems = []
    ordered = sorted(
        _placed(lf.lock, names),
        key=lambda p: (p[0].version, p[0].network_address, -p[0].prefixlen),
    )
    holder: Placed | None = None  # the earlier block reaching furthest, of the same family
    for placed in ordered:
        block, name, pool, index = placed
        if holder is not None and holder[0].version != block.version:
            holder = None
        if holder is not None and int(block.network_address) <= int(holder[0].broadcast_address):
            problems.append(
                lf.source.problem(
                    _loc(name, pool, index),
                    f"block {block} overlaps {holder[0]} of node {holder[1]}; two nodes would "
                    "hand out the same pod addresses. Give one of them another free block",
                )
            )
        if holder is None or int(block.broadcast_address) > int(holder[0].broadcast_address):
            holder = placed
    return problems


def _tunnel_problems(lf: LockFile, name: str, seen: dict[str, str]) -> Iterator[Problem]:
    alloc = lf.lock.nodes[name]
    for key, tunnel in (
        ("tunnel_address", alloc.tunnel_address),
        ("tunnel_address_v6", alloc.tunnel_address_v6),
    ):
        if tunnel is not None:
            yield from _tunnel_problem(lf, name, (key, tunnel), seen)


def _tunnel_problem(
    lf: LockFile, name: str, field: tuple[str, object], seen: dict[str, str]
) -> Iterator[Problem]:
    key, tunnel = field
    alloc = lf.lock.nodes[name]
    loc = ("nodes", name, key)
    if not any(tunnel in block for block in alloc.all_blocks()):
        yield lf.source.problem(
            loc, f"{tunnel} is in none of {name}'s blocks; it must be an address of one of them"
        )
    if str(tunnel) in seen:
        yield lf.source.problem(loc, f"{tunnel} is also the tunnel address of {seen[str(tunnel)]}")
    seen.setdefault(str(tunnel), name)


def tunnel_addresses(lf: LockFile, names: set[str]) -> list[Problem]:
    """Each tunnel address lies in one of its node's blocks and belongs to one node."""
    seen: dict[str, str] = {}
    return [
        p for name in sorted(names & set(lf.lock.nodes)) for p in _tunnel_problems(lf, name, seen)
    ]


def vtep_macs(lf: LockFile, names: set[str]) -> list[Problem]:
    """Each VTEP MAC belongs to one node (the VXLAN FDB maps a MAC to one node), per family."""
    problems = []
    for key in ("vtep_mac", "vtep_mac_v6"):
        seen: dict[str, str] = {}
        for name in sorted(names & set(lf.lock.nodes)):
            mac = getattr(lf.lock.nodes[name], key)
            if mac is None:
                continue
            if mac in seen:
                problems.append(
                    lf.source.problem(
                        ("nodes", name, key), f"{mac} is also the VTEP MAC of {seen[mac]}"
                    )
                )
            seen.setdefault(mac, name)
    return problems


def check_lock(lf: LockFile, spec: ClusterSpec) -> list[Problem]:
    """Return every inconsistency of the lock among the nodes the cluster still has."""
    names = {node.name for node in spec.nodes}
    checks = (shared_blocks(lf, names), tunnel_addresses(lf, names), vtep_macs(lf, names))
    return [*(p for found in checks for p in found), *adopted_problems(lf, spec)]


def _why(block: Network, pool_name: str, node: Node, pools: tuple[PoolPlan, ...]) -> str:
    """Say why a block the node held is not kept."""
    pool = next((p for p in pools if p.name == pool_name), None)
    if pool is None:
        return f"pool {pool_name} is no longer in the cluster"
    if pool.disabled or pool.load_balancer:
        why = "is disabled" if pool.disabled else "is now for LoadBalancer addresses (allowed_uses)"
        return f"pool {pool_name} {why}"
    if pool not in node_pools(pools, node):
        return f"pool {pool_name} no longer serves {node.name} (node_selector)"
    if block.version != pool.version:
        return f"pool {pool_name} is now IPv{pool.version} ({pool.cidr})"
    if block.prefixlen != pool.block_size:
        return f"pool {pool_name} now has blocks of /{pool.block_size}"
    return f"it is outside pool {pool_name} ({pool.cidr})"


def moved_blocks(
    lf: LockFile, new: Lock, spec: ClusterSpec, pools: tuple[PoolPlan, ...]
) -> list[Problem]:
    """Return a problem for each block a remaining node holds in `lf` but not in `new`."""
    problems = []
    for node in sorted(spec.nodes, key=lambda n: n.name):
        old = lf.lock.nodes.get(node.name)
        if old is None:
            continue
        keeps = set(new.nodes[node.name].all_blocks())
        for pool, blocks in sorted(old.blocks.items()):
            for index, block in enumerate(blocks):
                if block in keeps:
                    continue
                why = _why(block, pool, node, pools)
                problems.append(
                    lf.source.problem(
                        _loc(node.name, pool, index),
                        f"node {node.name} would lose block {block}: {why}. Pods on "
                        f"{node.name} hold addresses from it; to move them, drain the node "
                        "and run `calicc build --reallocate`",
                    )
                )
    return problems


def _names(label: str, names: list[str], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{label}: {', '.join(names[:limit])}{more}"


def lock_changes(old: Lock, new: Lock) -> str:
    """Describe which nodes' allocations differ between two locks ('' when none do)."""
    added = sorted(set(new.nodes) - set(old.nodes))
    removed = sorted(set(old.nodes) - set(new.nodes))
    changed = sorted(n for n in set(old.nodes) & set(new.nodes) if _differs(old, new, n))
    parts = [
        _names(label, names)
        for label, names in (("new nodes", added), ("changed", changed), ("removed", removed))
        if names
    ]
    return "; ".join(parts)


def _differs(old: Lock, new: Lock, name: str) -> bool:
    return _facts(old.nodes[name]) != _facts(new.nodes[name])


def _facts(alloc: NodeAllocation) -> tuple[object, ...]:
    blocks = {pool: tuple(sorted(b, key=net_key)) for pool, b in alloc.blocks.items() if b}
    return (
        blocks,
        alloc.tunnel_address,
        alloc.vtep_mac,
        alloc.tunnel_address_v6,
        alloc.vtep_mac_v6,
        alloc.adopted,
    )
