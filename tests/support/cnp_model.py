"""The shape of a ported ClusterNetworkPolicy conformance case, and builders of its policies.

A case is one upstream ConformanceTest (sigs.k8s.io/network-policy-api conformance/tests) as
data: steps, each a list of actions (create or replace a policy, delete one, relabel a
namespace) and then the probes to run, with the expected truth table as the NetworkPolicy
cases build it (tests/support/netpol_truth.py). Upstream's subtests share their policies (a
subtest's patch stays for the next ones), so a step is a policy state and names the subtests
it stands for; subtests that patch nothing share the step before them.

The builders write v1alpha2 documents: `cnp(name, tier, priority, subject, ingress=...,
egress=...)`, peers `ns_peer("x")`, `pods_peer(...)`, `nets_peer(...)`, protocols `tcp(80)`,
`udp(81)`, `sctp(9003)`, `named("serve-80-udp")`. The patches upstream applies are functions
returning a changed copy: `swap`, `set_action`, `set_protocols`, `prepend`, `set_priority`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from tests.support.netpol_model import NS_LABEL, Create, Doc, LabelNamespace, Probe

API_VERSION = "policy.networking.k8s.io/v1alpha2"


@dataclass(frozen=True)
class Delete:
    """Delete one policy (a NetworkPolicy: its namespace and name; a CNP: namespace "")."""

    namespace: str
    name: str


CnpAction = Create | Delete | LabelNamespace


@dataclass(frozen=True)
class CnpStep:
    """Actions, then probes; `subtests` are the upstream t.Run titles the step stands for."""

    subtests: tuple[str, ...]
    actions: tuple[CnpAction, ...]
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class CnpCase:
    """One upstream ConformanceTest: its ShortName, manifest and steps."""

    name: str
    manifest: str
    steps: tuple[CnpStep, ...]


def policy_key(doc: Doc) -> tuple[str, str]:
    """Return a policy's (namespace, name): namespace "" for a cluster-scoped CNP."""
    meta = doc["metadata"]
    return meta.get("namespace", ""), meta["name"]


def cnp_step(subtests: list[str], *actions: CnpAction, probes: list[Probe]) -> CnpStep:
    """Return a step standing for `subtests`: `actions`, then `probes`."""
    return CnpStep(tuple(subtests), tuple(actions), tuple(probes))


def ns_selector(name: str) -> Doc:
    """Return a selector of one namespace by its kubernetes.io/metadata.name label."""
    return {"matchLabels": {NS_LABEL: name}}


def ns_peer(name: str) -> Doc:
    """Return a `namespaces` peer (or subject) of one namespace."""
    return {"namespaces": ns_selector(name)}


def pods_peer(namespaces: Doc, pods: Doc) -> Doc:
    """Return a `pods` peer (or subject): pods matching `pods` in namespaces matching."""
    return {"pods": {"namespaceSelector": namespaces, "podSelector": pods}}


def nets_peer(*cidrs: str) -> Doc:
    """Return a `networks` peer (CIDRs may hold `{x/b}` placeholders, see netpol_model)."""
    return {"networks": list(cidrs)}


def tcp(port: int) -> Doc:
    """Return a protocol match of TCP to `port`."""
    return {"tcp": {"destinationPort": {"number": port}}}


def udp(port: int) -> Doc:
    """Return a protocol match of UDP to `port`."""
    return {"udp": {"destinationPort": {"number": port}}}


def sctp(port: int) -> Doc:
    """Return a protocol match of SCTP to `port`."""
    return {"sctp": {"destinationPort": {"number": port}}}


def named(port: str) -> Doc:
    """Return a protocol match of a destination named port."""
    return {"destinationNamedPort": port}


def gress(name: str, action: str, peers: list[Doc], protocols: list[Doc] | None = None) -> Doc:
    """Return an ingress rule; `egress_of` turns it into an egress rule."""
    found: Doc = {"name": name, "action": action, "from": peers}
    if protocols:
        found["protocols"] = protocols
    return found


def egress_of(rule: Doc) -> Doc:
    """Return `rule` with `to` instead of `from`."""
    found = {k: v for k, v in rule.items() if k != "from"}
    found["to"] = rule["from"]
    return found


def cnp(
    name: str,
    tier: str,
    priority: int,
    subject: Doc,
    *,
    ingress: list[Doc] | None = None,
    egress: list[Doc] | None = None,
) -> Doc:
    """Return a ClusterNetworkPolicy; egress rules may be written with `from` (see egress_of)."""
    spec: Doc = {"tier": tier, "priority": priority, "subject": subject}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = [egress_of(r) if "from" in r else r for r in egress]
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def swap(policy: Doc, direction: str, first: int, second: int) -> Doc:
    """Return `policy` with rules `first` and `second` of `direction` swapped (upstream's patch)."""
    found = copy.deepcopy(policy)
    rules = found["spec"][direction]
    rules[first], rules[second] = rules[second], rules[first]
    return found


def set_action(policy: Doc, direction: str, index: int, action: str) -> Doc:
    """Return `policy` with rule `index` of `direction` taking `action`."""
    found = copy.deepcopy(policy)
    found["spec"][direction][index]["action"] = action
    return found


def set_protocols(policy: Doc, direction: str, index: int, protocols: list[Doc]) -> Doc:
    """Return `policy` with rule `index` of `direction` matching `protocols`."""
    found = copy.deepcopy(policy)
    found["spec"][direction][index]["protocols"] = protocols
    return found


def prepend(policy: Doc, direction: str, rule: Doc) -> Doc:
    """Return `policy` with `rule` first in `direction`."""
    found = copy.deepcopy(policy)
    found["spec"][direction].insert(0, egress_of(rule) if direction == "egress" else rule)
    return found


def set_priority(policy: Doc, priority: int) -> Doc:
    """Return `policy` with `priority`."""
    found = copy.deepcopy(policy)
    found["spec"]["priority"] = priority
    return found
