"""BlockAffinities and IPAMBlocks onto the lock: which node holds which block, per pool.

A block belongs to a node when a confirmed BlockAffinity says so or its IPAMBlock's affinity
is `host:NODE`; both are read because either may be the one exported. What cannot be kept:

- Fatal (an error; nothing is written): two exported nodes claiming the same or overlapping blocks
  (the owner is ambiguous, and either guess reroutes the other node's pods), and a block in
  use that calicc cannot place on its node (outside every imported pool, of another size than
  its pool's blocks, in a disabled or LoadBalancer-only pool, or in a pool whose nodeSelector
  leaves the node out):
  its pods would lose their routes. Fix it in Calico (`calicoctl ipam check`) and export again.
- Left out with a warning: a pending or deleted affinity, an affinity to a node that is not
  exported (no node, so no pods on it), a block that cannot be placed but holds no address;
  and reported, since calicc has no borrowing: addresses borrowed from a block no node owns,
  and addresses of a node's block that pods on another node hold.

Whether a block is in use comes from its IPAMBlock's `allocations`; with no IPAMBlock exported
for it, a block counts as in use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from calicc.compiler.calico_import.fields import Reader
from calicc.compiler.calico_import.ippools import ImportedPool
from calicc.compiler.calico_import.report import UNMAPPED, WARNING, Note
from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.compiler.selector import parse_selector

Network = IPv4Network | IPv6Network
STATES = ("confirmed", "pending", "pendingDeletion")


@dataclass(frozen=True)
class Claim:
    """A node's claim on a block, and the resource that makes it."""

    cidr: Network
    node: str
    res: Resource

    @property
    def label(self) -> str:
        """Return `Kind name (file:line)`, to name the claim in messages."""
        return f"{self.res.kind} {self.res.name} ({self.res.where})"


@dataclass
class Blocks:
    """The outcome: each node's blocks per calicc pool, and what was refused or left out."""

    held: dict[str, dict[str, list[Network]]]
    problems: list[Problem]
    notes: list[Note]


def _affinity(res: Resource, problems: list[Problem], notes: list[Note]) -> Claim | None:
    read = Reader(res, problems)
    cidr = read.network("cidr", required=True)
    node = read.value("node")
    if not isinstance(node, str) or not node:
        read.fail("node", "missing: a block affinity names its node")
        return None
    state = read.choice("state", STATES, "")
    if cidr is None or not state:
        if not state and read.value("state") is None:
            read.fail("state", f"missing: expected one of {', '.join(STATES)}")
        return None
    if state != "confirmed" or read.boolean("deleted"):
        why = f"state {state}{', deleted' if read.boolean('deleted') else ''}: not held, left out"
        notes.append(Note(WARNING, res.kind, res.name, "spec.state", why))
        return None
    return Claim(cidr, node, res)


def _in_use(res: Resource) -> int:
    allocations = res.spec.get("allocations")
    return sum(a is not None for a in allocations) if isinstance(allocations, list) else 0


def _block(res: Resource, problems: list[Problem], notes: list[Note]) -> Claim | None:
    read = Reader(res, problems)
    cidr = read.network("cidr", required=True)
    affinity = read.value("affinity")
    if cidr is None or read.boolean("deleted"):
        return None
    used = _in_use(res)
    if not affinity:
        if used:
            why = (
                f"{used} address(es) borrowed from a block no node owns: calicc has no borrowing, "
                "so the pods holding them need new addresses after the move"
            )
            notes.append(Note(WARNING, res.kind, res.name, "spec.allocations", why))
        return None
    if not isinstance(affinity, str) or not affinity.startswith("host:"):
        why = f"only host:NODE affinities are mapped (was {affinity!r}): left out"
        notes.append(Note(UNMAPPED, res.kind, res.name, "spec.affinity", why))
        return None
    node = affinity.removeprefix("host:")
    notes.extend(_borrowed(res, node))
    return Claim(cidr, node, res)


def _borrowed(res: Resource, owner: str) -> list[Note]:
    """Note the addresses of `owner`'s block that pods on other nodes hold (Calico borrowing)."""
    allocations, attributes = res.spec.get("allocations"), res.spec.get("attributes")
    if not isinstance(allocations, list) or not isinstance(attributes, list):
        return []
    counts: dict[str, int] = {}
    for index in allocations:
        attr = attributes[index] if isinstance(index, int) and 0 <= index < len(attributes) else {}
        owner_attrs = attr.get("secondary") if isinstance(attr, dict) else None
        node = owner_attrs.get("node") if isinstance(owner_attrs, dict) else None
        if isinstance(node, str) and node != owner:
            counts[node] = counts.get(node, 0) + 1
    return [
        Note(WARNING, res.kind, res.name, "spec.allocations",
             f"{count} address(es) of {owner}'s block held by pods on {node} (borrowed): calicc "
             f"routes the block to {owner} only, so those pods need new addresses after the move")
        for node, count in sorted(counts.items())
    ]  # fmt: skip


def _conflicts(claims: list[Claim]) -> list[Problem]:
    """Return a problem for each claim on a block another node claims, or overlapping one."""
    problems = []
    ordered = sorted(
        claims, key=lambda c: (c.cidr.version, c.cidr.network_address, -c.cidr.prefixlen)
    )
    holder: Claim | None = None
    for claim in ordered:
        if holder is not None and holder.cidr.version != claim.cidr.version:
            holder = None
        same = holder is not None and holder.cidr == claim.cidr and holder.node == claim.node
        if holder is not None and not same and claim.cidr.overlaps(holder.cidr):
            problems.append(
                claim.res.problem(
                    ("spec", "cidr"),
                    f"{claim.cidr} of node {claim.node} conflicts with {holder.cidr} of node "
                    f"{holder.node} ({holder.label}): two claims on the same addresses, and the "
                    "owner is ambiguous. Fix it in Calico (calicoctl ipam check) and export again",
                )
            )
        if holder is None or int(claim.cidr.broadcast_address) > int(holder.cidr.broadcast_address):
            holder = claim
    return problems


def _pool_of(
    claim: Claim, pools: list[ImportedPool], labels: dict[str, str]
) -> tuple[str | None, str]:
    """Return (calicc pool name, '') for a block calicc can keep on its node, else (None, why)."""
    for pool in pools:
        if claim.cidr.version != pool.cidr.version or not claim.cidr.subnet_of(pool.cidr):  # type: ignore[arg-type]
            continue
        if claim.cidr.prefixlen != pool.block_size:
            return None, f"IPPool {pool.calico_name} has blocks of /{pool.block_size}"
        if pool.disabled:
            return None, f"IPPool {pool.calico_name} is disabled"
        if pool.uses is not None and not {"Workload", "Tunnel"} & set(pool.uses):
            return None, f"IPPool {pool.calico_name} is for LoadBalancer addresses only"
        if pool.node_selector and not parse_selector(pool.node_selector).matches(labels):
            return None, f"IPPool {pool.calico_name}'s nodeSelector leaves {claim.node} out"
        return pool.name, ""
    return None, "it is outside every imported IPPool"


def _place(
    claim: Claim,
    pools: list[ImportedPool],
    nodes: dict[str, dict[str, str]],
    usage: dict[Network, int],
) -> tuple[str | None, Problem | Note | None]:
    """Return the block's pool, or what keeps it out: a Note (left out) or a Problem (fatal)."""
    pool, why = _pool_of(claim, pools, nodes[claim.node])
    if pool is not None:
        return pool, None
    used = usage.get(claim.cidr)
    if used == 0:
        text = f"{claim.cidr} holds no address and calicc cannot keep it: {why}; left out"
        return None, Note(WARNING, claim.res.kind, claim.res.name, "spec.cidr", text)
    count = "no IPAMBlock says it is empty" if used is None else f"{used} address(es) in use"
    message = (
        f"{claim.cidr} of node {claim.node} cannot be kept: {why} ({count}); its pods would "
        "lose their routes. Import the pool, or release the block in Calico, and export again"
    )
    return None, claim.res.problem(("spec", "cidr"), message)


def _stale(claim: Claim) -> Note:
    """A claim for a node that was not exported: no node, so no pod depends on it."""
    why = f"{claim.cidr}: no Node {claim.node} was exported: left out"
    return Note(WARNING, claim.res.kind, claim.res.name, "spec.cidr", why)


def collect_blocks(
    resources: Iterable[Resource], pools: list[ImportedPool], nodes: dict[str, dict[str, str]]
) -> Blocks:
    """Return every node's blocks from BlockAffinities and IPAMBlocks (`nodes`: name -> labels)."""
    out = Blocks({}, [], [])
    claims: list[Claim] = []
    usage: dict[Network, int] = {}
    for res in resources:
        if res.kind == "IPAMBlock":
            claim = _block(res, out.problems, out.notes)
            cidr = Reader(res, []).network("cidr")
            if cidr is not None:
                usage[cidr] = _in_use(res)
        else:
            claim = _affinity(res, out.problems, out.notes)
        if claim is not None:
            claims.append(claim)
    live = [c for c in claims if c.node in nodes]
    out.notes += [_stale(c) for c in claims if c.node not in nodes]
    out.problems += _conflicts(live)
    for claim in live:
        pool, why = _place(claim, pools, nodes, usage)
        if isinstance(why, Problem):
            out.problems.append(why)
        elif why is not None:
            out.notes.append(why)
        if pool is not None:
            blocks = out.held.setdefault(claim.node, {}).setdefault(pool, [])
            if claim.cidr not in blocks:
                blocks.append(claim.cidr)
    return out
