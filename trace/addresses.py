"""The addresses the pods of a pods file get: the ones the file gives, else the node's IPAM's.

A node's IPAM hands out the candidates of its blocks in order on a fresh node (agent/cni/ipam.py,
through the CNI's own `ipam_store`): the pods without addresses in the file get them in file
order, after the explicitly given ones are taken out. An address the node could not have handed
out (outside its blocks, its tunnel address, a family it has no blocks of) is a located problem.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from calicc.agent.cni.ipam import IpamStore
from calicc.agent.cni.node import ipam_store
from calicc.compiler.errors import Problem, SpecError
from calicc.contract.names import V4
from calicc.contract.node import NodeFacts
from calicc.trace.pods import TracePod

Address = IPv4Address | IPv6Address


def _refusal(pod: TracePod, address: Address, store: IpamStore) -> str | None:
    """Why an explicit address is not one the node's IPAM could have handed to the pod."""
    if address in store.reserved:
        return f"{address} is node {pod.node}'s tunnel address, never a pod's; pick another"
    kept = next((net for net in store.reserved_networks if address in net), None)
    if kept is not None:
        return f"{address} is in reservation {kept}: IPAM never hands it out; pick another"
    blocks = [b for b in store.blocks if b.version == address.version]
    if any(address in block for block in blocks):
        return None
    held = ", ".join(str(b) for b in blocks) or f"none of IPv{address.version}"
    return (
        f"{address} is not in a block of node {pod.node} (its blocks: {held}); give an address "
        "of those, or leave ips out to have it predicted"
    )


def _explicit_problems(pods: Sequence[TracePod], store: IpamStore) -> list[Problem]:
    problems = []
    for pod in pods:
        for address in pod.ips:
            refused = _refusal(pod, address, store)
            if refused:
                problems.append(pod.problem("ips", refused))
    return problems


def predict_addresses(pods: Sequence[TracePod], node: NodeFacts) -> dict[str, tuple[Address, ...]]:
    """Return each pod's addresses (IPv4 first): its own, else the ones IPAM would hand out.

    `pods` are the pods of `node`, in file order. The candidates are the CNI plugin's own
    (`IpamStore.candidates`: the blocks of pools serving the node, tunnel addresses kept out);
    explicit addresses are taken out first, then each pod lacking an address of a family the
    node has blocks of gets the next free one, as IPAM's round-robin does on a fresh node.

    Raises:
        SpecError: at the pod's line, for an explicit address the node does not hand out, or
            when the node runs out of addresses (saying how many it has).
    """
    strangers = [pod.key for pod in pods if pod.node != node.node.name]
    if strangers:
        raise ValueError(f"pods {strangers} are not on node {node.node.name}: use pods_on()")
    store = ipam_store(Path("/nonexistent"), node)  # candidates() reads no file
    problems = _explicit_problems(pods, store)
    if problems:
        raise SpecError(problems)
    explicit = {int(a) for pod in pods for a in pod.ips}
    free = {
        version: iter([c for c in store.candidates(version) if c not in explicit])
        for version in store.families
    }
    return {pod.key: _addresses(pod, free, store) for pod in pods}


def _addresses(
    pod: TracePod, free: Mapping[int, Iterator[int]], store: IpamStore
) -> tuple[Address, ...]:
    """The pod's own addresses, and the next free one of each family it lacks."""
    own: dict[int, Address] = {a.version: a for a in pod.ips}
    for version, pool in free.items():
        if version in own:
            continue
        value = next(pool, None)
        if value is None:
            raise SpecError([pod.problem("node", _exhausted(pod, version, store))])
        own[version] = IPv4Address(value) if version == V4 else IPv6Address(value)
    return tuple(own[v] for v in sorted(own))


def _exhausted(pod: TracePod, version: int, store: IpamStore) -> str:
    held = ", ".join(str(b) for b in store.blocks if b.version == version) or "none"
    count = len(store.candidates(version))
    return (
        f"pod {pod.key} gets no IPv{version} address: node {pod.node} hands out {count} "
        f"(blocks: {held}), all taken by the pods listed before it; move pods to other "
        "nodes, or give the node more blocks (max_pods / block_size in cluster.yaml)"
    )
