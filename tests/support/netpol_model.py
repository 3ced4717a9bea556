"""The shape of a ported NetworkPolicy conformance case, and builders of its policies.

A case is upstream's test written as data: steps, each a list of actions (create or replace
a policy, delete every policy, relabel a pod or a namespace) and then the probes to run (port,
protocol) with the expected truth table as upstream builds it (tests/support/netpol_truth.py).

The builders mirror upstream's policies.go: `netpol(name, selector, ingress=..., egress=...)`
is GenNetworkPolicyWithNameAndPodSelector with SetSpecIngressRules / SetSpecEgressRules (a
rule list given, even empty, adds its policy type). Pod addresses are not known when the data
is written: an ipBlock CIDR says `{y/b}/32` (pod y/b's address) or `{x/b/4}` (the /4 holding
it, upstream's makeLargeCIDRForIP), replaced by `resolve` once the pods exist.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.netpol_truth import Edit

NS_LABEL = "kubernetes.io/metadata.name"
Doc = dict[str, Any]


@dataclass(frozen=True)
class Create:
    """Create a policy, or replace the one of the same namespace and name (upstream Update)."""

    policy: Doc


@dataclass(frozen=True)
class DeleteAll:
    """Delete every policy (upstream cleanNetworkPolicies)."""


@dataclass(frozen=True)
class LabelPod:
    """Add labels to a pod (upstream AddPodLabels merges them into the pod's labels)."""

    pod: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class LabelNamespace:
    """Add labels to a namespace (upstream AddNamespaceLabel)."""

    namespace: str
    labels: Mapping[str, str]


Action = Create | DeleteAll | LabelPod | LabelNamespace


@dataclass(frozen=True)
class Probe:
    """Probe every pod pair on one port and protocol; expect upstream's table of `edits`."""

    port: int
    protocol: str
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class Step:
    """Actions, then probes."""

    actions: tuple[Action, ...]
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class Case:
    """One upstream test: its title (`It(...)`) and its steps."""

    name: str
    steps: tuple[Step, ...]
    labels: bool = field(default=False)  # relabels a pod or namespace (live labels)

    @property
    def protocols(self) -> frozenset[str]:
        """Return the protocols the case probes."""
        return frozenset(p.protocol for s in self.steps for p in s.probes)


def step(*actions: Action, probes: list[Probe]) -> Step:
    """Return a step of `actions` then `probes`."""
    return Step(tuple(actions), tuple(probes))


def probe(port: int, protocol: str, *edits: Edit) -> Probe:
    """Return a probe of every pair on `port`/`protocol` with upstream's expectation edits."""
    return Probe(port, protocol, edits)


def match(**labels: str) -> Doc:
    """Return a selector with matchLabels `labels` (none: the empty selector, everything)."""
    return {"matchLabels": dict(labels)} if labels else {}


def expr(key: str, operator: str, *values: str) -> Doc:
    """Return a selector with one matchExpressions entry."""
    entry: Doc = {"key": key, "operator": operator}
    if values:
        entry["values"] = list(values)
    return {"matchExpressions": [entry]}


def ns_named(name: str) -> Doc:
    """Return a namespace selector of the namespace's immutable name label."""
    return match(**{NS_LABEL: name})


def peer(pods: Doc | None = None, namespaces: Doc | None = None) -> Doc:
    """Return a NetworkPolicyPeer of a podSelector and/or a namespaceSelector."""
    found: Doc = {}
    if pods is not None:
        found["podSelector"] = pods
    if namespaces is not None:
        found["namespaceSelector"] = namespaces
    return found


def block(cidr: str, *excepted: str) -> Doc:
    """Return an ipBlock peer (CIDRs may hold `{x/b}` placeholders, see `resolve`)."""
    ip_block: Doc = {"cidr": cidr}
    if excepted:
        ip_block["except"] = list(excepted)
    return {"ipBlock": ip_block}


def port(number: int | str | None = None, protocol: str | None = None) -> Doc:
    """Return a NetworkPolicyPort: a number or a name, and a protocol (TCP when left out)."""
    found: Doc = {}
    if number is not None:
        found["port"] = number
    if protocol is not None:
        found["protocol"] = protocol
    return found


def rule(peers: list[Doc] | None = None, ports: list[Doc] | None = None, key: str = "from") -> Doc:
    """Return an ingress rule (`key` "from") or egress rule (`key` "to")."""
    found: Doc = {}
    if peers:
        found[key] = peers
    if ports:
        found["ports"] = ports
    return found


def egress_rule(peers: list[Doc] | None = None, ports: list[Doc] | None = None) -> Doc:
    """Return an egress rule."""
    return rule(peers, ports, key="to")


def netpol(
    name: str,
    selector: Doc,
    *,
    ingress: list[Doc] | None = None,
    egress: list[Doc] | None = None,
    namespace: str = "x",
) -> Doc:
    """Return a NetworkPolicy; a rule list given (even empty) adds its policy type."""
    spec: Doc = {"podSelector": selector, "policyTypes": []}
    if ingress is not None:
        spec["ingress"] = ingress
        spec["policyTypes"].append("Ingress")
    if egress is not None:
        spec["egress"] = egress
        spec["policyTypes"].append("Egress")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


PLACEHOLDER = re.compile(r"\{([xyz]/[abc])(?:/(\d+))?\}")


def resolve(text: str, addresses: Mapping[str, str]) -> str:
    """Replace `{x/b}` with pod x/b's address and `{x/b/4}` with the /4 network holding it.

    Examples:
        >>> resolve("{x/b}/32 {x/b/4}", {"x/b": "10.244.0.7"})
        '10.244.0.7/32 0.0.0.0/4'
    """

    def one(found: re.Match[str]) -> str:
        address = addresses[found.group(1)]
        if found.group(2) is None:
            return address
        return str(ipaddress.ip_network(f"{address}/{found.group(2)}", strict=False))

    return PLACEHOLDER.sub(one, text)
