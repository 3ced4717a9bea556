"""Versioned CNI results (0.3.0/0.3.1/0.4.0 carry `version` on each IP; 1.x does not).

A dual-stack pod's result lists its IPv4 /32 first, then its IPv6 /128, each with its family's
gateway (169.254.1.1; the host veth's link-local fe80::ecee:eeff:feee:eeee), and one default
route per family.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from calicc.agent.cni.errors import INCOMPATIBLE_VERSION, CniError
from calicc.agent.cni.validate import shown

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
GATEWAY = IPv4Address("169.254.1.1")
GATEWAY_V6 = IPv6Address("fe80::ecee:eeff:feee:eeee")  # EUI-64 of the host veth's MAC
GATEWAYS: dict[int, IPv4Address | IPv6Address] = {4: GATEWAY, 6: GATEWAY_V6}
DEFAULTS = {4: "0.0.0.0/0", 6: "::/0"}


def version_tuple(version: str) -> tuple[int, ...]:
    """Return a comparable form of a CNI version string ("0.4.0" -> (0, 4, 0))."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError as exc:
        raise CniError(
            INCOMPATIBLE_VERSION, f"cniVersion {shown(version)} is not a version"
        ) from exc


def require_version(version: str, command: str, minimum: str = "0.3.0") -> None:
    """Fail with INCOMPATIBLE_VERSION unless calicc supports `version` for `command`."""
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"netconf cniVersion {shown(version)} is not supported; use one of "
            + ", ".join(SUPPORTED_VERSIONS),
        )
    if version_tuple(version) < version_tuple(minimum):
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"{command} needs cniVersion {minimum} or later (the config says {version})",
        )


@dataclass(frozen=True)
class Interface:
    """An interface of the result; `sandbox` is the netns path for the pod side."""

    name: str
    mac: str
    sandbox: str = ""

    def to_json(self) -> dict[str, str]:
        """Return the result's interface object."""
        body = {"name": self.name, "mac": self.mac}
        if self.sandbox:
            body["sandbox"] = self.sandbox
        return body


Addresses = Sequence[IPv4Address | IPv6Address]


def _ip_entry(
    version: str, address: IPv4Address | IPv6Address, interface: int | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"address": f"{address}/{address.max_prefixlen}"}
    if version_tuple(version) < (1, 0, 0):
        entry["version"] = str(address.version)
    if interface is not None:
        entry["interface"] = interface
        entry["gateway"] = str(GATEWAYS[address.version])
    return entry


def _families(addresses: Addresses) -> list[int]:
    return sorted({a.version for a in addresses})


def ipam_result(version: str, addresses: Addresses) -> dict[str, Any]:
    """Return the IPAM plugin's result: a /32 and a /128 as held, a default route per family."""
    return {
        "cniVersion": version,
        "ips": [_ip_entry(version, a, None) for a in addresses],
        "routes": [{"dst": DEFAULTS[f]} for f in _families(addresses)],
    }


def plugin_result(
    version: str, addresses: Addresses, host: Interface, pod: Interface
) -> dict[str, Any]:
    """Return the main plugin's result: host and pod interfaces, the pod's addresses, routes."""
    return {
        "cniVersion": version,
        "interfaces": [host.to_json(), pod.to_json()],
        "ips": [_ip_entry(version, a, 1) for a in addresses],
        "routes": [{"dst": DEFAULTS[f], "gw": str(GATEWAYS[f])} for f in _families(addresses)],
        "dns": {},
    }


def dump(result: dict[str, Any]) -> str:
    """Return the JSON text printed on stdout."""
    return json.dumps(result, indent=2, sort_keys=True) + "\n"
