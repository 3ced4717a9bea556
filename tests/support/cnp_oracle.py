"""A reference evaluation of ClusterNetworkPolicy semantics beside NetworkPolicy, for the cases.

Independent of calicc's compiler: straight from the API's documented meaning
(sigs.k8s.io/network-policy-api apis/v1alpha2). For a pod and a direction, the Admin policies
whose subject selects it go first, by priority: the first rule matching the peer and port
decides (Accept allows, Deny drops, Pass skips the rest of the Admin tier). Then, if any
NetworkPolicy isolates the pod for the direction, it decides (tests/support/netpol_oracle.py).
Otherwise the Baseline policies, as the Admin ones (Pass skips the rest of the tier); nothing
deciding allows. A connection needs its client's egress and its server's ingress.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.support.netpol_model import Doc
from tests.support.netpol_oracle import World, selects
from tests.support.netpol_oracle import _allowed as netpol_allowed
from tests.support.netpol_truth import PODS

DIRECTIONS = {"Ingress": ("ingress", "from"), "Egress": ("egress", "to")}


@dataclass
class CnpWorld(World):
    """The NetworkPolicy world plus the ClusterNetworkPolicies in force, by name."""

    cnps: dict[str, Doc] = field(default_factory=dict)


def _in(world: CnpWorld, selector: Doc, pod: str) -> bool:
    """Return whether `pod` is in a subject or peer (`namespaces` or `pods`)."""
    namespace = pod.split("/", maxsplit=1)[0]
    if "namespaces" in selector:
        return selects(selector["namespaces"], world.ns_labels[namespace])
    pods = selector["pods"]
    return selects(pods["namespaceSelector"], world.ns_labels[namespace]) and selects(
        pods["podSelector"], world.pod_labels[pod]
    )


def _peer_ok(world: CnpWorld, peer: Doc, other: str) -> bool:
    if "networks" in peer:
        address = ipaddress.ip_address(world.addresses[other])
        return any(address in ipaddress.ip_network(n) for n in peer["networks"])
    return _in(world, peer, other)


def _protocol_ok(protocols: Iterable[Doc] | None, port: int, protocol: str) -> bool:
    """Return whether a rule's protocols match: none set matches everything; a named port is
    the server's (every pod declares serve-<port>-<protocol> for what it serves)."""
    if protocols is None:
        return True
    for entry in protocols:
        if entry.get("destinationNamedPort") == f"serve-{port}-{protocol.lower()}":
            return True
        ports = entry.get(protocol.lower(), {}).get("destinationPort", {})
        if "number" in ports and ports["number"] == port:
            return True
        if "range" in ports and ports["range"]["start"] <= port <= ports["range"]["end"]:
            return True
    return False


def _tier(
    world: CnpWorld, tier: str, kind: str, pod: str, other: str, *, probe: tuple[int, str]
) -> str:
    """Return the tier's verdict for `pod`'s direction `kind` with `other`: Accept, Deny or ""
    (no rule matched, or a Pass)."""
    key, peers = DIRECTIONS[kind]
    chosen = sorted(
        (p for p in world.cnps.values() if p["spec"]["tier"] == tier),
        key=lambda p: (p["spec"]["priority"], p["metadata"]["name"]),
    )
    for policy in chosen:
        if not _in(world, policy["spec"]["subject"], pod):
            continue
        for rule in policy["spec"].get(key) or []:
            if any(_peer_ok(world, q, other) for q in rule[peers]) and _protocol_ok(
                rule.get("protocols"), *probe
            ):
                return "" if rule["action"] == "Pass" else str(rule["action"])
    return ""


def _isolated(world: CnpWorld, kind: str, pod: str) -> bool:
    namespace = pod.split("/", maxsplit=1)[0]
    return any(
        ns == namespace
        and kind in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], world.pod_labels[pod])
        for (ns, _), p in world.policies.items()
    )


def allowed(world: CnpWorld, kind: str, pod: str, other: str, probe: tuple[int, str]) -> bool:
    """Return whether `pod`'s direction `kind` (Ingress/Egress) allows traffic with `other`."""
    admin = _tier(world, "Admin", kind, pod, other, probe=probe)
    if admin:
        return admin == "Accept"
    if _isolated(world, kind, pod):
        return netpol_allowed(world, kind, pod, other, probe)
    return _tier(world, "Baseline", kind, pod, other, probe=probe) != "Deny"


def cnp_reachability(world: CnpWorld, port: int, protocol: str) -> dict[tuple[str, str], bool]:
    """Return the truth table the policies in force give for `port`/`protocol`."""
    probe = (port, protocol)
    return {
        (src, dst): allowed(world, "Egress", src, dst, probe)
        and allowed(world, "Ingress", dst, src, probe)
        for src in PODS
        for dst in PODS
    }
