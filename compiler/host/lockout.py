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

Traffic passes the failsafe chain first, then pre-DNAT policy (inbound), then the node's
policies in order; a Deny that matches any part of the traffic, a Pass, or the default deny
at the end fails the build, naming the rule's file and line (the default deny: the last
policy that applied, or `host_protection` when none did). A rule whose match cannot be
decided here (source ports; address rules against an API server given by name) never counts
as allowing the traffic, and a Deny of that kind counts as cutting it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, collapse_addresses
from urllib.parse import urlsplit

from calicc.compiler.errors import Problem
from calicc.compiler.host.model import EntityRule, Rule
from calicc.compiler.host.plan import HostPlan, HostPolicyPlan, selected_nodes
from calicc.compiler.host.rules import side_nets
from calicc.compiler.host.spec import FailsafePort, port_range
from calicc.compiler.load import Source
from calicc.compiler.plan import ClusterPlan, NodePlan

SSH_PORT, BGP_PORT, API_PORT = 22, 179, 6443
Nets = list[IPv4Network] | None  # None: an address not known at build time


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
    """What rules are evaluated against: node addresses and labels."""

    addresses: dict[str, IPv4Network]
    labels: dict[str, dict[str, str]]

    def nets(self, entity: EntityRule) -> tuple[IPv4Network, ...] | None:
        """Return the networks an end of a rule matches (None: any)."""
        return side_nets(entity, self.addresses, selected_nodes(entity.selector, self.labels))


def intersect(left: Sequence[IPv4Network], right: Sequence[IPv4Network]) -> list[IPv4Network]:
    """Return the addresses in both (each list's networks nest or are disjoint)."""
    found = [a if a.subnet_of(b) else b for a in left for b in right if a.overlaps(b)]
    return list(collapse_addresses(found))


def subtract(left: Sequence[IPv4Network], right: Sequence[IPv4Network]) -> list[IPv4Network]:
    """Return the addresses of `left` outside `right`."""
    pieces = list(left)
    for b in right:
        kept: list[IPv4Network] = []
        for p in pieces:
            if not p.overlaps(b):
                kept.append(p)
            elif not p.subnet_of(b):
                kept.extend(p.address_exclude(b))
        pieces = kept
    return list(collapse_addresses(pieces))


def _failsafe(probe: Probe, ports: Sequence[FailsafePort], remote: Nets) -> Nets:
    """Return what the failsafes leave of `remote` (empty: all of it is open)."""
    for f in ports:
        first, last = f.ports
        if f.protocol != probe.protocol or not first <= probe.port <= last:
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


def match(rule: Rule, probe: Probe, remote: Nets, local: IPv4Network, facts: Facts) -> Match | None:
    """Return the part of `remote` a rule matches (None: none of it)."""
    dest = rule.destination
    if rule.proto not in (None, probe.protocol):
        return None
    if (dest.ports and not _in_ports(probe.port, dest.ports)) or _in_ports(
        probe.port, dest.notPorts
    ):
        return None
    far, near = (rule.source, dest) if probe.direction == "ingress" else (dest, rule.source)
    mine = facts.nets(near)
    if mine is not None and not any(local.subnet_of(n) for n in mine):
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
    policy: HostPolicyPlan, probe: Probe, remote: Nets, local: IPv4Network, facts: Facts
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
    remote = _failsafe(probe, failsafes, probe.remote)
    if remote == []:
        return None
    local = IPv4Network(node.ipv4.ip)
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


def _api(cluster: ClusterPlan) -> tuple[IPv4Address | str | None, int]:
    """Return the API server's host (an address, a name, None: unknown) and port."""
    kube = cluster.spec.kubernetes
    if kube is None or kube.server is None:
        return None, API_PORT
    parts = urlsplit(kube.server)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    try:
        return IPv4Address(host), port
    except ValueError:
        return host, port


def probes(
    cluster: ClusterPlan, node: NodePlan, facts: Facts, mgmt: list[IPv4Network]
) -> Iterator[Probe]:
    """Return the traffic node `node` must keep (see the module docstring)."""
    for net in mgmt:
        yield Probe(
            f"SSH (tcp {SSH_PORT}) from management network {net}", "ingress", [net], SSH_PORT
        )
    by_port: dict[int, list[IPv4Network]] = {}
    for s in node.sessions:
        by_port.setdefault(s.port or BGP_PORT, []).append(IPv4Network(s.peer_ip))
    peers = sorted({n for nets in by_port.values() for n in nets})
    if peers:
        listen = cluster.spec.bgp.listen_port
        yield Probe(
            f"BGP (tcp {listen}) from its peers", "ingress", list(collapse_addresses(peers)), listen
        )
    for port, nets in sorted(by_port.items()):
        yield Probe(
            f"BGP (tcp {port}) to its peers", "egress", list(collapse_addresses(nets)), port
        )
    host, port = _api(cluster)
    server = [IPv4Network(host)] if isinstance(host, IPv4Address) else None
    yield Probe(f"the Kubernetes API (tcp {port})", "egress", server, port)
    if host in (node.name, node.ipv4.ip):
        others = [a for n, a in facts.addresses.items() if n != node.name]
        remote = list(collapse_addresses([*mgmt, *others]))
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
    facts = Facts(
        addresses={n.name: IPv4Network(n.ipv4.ip) for n in cluster.nodes},
        labels={n.name: dict(n.labels) for n in cluster.nodes},
    )
    found: dict[tuple[str, str], Problem] = {}
    for node in cluster.nodes:
        if node.name not in host.nodes:
            continue
        for probe in probes(cluster, node, facts, list(host.settings.management_networks)):
            cut = evaluate(probe, node, host, facts)
            if cut is not None:
                problem = _problem(cut, probe, node, source)
                found.setdefault(
                    (problem.file, f"{problem.line}{problem.field}{probe.what}"), problem
                )
    return sorted(found.values())
