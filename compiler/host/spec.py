"""cluster.yaml `host_protection:`: which node interfaces are host endpoints, the failsafes.

As Calico's HostEndpoint (one per interface, or `"*"`: Calico's all-interfaces endpoint) and
FelixConfiguration's failsafeInboundHostPorts / failsafeOutboundHostPorts, whose defaults are
Calico's. Host policies (GlobalNetworkPolicy documents in the policy files) select nodes by
their cluster.yaml labels.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator

from calicc.contract.fields import interface_name
from calicc.contract.host import ALL_INTERFACES
from calicc.contract.manifest import Strict
from calicc.contract.text import cut

PORT_MAX = 65535
PORT_RANGE = re.compile(r"([0-9]{1,5})(?:[-:]([0-9]{1,5}))?")


def host_interface(value: str) -> str:
    """A host endpoint's interface: a Linux interface name, or "*" for all of them."""
    return value if value == ALL_INTERFACES else interface_name(value)


HostInterface = Annotated[
    str,
    AfterValidator(host_interface),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(?:\*|[A-Za-z0-9_][A-Za-z0-9_.-]{0,14})$",
            "description": 'a Linux interface name, or "*" for every interface of the node',
        }
    ),
]


def port_range(value: int | str) -> tuple[int, int]:
    """Return (first, last) of a port or range: 22, "2379-2380" or "2379:2380".

    Examples:
        >>> port_range(22), port_range("2379-2380")
        ((22, 22), (2379, 2380))
    """
    found = PORT_RANGE.fullmatch(str(value))
    if found is None:
        raise ValueError(f"{cut(str(value))!r} is not a port or range, e.g. 22 or 2379-2380")
    first = int(found.group(1))
    last = int(found.group(2) or first)
    if not 1 <= first <= last <= PORT_MAX:
        raise ValueError(
            f"{cut(str(value))!r}: ports are 1-{PORT_MAX}, a range's first is at most its last"
        )
    return first, last


class FailsafePort(Strict):
    """A port always open on protected interfaces, before any host policy (Calico failsafe)."""

    protocol: Literal["tcp", "udp"] = Field(description="tcp or udp")
    port: int | str = Field(description="a port, or a range: 2379-2380")
    net: IPv4Network | IPv6Network | None = Field(
        None,
        description="only to/from this network (inbound: source, outbound: destination); "
        "of either family: the port opens in that family only (iptables or ip6tables), "
        "without it in both",
    )

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | str) -> int | str:
        port_range(value)
        return value

    @property
    def ports(self) -> tuple[int, int]:
        """Return (first, last) port."""
        return port_range(self.port)


def _failsafes(*entries: tuple[Literal["tcp", "udp"], int | str]) -> tuple[FailsafePort, ...]:
    return tuple(FailsafePort(protocol=proto, port=port) for proto, port in entries)


# Calico's defaults (felix/config/config_params.go, FailsafeInboundHostPorts/Outbound).
FAILSAFE_INBOUND = _failsafes(
    ("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", "2379-2380"), ("tcp", 5473), ("tcp", 6443),
    ("tcp", "6666-6667"),
)  # fmt: skip
FAILSAFE_OUTBOUND = _failsafes(
    ("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", "2379-2380"), ("tcp", 5473), ("tcp", 6443),
    ("tcp", "6666-6667"),
)  # fmt: skip


class HostProtection(Strict):
    """Host endpoints on the nodes' interfaces, enforced with GlobalNetworkPolicy documents.

    Traffic to the node (INPUT), from it (OUTPUT), and with `applyOnForward` through it, is
    policed on the interfaces named here; `preDNAT` policy runs in mangle PREROUTING, before
    kube-proxy's DNAT, so NodePorts can be closed. A protected interface with no policy for a
    direction denies it (Calico's host endpoint default), except what a failsafe opens.
    """

    interfaces: tuple[HostInterface, ...] = Field(
        (ALL_INTERFACES,),
        description="every node's protected interfaces (\"*\": all of them, Calico's "
        "all-interfaces host endpoint); a node's own `host_interfaces` replaces this",
    )
    failsafe_inbound: tuple[FailsafePort, ...] = Field(
        FAILSAFE_INBOUND,
        description="ports always open to the node, evaluated before host policy "
        "(Calico's: tcp 22, udp 68, tcp 179, 2379-2380, 5473, 6443, 6666-6667); [] turns "
        "them off",
    )
    failsafe_outbound: tuple[FailsafePort, ...] = Field(
        FAILSAFE_OUTBOUND,
        description="ports the node may always reach (Calico's: udp 53, udp 67, tcp 179, "
        "2379-2380, 5473, 6443, 6666-6667); [] turns them off",
    )
    management_networks: tuple[IPv4Network | IPv6Network, ...] = Field(
        (),
        description="where operators and the bundle push (SSH) come from, of either family: "
        "a host policy that cuts SSH or the API server from them fails the build",
    )

    @field_validator("interfaces")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return unique_interfaces(value) or ()


def unique_interfaces(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Refuse an interface named twice."""
    if value is None:
        return None
    seen = [name for i, name in enumerate(value) if name in value[:i]]
    if seen:
        raise ValueError(f"interface {seen[0]!r} is named twice")
    return value
