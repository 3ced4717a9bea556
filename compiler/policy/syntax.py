"""iptables rule text of policy chains (the shared syntax lives in contract/syntax.py).

Peers and ports of a compiled NetworkPolicy or ClusterNetworkPolicy rule, spelled as
`iptables-save` prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from calicc.contract.syntax import ACCEPT_MATCH, PASS_MATCH, SET_ACCEPT, SET_PASS, comment, rule

if TYPE_CHECKING:
    from calicc.compiler.policy.cnp import CnpChain, CnpMatch, CnpRule
    from calicc.compiler.policy.rules import Allow, PeerMatch, PolicyChain, PortMatch


def peer_match(peer: PeerMatch | None, direction: str) -> str:
    """Match the remote end: the source of ingress traffic, the destination of egress."""
    if peer is None:
        return ""
    return f"-m set --match-set {peer.set_name} {'src' if direction == 'ingress' else 'dst'}"


def port_match(port: PortMatch | None) -> str:
    """Match protocol and destination port (number, range, named-port set, or any)."""
    if port is None:
        return ""
    if port.named_set is not None:
        return f"-p {port.protocol} -m set --match-set {port.named_set} dst,dst"
    if port.ports is None:
        return f"-p {port.protocol}"
    return f"-p {port.protocol} -m {port.protocol} --dport {port.ports}"


def _describe(allow: Allow, direction: str) -> str:
    peer = allow.peer.description if allow.peer else "anywhere"
    port = allow.port.description if allow.port else "any port"
    return f"{'from' if direction == 'ingress' else 'to'} {peer} on {port}"


def policy_rules(chain: PolicyChain, policy: str) -> tuple[str, ...]:
    """Return the rules of a policy chain.

    Each allow sets the accept mark; after each Kubernetes rule, a marked packet returns at
    once. A chain with no rules allows nothing: the endpoint chain then drops the packet.
    """
    lines: list[str] = []
    for block in chain.rules:
        for allow in block.allows:
            lines.append(
                rule(
                    chain.name,
                    port_match(allow.port),
                    peer_match(allow.peer, chain.direction),
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
    named = f" {written.name!r}" if written.name else ""
    return f"{policy} {written.label}{named}"


def cnp_rules(chain: CnpChain, policy: str) -> tuple[str, ...]:
    """Return the rules of a ClusterNetworkPolicy chain, its rules in the order written.

    Accept sets the accept mark and Pass the pass mark, and after each rule a marked packet
    returns at once (the endpoint chain reads the mark: contract/endpoint.py); Deny drops. A
    packet no rule matched returns unmarked: the next chain of the tier decides.
    """
    lines: list[str] = []
    for written in chain.rules:
        verb, target, returns_on = _ACTIONS[written.action]
        label = _rule_label(policy, written)
        for match in written.matches:
            lines.append(
                rule(
                    chain.name,
                    port_match(match.port),
                    peer_match(match.peer, chain.direction),
                    comment(f"{label} {verb} {_cnp_describe(match, chain.direction)}"),
                    target,
                )
            )
        if returns_on is not None:
            lines.append(rule(chain.name, returns_on, comment(f"{label} {verb}"), "-j RETURN"))
    return tuple(lines)
