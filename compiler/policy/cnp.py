"""Compile validated ClusterNetworkPolicies into plain rule data (no I/O, no iptables syntax).

A policy becomes, per direction with rules, one chain (`cali-ai-`/`cali-ao-` for the Admin
tier, `cali-bi-`/`cali-bo-` for Baseline, plus a hash of the name) holding its rules in the
order written; each rule is the product of its peers and protocols (every port when
`protocols` is unset) and carries its action. Peers become ipsets as NetworkPolicy peers do
(compiler/policy/rules.py):

- `namespaces: S` and `pods: {namespaceSelector: S, podSelector: P}`: a runtime `cali40s:` set
  of the pods matching P (all pods for `namespaces`) in namespaces matching S, the same
  selector form (and so the same set) as a NetworkPolicy peer with a namespaceSelector;
- `networks`: static hash:net sets of the collapsed networks of the peer, one per family it
  has (`cali40b:` for the IPv4 networks, `cali60b:` with the same hash for the IPv6 ones);
- `destinationNamedPort: N`: the runtime `cali40n:` sets of N for TCP, UDP and SCTP (a
  container port name carries its protocol; the rule matches whichever the pod declares).

A policy's subject is a runtime `cali40s:` set of the same selector form (the pods it applies
to). Each tier and direction has one chain (contract/names.py `TIER_CHAINS`) that, per policy
in evaluation order, jumps to the policy's chain for the pods of that set (`tier_jumps`): an
endpoint chain jumps once per tier, whatever the number of policies.

Every selector and named-port set has its `family inet6` twin (compiler/policy/rules.py `twin`),
named by the IPv6 (ip6tables) rules; the ipset target adds them for clusters with IPv6 pools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, collapse_addresses
from typing import Literal

from calicc.compiler.policy.cnp_model import (
    Action,
    ClusterNetworkPolicy,
    CnpEgressPeer,
    CnpEgressRule,
    CnpIngressPeer,
    CnpIngressRule,
    CnpProtocol,
    CnpSubject,
    Tier,
)
from calicc.compiler.policy.load import AnyLoaded, LoadedCnp
from calicc.compiler.policy.model import LabelSelector
from calicc.compiler.policy.names import policy_chain, set_name
from calicc.compiler.policy.rules import (
    PeerMatch,
    PortMatch,
    SetSpec,
)
from calicc.compiler.policy.selectors import SelectorDict, canonical, describe
from calicc.contract.names import (
    ADMIN_EGRESS_PREFIX,
    ADMIN_INGRESS_PREFIX,
    BASELINE_EGRESS_PREFIX,
    BASELINE_INGRESS_PREFIX,
    IPBLOCK_SET_PREFIX,
    NAMED_PORT_SET_PREFIX,
    SELECTOR_SET_PREFIX,
    V4,
    v6_twin,
)

Direction = Literal["ingress", "egress"]
PREFIXES: dict[tuple[str, str], str] = {
    ("Admin", "ingress"): ADMIN_INGRESS_PREFIX,
    ("Admin", "egress"): ADMIN_EGRESS_PREFIX,
    ("Baseline", "ingress"): BASELINE_INGRESS_PREFIX,
    ("Baseline", "egress"): BASELINE_EGRESS_PREFIX,
}
NAMED_PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class CnpMatch:
    """One combination of peer and protocol/port (port None: any) a rule matches."""

    peer: PeerMatch
    port: PortMatch | None


@dataclass(frozen=True)
class CnpRule:
    """One rule: `ingress[0]`, its name, its action and what it matches."""

    label: str
    name: str
    action: Action
    matches: tuple[CnpMatch, ...]


@dataclass(frozen=True)
class CnpChain:
    """The chain enforcing one direction of one ClusterNetworkPolicy."""

    name: str
    direction: Direction
    rules: tuple[CnpRule, ...]


@dataclass(frozen=True)
class TierJump:
    """One policy's rule in its tier chain: for the pods of its subject set, its chain."""

    subject_set: str
    chain: str
    label: str
    decides: bool  # the chain may set the accept or pass mark (it has an Accept or Pass rule)


@dataclass(frozen=True)
class CompiledCnp:
    """A ClusterNetworkPolicy as plain data: tier, priority, subject, chains and ipsets."""

    name: str
    origin: str
    tier: Tier
    priority: int
    namespace_selector: SelectorDict
    pod_selector: SelectorDict
    ingress: CnpChain | None
    egress: CnpChain | None
    sets: tuple[SetSpec, ...]
    subject: SetSpec

    @property
    def key(self) -> str:
        """Return how comments and reports name it: `<tier> ClusterNetworkPolicy <name>`."""
        return f"{self.tier} ClusterNetworkPolicy {self.name}"


def subject_selectors(subject: CnpSubject) -> tuple[SelectorDict, SelectorDict]:
    """Return the (namespace, pod) selectors of a subject; `namespaces` selects every pod."""
    if subject.pods is not None:
        return canonical(subject.pods.namespaceSelector), canonical(subject.pods.podSelector)
    return canonical(subject.namespaces or LabelSelector()), canonical(LabelSelector())


def networks_members(networks: Sequence[IPv4Network | IPv6Network]) -> tuple[str, ...]:
    """Return the collapsed networks as hash:net members (a /0 as its two halves).

    IPv4 networks first, then IPv6 ones.

    Examples:
        >>> from ipaddress import IPv4Network as N
        >>> networks_members([N("10.0.1.0/24"), N("10.0.0.0/24"), N("0.0.0.0/0")])
        ('0.0.0.0/1', '128.0.0.0/1')
    """
    found: list[IPv4Network | IPv6Network] = []
    for version in (4, 6):
        same = (n for n in networks if n.version == version)
        collapsed = collapse_addresses(same)  # type: ignore[type-var]  # of one family
        halves = [h for n in collapsed for h in (n.subnets() if n.prefixlen == 0 else [n])]
        found += sorted(halves)
    return tuple(str(n) for n in found)


def selector_set(spaces: SelectorDict, pods: SelectorDict) -> SetSpec:
    """Return the runtime set of the pods matching `pods` in namespaces matching `spaces`."""
    selector: SelectorDict = {"namespaceSelector": spaces, "podSelector": pods}
    text = f"pods {describe(pods)} in namespaces {describe(spaces)}"
    return SetSpec(set_name(SELECTOR_SET_PREFIX, selector), "hash:ip", (), selector, text)


def _networks_peer(
    networks: Sequence[IPv4Network | IPv6Network],
) -> tuple[PeerMatch, list[SetSpec]]:
    members = networks_members(networks)
    name = set_name(IPBLOCK_SET_PREFIX, {"networks": list(members)})
    text = f"networks {', '.join(members)}"
    names: dict[int, str | None] = {4: None, 6: None}
    sets = []
    for version, set_of in ((4, name), (6, v6_twin(name))):
        held = tuple(m for m in members if (":" in m) == (version != V4))
        if held:
            names[version] = set_of
            sets.append(SetSpec(set_of, "hash:net", held, None, f"networks {', '.join(held)}"))
    return PeerMatch(names[4], text, names[6]), sets


def _peer(peer: CnpIngressPeer | CnpEgressPeer) -> tuple[PeerMatch, list[SetSpec]]:
    """Return a peer's match and sets: a selector set and its IPv6 twin, or networks' sets."""
    if isinstance(peer, CnpEgressPeer) and peer.networks is not None:
        return _networks_peer(peer.networks)
    if peer.pods is not None:
        spaces, pods = canonical(peer.pods.namespaceSelector), canonical(peer.pods.podSelector)
    else:
        spaces, pods = canonical(peer.namespaces or LabelSelector()), canonical(LabelSelector())
    spec = selector_set(spaces, pods)
    return PeerMatch(spec.name, spec.comment, v6_twin(spec.name)), [spec]


def _port_matches(protocol: CnpProtocol) -> list[tuple[PortMatch, tuple[SetSpec, ...]]]:
    if protocol.destinationNamedPort is not None:
        found: list[tuple[PortMatch, tuple[SetSpec, ...]]] = []
        for proto in NAMED_PORT_PROTOCOLS:
            selector: SelectorDict = {"namedPort": protocol.destinationNamedPort, "protocol": proto}
            text = f"{proto}/{protocol.destinationNamedPort}"
            named = SetSpec(
                set_name(NAMED_PORT_SET_PREFIX, selector),
                "hash:ip,port",
                (),
                selector,
                f"named port {text}",
            )
            found.append((PortMatch(proto.lower(), None, named.name, text), (named,)))
        return found
    for proto in ("tcp", "udp", "sctp"):
        given = getattr(protocol, proto)
        if given is not None and given.destinationPort is not None:
            port = given.destinationPort
            ports = (
                str(port.number) if port.range is None else f"{port.range.start}:{port.range.end}"
            )
            return [(PortMatch(proto, ports, None, f"{proto.upper()}/{ports}"), ())]
    raise ValueError("a validated protocol has a port")  # pragma: no cover


def _rule(label: str, written: CnpIngressRule | CnpEgressRule, sets: dict[str, SetSpec]) -> CnpRule:
    peers = written.from_ if isinstance(written, CnpIngressRule) else written.to
    protocols = written.protocols
    peer_matches = []
    for peer in peers:
        peer_match, peer_sets = _peer(peer)
        for spec in peer_sets:
            sets.setdefault(spec.name, spec)
        peer_matches.append(peer_match)
    port_matches: list[PortMatch | None] = []
    for protocol in protocols or ():
        for match, named in _port_matches(protocol):
            for spec in named:
                sets.setdefault(spec.name, spec)
            port_matches.append(match)
    matches = tuple(CnpMatch(p, q) for p in peer_matches for q in port_matches or [None])
    return CnpRule(label, written.name, written.action, matches)


def compile_cnp(loaded: LoadedCnp) -> CompiledCnp:
    """Compile one validated ClusterNetworkPolicy: a chain per direction with rules."""
    policy: ClusterNetworkPolicy = loaded.policy
    spec, name = policy.spec, policy.metadata.name
    sets: dict[str, SetSpec] = {}
    ingress = egress = None
    if spec.ingress:
        rules = tuple(_rule(f"ingress[{i}]", r, sets) for i, r in enumerate(spec.ingress))
        chain = policy_chain(PREFIXES[spec.tier, "ingress"], "", name)
        ingress = CnpChain(chain, "ingress", rules)
    if spec.egress:
        rules = tuple(_rule(f"egress[{i}]", r, sets) for i, r in enumerate(spec.egress))
        egress = CnpChain(policy_chain(PREFIXES[spec.tier, "egress"], "", name), "egress", rules)
    spaces, pods = subject_selectors(spec.subject)
    return CompiledCnp(
        name=name,
        origin=loaded.origin,
        tier=spec.tier,
        priority=spec.priority,
        namespace_selector=spaces,
        pod_selector=pods,
        ingress=ingress,
        egress=egress,
        sets=tuple(sorted(sets.values(), key=lambda s: s.name)),
        subject=selector_set(spaces, pods),
    )


def compile_cluster_policies(loaded: Sequence[AnyLoaded]) -> tuple[CompiledCnp, ...]:
    """Compile every ClusterNetworkPolicy among `loaded`, in evaluation order.

    Admin before Baseline; within a tier by priority, then (for equal priorities, whose order
    upstream leaves to the implementation) by name.
    """
    compiled = (compile_cnp(p) for p in loaded if isinstance(p.policy, ClusterNetworkPolicy))
    return tuple(sorted(compiled, key=lambda c: (c.tier != "Admin", c.priority, c.name)))


def tier_jumps(policies: Sequence[CompiledCnp], tier: str, direction: str) -> tuple[TierJump, ...]:
    """Return the rules of the chain of `tier` and `direction`, in evaluation order."""
    jumps = []
    for policy in policies:
        chain = policy.ingress if direction == "ingress" else policy.egress
        if policy.tier == tier and chain is not None:
            label = f"{policy.key} (priority {policy.priority}) {direction}"
            decides = any(r.action != "Deny" for r in chain.rules)
            jumps.append(TierJump(policy.subject.name, chain.name, label, decides))
    return tuple(jumps)


def cnp_api_warnings(policies: Sequence[CompiledCnp]) -> tuple[str, ...]:
    """Return, per policy, what it needs a Kubernetes API for (the cluster file names none)."""
    warnings = []
    for policy in policies:
        named = sorted({s.comment for s in policy.sets if s.type == "hash:ip,port"})
        needs = [f"{', '.join(named)} (matches nothing without the API)"] if named else []
        spaces = [policy.namespace_selector] + [
            s.selector["namespaceSelector"]
            for s in policy.sets
            if s.selector and "namespaceSelector" in s.selector
        ]
        if any(describe(s) != "all" for s in spaces):
            needs.append("namespace selectors (only the namespace labels runtimes pass)")
        if needs:
            warnings.append(
                f"{policy.origin}: {policy.key} uses {' and '.join(needs)}: name the "
                "Kubernetes API in the cluster file (kubernetes: {kubeconfig: PATH})"
            )
    return tuple(warnings)
