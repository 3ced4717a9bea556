"""Calico's GlobalNetworkPolicy (projectcalico.org/v3), the subset host protection compiles.

Field names are Calico's, so error locations read like the YAML: `spec.ingress[0].action`.
Selectors are Calico selectors over node labels (cluster.yaml `nodes[].labels`): a host
endpoint carries its node's labels, as Calico's automatic host endpoints do. Supported:
order, selector, types, ingress/egress rules (action Allow, Deny, Pass or Log; ipVersion;
protocol; source/destination nets, selector, ports and notPorts; source ports), applyOnForward,
preDNAT. doNotTrack and the rest of Calico's fields are refused by name.

Both families, as Felix renders a policy into iptables and ip6tables (rules/policy.go
FilterRuleToIPVersion): a rule is written into a family's chain unless its `ipVersion` or its
protocol (ICMP: IPv4, ICMPv6: IPv6) is the other family's, or every net of one of its ends is
of the other family (then it has no meaning there, and is left out rather than widened to any
address). Mixed nets keep the family's ones.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import Field, field_validator, model_validator

from calicc.compiler.host.spec import port_range
from calicc.compiler.selector import check_selector
from calicc.contract.fields import Dns1123Subdomain, LabelKey, Labels
from calicc.contract.manifest import Strict
from calicc.contract.text import cut

PROTOCOLS = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
PROTOCOL_FAMILY = {"ICMP": 4, "ICMPv6": 6}  # Calico's validator: ICMP is IPv4, ICMPv6 IPv6
IPTABLES_PROTOCOL = {"icmpv6": "ipv6-icmp"}  # as ip6tables-save prints it
PORT_PROTOCOLS = ("tcp", "udp", "sctp")
MAX_PORTS = 64


def _ports(value: tuple[int | str, ...]) -> tuple[int | str, ...]:
    if len(value) > MAX_PORTS:
        raise ValueError(f"at most {MAX_PORTS} ports or ranges per rule, not {len(value)}")
    for port in value:
        if isinstance(port, str) and not port[:1].isdigit():
            raise ValueError(
                f"named port {cut(port)!r}: host policy takes numbers or ranges (80, '8000:8080')"
            )
        port_range(port)
    return value


class EntityRule(Strict):
    """One end of a rule: the source or the destination."""

    nets: tuple[IPv4Network | IPv6Network, ...] = Field(
        (), description="any of these networks (either family; see the module docstring)"
    )
    selector: str | None = Field(None, description="nodes (by cluster.yaml labels)")
    ports: tuple[int | str, ...] = Field((), description="ports or ranges, e.g. 22, '8000:8080'")
    notPorts: tuple[int | str, ...] = Field((), description="none of these ports")

    _selector = field_validator("selector")(check_selector)
    _port_list = field_validator("ports", "notPorts")(_ports)


class Rule(Strict):
    """A rule: what it matches and its action."""

    action: Literal["Allow", "Deny", "Pass", "Log"]
    ipVersion: Literal[4, 6] | None = Field(None, description="only this IP family")
    protocol: Literal["TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"] | int | None = None
    source: EntityRule = Field(default_factory=EntityRule)
    destination: EntityRule = Field(default_factory=EntityRule)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, int) and not 1 <= value <= 255:  # noqa: PLR2004
            raise ValueError(
                f"protocol {value} is out of range; use 1-255 or {', '.join(PROTOCOLS)}"
            )
        return value

    @model_validator(mode="after")
    def _ports_need_protocol(self) -> Rule:
        ports = any(e.ports or e.notPorts for e in (self.source, self.destination))
        if ports and self.proto not in PORT_PROTOCOLS:
            raise ValueError("ports need protocol TCP, UDP or SCTP (Calico's rule)")
        return self

    @model_validator(mode="after")
    def _one_family(self) -> Rule:
        """Refuse what Calico's validator refuses: a protocol or net of the other ipVersion."""
        family = PROTOCOL_FAMILY.get(str(self.protocol))
        if self.ipVersion is not None and family not in (None, self.ipVersion):
            raise ValueError(f"protocol {self.protocol} is not IPv{self.ipVersion} (ipVersion)")
        nets = (*self.source.nets, *self.destination.nets)
        wrong = [n for n in nets if self.ipVersion not in (None, n.version)]
        if wrong:
            raise ValueError(f"net {wrong[0]} is not IPv{self.ipVersion} (ipVersion)")
        return self

    @property
    def proto(self) -> str | None:
        """Return the protocol as iptables spells it (tcp, udp, ipv6-icmp, 47), or None."""
        if self.protocol is None:
            return None
        name = str(self.protocol).lower()
        return IPTABLES_PROTOCOL.get(name, name)

    def in_family(self, version: int) -> bool:
        """Return whether the rule is written into IPv`version`'s chains (its nets aside)."""
        family = self.ipVersion or PROTOCOL_FAMILY.get(str(self.protocol))
        return family in (None, version)


class GlobalNetworkPolicySpec(Strict):
    """What the policy selects, when it runs, and its rules."""

    order: float | None = Field(None, description="lower first; unset: after every ordered one")
    selector: str = Field("all()", description="nodes whose host endpoints it applies to")
    types: tuple[Literal["Ingress", "Egress"], ...] | None = None
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    applyOnForward: bool = Field(False, description="also police traffic forwarded by the node")
    preDNAT: bool = Field(False, description="ingress only, before DNAT (mangle PREROUTING)")
    doNotTrack: Literal[False] = Field(False, description="untracked policy is not supported")

    _selector = field_validator("selector")(check_selector)

    @model_validator(mode="after")
    def _pre_dnat(self) -> GlobalNetworkPolicySpec:
        if self.preDNAT and (self.egress or "Egress" in (self.types or ())):
            raise ValueError("a preDNAT policy has ingress rules only (types: [Ingress])")
        if self.preDNAT and not self.applyOnForward:
            raise ValueError("preDNAT needs applyOnForward: true (Calico's rule)")
        return self

    def effective_types(self) -> tuple[str, ...]:
        """Return types, defaulted as Calico does: Ingress, plus Egress with egress rules."""
        if self.types is not None:
            return tuple(sorted(set(self.types)))
        if self.egress and not self.ingress:
            return ("Egress",)
        return ("Egress", "Ingress") if self.egress else ("Ingress",)


class Metadata(Strict):
    """The metadata calicc reads (a GlobalNetworkPolicy has no namespace)."""

    name: Dns1123Subdomain
    labels: Labels = Field(default_factory=dict)
    annotations: dict[LabelKey, str] = Field(default_factory=dict)


class GlobalNetworkPolicy(Strict):
    """One projectcalico.org/v3 GlobalNetworkPolicy document."""

    apiVersion: Literal["projectcalico.org/v3"]
    kind: Literal["GlobalNetworkPolicy"]
    metadata: Metadata
    spec: GlobalNetworkPolicySpec
