"""iptables rule text for policy chains, written the way `iptables-save` prints it.

Rules are spelled in iptables-save's canonical form (`-p tcp -m tcp --dport 80`, quoted
comments, `--set-xmark`), so a node can compare its live chains with the rendered ones as text.

Mark bits are Calico's: accept 0x10000, pass 0x20000 (inside Calico's 0xffff0000 mask); calicc
only ever sets or clears these two bits, never another tool's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from calicc.compiler.filters import CONTROL

if TYPE_CHECKING:
    from calicc.compiler.policy.rules import Allow, PeerMatch, PolicyChain, PortMatch

MARK_ACCEPT = 0x10000
MARK_PASS = 0x20000
ACCEPT_MATCH = f"-m mark --mark {MARK_ACCEPT:#x}/{MARK_ACCEPT:#x}"
SET_ACCEPT = f"-j MARK --set-xmark {MARK_ACCEPT:#x}/{MARK_ACCEPT:#x}"
CLEAR_MARKS = f"-j MARK --set-xmark 0x0/{MARK_ACCEPT | MARK_PASS:#x}"
COMMENT_MAX = 255


def comment(text: str) -> str:
    """Return a comment match (quotes made safe, cut to the kernel's 255 characters)."""
    safe = CONTROL.sub(" ", text.replace('"', "'").replace("\\", "/"))[:COMMENT_MAX]
    return f'-m comment --comment "{safe}"'


def rule(chain: str, *parts: str) -> str:
    """Join an `-A chain` rule from its non-empty parts."""
    return " ".join(["-A", chain, *(p for p in parts if p)])


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
