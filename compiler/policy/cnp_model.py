"""ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2) as strict pydantic v2 models.

The upstream API of sigs.k8s.io/network-policy-api (apis/v1alpha2/clusternetworkpolicy_types.go
and the standard-channel CRD's validation): field names are the upstream ones, so an error reads
like the YAML, e.g. `spec.egress[0].to[1].networks[0]`. What the CRD rejects is rejected here
(tier and action enums, priority 0-1000, at most 25 rules / peers / protocols / networks,
exactly one field of a subject, peer, protocol and port, start < end, rule names of at most
100 characters). Experimental-channel peers (`nodes`, `domainNames`) are refused with a
message saying so: calicc does not enforce them. `networks` take either family (issue 13).
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from calicc.compiler.policy.model import PORT_MAX, LabelSelector, check_port_name
from calicc.contract.fields import Dns1123Subdomain, LabelKey, Labels
from calicc.contract.manifest import Strict
from calicc.contract.names import CNP_PRIORITY_MAX
from calicc.contract.patterns import ANY_CONTROL
from calicc.contract.text import cut

API_VERSION = "policy.networking.k8s.io/v1alpha2"
RULES_MAX = 25  # rules per direction, peers per rule, protocols per rule, networks per peer
RULE_NAME_MAX = 100
Tier = Literal["Admin", "Baseline"]
Action = Literal["Accept", "Deny", "Pass"]


def _exactly_one(model: Strict, fields: tuple[str, ...], what: str) -> None:
    given = [f for f in fields if getattr(model, f) is not None]
    if len(given) != 1:
        found = f"got {', '.join(given)}" if given else "got none"
        raise ValueError(f"{what} takes exactly one of {', '.join(fields)}; {found}")


class PortRange(Strict):
    """An inclusive range of destination ports, start below end."""

    start: int = Field(ge=1, le=PORT_MAX)
    end: int = Field(ge=1, le=PORT_MAX)

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.start >= self.end:
            raise ValueError(
                f"start {self.start} must be less than end {self.end}; for one port write "
                "number: <port>"
            )
        return self


class Port(Strict):
    """A destination port: a number or a range."""

    number: int | None = Field(None, ge=1, le=PORT_MAX)
    range: PortRange | None = None

    @model_validator(mode="after")
    def _one(self) -> Port:
        _exactly_one(self, ("number", "range"), "a destinationPort")
        return self


class ProtocolPort(Strict):
    """The matches of one protocol: its destination port (required by the CRD)."""

    destinationPort: Port | None = None

    @model_validator(mode="after")
    def _given(self) -> ProtocolPort:
        if self.destinationPort is None:
            raise ValueError(
                "give destinationPort (number or range); to match every port of every "
                "protocol, leave `protocols` out"
            )
        return self


class CnpProtocol(Strict):
    """One protocol match: tcp, udp or sctp with a port, or a destination named port."""

    tcp: ProtocolPort | None = None
    udp: ProtocolPort | None = None
    sctp: ProtocolPort | None = None
    destinationNamedPort: str | None = None

    @field_validator("destinationNamedPort")
    @classmethod
    def _named(cls, name: str | None) -> str | None:
        return check_port_name(name) if name is not None else None

    @model_validator(mode="after")
    def _one(self) -> CnpProtocol:
        _exactly_one(self, ("tcp", "udp", "sctp", "destinationNamedPort"), "a protocol")
        return self


class NamespacedPod(Strict):
    """Pods matching podSelector in namespaces matching namespaceSelector (`{}`: all)."""

    namespaceSelector: LabelSelector = Field(default_factory=LabelSelector)
    podSelector: LabelSelector


class CnpSubject(Strict):
    """The pods a policy applies to: every pod of some namespaces, or some pods of them."""

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None

    @model_validator(mode="after")
    def _one(self) -> CnpSubject:
        _exactly_one(self, ("namespaces", "pods"), "subject")
        return self


class CnpIngressPeer(Strict):
    """A source: the pods of some namespaces, or some pods of them."""

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None

    @model_validator(mode="after")
    def _one(self) -> CnpIngressPeer:
        _exactly_one(self, ("namespaces", "pods"), "a peer")
        return self


class CnpEgressPeer(Strict):
    """A destination: pods (as ingress peers) or networks (IPv4 or IPv6).

    `nodes` and `domainNames` are the experimental channel's; they are read so the refusal
    names them, never enforced.
    """

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None
    networks: tuple[IPv4Network | IPv6Network, ...] | None = Field(
        None, min_length=1, max_length=RULES_MAX
    )
    nodes: object | None = None
    domainNames: object | None = None

    @field_validator("networks", mode="before")
    @classmethod
    def _cidrs(cls, networks: object) -> object:
        for value in networks if isinstance(networks, list) else []:
            if isinstance(value, str):
                try:
                    ip_network(value, strict=True)
                except ValueError as exc:
                    raise ValueError(
                        f"{cut(value)!r} is not a network in CIDR form ({exc}); e.g. 10.0.0.0/8"
                    ) from None
        return networks

    @model_validator(mode="after")
    def _one(self) -> CnpEgressPeer:
        for experimental in ("nodes", "domainNames"):
            if getattr(self, experimental) is not None:
                raise ValueError(
                    f"{experimental} peers (the experimental channel) are not supported by "
                    "calicc; select pods, namespaces or networks"
                )
        _exactly_one(self, ("namespaces", "pods", "networks"), "a peer")
        if self.networks is not None and len(set(self.networks)) != len(self.networks):
            raise ValueError("networks lists a network twice (a set: each at most once)")
        return self


class _Rule(Strict):
    name: str = Field("", max_length=RULE_NAME_MAX)
    action: Action
    protocols: tuple[CnpProtocol, ...] | None = Field(None, min_length=1, max_length=RULES_MAX)

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if ANY_CONTROL.search(name):
            raise ValueError("a rule name holds no control characters")
        return name


class CnpIngressRule(_Rule):
    """Traffic in from any of `from`, on any of `protocols` (every port when unset)."""

    from_: tuple[CnpIngressPeer, ...] = Field(
        validation_alias=AliasChoices("from"), min_length=1, max_length=RULES_MAX
    )


class CnpEgressRule(_Rule):
    """Traffic out to any of `to`, on any of `protocols` (every port when unset)."""

    to: tuple[CnpEgressPeer, ...] = Field(min_length=1, max_length=RULES_MAX)

    @model_validator(mode="after")
    def _named_ports_need_pods(self) -> CnpEgressRule:
        named = any(p.destinationNamedPort is not None for p in self.protocols or ())
        if named and any(peer.networks is not None for peer in self.to):
            raise ValueError(
                "a networks peer cannot be combined with destinationNamedPort (networks have "
                "no named ports); use tcp/udp/sctp destinationPort"
            )
        return self


class CnpSpec(Strict):
    """Tier, priority, subject and the ordered rules of each direction."""

    tier: Tier
    priority: int = Field(ge=0, le=CNP_PRIORITY_MAX)
    subject: CnpSubject
    ingress: tuple[CnpIngressRule, ...] = Field((), max_length=RULES_MAX)
    egress: tuple[CnpEgressRule, ...] = Field((), max_length=RULES_MAX)


class ClusterObjectMeta(Strict):
    """The metadata calicc reads of a cluster-scoped object (no namespace)."""

    name: Dns1123Subdomain
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: dict[LabelKey, str] = Field(
        default_factory=dict, description="read and ignored: never written to any artifact"
    )

    @field_validator("namespace")
    @classmethod
    def _cluster_scoped(cls, namespace: str | None) -> str | None:
        if namespace is not None:
            raise ValueError(
                "a ClusterNetworkPolicy is cluster-scoped and has no namespace; remove "
                "metadata.namespace (select namespaces with spec.subject)"
            )
        return namespace


class ClusterNetworkPolicy(Strict):
    """One policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy document."""

    apiVersion: Literal["policy.networking.k8s.io/v1alpha2"]
    kind: Literal["ClusterNetworkPolicy"]
    metadata: ClusterObjectMeta
    spec: CnpSpec

    @property
    def key(self) -> str:
        """Return the policy's identity: its name (cluster-scoped)."""
        return self.metadata.name
