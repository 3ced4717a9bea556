"""The two ends of a trace: a pod (`namespace/name`), a node (its name) or an address.

Pods come from the pods file (trace/pods.py) with the addresses the node's IPAM will give them
(or the ones the file states). A node's pods are placed, and their addresses predicted, only
when a question touches that node: the trace reads no more of the tree than it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from calicc.contract.names import V4
from calicc.contract.nodes_table import NodeRow
from calicc.trace.addresses import predict_addresses
from calicc.trace.errors import TraceError
from calicc.trace.pods import PodsFile, TracePod, pods_on
from calicc.trace.policy import PodAt
from calicc.trace.view import TreeView

Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class End:
    """One end of a trace, resolved: what it is, its address of the trace's family, its node."""

    kind: str  # "pod", "node" or "address"
    given: str
    address: Address
    node: NodeRow | None
    pod: PodAt | None = None

    def text(self) -> str:
        """Return e.g. `pod shop/web-1 10.244.0.65 on node-2`."""
        where = f" on {self.node.name}" if self.node is not None else ""
        if self.kind == "pod" and self.pod is not None:
            return f"pod {self.pod.key} {self.address}{where} ({self.pod.iface})"
        if self.kind == "node":
            return f"node {self.given} {self.address}"
        return f"{self.address}{where or ' (outside the cluster)'}"


@dataclass
class Cluster:
    """The tree and the pods file, with pods placed on their nodes on demand."""

    view: TreeView
    pods: PodsFile | None
    _placed: dict[str, tuple[PodAt, ...]] = field(default_factory=dict)
    _by_address: dict[Address, PodAt] = field(default_factory=dict)

    def pods_of(self, node: str) -> tuple[PodAt, ...]:
        """Return the pods of `node` with their addresses (predicted once per node)."""
        if node not in self._placed:
            mine = pods_on(self.pods, node) if self.pods is not None else ()
            placed = self._place(node, mine) if mine else ()
            self._placed[node] = placed
            for pod in placed:
                for address in pod.addresses:
                    self._by_address[address] = pod
        return self._placed[node]

    def _place(self, node: str, mine: tuple[TracePod, ...]) -> tuple[PodAt, ...]:
        assert self.pods is not None
        addresses = predict_addresses(mine, self.view.ipam_facts(node))
        spaces = self.pods.namespaces
        return tuple(
            PodAt(
                p.namespace,
                p.name,
                p.node,
                p.labels,
                dict(spaces.get(p.namespace, {})),
                tuple((n.name, n.protocol, n.port) for n in p.ports),
                addresses[p.key],
            )
            for p in mine
        )

    def pod_at(self, address: Address) -> PodAt | None:
        """Return the pod holding `address` (placing the pods of the block's node)."""
        owner = self.view.owner(address)
        if owner is None:
            return None
        self.pods_of(owner.row.name)
        return self._by_address.get(address)

    def pod(self, key: str) -> TracePod:
        """Return the pods file's pod `namespace/name`, or raise naming the file."""
        if self.pods is None:
            raise TraceError(f"{key} is a pod: name the pods file with --pods")
        found = next((p for p in self.pods.pods if p.key == key), None)
        if found is None:
            raise TraceError(f"unknown pod {key}: it is not in {self.pods.path}")
        return found

    def resolve(self, given: str, family: int | None) -> End:
        """Return the end `given` names, of IP version `family` (None: IPv4 when it has one)."""
        if "/" in given:
            wanted = self.pod(given)
            placed = next(p for p in self.pods_of(wanted.node) if p.key == given)
            address = _of_family(placed.addresses, family, f"pod {given}")
            return End("pod", given, address, self.view.row(wanted.node), placed)
        if given in self.view.by_name:
            row = self.view.by_name[given]
            own = [a.ip for a in (row.address, row.address_v6) if a is not None]
            return End("node", given, _of_family(tuple(own), family, f"node {given}"), row)
        try:
            address = ip_address(given)
        except ValueError:
            raise TraceError(
                f"{given!r} is no pod (namespace/name), node or IP address of this cluster"
            ) from None
        if family is not None and address.version != family:
            raise TraceError(f"{given} is not an IPv{family} address")
        pod = self.pod_at(address)
        if pod is not None:
            return End("pod", given, address, self.view.row(pod.node), pod)
        node = self.view.node_at(address)
        return End("node" if node else "address", given, address, node)


def _of_family(addresses: tuple[Address, ...], family: int | None, what: str) -> Address:
    wanted = family or (V4 if any(a.version == V4 for a in addresses) else None)
    found = [a for a in addresses if wanted is None or a.version == wanted]
    if not found:
        raise TraceError(f"{what} has no IPv{family or V4} address")
    return found[0]
