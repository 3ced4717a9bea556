"""The iptables text of host policy chains and failsafe chains.

A policy direction is one chain (`cali-hi-<hash>` ingress, `cali-ho-<hash>` egress; the hash
of the policy's name, compiler/policy/names.py). Each rule of the policy becomes one or more
lines, in order: the source and destination networks, protocol, the ipsets of the nodes a
source or destination selector picks (`cali40h:<hash>`, members in ipsets.restore, so a node
joining changes no rules), and ports (multiport, at most 15 per line: a long list spans
lines). Allow sets the accept mark and the chain returns; Pass sets the pass mark and
returns; Deny drops; Log logs and goes on.
Spelled as `iptables-save` prints it (contract/syntax.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from calicc.compiler.host.model import EntityRule, Rule
from calicc.compiler.host.spec import FailsafePort, port_range
from calicc.contract.host import PASS_MATCH, SET_PASS
from calicc.contract.syntax import ACCEPT_MATCH, SET_ACCEPT, comment, rule

MULTIPORT_MAX = 15  # iptables multiport: 15 ports, a range counts 2
RULE_LINES_MAX = 4096  # lines one policy rule may expand to
ACTIONS = {
    "Allow": SET_ACCEPT,
    "Deny": "-j DROP",
    "Pass": SET_PASS,
    "Log": '-j LOG --log-prefix "calicc-host: "',
}
IPNet = IPv4Network | IPv6Network
Nets = tuple[IPNet, ...] | None  # None: any address


class TooManyLines(ValueError):
    """A rule expands to more lines than RULE_LINES_MAX."""


@dataclass(frozen=True)
class Ends:
    """A rule's two ends: networks (None: any) and the ipset of the nodes a selector picks."""

    source: Nets
    destination: Nets
    source_set: str | None = None
    destination_set: str | None = None


def family_nets(nets: Sequence[IPNet], version: int = 4) -> Nets:
    """Return the nets of IP `version` of an end's nets: None (any) when it has none at all.

    An empty tuple, when every net is of the other family, matches nothing.

    Examples:
        >>> family_nets([IPv4Network("10.0.0.0/8")], 6), family_nets([], 6)
        ((), None)
    """
    if not nets:
        return None
    return tuple(n for n in nets if n.version == version)


def side_nets(
    entity: EntityRule,
    addresses: dict[str, IPNet],
    selected: Sequence[str],
    version: int = 4,
) -> Nets:
    """Return the networks of IP `version` an end matches: its nets and/or selected nodes.

    `addresses` are the nodes' addresses of `version`; a node without one is left out.
    Both given: the nodes' addresses inside the nets (Calico ANDs the two). An empty tuple
    matches nothing: the rule is left out.
    """
    nets = family_nets(entity.nets, version)
    if entity.selector is None:
        return nets
    nodes = tuple(sorted({addresses[n] for n in selected if n in addresses}))
    if nets is None:
        return nodes
    return tuple(a for a in nodes if any(a.subnet_of(n) for n in nets))  # type: ignore[arg-type]


def port_chunks(ports: Sequence[int | str]) -> list[str]:
    """Return multiport lists of at most 15 slots each.

    Examples:
        >>> port_chunks([22, "8000:8080"])
        ['22,8000:8080']
    """
    chunks: list[list[str]] = [[]]
    used = 0
    for port in ports:
        first, last = port_range(port)
        text, slots = (str(first), 1) if first == last else (f"{first}:{last}", 2)
        if used + slots > MULTIPORT_MAX:
            chunks.append([])
            used = 0
        chunks[-1].append(text)
        used += slots
    return [",".join(c) for c in chunks if c]


def _addr(flag: str, nets: Nets) -> list[str]:
    return [""] if nets is None else [f"{flag} {n}" for n in nets]


def _ports(flag: str, entity: EntityRule) -> list[str]:
    negated = "".join(f" -m multiport ! --{flag} {c}" for c in port_chunks(entity.notPorts))
    if not entity.ports:
        return [negated.strip()]
    return [f"-m multiport --{flag} {c}{negated}" for c in port_chunks(entity.ports)]


def rule_lines(chain: str, r: Rule, ends: Ends, label: str) -> list[str]:
    """Return the lines of one policy rule (empty when an end matches no address)."""
    proto = f"-p {r.proto}" if r.proto else ""
    sets = " ".join(
        f"-m set --match-set {name} {way}"
        for name, way in ((ends.source_set, "src"), (ends.destination_set, "dst"))
        if name
    )
    combos = itertools.product(
        _addr("-s", ends.source),
        _addr("-d", ends.destination),
        _ports("dports", r.destination),
        _ports("sports", r.source),
    )
    lines = [
        rule(chain, src, dst, proto, sets, dports, sports, comment(label), ACTIONS[r.action])
        for src, dst, dports, sports in combos
    ]
    if len(lines) > RULE_LINES_MAX:
        raise TooManyLines(
            f"this rule expands to {len(lines)} iptables rules (at most {RULE_LINES_MAX}): "
            "use fewer nets, selected nodes or port ranges"
        )
    if lines and r.action == "Allow":
        lines.append(rule(chain, ACCEPT_MATCH, comment(f"{label}: allowed"), "-j RETURN"))
    if lines and r.action == "Pass":
        lines.append(rule(chain, PASS_MATCH, comment(f"{label}: passed"), "-j RETURN"))
    return lines


def failsafe_lines(
    chain: str, ports: Sequence[FailsafePort], direction: str, version: int = 4
) -> Iterator[str]:
    """Return the accept rules of a failsafe chain (inbound: source nets; outbound: dest).

    A port with a net of the other family is left out of IPv`version`'s chain.
    """
    for f in ports:
        if f.net is not None and f.net.version != version:
            continue
        first, last = f.ports
        port = str(first) if first == last else f"{first}:{last}"
        net = "" if f.net is None else f"{'-s' if direction == 'in' else '-d'} {f.net}"
        note = comment(f"failsafe {direction}bound {f.protocol} {f.port}")
        yield rule(chain, net, f"-p {f.protocol} -m {f.protocol} --dport {port}", note, "-j ACCEPT")
