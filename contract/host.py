"""Host endpoints on a node: which host policy chains police which of its interfaces.

The compiler writes the policy chains (`cali-hi-*` ingress, `cali-ho-*` egress), the failsafe
chains and four empty dispatch chains once, into the shared iptables rules; which policies
apply to a node follows from its labels and is written once per distinct answer into
cluster/policy.json (`ClusterHost`: profiles, and each node's profile), so a policy or a
node's labels changing rewrites cluster files only. The agent builds the node's part from
its `NodeHost` (contract/assemble.py picks it): per interface (or `"*"`, every interface but
the workloads' and `lo`) the endpoint chains, as Calico's felix/rules/endpoints.go,

    filter cali-fh-IF    to the node (INPUT): established, invalid, cali-failsafe-in, policies
    filter cali-th-IF    from the node (OUTPUT): established, invalid, cali-failsafe-out, ...
    filter cali-fhfw-IF  forwarded in through IF: applyOnForward ingress policies
    filter cali-thfw-IF  forwarded out through IF: applyOnForward egress policies
    mangle cali-fh-IF    pre-DNAT (mangle PREROUTING): cali-failsafe-in, preDNAT policies

and the rules that dispatch to them (`-i IF -g cali-fh-IF`; the all-interfaces endpoint last,
without an interface match), merged into the rules text by `with_host` like the workload
endpoints (contract/endpoint.py). Each policy returns with the accept mark (Allow) or the pass
mark (Pass) set, or drops (Deny). Ends: a normal chain drops (Calico's host endpoint default:
deny what no policy allowed, failsafes excepted); a forward chain exists only when some
applyOnForward policy applies (else forwarded traffic is not policed) and then drops; a
pre-DNAT chain returns (what pre-DNAT policy neither allowed nor denied meets normal policy).

In ip6tables (`family` 6) the normal and pre-DNAT chains accept ICMPv6 neighbour discovery and
multicast listener messages before the failsafes (HOST_ICMPV6_ND): they are link-local, untracked by
conntrack, and without them a protected interface loses its neighbours (and, behind an MLD
snooping switch, the solicitations for its own addresses). Calico accepts these only from
workloads (felix cali-wl-to-host, types 130-133, 135, 136) and leaves a host endpoint's to
policy; calicc keeps the host reachable whatever the policy says, as its lockout check does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from calicc.contract.names import V6
from calicc.contract.syntax import (
    ACCEPT_MATCH,
    CLEAR_MARKS,
    MARK_PASS,
    comment,
    rule,
    tracked_rules,
)

ALL_INTERFACES = "*"
ALL_SUFFIX = "@all"  # chain suffix of the all-interfaces endpoint: '@' is in no interface name
PASS_MATCH = f"-m mark --mark {MARK_PASS:#x}/{MARK_PASS:#x}"
SET_PASS = f"-j MARK --set-xmark {MARK_PASS:#x}/{MARK_PASS:#x}"
FAILSAFE_IN = "cali-failsafe-in"
FAILSAFE_OUT = "cali-failsafe-out"
FROM_HOST = "cali-from-host-endpoint"
TO_HOST = "cali-to-host-endpoint"
FROM_HOST_FORWARD = "cali-from-hep-forward"
TO_HOST_FORWARD = "cali-to-hep-forward"
HOST_SET_PREFIX = "cali40h:"  # ipsets of the nodes a host policy rule's selector picks
HOST_SET_PREFIX_V6 = "cali60h:"  # their family inet6 twins (the nodes' IPv6 addresses)
WORKLOAD_IFACES = "cali+"
# ICMPv6 a host endpoint accepts both ways before policy: MLD query, report, done (130-132),
# router solicitation and advertisement (133, 134), neighbour solicitation and advertisement
# (135, 136), MLDv2 report (143, what Linux sends).
HOST_ICMPV6_ND = (130, 131, 132, 133, 134, 135, 136, 143)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostPolicyRef(_Frozen):
    """A compiled host policy: its chains and where it applies."""

    name: str
    ingress_chain: str | None = None
    egress_chain: str | None = None
    apply_on_forward: bool = False
    pre_dnat: bool = False


class NodeHost(_Frozen):
    """One node's host endpoints: its protected interfaces and their policies, in order."""

    interfaces: tuple[str, ...]
    policies: tuple[HostPolicyRef, ...] = ()


class ClusterHost(_Frozen):
    """policy.json's `host`: the distinct node profiles, and each protected node's profile."""

    profiles: tuple[NodeHost, ...] = ()
    nodes: dict[str, int] = {}

    def for_node(self, name: str) -> NodeHost | None:
        """Return node `name`'s host endpoints (None: the node has no protected interface)."""
        index = self.nodes.get(name)
        if index is None or not 0 <= index < len(self.profiles):
            return None
        return self.profiles[index]


@dataclass(frozen=True)
class HostRules:
    """A node's host endpoint chains per table: the chains to declare and their rules."""

    chains: dict[str, tuple[str, ...]]
    rules: dict[str, tuple[str, ...]]


def suffix(iface: str) -> str:
    """Return the chain suffix of an interface ("*": `@all`)."""
    return ALL_SUFFIX if iface == ALL_INTERFACES else iface


def _policy_rules(chain: str, refs: Sequence[tuple[str, str]], end: str) -> list[str]:
    lines = [rule(chain, comment("clear accept and pass marks"), CLEAR_MARKS)]
    for policy_chain, name in refs:
        lines += [
            rule(chain, comment(f"host policy {name}"), f"-j {policy_chain}"),
            rule(chain, ACCEPT_MATCH, comment(f"allowed by {name}"), "-j RETURN"),
            rule(chain, PASS_MATCH, comment(f"passed by {name}: no later policy"), end),
        ]
    return lines


def neighbour_rules(chain: str) -> list[str]:
    """Return the ICMPv6 accept rules of an IPv6 host endpoint chain (HOST_ICMPV6_ND)."""
    return [
        rule(
            chain,
            f"-p ipv6-icmp -m icmp6 --icmpv6-type {kind}",
            comment("ICMPv6 neighbour discovery and MLD"),
            "-j ACCEPT",
        )
        for kind in HOST_ICMPV6_ND
    ]


def _normal(
    chain: str, iface: str, failsafe: str, refs: list[tuple[str, str]], family: int
) -> list[str]:
    lines = tracked_rules(chain) + (neighbour_rules(chain) if family == V6 else [])
    lines.append(rule(chain, comment("failsafe ports"), f"-j {failsafe}"))
    lines += _policy_rules(chain, refs, "-j DROP")
    why = "no host policy allowed it" if refs else "no host policy applies"
    return [*lines, rule(chain, comment(f"default deny on {iface}: {why}"), "-j DROP")]


def _forward(chain: str, iface: str, refs: list[tuple[str, str]]) -> list[str]:
    lines = [*tracked_rules(chain), *_policy_rules(chain, refs, "-j DROP")]
    return [*lines, rule(chain, comment(f"default deny forwarding via {iface}"), "-j DROP")]


def _pre_dnat(chain: str, refs: list[tuple[str, str]], family: int) -> list[str]:
    lines = neighbour_rules(chain) if family == V6 else []
    lines.append(rule(chain, comment("failsafe ports"), f"-j {FAILSAFE_IN}"))
    return lines + _policy_rules(chain, refs, "-j RETURN")


def _dispatch(chain: str, iface: str, flag: str, target: str) -> str:
    match = "" if iface == ALL_INTERFACES else f"{flag} {iface}"
    return rule(chain, match, f"-g {target}")


@dataclass
class _Table:
    chains: list[str]
    rules: list[str]
    dispatch: list[str]

    def add(self, chain: str, lines: list[str], dispatch: str) -> None:
        self.chains.append(chain)
        self.rules += lines
        self.dispatch.append(dispatch)


def host_rules(host: NodeHost, family: int = 4) -> HostRules:
    """Return the node's endpoint chains and dispatch rules (see the module docstring).

    `family` 6: of ip6tables (the normal chains accept neighbour discovery first).
    """
    pols = host.policies
    ingress = _refs(pols, "ingress", forward=False)
    egress = _refs(pols, "egress", forward=False)
    fwd_in = _refs(pols, "ingress", forward=True)
    fwd_out = _refs(pols, "egress", forward=True)
    pre = [(p.ingress_chain, p.name) for p in pols if p.ingress_chain and p.pre_dnat]
    filt, mangle = _Table([], [], []), _Table([], [], [])
    named = sorted(i for i in host.interfaces if i != ALL_INTERFACES)
    ordered = named + [ALL_INTERFACES] * (ALL_INTERFACES in host.interfaces)
    for iface in ordered:
        end = suffix(iface)
        fh, th, fhfw, thfw = (f"cali-{d}-{end}" for d in ("fh", "th", "fhfw", "thfw"))
        fh_rules = _normal(fh, iface, FAILSAFE_IN, ingress, family)
        filt.add(fh, fh_rules, _dispatch(FROM_HOST, iface, "-i", fh))
        th_rules = _normal(th, iface, FAILSAFE_OUT, egress, family)
        filt.add(th, th_rules, _dispatch(TO_HOST, iface, "-o", th))
        if fwd_in:
            filt.add(
                fhfw, _forward(fhfw, iface, fwd_in), _dispatch(FROM_HOST_FORWARD, iface, "-i", fhfw)
            )
        if fwd_out:
            filt.add(
                thfw, _forward(thfw, iface, fwd_out), _dispatch(TO_HOST_FORWARD, iface, "-o", thfw)
            )
        if pre:
            mangle.add(fh, _pre_dnat(fh, pre, family), _dispatch(FROM_HOST, iface, "-i", fh))
    return HostRules(
        chains={"filter": tuple(filt.chains), "mangle": tuple(mangle.chains)},
        rules={
            "filter": tuple(_by_chain(filt.dispatch) + filt.rules),
            "mangle": tuple(mangle.dispatch + mangle.rules),
        },
    )


def _refs(pols: Sequence[HostPolicyRef], direction: str, *, forward: bool) -> list[tuple[str, str]]:
    """Return (chain, name) of the normal policies of a direction (forward: applyOnForward)."""
    found = []
    for p in pols:
        chain = p.ingress_chain if direction == "ingress" else p.egress_chain
        if chain and not p.pre_dnat and (p.apply_on_forward or not forward):
            found.append((chain, p.name))
    return found


def _by_chain(dispatch: list[str]) -> list[str]:
    """Group dispatch rules by their chain, keeping each chain's interface order."""
    order = [FROM_HOST, TO_HOST, FROM_HOST_FORWARD, TO_HOST_FORWARD]
    return sorted(dispatch, key=lambda line: order.index(line.split()[1]))


def with_host(rules_text: str, host: NodeHost | None, family: int = 4) -> str:
    """Return the rules text with the node's host endpoint chains merged in (family 6: ip6tables').

    Endpoint chains are declared right after their table's `*table` line; their rules and
    the dispatch rules go before its COMMIT, so the dispatch rules follow the file's own
    (the workload interfaces' RETURN rules). Without host endpoints, the text as it is.
    """
    if host is None or not host.interfaces:
        return rules_text
    found = host_rules(host, family)
    out: list[str] = []
    table = ""
    for line in rules_text.splitlines():
        if line == "COMMIT" and table in found.rules:
            out += found.rules[table]
        out.append(line)
        if line.startswith("*"):
            table = line[1:].strip()
            out += [f":{c} - [0:0]" for c in found.chains.get(table, ())]
    return "\n".join(out) + "\n"
