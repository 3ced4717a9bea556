"""Per-workload endpoint chains: what the CNI plugin programs at pod ADD and removes at DEL.

Pure functions only (no I/O, no pydantic), cheap enough to import once per pod. They read
node.json's ipsets and policies through `IpsetFacts` and `BindingFacts`, which both the
pydantic model (the agent) and the light reader (the CNI plugin, contract/node.py) satisfy.

For a host interface `caliXXXXXXXXXXX` (15 characters at most) an endpoint owns:

- `cali-tw-<iface>` (to the workload: ingress policy) and `cali-fw-<iface>` (from the workload:
  egress policy). Each accepts established traffic, drops invalid, clears the accept/pass
  marks, then evaluates the three tiers of policy selecting the pod for that direction. The
  ClusterNetworkPolicy tiers live in shared chains of iptables.rules (contract/names.py
  `TIER_CHAINS`): per policy, by priority then name, a jump to its chain for the pods of its
  subject set (the destination of ingress, the source of egress), and a return once it accepted
  (accept mark) or passed (pass mark: the rest of the tier is skipped); Deny drops. So an
  endpoint's chains do not grow with the number of ClusterNetworkPolicies, and a pod none
  selects for a direction has no rule for them at all.
  1. Admin (when a ClusterNetworkPolicy of tier Admin selects the pod): its tier chain.
  2. NetworkPolicy: every NetworkPolicy chain; return as soon as one set the accept mark (the
     first is skipped when the Admin tier accepted, so its return fires). If any NetworkPolicy
     selects the pod for the direction, drop what none allowed (default deny): the Baseline
     tier is never reached for that pod and direction.
  3. Without a NetworkPolicy, the chain ends with a goto to `CNP_ONLY_CHAINS[direction]` when
     a ClusterNetworkPolicy selects the pod (the Admin tier chain, unless it accepted the
     Baseline one, which first clears the pass mark, then allow), else allows (accept mark).
- one rule in each dispatch chain of iptables.rules: `-i <iface> -g cali-fw-<iface>` in
  cali-from-wl-dispatch and `-o <iface> -g cali-tw-<iface>` in cali-to-wl-dispatch, above the
  dispatch chain's final "Unknown interface" drop.

How this survives the node's own file: iptables-restore flushes every chain a restore declares,
and iptables.rules declares the dispatch chains. So

- the CNI plugin applies `add_restore()` at ADD and `del_restore()` at DEL (both read the live
  `iptables-save -t filter` text so they are idempotent and never fail on a missing rule);
- the agent, whenever it restores iptables.rules (or diffs it against the live tables), uses
  `with_endpoints(rules, [endpoint_rules(...) for each live endpoint])` as the desired state, so
  one atomic restore re-creates the dispatch rules with the file. The chains named
  `cali-fw-*` / `cali-tw-*` (RUNTIME_CHAIN_PREFIXES) are owned by the endpoints, not stale.

Selector ipsets: `selector_sets_for_pod()` lists the `cali40s:` sets a pod's IP joins
(`ipset add -exist`), `named_port_members()` the `ip,proto:port` members of `cali40n:` sets.

IPv6 (issue 13): a pod with an IPv6 address has the same chains and dispatch rules in ip6tables
(`endpoint_rules(..., family=6)`; the policy chains there name the `family inet6` twins of the
sets). They also accept ICMPv6 neighbour discovery and MLD before policy (Calico's types
130-136; a workload may not send router advertisements, 134), which conntrack leaves
untracked: without it a deny-all policy would cut a pod off its gateway. Its IPv6 address joins
the cali60s: twins of its selector sets and its named ports the cali60n: twins
(`set_members`, `named_port_members` pair each set with the addresses of its family).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from calicc.contract.names import (
    CNP_ONLY_CHAINS,
    FROM_DISPATCH,
    FW_PREFIX,
    ICMPV6_ND_FROM_WORKLOAD,
    ICMPV6_ND_TO_WORKLOAD,
    IFNAMSIZ,
    TIER_CHAINS,
    TO_DISPATCH,
    TW_PREFIX,
    V4,
    V6,
    VXLAN_PORT,
    set_family,
)
from calicc.contract.selectors import matches
from calicc.contract.syntax import (
    ACCEPT_MATCH,
    CLEAR_MARKS,
    NOT_ACCEPTED,
    SET_ACCEPT,
    comment,
    rule,
    tracked_rules,
)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # every namespace carries it (Kubernetes)
ICMPV6_NAMES = {
    130: "MLD query",
    131: "MLD report",
    132: "MLD done",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbour solicitation",
    136: "neighbour advertisement",
}


class IpsetFacts(Protocol):
    """What endpoint policy reads of an ipset (node.json's `ipsets`, pydantic or light)."""

    @property
    def name(self) -> str:
        """The set's name."""

    @property
    def type(self) -> str:
        """hash:net, hash:ip or hash:ip,port."""

    @property
    def selector(self) -> Mapping[str, object] | None:
        """Runtime sets: which pods (or named ports) belong; None for static sets."""


class BindingFacts(Protocol):
    """What endpoint policy reads of a compiled policy (policy.json's `policies`)."""

    @property
    def tier(self) -> str:
        """Admin, NetworkPolicy or Baseline."""

    @property
    def priority(self) -> int | None:
        """A ClusterNetworkPolicy's priority in its tier (lower first); None for the others."""

    @property
    def namespace(self) -> str | None:
        """A NetworkPolicy's namespace (it selects pods of that namespace only)."""

    @property
    def namespace_selector(self) -> Mapping[str, object] | None:
        """A ClusterNetworkPolicy's selector of the namespaces of the pods it applies to."""

    @property
    def name(self) -> str:
        """The policy's name."""

    @property
    def pod_selector(self) -> Mapping[str, object]:
        """The canonical selector of the pods the policy applies to."""

    @property
    def ingress_chain(self) -> str | None:
        """The chain enforcing its ingress rules, if it has any."""

    @property
    def egress_chain(self) -> str | None:
        """The chain enforcing its egress rules, if it has any."""


Chains = tuple[tuple[str, str], ...]  # (chain, what comments call the policy)


@dataclass(frozen=True)
class PodPolicies:
    """The policy chains of a pod, per direction and tier, in evaluation order."""

    ingress: Chains = ()
    egress: Chains = ()
    admin_ingress: Chains = ()
    admin_egress: Chains = ()
    baseline_ingress: Chains = ()
    baseline_egress: Chains = ()


@dataclass(frozen=True)
class EndpointRules:
    """One endpoint's chains and rules (iptables-save form) and its two dispatch rules."""

    iface: str
    chains: tuple[str, str]
    rules: tuple[str, ...]
    dispatch: tuple[str, str]


def with_name_label(namespace: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Return a namespace's labels with the `kubernetes.io/metadata.name` label Kubernetes sets.

    Examples:
        >>> with_name_label("demo", {"team": "a"})
        {'team': 'a', 'kubernetes.io/metadata.name': 'demo'}
    """
    return {**labels, NAMESPACE_NAME_LABEL: namespace}


def _selects(
    b: BindingFacts, namespace: str, pod_labels: Mapping[str, str], spaces: Mapping[str, str]
) -> bool:
    if b.tier == "NetworkPolicy":
        in_scope = b.namespace == namespace
    else:
        in_scope = b.namespace_selector is not None and matches(b.namespace_selector, spaces)
    return in_scope and matches(b.pod_selector, pod_labels)


def _label(b: BindingFacts) -> str:
    if b.tier == "NetworkPolicy":
        return f"{b.namespace}/{b.name}"
    return f"{b.tier} ClusterNetworkPolicy {b.name} (priority {b.priority})"


def policies_for_pod(
    bindings: Iterable[BindingFacts],
    namespace: str,
    pod_labels: Mapping[str, str],
    namespace_labels: Mapping[str, str] | None = None,
) -> PodPolicies:
    """Return the policy chains that apply to a pod, per tier and direction, in order.

    NetworkPolicies select pods of their own namespace and are sorted by namespace/name (their
    order changes no verdict); ClusterNetworkPolicies select by `namespace_labels` (with the
    namespace's `kubernetes.io/metadata.name`) and pod labels and are sorted by priority, then
    name (upstream leaves equal priorities to the implementation).
    """
    spaces = with_name_label(namespace, namespace_labels or {})
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    order = sorted(bindings, key=lambda b: (b.priority or 0, b.namespace or "", b.name))
    for b in order:
        if not _selects(b, namespace, pod_labels, spaces):
            continue
        for direction, chain in (("ingress", b.ingress_chain), ("egress", b.egress_chain)):
            if chain is not None:
                found.setdefault((b.tier, direction), []).append((chain, _label(b)))

    def of(tier: str, direction: str) -> Chains:
        return tuple(found.get((tier, direction), ()))

    return PodPolicies(
        ingress=of("NetworkPolicy", "ingress"),
        egress=of("NetworkPolicy", "egress"),
        admin_ingress=of("Admin", "ingress"),
        admin_egress=of("Admin", "egress"),
        baseline_ingress=of("Baseline", "ingress"),
        baseline_egress=of("Baseline", "egress"),
    )


def _selector_holds(
    selector: Mapping[str, object],
    namespace: str,
    pod_labels: Mapping[str, str],
    namespace_labels: Mapping[str, str],
) -> bool:
    pods = selector.get("podSelector")
    if not isinstance(pods, Mapping):
        return False
    if "namespace" in selector:
        in_namespace = selector["namespace"] == namespace
    else:
        spaces = selector.get("namespaceSelector")
        labels = with_name_label(namespace, namespace_labels)
        in_namespace = isinstance(spaces, Mapping) and matches(spaces, labels)
    return in_namespace and matches(pods, pod_labels)


def selector_sets_for_pod(
    ipsets: Iterable[IpsetFacts],
    namespace: str,
    pod_labels: Mapping[str, str],
    namespace_labels: Mapping[str, str],
) -> tuple[str, ...]:
    """Return the pod-selector ipsets (sorted) whose members must include the pod's IP."""
    return tuple(
        sorted(
            s.name
            for s in ipsets
            if s.selector is not None
            and _selector_holds(s.selector, namespace, pod_labels, namespace_labels)
        )
    )


def address_family(address: str) -> str:
    """Return the ipset family of an address: inet6 for IPv6, else inet.

    Examples:
        >>> address_family("fd00::1"), address_family("10.0.0.1")
        ('inet6', 'inet')
    """
    return "inet6" if ":" in address else "inet"


def set_members(sets: Iterable[str], addresses: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Return (set, address) pairs: each set with each of the pod's addresses of its family.

    An IPv4 address joins the cali40s: sets, an IPv6 one their cali60s: twins.

    Examples:
        >>> set_members(["cali40s:a", "cali60s:a"], ["10.0.0.1", "fd00::1"])
        (('cali40s:a', '10.0.0.1'), ('cali60s:a', 'fd00::1'))
    """
    held = list(addresses)
    found = {(s, a) for s in sets for a in held if set_family(s) == address_family(a)}
    return tuple(sorted(found))


def named_port_members(
    ipsets: Iterable[IpsetFacts], pod_ip: str, ports: Iterable[tuple[str, str, int]]
) -> tuple[tuple[str, str], ...]:
    """Return (set, member) pairs for a pod's named container ports.

    Args:
        ipsets: node.json's ipsets.
        pod_ip: one of the pod's addresses: only the named-port sets of its family take it.
        ports: the pod's container ports as (name, protocol, number), e.g. ("http", "TCP", 8080).
    """
    wanted = {(name, proto.upper()): number for name, proto, number in ports}
    family = address_family(pod_ip)
    found = []
    for s in ipsets:
        sel = s.selector or {}
        key = (sel.get("namedPort"), sel.get("protocol"))
        if s.type == "hash:ip,port" and key in wanted and set_family(s.name) == family:
            found.append((s.name, f"{pod_ip},{str(key[1]).lower()}:{wanted[key]}"))
    return tuple(sorted(found))


def chain_names(iface: str) -> tuple[str, str]:
    """Return (cali-fw-<iface>, cali-tw-<iface>); interface names fit (15 + 8 <= 28)."""
    if not 0 < len(iface) <= IFNAMSIZ or not iface.isascii() or " " in iface:
        raise ValueError(f"{iface!r} is not an interface name (1-{IFNAMSIZ} characters)")
    return FW_PREFIX + iface, TW_PREFIX + iface


def neighbour_discovery(chain: str) -> list[str]:
    """Return the ICMPv6 rules of an IPv6 endpoint chain: ND and MLD, accepted before policy."""
    types = ICMPV6_ND_FROM_WORKLOAD if chain.startswith(FW_PREFIX) else ICMPV6_ND_TO_WORKLOAD
    return [
        rule(
            chain,
            f"-p ipv6-icmp -m icmp6 --icmpv6-type {t}",
            comment(f"ICMPv6 {ICMPV6_NAMES[t]}: before policy"),
            "-j ACCEPT",
        )
        for t in types
    ]


def _direction_rules(
    chain: str, iface: str, direction: str, tiers: tuple[Chains, Chains, Chains], family: int
) -> list[str]:
    lines = [
        *tracked_rules(chain),
        *(neighbour_discovery(chain) if family == V6 else []),
        rule(chain, comment("clear accept and pass marks"), CLEAR_MARKS),
    ]
    if chain.startswith(FW_PREFIX):
        lines += [
            rule(chain, "-p ipencap", comment("workloads may not send IPIP"), "-j DROP"),
            rule(
                chain,
                f"-p udp -m udp --dport {VXLAN_PORT}",
                comment("workloads may not send VXLAN"),
                "-j DROP",
            ),
        ]
    return lines + _policy_rules(chain, iface, direction, tiers)


def _policy_rules(
    chain: str, iface: str, direction: str, tiers: tuple[Chains, Chains, Chains]
) -> list[str]:
    """The tiers: one rule for the ClusterNetworkPolicies, none for a pod they do not select."""
    admin, policies, baseline = tiers
    if not policies:
        if admin or baseline:
            tiers_comment = comment(f"ClusterNetworkPolicy tiers {direction}, then allow")
            return [rule(chain, tiers_comment, f"-g {CNP_ONLY_CHAINS[direction]}")]
        return [rule(chain, comment(f"no {direction} policy selects {iface}: allow"), SET_ACCEPT)]
    lines = []
    if admin:
        admin_chain = TIER_CHAINS["Admin", direction]
        lines.append(rule(chain, comment(f"Admin tier {direction}"), f"-j {admin_chain}"))
    for i, (policy_chain, key) in enumerate(policies):
        jump, allowed = f"{direction} policy {key}", f"allowed by {key}"
        skip = ""
        if admin and i == 0:  # an Admin accept skips the first jump, and the return fires
            skip, jump = NOT_ACCEPTED, f"{jump} (unless the Admin tier accepted)"
            allowed = f"accepted by the Admin tier or {allowed}"
        lines.append(rule(chain, skip, comment(jump), f"-j {policy_chain}"))
        lines.append(rule(chain, ACCEPT_MATCH, comment(allowed), "-j RETURN"))
    lines.append(rule(chain, comment(f"default deny: {iface} has {direction} policy"), "-j DROP"))
    return lines


def endpoint_rules(iface: str, policies: PodPolicies, family: int = V4) -> EndpointRules:
    """Return the chains, rules and dispatch rules of one workload interface.

    `family` 6: its ip6tables chains (the same, with neighbour discovery before policy).
    """
    fw, tw = chain_names(iface)
    p = policies
    egress, ingress = (
        (p.admin_egress, p.egress, p.baseline_egress),
        (p.admin_ingress, p.ingress, p.baseline_ingress),
    )
    rules = _direction_rules(fw, iface, "egress", egress, family)
    rules += _direction_rules(tw, iface, "ingress", ingress, family)
    return EndpointRules(iface, (fw, tw), tuple(rules), dispatch_rules(iface))


def dispatch_rules(iface: str) -> tuple[str, str]:
    """Return the endpoint's rules in cali-from-wl-dispatch and cali-to-wl-dispatch."""
    fw, tw = chain_names(iface)
    return (
        rule(FROM_DISPATCH, f"-i {iface}", f"-g {fw}"),
        rule(TO_DISPATCH, f"-o {iface}", f"-g {tw}"),
    )


def _declared(live_filter: str) -> set[str]:
    return {line[1:].split()[0] for line in live_filter.splitlines() if line.startswith(":")}


def add_restore(endpoint: EndpointRules, live_filter: str) -> str:
    """Return `iptables-restore --noflush` input that (re)programs one endpoint.

    Args:
        endpoint: from `endpoint_rules`.
        live_filter: current `iptables-save -t filter` output, so a dispatch rule already in
            place is not inserted twice (ADD after a restart stays idempotent).
    """
    present = set(live_filter.splitlines())
    lines = ["*filter", *(f":{c} - [0:0]" for c in endpoint.chains), *endpoint.rules]
    for line in endpoint.dispatch:
        if line not in present:
            _, chain, rest = line.split(" ", 2)
            lines.append(f"-I {chain} 1 {rest}")
    return "\n".join([*lines, "COMMIT", ""])


def del_restore(iface: str, live_filter: str) -> str | None:
    """Return restore input removing an endpoint's dispatch rules and chains, or None if gone."""
    fw, tw = chain_names(iface)
    present = set(live_filter.splitlines())
    declared = _declared(live_filter)
    dispatch = (
        rule(FROM_DISPATCH, f"-i {iface}", f"-g {fw}"),
        rule(TO_DISPATCH, f"-o {iface}", f"-g {tw}"),
    )
    lines = [d.replace("-A ", "-D ", 1) for d in dispatch if d in present]
    for chain in (fw, tw):
        if chain in declared:
            lines += [f"-F {chain}", f"-X {chain}"]
    return "\n".join(["*filter", *lines, "COMMIT", ""]) if lines else None


def with_endpoints(rules_text: str, endpoints: Sequence[EndpointRules]) -> str:
    """Return a node's iptables.rules with live endpoints merged into its filter table.

    Endpoint chains are declared right after `*filter`, dispatch rules go above the first
    rule of their dispatch chain (the "Unknown interface" drop), endpoint rules before the
    filter table's COMMIT. The agent restores (or diffs against) this text instead of the
    bare file, so applying the node's file never drops the running pods' dispatch rules.
    """
    ordered = sorted(endpoints, key=lambda e: e.iface)
    out: list[str] = []
    in_filter = False
    pending = {
        FROM_DISPATCH: [e.dispatch[0] for e in ordered],
        TO_DISPATCH: [e.dispatch[1] for e in ordered],
    }
    for line in rules_text.splitlines():
        if in_filter and line == "COMMIT":
            out += [r for e in ordered for r in e.rules]
            in_filter = False
        for chain, lines in pending.items():
            if in_filter and line.startswith(f"-A {chain} ") and lines:
                out += lines
                pending[chain] = []
        out.append(line)
        if line == "*filter":
            in_filter = True
            out += [f":{c} - [0:0]" for e in ordered for c in e.chains]
    return "\n".join(out) + "\n"
