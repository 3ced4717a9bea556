"""Adopted pod addresses: what node.json's `adopted` tells the node's CNI IPAM.

`calicc import` keeps, in cluster.lock.yaml, the addresses Calico's IPAM had handed to running
pods in the blocks the lock keeps; the compiler writes the node's into node.json's `adopted`
(only when it has some), and the node's IPAM seeds its store with each entry once, under the
handle calicc's DEL of that container computes (`<network>.<containerID>`), so no new pod is
handed an address a running pod holds. No pydantic here: the standalone CNI path reads them
(contract/node.py); the pydantic model (contract/manifest.py AdoptedPod) checks with the same
rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol

from calicc.contract.patterns import (
    CONTAINER_ID,
    CONTAINER_ID_MAX,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    INTERFACE,
)

NAMESPACE_MAX, POD_NAME_MAX = 63, 253  # a DNS-1123 label, a subdomain
HANDLE_MAX = 64 + 1 + CONTAINER_ID_MAX  # a network name (at most 64 here), ".", a container id
Address = IPv4Address | IPv6Address


def container_problem(container_id: str) -> str | None:
    """Return why `container_id` is not one a runtime passes as CNI_CONTAINERID, else None."""
    if len(container_id) > CONTAINER_ID_MAX or not CONTAINER_ID.fullmatch(container_id):
        return (
            f"{container_id!r} is not a container id (letters, digits, '_', '.', '-'; "
            f"at most {CONTAINER_ID_MAX} characters)"
        )
    return None


def namespace_problem(namespace: str) -> str | None:
    """Return why `namespace` is not a Kubernetes namespace name, else None."""
    if len(namespace) > NAMESPACE_MAX or not DNS1123_LABEL.fullmatch(namespace):
        return f"{namespace!r} is not a Kubernetes namespace name"
    return None


def pod_name_problem(name: str) -> str | None:
    """Return why `name` is not a Kubernetes pod name, else None."""
    if len(name) > POD_NAME_MAX or not DNS1123_SUBDOMAIN.fullmatch(name):
        return f"{name!r} is not a Kubernetes pod name"
    return None


def ifname_problem(ifname: str) -> str | None:
    """Return why `ifname` is not an interface name, else None."""
    if not INTERFACE.fullmatch(ifname):
        return f"{ifname!r} is not an interface name such as eth0 (at most 15 characters)"
    return None


def handle_problem(handle: str, container_id: str) -> str | None:
    """Return why `handle` is not `<network>.<container_id>`, else None."""
    network = handle.removesuffix(f".{container_id}")
    if network == handle or len(handle) > HANDLE_MAX or not CONTAINER_ID.fullmatch(network):
        return f"{handle!r} is not <network>.{container_id} (the CNI network's name, '.', the id)"
    return None


class AdoptedEntry(Protocol):
    """What IPAM reads of an adopted address (AdoptedFacts and the pydantic AdoptedPod)."""

    @property
    def address(self) -> Address:
        """The pod's address."""

    @property
    def handle(self) -> str:
        """`<network>.<containerID>`: what DEL of the container releases."""

    @property
    def container_id(self) -> str:
        """The container that holds it (GC keeps it while the runtime lists it)."""

    @property
    def ifname(self) -> str:
        """The pod's interface."""

    @property
    def namespace(self) -> str | None:
        """The pod's namespace, when known."""

    @property
    def pod(self) -> str | None:
        """The pod's name, when known."""


def pod_attrs(entry: AdoptedEntry) -> dict[str, str]:
    """Return what IPAM records beside the address: the pod's identity, namespace and name.

    The identity `namespace.name` is what an ADD of a Kubernetes pod records (it names the
    host veth, as Calico's does); without a name the container id stands in for it.
    """
    if entry.namespace is None or entry.pod is None:
        return {}
    identity = f"{entry.namespace}.{entry.pod}"
    return {"identity": identity, "namespace": entry.namespace, "pod": entry.pod}


@dataclass(frozen=True)
class AdoptedFacts:
    """One adopted address: the pod's container (and name, when known) and its handle."""

    address: Address
    handle: str
    container_id: str
    ifname: str
    namespace: str | None = None
    pod: str | None = None

    def problem(self) -> str | None:
        """Return the first field that breaks the rules, as `field: why`, else None."""
        checks = (
            ("container_id", container_problem(self.container_id)),
            ("handle", handle_problem(self.handle, self.container_id)),
            ("ifname", ifname_problem(self.ifname)),
            ("namespace", namespace_problem(self.namespace) if self.namespace else None),
            ("pod", pod_name_problem(self.pod) if self.pod else None),
        )
        found = next((f"{key}: {why}" for key, why in checks if why is not None), None)
        if found is None and (self.namespace is None) != (self.pod is None):
            return "pod: give both namespace and pod, or neither"
        return found


def adopted_fact(item: object) -> AdoptedFacts:
    """Return the entry of decoded node.json's `adopted` list, checked.

    Raises:
        ValueError: a field is missing, of the wrong type or breaks the rules (named).
    """
    if not isinstance(item, dict):
        raise ValueError("expected an object")
    texts: dict[str, str | None] = {}
    for key in ("address", "handle", "container_id", "ifname", "namespace", "pod"):
        value = item.get(key)
        optional = key in ("namespace", "pod")
        if not isinstance(value, str) and not (optional and value is None):
            raise ValueError(f"{key}: expected a string")
        texts[key] = value
    try:
        address = ip_address(str(texts["address"]))
    except ValueError:
        raise ValueError(f"address: {texts['address']!r} is not an IP address") from None
    fact = AdoptedFacts(
        address,
        str(texts["handle"]),
        str(texts["container_id"]),
        str(texts["ifname"]),
        texts["namespace"],
        texts["pod"],
    )
    why = fact.problem()
    if why is not None:
        raise ValueError(why)
    return fact
