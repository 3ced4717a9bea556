"""Walk one packet through a chain of parsed tables (trace/rules.py), as netfilter would.

Rules are tried in order; the first whose matches all hold acts: ACCEPT, DROP and REJECT end
the walk, as MASQUERADE, SNAT and DNAT do in nat (recorded in `Verdict.nat`: what they mean is
the caller's business); MARK and LOG go on with the next rule; `-j CHAIN` enters CHAIN and
comes back after the jump when it returns (RETURN or its end); `-g CHAIN` enters CHAIN so that
its return is the return of the chain that did the goto. At the end of (or a RETURN in) the
chain the walk started in, a built-in chain's policy decides; a user chain gives "RETURN".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from calicc.trace.matches import PROTOCOLS, RuleError
from calicc.trace.rules import Chain, Rule, Table

MAX_DEPTH = 64  # nested jumps; deeper means a loop (the kernel refuses loops when loading)
MAX_ENTRIES = 4096  # chains entered in one walk: gotos in a loop never deepen the stack
PORTED = frozenset({"tcp", "udp", "sctp"})
ICMP = {4: 1, 6: 58}  # protocol numbers of ICMP and ICMPv6


@dataclass(frozen=True)
class Packet:
    """The packet, as the rules see it where the walk starts.

    `ctstate` is its conntrack state: one of NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED, or
    several with commas (a NEW connection whose destination was NATed: "NEW,DNAT").
    `src_local`/`dst_local`: whether the address is one of the node's (addrtype LOCAL).
    `src_on_oif`/`dst_on_iif`: whether it is an address of the out (in) interface itself, for
    addrtype's --limit-iface-out (--limit-iface-in); asked only of a local address, and a rule
    needing an unsaid one raises RuleError.
    """

    family: int
    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    proto: str
    dport: int | None = None
    sport: int | None = None
    iif: str | None = None
    oif: str | None = None
    mark: int = 0
    ctstate: str = "NEW"
    src_local: bool = False
    dst_local: bool = False
    icmp_type: int | None = None
    src_on_oif: bool | None = None
    dst_on_iif: bool | None = None

    def but(self, **changes: object) -> Packet:
        """Return a copy with `changes`: dataclasses.replace without its per-call work.

        A trace copies its packet at every hook, and the all-pairs matrix traces thousands.
        """
        unknown = changes.keys() - _PACKET_FIELDS
        if unknown:
            raise TypeError(f"Packet has no field {sorted(unknown)[0]}")
        copy = object.__new__(Packet)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy


_PACKET_FIELDS = frozenset(f.name for f in fields(Packet))


class SetMembership(Protocol):
    """Answers `-m set`: is the address (and for hash:ip,port sets, proto and port) in set `name`.

    For `src`/`dst` flags `proto` and `port` are None; for `dst,dst`, `src,dst`... they are the
    packet's protocol (as the packet spells it) and the port the second flag names.
    """

    def member(
        self, name: str, address: IPv4Address | IPv6Address, proto: str | None, port: int | None
    ) -> bool:
        """Return whether the set holds the member."""


@dataclass(frozen=True)
class Step:
    """A rule that matched (or a built-in chain's policy, number 0), and what it did."""

    table: str
    chain: str
    number: int
    text: str
    comment: str
    action: str


@dataclass(frozen=True)
class Verdict:
    """How the walk ended: ACCEPT, DROP, REJECT, or RETURN (a user chain walked alone).

    `deciding` is the step that ended it (None when a user chain ran off its end), `steps`
    every rule that matched in order, `mark` the packet's final mark, `nat` the nat steps.
    """

    verdict: str
    deciding: Step | None
    steps: tuple[Step, ...]
    mark: int
    nat: tuple[Step, ...] = ()


def walk(
    tables: Mapping[str, Table], table: str, chain: str, packet: Packet, sets: SetMembership
) -> Verdict:
    """Return what `table`'s `chain` does with `packet`, and which rules said so.

    Raises:
        RuleError: no such table or chain, a jump loop, or a rule needing a fact the packet
            leaves unsaid (a port, an ICMP type, addrtype's interface limit).
        ValueError: a packet whose family, addresses and protocol disagree.
    """
    _check(packet)
    found = tables.get(table)
    if found is None or chain not in found.chains:
        raise RuleError(f"no chain {chain!r} in table {table!r}")
    if found.family != packet.family:
        raise ValueError(f"an IPv{packet.family} packet through IPv{found.family} rules")
    return _Walk(found, packet, sets).run(found.chains[chain])


@lru_cache(maxsize=1 << 16)  # rules hash by identity: a step is built once per rule
def step_of(table: str, rule: Rule) -> Step:
    """Return the step of `rule` of `table` matching."""
    return Step(table, rule.chain, rule.number, rule.text, rule.comment, rule.action)


def _check(packet: Packet) -> None:
    if packet.family not in (4, 6) or {packet.src.version, packet.dst.version} != {packet.family}:
        raise ValueError(f"addresses {packet.src}, {packet.dst} are not IPv{packet.family}")
    if packet.proto not in PROTOCOLS or packet.proto == "all":
        raise ValueError(f"unknown protocol {packet.proto!r}")
    if PROTOCOLS[packet.proto] in ICMP.values() and PROTOCOLS[packet.proto] != ICMP[packet.family]:
        raise ValueError(f"{packet.proto} is not the ICMP of IPv{packet.family}")
    if packet.proto in PORTED and packet.dport is None:
        raise ValueError(f"a {packet.proto} packet needs a destination port")


class _Walk:
    """One walk's state: the mark, the steps so far, the return stack."""

    def __init__(self, table: Table, packet: Packet, sets: SetMembership) -> None:
        self.table, self.packet, self.sets = table, packet, sets
        self.mark = packet.mark
        self.steps: list[Step] = []
        self.nat: list[Step] = []
        self.stack: list[tuple[Chain, int]] = []
        self.entries = 0

    def run(self, start: Chain) -> Verdict:
        chain, index = start, 0
        while True:
            hit = self._next(chain, index)
            if hit is None:  # ran off the end: back to the caller, or the start chain ends
                if not self.stack:
                    return self._end(start, None)
                chain, index = self.stack.pop()
                continue
            rule, index = hit
            step = self._record(rule)
            if rule.kind in ("verdict", "nat"):
                return self._verdict("ACCEPT" if rule.kind == "nat" else rule.target, step)
            if rule.kind == "return":
                if not self.stack:
                    return self._end(start, step)
                chain, index = self.stack.pop()
            elif rule.kind in ("jump", "goto"):
                if rule.kind == "jump":
                    self.stack.append((chain, index))
                chain, index = self._enter(rule), 0

    def _next(self, chain: Chain, index: int) -> tuple[Rule, int] | None:
        """Return the first rule from `index` on whose matches all hold, and the next index."""
        rules, packet, mark, sets = chain.rules, self.packet, self.mark, self.sets
        for i in range(index, len(rules)):
            for match in rules[i].matches:
                if not match(packet, mark, sets):
                    break
            else:
                return rules[i], i + 1
        return None

    def _record(self, rule: Rule) -> Step:
        step = step_of(self.table.name, rule)
        self.steps.append(step)
        if rule.kind == "mark":
            value, mask = rule.xmark
            self.mark = ((self.mark & ~mask) ^ value) & 0xFFFFFFFF
        elif rule.kind == "nat":
            self.nat.append(step)
        return step

    def _enter(self, rule: Rule) -> Chain:
        self.entries += 1
        if len(self.stack) > MAX_DEPTH or self.entries > MAX_ENTRIES:
            raise RuleError(f"jump loop (or nesting beyond {MAX_DEPTH}) at rule: {rule.text}")
        return self.table.chains[rule.target]

    def _end(self, start: Chain, step: Step | None) -> Verdict:
        """The start chain returned: its policy if built in, else RETURN."""
        if start.policy == "-":
            return self._verdict("RETURN", step)
        text, action = f":{start.name} {start.policy}", f"policy {start.policy}"
        policy = Step(self.table.name, start.name, 0, text, "", action)
        self.steps.append(policy)
        return self._verdict(start.policy, policy)

    def _verdict(self, verdict: str, deciding: Step | None) -> Verdict:
        return Verdict(verdict, deciding, tuple(self.steps), self.mark, tuple(self.nat))
