"""The addresses Calico's IPAM handed to running pods, in the blocks the lock keeps: adopted.

An IPAMBlock's `allocations` holds, for each address of the block (by ordinal), the index of
its entry in `attributes` or null; an attribute's `handle_id` names the holder, for a pod
`<network>.<containerID>` (Calico's CNI plugin, network k8s-pod-network), and its `secondary`
the pod's `namespace`, `pod` and `node`. Each pod address of a block a node keeps becomes an
`adopted:` entry of that node in cluster.lock.yaml (address, container id, interface eth0 and
the pod when named), which the node's CNI IPAM seeds its store with, so no new pod is handed
an address a running pod holds (compiler/lock_adopted.py, agent/cni/ipam.py).

Left out: the node's tunnel addresses (handles `ipip-tunnel-addr-NODE`, `vxlan-tunnel-addr-NODE`,
`vxlan-v6-tunnel-addr-NODE`: the lock keeps them as tunnel addresses), WireGuard's (calicc has
none; noted), addresses borrowed by pods on another node (already reported by blocks.py),
handles that are not `<network>.<containerID>` (reported: calicc's DEL could never release
them), and blocks of a pool that no longer allows Workload (calicc's IPAM hands out none).
Fatal: an address a reservation covers or that is the node's tunnel address, and one address
adopted for two containers: calicc would hand out, or route, what a pod holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Any

from calicc.compiler.calico_import.blocks import Blocks, Network
from calicc.compiler.calico_import.fields import Reader
from calicc.compiler.calico_import.ippools import ImportedPool
from calicc.compiler.calico_import.nodes import ImportedNode
from calicc.compiler.calico_import.report import NOTE, WARNING, Note
from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.compiler.lock import Adopted
from calicc.contract.adopted import container_problem, namespace_problem, pod_name_problem
from calicc.contract.text import cut

TUNNEL_HANDLES = ("ipip-tunnel-addr-", "vxlan-tunnel-addr-", "vxlan-v6-tunnel-addr-")
WIREGUARD_HANDLES = ("wireguard-tunnel-addr-", "wireguard-v6-tunnel-addr-")
CALICO_NETWORK = "k8s-pod-network"
Address = IPv4Address | IPv6Address


@dataclass
class AdoptedPods:
    """The outcome: each node's adopted addresses, and what was refused or left out."""

    by_node: dict[str, list[Adopted]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def container_of(handle: str) -> str | None:
    """Return the container id of a pod's handle `<network>.<containerID>`, else None.

    Examples:
        >>> container_of("k8s-pod-network.3f1e0a9b2c"), container_of("ipam-handle")
        ('3f1e0a9b2c', None)
    """
    prefix = f"{CALICO_NETWORK}."
    network, dot, container = handle.partition(".")
    if handle.startswith(prefix):
        container = handle.removeprefix(prefix)
    elif not dot or not network:
        return None
    return container if container and container_problem(container) is None else None


def _pod(secondary: object) -> str | None:
    """Return `namespace/name` of an allocation's secondary attributes when both are valid."""
    if not isinstance(secondary, dict):
        return None
    namespace, name = secondary.get("namespace"), secondary.get("pod")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    if namespace_problem(namespace) or pod_name_problem(name):
        return None
    return f"{namespace}/{name}"


class _Block:
    """One kept IPAMBlock's allocations, read into the outcome."""

    def __init__(self, res: Resource, cidr: Network, owner: str, out: AdoptedPods) -> None:
        self.res, self.cidr, self.owner, self.out = res, cidr, owner, out

    def note(self, severity: str, why: str) -> None:
        self.out.notes.append(Note(severity, self.res.kind, self.res.name, "spec.allocations", why))

    def read(self) -> list[tuple[int, str, str | None]]:
        """Return (ordinal, container id, pod) of each pod address the block holds for its node."""
        allocations = self.res.spec.get("allocations", [])
        attributes = self.res.spec.get("attributes", [])
        if not isinstance(allocations, list) or not isinstance(attributes, list):
            key = "allocations" if not isinstance(allocations, list) else "attributes"
            self.out.problems.append(self.res.problem(("spec", key), f"expected a list ({key})"))
            return []
        if len(allocations) > self.cidr.num_addresses:
            why = f"{len(allocations)} allocations for a block of {self.cidr.num_addresses}"
            self.out.problems.append(self.res.problem(("spec", "allocations"), why))
            return []
        found = []
        for ordinal, index in enumerate(allocations):
            if index is None:
                continue
            address = self.cidr.network_address + ordinal
            if type(index) is not int or not 0 <= index < len(attributes):
                why = f"expected the index of an entry of attributes (0-{len(attributes) - 1})"
                self.out.problems.append(self.res.problem(("spec", "allocations", ordinal), why))
                continue
            pod = self.pod(address, attributes[index])
            if pod is not None:
                found.append((ordinal, *pod))
        return found

    def pod(self, address: Address, attr: object) -> tuple[str, str | None] | None:
        """Return (container id, pod) of the pod holding `address`, None when it is no pod's."""
        handle = attr.get("handle_id") if isinstance(attr, dict) else None
        secondary = attr.get("secondary") if isinstance(attr, dict) else None
        if isinstance(handle, str) and handle.startswith(TUNNEL_HANDLES):
            return None
        if isinstance(handle, str) and handle.startswith(WIREGUARD_HANDLES):
            self.note(NOTE, f"{address} is the node's WireGuard address: calicc has no WireGuard")
            return None
        node = secondary.get("node") if isinstance(secondary, dict) else None
        if isinstance(node, str) and node != self.owner:
            return None  # borrowed by a pod on another node: blocks.py reports it
        container = container_of(handle) if isinstance(handle, str) else None
        if container is None:
            self.note(
                WARNING,
                f"{address}: handle {cut(repr(handle))} is not <network>.<containerID>, so "
                "calicc's DEL could never release it: not adopted, and calicc's IPAM may hand "
                "it to a new pod while its holder runs. Delete that pod before the switch",
            )
            return None
        return container, _pod(secondary)


def _check(
    res: Resource, where: tuple[str, str, int], address: Address, owner: str, *,
    tunnels: set[str], reserved: list[Network],
) -> list[Problem]:  # fmt: skip
    problems = []
    if str(address) in tunnels:
        why = f"{address} is held by a pod but is also {owner}'s tunnel address"
        problems.append(res.problem(where, f"{why}: fix it in Calico and export again"))
    covering = next((net for net in reserved if address in net), None)
    if covering is not None:
        why = (
            f"{address} is held by a running pod but reserved ({covering}, an IPReservation): "
            "calicc would keep it from its pod. Delete the pod or narrow the reservation in "
            "Calico, and export again"
        )
        problems.append(res.problem(where, why))
    return problems


def adopt_pods(
    blocks: Iterable[Resource],
    held: Blocks,
    nodes: dict[str, ImportedNode],
    reservations: Iterable[dict[str, Any]],
    pools: Iterable[ImportedPool],
) -> AdoptedPods:
    """Return the pod addresses of every kept IPAMBlock of a pool pods get addresses from.

    `nodes` are the imported nodes (their Calico tunnel addresses), `reservations` the
    imported cluster.yaml `reservations` entries. A block of a pool that no longer allows
    Workload (allowedUses) holds no address calicc's IPAM could hand out: nothing to adopt.
    """
    for_pods = {p.name for p in pools if p.uses is None or "Workload" in p.uses}
    tunnels = {
        n: {t for k, t in node.tunnels.items() if "mac" not in k} for n, node in nodes.items()
    }
    reserved = [ip_network(r["cidr"]) for r in reservations]
    out = AdoptedPods()
    seen: dict[Address, tuple[str, str, Resource]] = {}
    read: set[tuple[str, Network]] = set()
    for res in blocks:
        cidr = Reader(res, []).network("cidr")
        affinity = res.spec.get("affinity")
        owner = affinity.removeprefix("host:") if isinstance(affinity, str) else ""
        kept = {b for pool, bs in held.held.get(owner, {}).items() if pool in for_pods for b in bs}
        if cidr is None or cidr not in kept or res.spec.get("deleted") is True:
            continue
        read.add((owner, cidr))
        for ordinal, container, pod in _Block(res, cidr, owner, out).read():
            address = cidr.network_address + ordinal
            where = ("spec", "allocations", ordinal)
            mine = tunnels.get(owner, set())
            out.problems += _check(res, where, address, owner, tunnels=mine, reserved=reserved)
            if address in seen and seen[address][:2] != (owner, container):
                other = seen[address][2]
                why = f"{address} is held by container {container} and by {seen[address][1]} "
                why += f"({other.kind} {other.name}, {other.where}): fix it in Calico"
                out.problems.append(res.problem(where, why))
                continue
            if address not in seen:
                seen[address] = (owner, container, res)
                out.by_node.setdefault(owner, []).append(Adopted(address, container, "eth0", pod))
    for owner, per_pool in sorted(held.held.items()):
        pod_blocks = (b for pool, bs in per_pool.items() if pool in for_pods for b in bs)
        for block in sorted(pod_blocks, key=_order):
            if (owner, block) not in read:
                why = (
                    f"no IPAMBlock of {block} was exported: the addresses its pods hold are "
                    "unknown, so none is adopted and calicc's IPAM may hand them out again. "
                    "Export ipamblocks too (docs/import.md), or drain the node first"
                )
                out.notes.append(Note(WARNING, "Node", owner, "blocks", why))
    for entries in out.by_node.values():
        entries.sort(key=lambda a: (a.address.version, int(a.address)))
    return out


def _order(block: Network) -> tuple[int, int]:
    return block.version, int(block.network_address)
