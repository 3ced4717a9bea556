"""Versioned CNI results (0.3.0/0.3.1/0.4.0 carry `version` on each IP; 1.x does not)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from calicc.agent.cni.errors import INCOMPATIBLE_VERSION, CniError
from calicc.agent.cni.validate import shown

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
GATEWAY = IPv4Address("169.254.1.1")


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


def _ip_entry(version: str, address: IPv4Address, interface: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"address": f"{address}/32"}
    if version_tuple(version) < (1, 0, 0):
        entry["version"] = "4"
    if interface is not None:
        entry["interface"] = interface
        entry["gateway"] = str(GATEWAY)
    return entry


def ipam_result(version: str, address: IPv4Address) -> dict[str, Any]:
    """Return the IPAM plugin's result: the /32 and the default route."""
    return {
        "cniVersion": version,
        "ips": [_ip_entry(version, address, None)],
        "routes": [{"dst": "0.0.0.0/0"}],
    }


def plugin_result(
    version: str, address: IPv4Address, host: Interface, pod: Interface
) -> dict[str, Any]:
    """Return the main plugin's result: host and pod interfaces, the pod's /32, its routes."""
    return {
        "cniVersion": version,
        "interfaces": [host.to_json(), pod.to_json()],
        "ips": [_ip_entry(version, address, 1)],
        "routes": [{"dst": "0.0.0.0/0", "gw": str(GATEWAY)}],
        "dns": {},
    }


def dump(result: dict[str, Any]) -> str:
    """Return the JSON text printed on stdout."""
    return json.dumps(result, indent=2, sort_keys=True) + "\n"
