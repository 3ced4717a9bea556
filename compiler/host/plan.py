"""Which host policies apply to which node, and the chains that enforce them.

Decided at compile time from the nodes' cluster.yaml labels. Policies run in Calico's order:
by `order` (unset last), then by name. Nodes with the same protected interfaces and the same
policies share one profile in policy.json (contract/host.py `ClusterHost`).

A cluster with a node that has an IPv6 address gets each policy's chains for ip6tables too
(`ingress_v6`, `egress_v6`: the same chain names, the rules of IPv6, compiler/host/rules.py)
and `family inet6` twins of the node selector sets (`cali60h:`, the nodes' IPv6 addresses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, collapse_addresses

from calicc.compiler.errors import Problem, SpecError
from calicc.compiler.host.load import LoadedHostPolicy
from calicc.compiler.host.model import Rule
from calicc.compiler.host.rules import Ends, IPNet, TooManyLines, family_nets, rule_lines
from calicc.compiler.host.spec import HostProtection
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.policy.names import policy_chain, set_name
from calicc.compiler.policy.rules import SetSpec
from calicc.compiler.selector import parse_selector
from calicc.contract.host import (
    HOST_SET_PREFIX,
    HOST_SET_PREFIX_V6,
    ClusterHost,
    HostPolicyRef,
    NodeHost,
)
from calicc.contract.names import HOST_EGRESS_PREFIX, HOST_INGRESS_PREFIX, V4, V6


@dataclass(frozen=True)
class HostChain:
    """One direction of a host policy: its chain name and rules."""

    name: str
    direction: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class HostPolicyPlan:
    """A host policy, compiled: the nodes it selects and its chains."""

    loaded: LoadedHostPolicy
    nodes: tuple[str, ...]
    ingress: HostChain | None
    egress: HostChain | None
    ingress_v6: HostChain | None = None  # the ip6tables chains (nodes with IPv6 only)
    egress_v6: HostChain | None = None

    def chains(self, version: int = 4) -> tuple[HostChain | None, HostChain | None]:
        """Return (ingress, egress) of IP `version`'s tables."""
        return (self.ingress, self.egress) if version == V4 else (self.ingress_v6, self.egress_v6)

    @property
    def name(self) -> str:
        """Return the policy's name."""
        return self.loaded.name

    @property
    def ref(self) -> HostPolicyRef:
        """Return the policy as policy.json lists it."""
        spec = self.loaded.policy.spec
        return HostPolicyRef(
            name=self.name,
            ingress_chain=self.ingress.name if self.ingress else None,
            egress_chain=self.egress.name if self.egress else None,
            apply_on_forward=spec.applyOnForward,
            pre_dnat=spec.preDNAT,
        )


@dataclass(frozen=True)
class HostPlan:
    """Host protection of a cluster: settings, policies in order, each node's endpoints."""

    settings: HostProtection
    policies: tuple[HostPolicyPlan, ...]
    nodes: dict[str, NodeHost]
    sets: tuple[SetSpec, ...] = ()

    def cluster_host(self) -> ClusterHost:
        """Return policy.json's `host`: the distinct profiles and each node's."""
        profiles: list[NodeHost] = []
        index: dict[str, int] = {}
        for name, host in sorted(self.nodes.items()):
            if host not in profiles:
                profiles.append(host)
            index[name] = profiles.index(host)
        return ClusterHost(profiles=tuple(profiles), nodes=index)


def policy_order(loaded: LoadedHostPolicy) -> tuple[float, str]:
    """Return Calico's sort key: order (unset: after all), then name."""
    order = loaded.policy.spec.order
    return (math.inf if order is None else order, loaded.name)


def node_set(
    selector: str,
    addresses: dict[str, IPNet],
    labels: dict[str, dict[str, str]],
    version: int = 4,
) -> SetSpec:
    """Return the ipset of the IPv`version` addresses of the nodes `selector` picks.

    The IPv6 set is the IPv4 one's `family inet6` twin: its name with the cali60h: prefix.
    """
    nodes = selected_nodes(selector, labels)
    found = [addresses[name] for name in nodes if name in addresses]
    members = tuple(str(n) for n in collapse_addresses(found))  # type: ignore[type-var]
    name = set_name(HOST_SET_PREFIX, ("host-nodes", selector))
    if version != V4:
        name = HOST_SET_PREFIX_V6 + name[len(HOST_SET_PREFIX) :]
    return SetSpec(name, "hash:net", members, None, f"nodes {selector}"[:200])


def _chain(
    loaded: LoadedHostPolicy,
    direction: str,
    addresses: dict[str, IPNet],
    labels: dict[str, dict[str, str]],
    version: int = 4,
) -> HostChain:
    spec = loaded.policy.spec
    prefix = HOST_INGRESS_PREFIX if direction == "ingress" else HOST_EGRESS_PREFIX
    name = policy_chain(prefix, "", loaded.name)
    rules: Sequence[Rule] = spec.ingress if direction == "ingress" else spec.egress
    lines: list[str] = []
    problems: list[Problem] = []
    for i, r in enumerate(rules):
        if not r.in_family(version):
            continue
        src, dst = r.source, r.destination
        ends = Ends(
            family_nets(src.nets, version),
            family_nets(dst.nets, version),
            node_set(src.selector, addresses, labels, version).name if src.selector else None,
            node_set(dst.selector, addresses, labels, version).name if dst.selector else None,
        )
        label = f"{loaded.name} {direction}[{i}] {r.action}"
        try:
            lines += rule_lines(name, r, ends, label)
        except TooManyLines as exc:
            problems.append(loaded.problem(("spec", direction, i), str(exc)))
    if problems:
        raise SpecError(problems)
    return HostChain(name, direction, tuple(lines))


def selected_nodes(selector: str | None, labels: dict[str, dict[str, str]]) -> tuple[str, ...]:
    """Return the nodes (by name, sorted) a Calico selector selects; none for no selector."""
    if selector is None:
        return ()
    parsed = parse_selector(selector)
    return tuple(sorted(n for n, node_labels in labels.items() if parsed.matches(node_labels)))


def node_interfaces(spec: ClusterSpec, settings: HostProtection) -> dict[str, tuple[str, ...]]:
    """Return each node's protected interfaces (its own `host_interfaces`, else the default)."""
    return {
        n.name: n.host_interfaces if n.host_interfaces is not None else settings.interfaces
        for n in spec.nodes
    }


def node_addresses(spec: ClusterSpec, version: int = 4) -> dict[str, IPNet]:
    """Return each node's address of IP `version` as a host network (nodes without one: out)."""
    if version == V4:
        return {n.name: IPv4Network(n.address.ip) for n in spec.nodes if n.address}
    return {n.name: IPv6Network(n.address_v6.ip) for n in spec.nodes if n.address_v6}


def _policy_plan(
    loaded: LoadedHostPolicy,
    addresses: dict[int, dict[str, IPNet]],
    labels: dict[str, dict[str, str]],
) -> HostPolicyPlan:
    """Compile one policy: its chains of each direction it has, per family with nodes."""
    types = loaded.policy.spec.effective_types()
    chains: dict[str, HostChain | None] = {}
    for version, family in addresses.items():
        for direction in ("ingress", "egress"):
            key = direction if version == V4 else f"{direction}_v6"
            wanted = direction.capitalize() in types
            chains[key] = _chain(loaded, direction, family, labels, version) if wanted else None
    return HostPolicyPlan(
        loaded=loaded, nodes=selected_nodes(loaded.policy.spec.selector, labels), **chains
    )


def plan_host(spec: ClusterSpec, policies: Sequence[LoadedHostPolicy]) -> HostPlan | None:
    """Compile host protection (None when the cluster file has no `host_protection`)."""
    settings = spec.host_protection
    if settings is None:
        return None
    v6 = node_addresses(spec, V6)
    addresses = {V4: node_addresses(spec), **({V6: v6} if v6 else {})}
    labels = {n.name: dict(n.labels) for n in spec.nodes}
    compiled = [_policy_plan(p, addresses, labels) for p in sorted(policies, key=policy_order)]
    nodes = {}
    for name, interfaces in sorted(node_interfaces(spec, settings).items()):
        if interfaces:
            mine = tuple(p.ref for p in compiled if name in p.nodes)
            nodes[name] = NodeHost(interfaces=tuple(sorted(interfaces)), policies=mine)
    selectors = sorted(
        {
            e.selector
            for p in compiled
            for r in (*p.loaded.policy.spec.ingress, *p.loaded.policy.spec.egress)
            for e in (r.source, r.destination)
            if e.selector
        }
    )
    sets = sorted(
        (node_set(sel, family, labels, v) for sel in selectors for v, family in addresses.items()),
        key=lambda s: s.name,
    )
    return HostPlan(settings=settings, policies=tuple(compiled), nodes=nodes, sets=tuple(sets))
