"""A reference evaluation of NetworkPolicy semantics, to check the ported expectations.

Independent of calicc's compiler: straight from the API's documented meaning. A pod is
isolated for a direction when a policy of its namespace with that policy type selects it; then
a connection needs a rule of one of those policies allowing its peer and port. Both the
client's egress and the server's ingress must allow it. Named ports are the server's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tests.support.netpol_model import NS_LABEL, Doc
from tests.support.netpol_truth import NAMESPACES, POD_NAMES, PODS


@dataclass
class World:
    """Pods (labels, addresses), namespace labels and the policies in force."""

    pod_labels: dict[str, dict[str, str]]
    ns_labels: dict[str, dict[str, str]]
    addresses: dict[str, str]
    policies: dict[tuple[str, str], Doc] = field(default_factory=dict)

    @classmethod
    def initial(cls, addresses: Mapping[str, str]) -> World:
        """Return upstream's model: pods pod=<name>, namespaces ns=<name> and their name label."""
        return cls(
            {f"{ns}/{p}": {"pod": p} for ns in NAMESPACES for p in POD_NAMES},
            {ns: {"ns": ns, NS_LABEL: ns} for ns in NAMESPACES},
            dict(addresses),
        )


def selects(selector: Doc, labels: Mapping[str, str]) -> bool:
    """Return whether a label selector matches `labels` (the empty selector matches all)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for entry in selector.get("matchExpressions") or []:
        key, op, values = entry["key"], entry["operator"], entry.get("values") or []
        tests = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }
        if not tests[op]:
            return False
    return True


def _peer_ok(world: World, peer: Doc, home: str, other: str) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(world.addresses[other])
        block = peer["ipBlock"]
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    namespace = other.split("/", maxsplit=1)[0]
    if "namespaceSelector" in peer:
        ns_ok = selects(peer["namespaceSelector"], world.ns_labels[namespace])
    else:
        ns_ok = namespace == home
    return ns_ok and selects(peer.get("podSelector") or {}, world.pod_labels[other])


def _port_ok(ports: Iterable[Doc], port: int, protocol: str) -> bool:
    ports = list(ports)
    named = f"serve-{port}-{protocol.lower()}"  # every pod serves every port and protocol
    return not ports or any(
        p.get("protocol", "TCP") == protocol
        and (
            "port" not in p
            or p["port"] == named
            or (isinstance(p["port"], int) and p["port"] <= port <= p.get("endPort", p["port"]))
        )
        for p in ports
    )


def _allowed(world: World, kind: str, pod: str, other: str, probe: tuple[int, str]) -> bool:
    """Return whether `pod`'s policies of `kind` (Ingress/Egress) allow traffic with `other`."""
    namespace = pod.split("/", maxsplit=1)[0]
    key, peers = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    isolating = [
        p
        for (ns, _), p in world.policies.items()
        if ns == namespace
        and kind in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], world.pod_labels[pod])
    ]
    return not isolating or any(
        (not r.get(peers) or any(_peer_ok(world, q, namespace, other) for q in r[peers]))
        and _port_ok(r.get("ports") or [], *probe)
        for p in isolating
        for r in p["spec"].get(key) or []
    )


def reachability(world: World, port: int, protocol: str) -> dict[tuple[str, str], bool]:
    """Return the truth table the policies in force give for `port`/`protocol`."""
    return {
        (src, dst): _allowed(world, "Egress", src, dst, (port, protocol))
        and _allowed(world, "Ingress", dst, src, (port, protocol))
        for src in PODS
        for dst in PODS
    }
