"""iptables rule text of policy chains (the shared syntax lives in contract/syntax.py).

Peers and ports of a compiled NetworkPolicy or ClusterNetworkPolicy rule, spelled as
`iptables-save` prints them, and the ClusterNetworkPolicy tier chains that jump to the
policies' chains for the pods of their subjects.

Each function takes the `family` (4: iptables, 6: ip6tables): the chains have the same names in
both, their rules name the sets of that family (the IPv6 twins, compiler/policy/rules.py). A
match whose peer has no set of the family (an ipBlock or networks of the other family) is left
out of that family's chain: it allows (or denies, or passes) nothing there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from calicc.contract.names import CNP_ONLY_CHAINS, TIER_CHAINS, V4, v6_twin
from calicc.contract.syntax import (
    ACCEPT_MATCH,
    CLEAR_PASS,
    DECIDED,
    PASS_MATCH,
    SET_ACCEPT,
    SET_PASS,
    comment,
    rule,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from calicc.compiler.policy.cnp import CnpChain, CnpMatch, CnpRule, TierJump
    from calicc.compiler.policy.rules import Allow, PeerMatch, PolicyChain, PortMatch


def in_family(peer: PeerMatch | None, family: int) -> bool:
    """Return whether a match of `peer` (None: any address) can hold in `family`."""
    return peer is None or peer.set_for(family) is not None


def peer_match(peer: PeerMatch | None, direction: str, family: int = V4) -> str:
    """Match the remote end: the source of ingress traffic, the destination of egress."""
    if peer is None:
        return ""
    side = "src" if direction == "ingress" else "dst"
    return f"-m set --match-set {peer.set_for(family)} {side}"


def port_match(port: PortMatch | None, family: int = V4) -> str:
    """Match protocol and destination port (number, range, named-port set, or any)."""
    if port is None:
        return ""
    if port.named_set is not None:
        return f"-p {port.protocol} -m set --match-set {port.named_set_for(family)} dst,dst"
    if port.ports is None:
        return f"-p {port.protocol}"
    return f"-p {port.protocol} -m {port.protocol} --dport {port.ports}"


def _describe(allow: Allow, direction: str) -> str:
    peer = allow.peer.description if allow.peer else "anywhere"
    port = allow.port.description if allow.port else "any port"
    return f"{'from' if direction == 'ingress' else 'to'} {peer} on {port}"


def policy_rules(chain: PolicyChain, policy: str, family: int = V4) -> tuple[str, ...]:
    """Return the rules of a policy chain in `family`.

    Each allow sets the accept mark; after each Kubernetes rule, a marked packet returns at
    once. A chain with no rules allows nothing: the endpoint chain then drops the packet. An
    allow whose peer has no set of `family` is left out (it allows nothing in that family).
    """
    lines: list[str] = []
    for block in chain.rules:
        for allow in block.allows:
            if not in_family(allow.peer, family):
                continue
            lines.append(
                rule(
                    chain.name,
                    port_match(allow.port, family),
                    peer_match(allow.peer, chain.direction, family),
                    comment(f"{policy} {block.label} allow {_describe(allow, chain.direction)}"),
                    SET_ACCEPT,
                )
            )
        lines.append(
            rule(chain.name, ACCEPT_MATCH, comment(f"{policy} {block.label}"), "-j RETURN")
        )
    return tuple(lines)


# A ClusterNetworkPolicy action: the target of each match, and the mark to return on (Deny
# drops at once, so it needs none).
_ACTIONS = {
    "Accept": ("accept", SET_ACCEPT, ACCEPT_MATCH),
    "Pass": ("pass", SET_PASS, PASS_MATCH),
    "Deny": ("deny", "-j DROP", None),
}


def _cnp_describe(match: CnpMatch, direction: str) -> str:
    port = match.port.description if match.port else "any port"
    return f"{'from' if direction == 'ingress' else 'to'} {match.peer.description} on {port}"


def _rule_label(policy: str, written: CnpRule) -> str:
    named = f" `{written.name}`" if written.name else ""
    return f"{policy} {written.label}{named}"


def cnp_rules(chain: CnpChain, policy: str, family: int = V4) -> tuple[str, ...]:
    """Return the rules of a ClusterNetworkPolicy chain, its rules in the order written.

    Accept sets the accept mark and Pass the pass mark, and after each rule a marked packet
    returns at once (the endpoint chain reads the mark: contract/endpoint.py); Deny drops. A
    packet no rule matched returns unmarked: the next chain of the tier decides. A match whose
    peer has no set of `family` is left out of that family's chain.
    """
    lines: list[str] = []
    for written in chain.rules:
        verb, target, returns_on = _ACTIONS[written.action]
        label = _rule_label(policy, written)
        for match in written.matches:
            if not in_family(match.peer, family):
                continue
            lines.append(
                rule(
                    chain.name,
                    port_match(match.port, family),
                    peer_match(match.peer, chain.direction, family),
                    comment(f"{label} {verb} {_cnp_describe(match, chain.direction)}"),
                    target,
                )
            )
        if returns_on is not None:
            lines.append(rule(chain.name, returns_on, comment(f"{label} {verb}"), "-j RETURN"))
    return tuple(lines)


def tier_rules(
    chain: str, tier: str, direction: str, jumps: Sequence[TierJump], family: int = V4
) -> tuple[str, ...]:
    """Return the rules of a tier chain: each policy's chain for the pods of its subject.

    The subject is the pod the endpoint chain stands for: the destination of ingress, the
    source of egress. After a policy's chain, a packet it accepted or passed returns: accepted,
    the endpoint chain returns too; passed, the rest of the tier is skipped. The Baseline
    chain first clears the pass mark an Admin Pass may have left.
    """
    side = "dst" if direction == "ingress" else "src"
    lines = []
    if tier == "Baseline":
        lines.append(rule(chain, comment("clear the pass mark of the Admin tier"), CLEAR_PASS))
    for jump in jumps:
        subject_set = jump.subject_set if family == V4 else v6_twin(jump.subject_set)
        subject = f"-m set --match-set {subject_set} {side}"
        lines.append(rule(chain, subject, comment(jump.label), f"-j {jump.chain}"))
        if jump.decides:
            why = comment(f"accepted or passed by {jump.label}")
            lines.append(rule(chain, DECIDED, why, "-j RETURN"))
    return tuple(lines)


def cnp_only_rules(
    chain: str, direction: str, admin: str | None, baseline: str | None
) -> tuple[str, ...]:
    """Return the tiers of a pod no NetworkPolicy selects for the direction, then allow.

    The Admin tier chain first (a packet it accepted returns at once), then the Baseline one:
    what neither dropped is allowed, a Baseline Accept or Pass as well as no decision (the
    endpoint chain of such a pod ends with a goto here, contract/endpoint.py).
    """
    lines = []
    if admin is not None:
        lines.append(rule(chain, comment(f"Admin tier {direction}"), f"-j {admin}"))
        if baseline is not None:
            accepted = comment("accepted by the Admin tier")
            lines.append(rule(chain, ACCEPT_MATCH, accepted, "-j RETURN"))
    if baseline is not None:
        lines.append(rule(chain, comment(f"Baseline tier {direction}"), f"-j {baseline}"))
    lines.append(rule(chain, comment("no ClusterNetworkPolicy denied: allow"), SET_ACCEPT))
    return tuple(lines)


def direction_tiers(
    direction: str, jumps: Mapping[str, Sequence[TierJump]], family: int = V4
) -> list[tuple[str, str, tuple[str, ...]]]:
    """Return (name, note, rules) of one direction's ClusterNetworkPolicy tier chains.

    `jumps` by tier. The chain of each tier with policies, then, if any, the chain of the tiers
    of a pod no NetworkPolicy selects (CNP_ONLY_CHAINS): its endpoint chain ends with a goto
    there (contract/endpoint.py).
    """
    chains = []
    present: dict[str, str | None] = {}
    for tier in ("Admin", "Baseline"):
        name, found = TIER_CHAINS[tier, direction], jumps.get(tier, ())
        present[tier] = name if found else None
        if found:
            note = f"{tier} tier {direction}, policies by priority then name: {len(found)}"
            chains.append((name, note, tier_rules(name, tier, direction, found, family)))
    if chains:
        name = CNP_ONLY_CHAINS[direction]
        note = f"{direction} of pods no NetworkPolicy selects: the tiers, then allow"
        rules = cnp_only_rules(name, direction, present["Admin"], present["Baseline"])
        chains.append((name, note, rules))
    return chains
