"""Calico Node resources onto cluster.yaml's nodes, and the tunnel facts the lock keeps.

A node's address is its `spec.bgp.ipv4Address` / `ipv6Address` (with the subnet prefix that
CrossSubnet compares), else a `CalicoNodeIP` entry of `spec.addresses`. Its labels (Kubernetes'
node labels, which Calico copies) feed the pool and peer selectors as they did in Calico.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_interface
from typing import Any

from calicc.compiler.calico_import.fields import Reader, leftover, shown
from calicc.compiler.calico_import.report import UNMAPPED, Note
from calicc.compiler.calico_import.resources import Resource
from calicc.compiler.errors import Problem
from calicc.contract.names import V4, V6
from calicc.contract.text import cut

HOSTNAME = "kubernetes.io/hostname"
MAPPED = frozenset(
    {"bgp", "ipv4VXLANTunnelAddr", "vxlanTunnelMACAddr", "ipv6VXLANTunnelAddr",
     "vxlanTunnelMACAddrV6", "addresses", "orchRefs", "interfaces"}
)  # fmt: skip
REASONS = {"wireguard": "calicc has no WireGuard encryption"}
BGP_MAPPED = frozenset(
    {"ipv4Address", "ipv6Address", "asNumber", "routeReflectorClusterID", "ipv4IPIPTunnelAddr"}
)
Address = IPv4Interface | IPv6Interface


@dataclass(frozen=True)
class ImportedNode:
    """One node: its cluster.yaml entry and the tunnel facts Calico allocated."""

    name: str
    entry: dict[str, Any]
    res: Resource
    labels: dict[str, str]
    tunnels: dict[str, str] = field(default_factory=dict)  # ipip, vxlan, vxlan_v6, mac, mac_v6

    @property
    def rr_cluster_id(self) -> str | None:
        """Return the node's route reflector cluster id (None: not a reflector)."""
        value = self.entry.get("route_reflector_cluster_id")
        return str(value) if value is not None else None


def _address(read: Reader, key: str) -> Address | None:
    value = read.value(key)
    if value is None or value == "":
        return None
    try:
        return ip_interface(str(value))
    except ValueError:
        read.fail(
            key, f"expected an address with its prefix such as 10.0.0.5/24, got {cut(value)!r}"
        )
        return None


def _fallback(res: Resource) -> list[Address]:
    """Return the CalicoNodeIP addresses of spec.addresses (calico-node's detected ones)."""
    found = []
    entries = res.spec.get("addresses")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("type") == "CalicoNodeIP":
            try:
                found.append(ip_interface(str(entry.get("address"))))
            except ValueError:
                continue
    return found


def _addresses(res: Resource, read: Reader) -> dict[str, str]:
    v4, v6 = _address(read, "bgp.ipv4Address"), _address(read, "bgp.ipv6Address")
    for found in _fallback(res):
        if found.version == V4 and v4 is None:
            v4 = found
        elif found.version == V6 and v6 is None:
            v6 = found
    entry = {}
    if v4 is not None:
        entry["address"] = str(v4)
    if v6 is not None:
        entry["address_v6"] = str(v6)
    return entry


def _tunnels(res: Resource, read: Reader) -> dict[str, str]:
    keys = {
        "ipip": "bgp.ipv4IPIPTunnelAddr",
        "vxlan": "ipv4VXLANTunnelAddr",
        "vxlan_v6": "ipv6VXLANTunnelAddr",
        "mac": "vxlanTunnelMACAddr",
        "mac_v6": "vxlanTunnelMACAddrV6",
    }
    tunnels = {}
    for name, key in keys.items():
        value = read.value(key)
        if not isinstance(value, str) or not value:
            continue
        if not name.startswith("mac"):
            try:
                value = str(ip_address(value.split("/")[0]))
            except ValueError:
                read.fail(key, f"expected an address, got {cut(value)!r}")
                continue
        tunnels[name] = value.lower()
    return tunnels


def read_node(res: Resource, problems: list[Problem], notes: list[Note]) -> ImportedNode | None:
    """Return the node, or None when it has no usable address (a problem is recorded)."""
    read = Reader(res, problems)
    before = len(problems)
    entry: dict[str, Any] = {"name": res.name, **_addresses(res, read)}
    if "address" not in entry and "address_v6" not in entry:
        if len(problems) == before:
            read.fail(
                "bgp.ipv4Address",
                "missing: calicc compiles each node for its address (spec.bgp.ipv4Address or "
                "ipv6Address, as calico-node writes them)",
            )
        return None
    as_number = read.as_number("bgp.asNumber")
    if as_number is not None:
        entry["as_number"] = as_number
    rr_id = read.value("bgp.routeReflectorClusterID")
    if isinstance(rr_id, str) and rr_id:
        entry["route_reflector_cluster_id"] = rr_id
    labels = {str(k): str(v) for k, v in res.labels.items()}
    if labels:
        entry["labels"] = labels
    notes.extend(leftover(res, MAPPED, REASONS))
    bgp = res.spec.get("bgp")
    if isinstance(bgp, dict):
        notes.extend(
            Note(
                UNMAPPED,
                res.kind,
                res.name,
                f"spec.bgp.{key}",
                f"calicc has no equivalent (was {shown(v)})",
            )
            for key, v in sorted(bgp.items())
            if key not in BGP_MAPPED and v not in (None, "")
        )
    return ImportedNode(res.name, entry, res, labels, _tunnels(res, read))
