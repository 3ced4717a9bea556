"""The build-time lockout check: no host policy may cut the paths a node is managed through.

With failsafes on (Calico's list), SSH, BGP and the API server are open whatever the host
policies say; the check matters when failsafes are narrowed or off. For every protected node
it follows, as the node's chains would (contract/host.py), the traffic of:

- SSH (tcp 22, also how `calicc push` delivers bundles) from each management network;
- BGP with every peer the node has (mesh, reflectors, external peers): in to the node's
  listen port from the peer, out to the peer's port;
- the Kubernetes API (the port of `kubernetes.server`, else 6443): out from every node (the
  agent and CNI plugin read it), and in from the management networks and the other nodes on
  the node `kubernetes.server` names (by address or name).

Per family: a node's IPv4 traffic is checked against the iptables chains and its IPv6 traffic
against the ip6tables ones (the rules of that family, compiler/host/rules.py): SSH from each
management network of the node's families, BGP with the peers of each family (`sessions`,
`sessions_v6`), the API server by an address of either family (by name: in IPv4, or IPv6 on
an IPv6-only node). A failsafe port with a net opens that net's family only.

Traffic passes the failsafe chain first, then pre-DNAT policy (inbound), then the node's
policies in order; a Deny that matches any part of the traffic, a Pass, or the default deny
at the end fails the build, naming the rule's file and line (the default deny: the last
policy that applied, or `host_protection` when none did). A rule whose match cannot be
decided here (source ports; address rules against an API server given by name) never counts
as allowing the traffic, and a Deny of that kind counts as cutting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    collapse_addresses,
    ip_address,
)
from urllib.parse import urlsplit

from calicc.compiler.errors import Problem
from calicc.compiler.host.model import EntityRule, Rule
from calicc.compiler.host.plan import (
    HostPlan,
    HostPolicyPlan,
    node_addresses,
    selected_nodes,
)
from calicc.compiler.host.rules import IPNet, side_nets
from calicc.compiler.host.spec import FailsafePort, port_range
from calicc.compiler.load import Source
from calicc.compiler.plan import ClusterPlan, NodePlan
from calicc.contract.names import V4, V6

SSH_PORT, BGP_PORT, API_PORT = 22, 179, 6443
Nets = list[IPNet] | None  # None: an address not known at build time; one family per list


@dataclass(frozen=True)
class Probe:
    """Traffic a node must keep: direction, the remote addresses, protocol and port."""

    what: str
    direction: str  # ingress: to the node; egress: from it
    remote: Nets
    port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class Facts:
    """What rules are evaluated against: the nodes' addresses of one family, and labels."""

    addresses: dict[str, IPNet]
    labels: dict[str, dict[str, str]]
    version: int = V4

    def nets(self, entity: EntityRule) -> tuple[IPNet, ...] | None:
        """Return the networks of the family an end of a rule matches (None: any)."""
        selected = selected_nodes(entity.selector, self.labels)
        return side_nets(entity, self.addresses, selected, self.version)


def within(a: IPNet, b: IPNet) -> bool:
    """Return whether `a` lies inside `b` (False across families)."""
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


def collapse(nets: Iterable[IPNet]) -> list[IPNet]:
    """Return `nets` (of one family) collapsed."""
    return list(collapse_addresses(nets))  # type: ignore[type-var]


def intersect(left: Sequence[IPNet], right: Sequence[IPNet]) -> list[IPNet]:
    """Return the addresses in both (each list's networks nest or are disjoint)."""
    found = [a if within(a, b) else b for a in left for b in right if a.overlaps(b)]
    return collapse(found)


def subtract(left: Sequence[IPNet], right: Sequence[IPNet]) -> list[IPNet]:
    """Return the addresses of `left` outside `right` (both of one family)."""
    pieces = list(left)
    for b in right:
        kept: list[IPNet] = []
        for p in pieces:
            if not p.overlaps(b):
                kept.append(p)
            elif not within(p, b):
                kept.extend(p.address_exclude(b))  # type: ignore[arg-type]
        pieces = kept
    return collapse(pieces)


def _failsafe(probe: Probe, ports: Sequence[FailsafePort], remote: Nets, version: int) -> Nets:
    """Return what the failsafes of IPv`version` leave of `remote` (empty: all of it is open)."""
    for f in ports:
        first, last = f.ports
        if f.protocol != probe.protocol or not first <= probe.port <= last:
            continue
        if f.net is not None and f.net.version != version:
            continue
        if f.net is None:
            return []
        if remote is not None:
            remote = subtract(remote, [f.net])
    return remote


def _in_ports(port: int, ports: Sequence[int | str]) -> bool:
    return any(lo <= port <= hi for lo, hi in map(port_range, ports))


@dataclass(frozen=True)
class Match:
    """How a rule meets the traffic left: the part it matches, and whether for sure."""

    part: Nets
    certain: bool


def match(rule: Rule, probe: Probe, remote: Nets, local: IPNet, facts: Facts) -> Match | None:
    """Return the part of `remote` a rule of the probe's family matches (None: none of it)."""
    dest = rule.destination
    if rule.proto not in (None, probe.protocol) or not rule.in_family(facts.version):
        return None
    if (dest.ports and not _in_ports(probe.port, dest.ports)) or _in_ports(
        probe.port, dest.notPorts
    ):
        return None
    far, near = (rule.source, dest) if probe.direction == "ingress" else (dest, rule.source)
    mine = facts.nets(near)
    if mine is not None and not any(within(local, n) for n in mine):
        return None
    certain = not (rule.source.ports or rule.source.notPorts)
    theirs = facts.nets(far)
    if theirs is None:
        return Match(remote, certain)
    if remote is None:
        return Match(None, False)
    part = intersect(remote, theirs)
    return Match(part, certain) if part else None


@dataclass(frozen=True)
class Cut:
    """Where the traffic is cut: a rule (policy, direction, index) or a policy's end."""

    policy: HostPolicyPlan | None
    index: int | None
    why: str
    part: Nets


def _walk(
    policy: HostPolicyPlan, probe: Probe, remote: Nets, local: IPNet, facts: Facts
) -> tuple[Nets, Cut | None, bool]:
    """Walk one policy's rules: what stays undecided, a cut, and whether a Pass ended it."""
    rules = (
        policy.loaded.policy.spec.ingress
        if probe.direction == "ingress"
        else policy.loaded.policy.spec.egress
    )
    for i, rule in enumerate(rules):
        if remote == []:
            break
        found = match(rule, probe, remote, local, facts)
        if found is None or rule.action == "Log":
            continue
        if rule.action == "Deny" and (found.part is None or found.part):
            return remote, Cut(policy, i, "denies", found.part), False
        if rule.action == "Pass":
            return remote, Cut(policy, i, "passes to the default deny", found.part), True
        if rule.action == "Allow" and found.certain:
            remote = [] if found.part is None or remote is None else subtract(remote, found.part)
    return remote, None, False


def evaluate(probe: Probe, node: NodePlan, host: HostPlan, facts: Facts) -> Cut | None:
    """Return where the node's chains would cut `probe`, or None when they let it through."""
    s = host.settings
    failsafes = s.failsafe_inbound if probe.direction == "ingress" else s.failsafe_outbound
    remote = _failsafe(probe, failsafes, probe.remote, facts.version)
    if remote == []:
        return None
    local = facts.addresses[node.name]
    mine = [p for p in host.policies if node.name in p.nodes]
    key = "ingress" if probe.direction == "ingress" else "egress"
    if key == "ingress":
        for policy in (p for p in mine if p.loaded.policy.spec.preDNAT and p.ingress):
            remote, cut, passed = _walk(policy, probe, remote, local, facts)
            if cut is not None and not passed:
                return cut
            if passed or remote == []:
                break
    if remote == []:
        return None
    last = None
    for policy in (p for p in mine if not p.loaded.policy.spec.preDNAT and getattr(p, key)):
        last = policy
        remote, cut, _ = _walk(policy, probe, remote, local, facts)
        if cut is not None:
            return cut
        if remote == []:
            return None
    return Cut(last, None, "leaves it to the default deny", remote)


def _api(cluster: ClusterPlan) -> tuple[IPv4Address | IPv6Address | str | None, int]:
    """Return the API server's host (an address, a name, None: unknown) and port."""
    kube = cluster.spec.kubernetes
    if kube is None or kube.server is None:
        return None, API_PORT
    parts = urlsplit(kube.server)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    try:
        return ip_address(host), port
    except ValueError:
        return host, port


def _bgp(cluster: ClusterPlan, node: NodePlan, version: int) -> Iterator[Probe]:
    sessions = node.sessions if version == V4 else node.sessions_v6
    by_port: dict[int, list[IPNet]] = {}
    for s in sessions:
        by_port.setdefault(s.port or BGP_PORT, []).append(ip_network_of(s.peer_ip))
    peers = {n for nets in by_port.values() for n in nets}
    family = "" if version == V4 else "IPv6 "
    if peers:
        listen = cluster.spec.bgp.listen_port
        remote = collapse(peers)
        yield Probe(f"{family}BGP (tcp {listen}) from its peers", "ingress", remote, listen)
    for port, nets in sorted(by_port.items()):
        remote = collapse(nets)
        yield Probe(f"{family}BGP (tcp {port}) to its peers", "egress", remote, port)


def ip_network_of(address: IPv4Address | IPv6Address) -> IPNet:
    """Return the host network of `address` (/32, /128)."""
    return IPv4Network(address) if address.version == V4 else IPv6Network(address)


def probes(
    cluster: ClusterPlan, node: NodePlan, facts: Facts, mgmt: list[IPNet]
) -> Iterator[Probe]:
    """Return the traffic node `node` must keep in `facts`' family (see the module docstring)."""
    version = facts.version
    for net in (n for n in mgmt if n.version == version):
        yield Probe(
            f"SSH (tcp {SSH_PORT}) from management network {net}", "ingress", [net], SSH_PORT
        )
    yield from _bgp(cluster, node, version)
    host, port = _api(cluster)
    if isinstance(host, IPv4Address | IPv6Address):
        if host.version == version:
            yield Probe(f"the Kubernetes API (tcp {port})", "egress", [ip_network_of(host)], port)
    elif version == (V4 if node.address is not None else V6):  # by name: one family
        yield Probe(f"the Kubernetes API (tcp {port})", "egress", None, port)
    own = [node.name, *(a.ip for a in (node.address, node.address_v6) if a is not None)]
    if host in own:
        others = [a for n, a in facts.addresses.items() if n != node.name]
        mine = [n for n in mgmt if n.version == version]
        remote = collapse([*mine, *others])
        if remote:
            yield Probe(
                f"the API server (tcp {port}) from management and nodes", "ingress", remote, port
            )


SHOWN = 3  # addresses a message lists


def _shown(part: Nets) -> str:
    if not part:
        return ""
    more = ", ..." if len(part) > SHOWN else ""
    return " (" + ", ".join(str(n) for n in part[:SHOWN]) + more + ")"


def _problem(cut: Cut, probe: Probe, node: NodePlan, cluster: Source) -> Problem:
    part = _shown(cut.part)
    told = f"would cut {probe.what}{part} on node {node.name}: it {cut.why}"
    fix = (
        "; allow it first, or keep the failsafe ports (host_protection.failsafe_inbound/_outbound)"
    )
    if cut.policy is None:
        return cluster.problem(
            ("host_protection",),
            f"no host policy applies to node {node.name}, so the default deny {told[6:]}{fix}",
        )
    loaded = cut.policy.loaded
    loc = ("spec",) if cut.index is None else ("spec", probe.direction, cut.index)
    return loaded.problem(loc, f"host policy {loaded.name} {told}{fix}")


def check_lockout(cluster: ClusterPlan, source: Source) -> list[Problem]:
    """Return a problem for every node whose host policies cut a path it is managed through."""
    host = cluster.host
    if host is None:
        return []
    labels = {n.name: dict(n.labels) for n in cluster.nodes}
    found: dict[tuple[str, str], Problem] = {}
    mgmt = list(host.settings.management_networks)
    for version in (V4, V6):
        facts = Facts(node_addresses(cluster.spec, version), labels, version)
        for node in cluster.nodes:
            if node.name not in host.nodes or node.name not in facts.addresses:
                continue
            for probe in probes(cluster, node, facts, mgmt):
                cut = evaluate(probe, node, host, facts)
                if cut is not None:
                    problem = _problem(cut, probe, node, source)
                    found.setdefault(
                        (problem.file, f"{problem.line}{problem.field}{probe.what}"), problem
                    )
    return sorted(found.values())
