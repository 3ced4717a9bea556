"""Kubernetes NetworkPolicy (networking.k8s.io/v1) as strict pydantic v2 models.

Field names are the Kubernetes ones (camelCase), so error locations read like the YAML the user
wrote: `spec.ingress[0].from[1].ipBlock.cidr`. `from` and `except` are Python keywords, hence
`from_` / `except_` with the Kubernetes spelling as the accepted key.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from calicc.contract.fields import (
    IANA_SVC_NAME,
    Dns1123Label,
    Dns1123Subdomain,
    LabelKey,
    Labels,
    LabelValue,
)
from calicc.contract.manifest import Strict
from calicc.contract.text import cut

PORT_MAX = 65535
PORT_NAME_MAX = 15
Protocol = Literal["TCP", "UDP", "SCTP"]


def check_port_name(name: str) -> str:
    """Return `name` if it is an IANA service name (a named container port), else raise.

    Raises:
        ValueError: saying what a port name may hold.
    """
    if len(name) > PORT_NAME_MAX or not IANA_SVC_NAME.fullmatch(name):
        raise ValueError(
            f"port name {cut(name)!r} is not an IANA service name (at most 15 lower-case "
            "letters, digits and '-', with at least one letter), e.g. http"
        )
    return name


class LabelSelectorRequirement(Strict):
    """One matchExpressions entry."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[LabelValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs a non-empty values list")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values; remove `values`")
        return self


class LabelSelector(Strict):
    """A Kubernetes label selector; the empty selector `{}` selects everything."""

    matchLabels: Labels = Field(default_factory=dict)
    matchExpressions: tuple[LabelSelectorRequirement, ...] = ()


class IPBlock(Strict):
    """A CIDR of either family, minus the CIDRs in `except` (inside it; checked in check.py).

    An IPv4 block matches IPv4 traffic only (iptables), an IPv6 one IPv6 traffic (ip6tables).
    """

    cidr: IPv4Network | IPv6Network
    except_: tuple[IPv4Network | IPv6Network, ...] = Field(
        (), validation_alias=AliasChoices("except")
    )


class NetworkPolicyPeer(Strict):
    """A peer: pods (podSelector and/or namespaceSelector) or an ipBlock, never both."""

    podSelector: LabelSelector | None = None
    namespaceSelector: LabelSelector | None = None
    ipBlock: IPBlock | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> NetworkPolicyPeer:
        pods = self.podSelector is not None or self.namespaceSelector is not None
        if self.ipBlock is not None and pods:
            raise ValueError("ipBlock cannot be combined with podSelector or namespaceSelector")
        if self.ipBlock is None and not pods:
            raise ValueError("a peer needs podSelector, namespaceSelector or ipBlock")
        return self


class NetworkPolicyPort(Strict):
    """A port: protocol (TCP default), a number or an IANA port name, optionally endPort."""

    protocol: Protocol = "TCP"
    port: int | str | None = None
    endPort: int | None = Field(None, ge=1, le=PORT_MAX)

    @field_validator("port")
    @classmethod
    def _port(cls, port: int | str | None) -> int | str | None:
        if isinstance(port, int) and not 1 <= port <= PORT_MAX:
            raise ValueError(f"port {port} is out of range; use 1-{PORT_MAX} or a port name")
        if isinstance(port, str):
            check_port_name(port)
        return port


class NetworkPolicyIngressRule(Strict):
    """Traffic allowed in: from any of `from` (all when empty) to any of `ports`."""

    from_: tuple[NetworkPolicyPeer, ...] = Field((), validation_alias=AliasChoices("from"))
    ports: tuple[NetworkPolicyPort, ...] = ()


class NetworkPolicyEgressRule(Strict):
    """Traffic allowed out: to any of `to` (all when empty) on any of `ports`."""

    to: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


class NetworkPolicySpec(Strict):
    """What the policy selects and allows."""

    podSelector: LabelSelector
    policyTypes: tuple[Literal["Ingress", "Egress"], ...] | None = None
    ingress: tuple[NetworkPolicyIngressRule, ...] = ()
    egress: tuple[NetworkPolicyEgressRule, ...] = ()

    def types(self) -> tuple[str, ...]:
        """Return the effective policyTypes, defaulted as Kubernetes does.

        Ingress always applies when policyTypes is unset; Egress only when the policy has
        egress rules.
        """
        if self.policyTypes is not None:
            return tuple(sorted(set(self.policyTypes)))
        return ("Egress", "Ingress") if self.egress else ("Ingress",)


class ObjectMeta(Strict):
    """The metadata calicc reads; namespace defaults to `default` as kubectl does."""

    name: Dns1123Subdomain
    namespace: Dns1123Label = "default"
    labels: Labels = Field(default_factory=dict)
    annotations: dict[LabelKey, str] = Field(
        default_factory=dict, description="read and ignored: never written to any artifact"
    )


class NetworkPolicy(Strict):
    """One networking.k8s.io/v1 NetworkPolicy document."""

    apiVersion: Literal["networking.k8s.io/v1"]
    kind: Literal["NetworkPolicy"]
    metadata: ObjectMeta
    spec: NetworkPolicySpec

    @property
    def key(self) -> str:
        """Return `namespace/name`, the policy's identity."""
        return f"{self.metadata.namespace}/{self.metadata.name}"
