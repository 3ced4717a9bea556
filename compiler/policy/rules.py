"""Compile validated NetworkPolicies into a plain rule model (no I/O, no iptables syntax).

Each Kubernetes rule (`ingress[i]` / `egress[i]`) becomes a RuleBlock of Allows: the product of
its peers (any source/destination when `from`/`to` is empty) and its ports (any port when
`ports` is empty). Peers become ipsets:

- podSelector / namespaceSelector peers: a `hash:ip` set (`cali40s:<hash>`) whose members the
  node fills at runtime with the IPs of the pods that match `selector`;
- ipBlock peers: a `hash:net` set (`cali40b:<hash>`) of the cidr minus its excepts, computed
  here, so one rule matches however many ranges remain;
- named ports: a `hash:ip,port` set (`cali40n:<hash>`) per (protocol, port name), filled at
  runtime with `pod-ip,proto:number` for every pod declaring that container port name, and
  matched with `dst,dst` (destination pod and destination port).

IPv6 (issue 13): every selector and named-port set has a `family inet6` twin (`cali60s:`,
`cali60n:`, the same hash: contract/names.py `v6_twin`, `twin` here) holding the pods' IPv6
members, which ip6tables rules name; the ipset target adds the twins for clusters with IPv6 pools
(compiler/targets/ipset.py). An ipBlock's set is of its cidr's family (`cali40b:` or `cali60b:`),
so an IPv4 block matches only in iptables and an IPv6 one only in ip6tables. A peer without a set
of a family yields no allow in that family (`PeerMatch.set_for`): never an allow of any address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, collapse_addresses
from typing import Literal

from calicc.compiler.policy.load import AnyLoaded, LoadedPolicy
from calicc.compiler.policy.model import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
)
from calicc.compiler.policy.names import policy_chain, set_name
from calicc.compiler.policy.selectors import SelectorDict, canonical, describe
from calicc.contract.names import (
    EGRESS_PREFIX,
    INGRESS_PREFIX,
    IPBLOCK_SET_PREFIX,
    NAMED_PORT_SET_PREFIX,
    SELECTOR_SET_PREFIX,
    V4,
    set_family,
    v6_twin,
)

Direction = Literal["ingress", "egress"]


@dataclass(frozen=True)
class SetSpec:
    """An ipset a policy needs: static `members`, or runtime members matching `selector`."""

    name: str
    type: Literal["hash:net", "hash:ip", "hash:ip,port"]
    members: tuple[str, ...]
    selector: SelectorDict | None
    comment: str


def is_v4(name: str) -> bool:
    """Return whether set `name` is of family inet (not an IPv6 twin or block)."""
    return set_family(name) == "inet"


def twin(spec: SetSpec) -> SetSpec:
    """Return the `family inet6` twin of a runtime (selector or named-port) set."""
    return SetSpec(v6_twin(spec.name), spec.type, (), spec.selector, f"{spec.comment}, IPv6")


@dataclass(frozen=True)
class PeerMatch:
    """The remote end of an allow: membership of the remote address in a set of its family.

    `set_name` holds the peer's IPv4 addresses, `set_name_v6` its IPv6 ones; None where the
    peer has no address of that family (an ipBlock of the other family).
    """

    set_name: str | None
    description: str
    set_name_v6: str | None = None

    def set_for(self, family: int) -> str | None:
        """Return the set of the peer's addresses of `family` (4 or 6), None if it has none."""
        return self.set_name if family == V4 else self.set_name_v6


@dataclass(frozen=True)
class PortMatch:
    """Protocol, and a port or range (`80`, `8000:9000`), or a named-port set, or any port."""

    protocol: str
    ports: str | None
    named_set: str | None
    description: str

    def named_set_for(self, family: int) -> str | None:
        """Return the named-port set of `family` (the IPv4 set's inet6 twin for 6)."""
        if self.named_set is None or family == V4:
            return self.named_set
        return v6_twin(self.named_set)


@dataclass(frozen=True)
class Allow:
    """One allowed combination of peer and port (None: any)."""

    peer: PeerMatch | None
    port: PortMatch | None


@dataclass(frozen=True)
class RuleBlock:
    """The allows of one Kubernetes rule, labelled like the YAML (`ingress[0]`)."""

    label: str
    allows: tuple[Allow, ...]


@dataclass(frozen=True)
class PolicyChain:
    """The chain enforcing one direction of one policy."""

    name: str
    direction: Direction
    rules: tuple[RuleBlock, ...]


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy as plain data: what it selects, its chains and the ipsets they use."""

    namespace: str
    name: str
    origin: str
    pod_selector: SelectorDict
    ingress: PolicyChain | None
    egress: PolicyChain | None
    sets: tuple[SetSpec, ...]

    @property
    def key(self) -> str:
        """Return `namespace/name`."""
        return f"{self.namespace}/{self.name}"


def block_members(block: IPBlock) -> tuple[str, ...]:
    """Return the CIDRs of `block.cidr` minus its excepts, as hash:net members.

    hash:net refuses a /0, so 0.0.0.0/0 (or ::/0) is written as its two halves.

    Examples:
        >>> from ipaddress import IPv4Network as N, IPv6Network as N6
        >>> block_members(IPBlock(cidr=N("10.0.0.0/24"), except_=(N("10.0.0.0/25"),)))
        ('10.0.0.128/25',)
        >>> block_members(IPBlock(cidr=N6("::/0")))
        ('::/1', '8000::/1')
    """
    nets: list[IPv4Network | IPv6Network] = [block.cidr]
    for excluded in block.except_:
        kept: list[IPv4Network | IPv6Network] = []
        for net in nets:
            if excluded.subnet_of(net):  # type: ignore[arg-type]
                kept.extend(net.address_exclude(excluded))  # type: ignore[arg-type]
            elif not net.subnet_of(excluded):  # type: ignore[arg-type]
                kept.append(net)
        nets = kept
    collapsed = collapse_addresses(nets)  # type: ignore[type-var]  # one family: the block's
    halves = [h for n in collapsed for h in (n.subnets() if n.prefixlen == 0 else [n])]
    return tuple(str(n) for n in sorted(halves))


def _block_peer(block: IPBlock) -> tuple[PeerMatch, tuple[SetSpec, ...]]:
    identity = {"cidr": str(block.cidr), "except": sorted(str(e) for e in block.except_)}
    excepts = f" except {', '.join(identity['except'])}" if block.except_ else ""
    text = f"ipBlock {block.cidr}{excepts}"
    name = set_name(IPBLOCK_SET_PREFIX, identity)
    if block.cidr.version != V4:
        name = v6_twin(name)
    spec = SetSpec(name, "hash:net", block_members(block), None, text)
    if is_v4(name):
        return PeerMatch(name, text), (spec,)
    return PeerMatch(None, text, name), (spec,)


def _peer(peer: NetworkPolicyPeer, namespace: str) -> tuple[PeerMatch, tuple[SetSpec, ...]]:
    """Return a peer's match and its sets (a selector set with its IPv6 twin, or a block's)."""
    if peer.ipBlock is not None:
        return _block_peer(peer.ipBlock)
    pods = canonical(peer.podSelector or LabelSelector())
    selector: SelectorDict = {"podSelector": pods}
    if peer.namespaceSelector is not None:
        selector["namespaceSelector"] = canonical(peer.namespaceSelector)
        where = f"namespaces {describe(selector['namespaceSelector'])}"
    else:
        selector["namespace"] = namespace
        where = f"namespace {namespace}"
    text = f"pods {describe(pods)} in {where}"
    spec = SetSpec(set_name(SELECTOR_SET_PREFIX, selector), "hash:ip", (), selector, text)
    return PeerMatch(spec.name, text, v6_twin(spec.name)), (spec,)


def _port_match(port: NetworkPolicyPort) -> tuple[PortMatch, tuple[SetSpec, ...]]:
    proto = port.protocol.lower()
    if isinstance(port.port, str):
        selector: SelectorDict = {"namedPort": port.port, "protocol": port.protocol}
        named = SetSpec(
            set_name(NAMED_PORT_SET_PREFIX, selector),
            "hash:ip,port",
            (),
            selector,
            f"named port {port.protocol}/{port.port}",
        )
        match = PortMatch(proto, None, named.name, f"{port.protocol}/{port.port}")
        return match, (named,)
    if port.port is None:
        return PortMatch(proto, None, None, f"{port.protocol}/any"), ()
    ports = f"{port.port}:{port.endPort}" if port.endPort is not None else str(port.port)
    return PortMatch(proto, ports, None, f"{port.protocol}/{ports}"), ()


def _rule_block(
    label: str,
    peers: tuple[NetworkPolicyPeer, ...],
    ports: tuple[NetworkPolicyPort, ...],
    namespace: str,
    sets: dict[str, SetSpec],
) -> RuleBlock:
    peer_matches: list[PeerMatch | None] = []
    for peer in peers:
        peer_match, peer_sets = _peer(peer, namespace)
        for spec in peer_sets:
            sets.setdefault(spec.name, spec)
        peer_matches.append(peer_match)
    port_matches: list[PortMatch | None] = []
    for port in ports:
        match, named = _port_match(port)
        for spec in named:
            sets.setdefault(spec.name, spec)
        port_matches.append(match)
    allows = tuple(Allow(p, q) for p in peer_matches or [None] for q in port_matches or [None])
    return RuleBlock(label, allows)


def compile_policy(loaded: LoadedPolicy) -> CompiledPolicy:
    """Compile one validated policy: chains for its effective policyTypes, and its ipsets."""
    policy = loaded.policy
    namespace, name = policy.metadata.namespace, policy.metadata.name
    types = policy.spec.types()
    sets: dict[str, SetSpec] = {}
    ingress = egress = None
    if "Ingress" in types:
        blocks = tuple(
            _rule_block(f"ingress[{i}]", r.from_, r.ports, namespace, sets)
            for i, r in enumerate(policy.spec.ingress)
        )
        ingress = PolicyChain(policy_chain(INGRESS_PREFIX, namespace, name), "ingress", blocks)
    if "Egress" in types:
        blocks = tuple(
            _rule_block(f"egress[{i}]", r.to, r.ports, namespace, sets)
            for i, r in enumerate(policy.spec.egress)
        )
        egress = PolicyChain(policy_chain(EGRESS_PREFIX, namespace, name), "egress", blocks)
    return CompiledPolicy(
        namespace=namespace,
        name=name,
        origin=loaded.origin,
        pod_selector=canonical(policy.spec.podSelector),
        ingress=ingress,
        egress=egress,
        sets=tuple(sorted(sets.values(), key=lambda s: s.name)),
    )


def compile_policies(loaded: Sequence[AnyLoaded]) -> tuple[CompiledPolicy, ...]:
    """Compile every NetworkPolicy among `loaded`, sorted by namespace/name."""
    compiled = (compile_policy(p) for p in loaded if isinstance(p.policy, NetworkPolicy))
    return tuple(sorted(compiled, key=lambda c: c.key))


def api_warnings(policies: tuple[CompiledPolicy, ...]) -> tuple[str, ...]:
    """Return, per policy, what it needs a Kubernetes API for (the cluster file names none).

    Named ports resolve only from the API (runtimes pass no container ports), so a rule on one
    matches nothing; namespace selectors see only the namespace labels runtimes pass with
    each pod (runtimeConfig.namespaceLabels), so a relabelled namespace goes unseen.
    """
    warnings = []
    for policy in policies:
        named = sorted({s.comment for s in policy.sets if s.type == "hash:ip,port"})
        namespaces = any(s.selector and "namespaceSelector" in s.selector for s in policy.sets)
        needs = [f"{', '.join(named)} (matches nothing without the API)"] if named else []
        if namespaces:
            needs.append("namespace selectors (only the namespace labels runtimes pass)")
        if needs:
            warnings.append(
                f"{policy.origin}: policy {policy.key} uses {' and '.join(needs)}: name the "
                "Kubernetes API in the cluster file (kubernetes: {kubeconfig: PATH})"
            )
    return tuple(warnings)
