"""The matches of iptables rules as calicc renders them, compiled into predicates.

Each option of a rule (`-p`, `-s`/`-d`, `-i`/`-o`, `-m set`, `mark`, `conntrack`, `addrtype`,
`tcp`/`udp`/`sctp`/`multiport` ports, `icmp`/`icmp6` types) becomes a small predicate
`(packet, mark, sets) -> bool` that trace/walk.py evaluates. What is not understood raises
RuleError naming the rule (trace/rules.py parses the rule text around these).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_network
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from calicc.trace.walk import Packet, SetMembership

Match = Callable[["Packet", int, "SetMembership"], bool]  # (packet, current mark, ipsets)

PROTOCOLS = {"all": 0, "icmp": 1, "igmp": 2, "ipencap": 4, "tcp": 6, "udp": 17, "gre": 47}
PROTOCOLS |= {"esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "redirect": 5, "echo-request": 8}
ICMP_TYPES |= {"time-exceeded": 11, "parameter-problem": 12}
ICMPV6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3}
ICMPV6_TYPES |= {"parameter-problem": 4, "echo-request": 128, "echo-reply": 129, "redirect": 137}
ICMPV6_TYPES |= {"router-solicitation": 133, "router-advertisement": 134}
ICMPV6_TYPES |= {"neighbour-solicitation": 135, "neighbour-advertisement": 136}
CT_STATES = frozenset({"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "SNAT", "DNAT"})
PROTOCOL_OF = {"tcp": {6}, "udp": {17}, "sctp": {132}, "icmp": {1}, "icmp6": {58}}
PROTOCOL_OF["multiport"] = {6, 17, 132, 136}
ALL_BITS = 0xFFFFFFFF


class RuleError(ValueError):
    """A line or rule the interpreter does not understand (the message names the rule)."""


class Option(NamedTuple):
    """One option of a rule as written: its module instance, name, negation and arguments."""

    instance: int
    module: str
    name: str
    negated: bool
    args: tuple[str, ...]


class Context(NamedTuple):
    """What compiling an option needs beside it: the family, rule text, sibling options."""

    family: int
    text: str
    options: tuple[Option, ...]

    def error(self, problem: str) -> RuleError:
        """Return the error for `problem` in this rule."""
        return RuleError(f"{problem} in rule: {self.text}")


def compile_option(o: Option, ctx: Context) -> Match | None:
    """Return the predicate of one option (None for a comment and addrtype's interface limit)."""
    if o.name in ("--comment", "--limit-iface-in", "--limit-iface-out"):
        if o.negated:
            raise ctx.error(f"! {o.name}")
        return None
    test = COMPILERS[o.name](o, ctx)
    return (lambda p, m, s: not test(p, m, s)) if o.negated else test


def _protocol_of(word: str, ctx: Context) -> int:
    number = int(word) if word.isdigit() else PROTOCOLS.get(word)
    if number is None:
        raise ctx.error(f"unknown protocol {word!r}")
    return number


def needs_protocol(options: tuple[Option, ...], ctx: Context) -> None:
    """As iptables: -m tcp needs -p tcp, multiport a protocol with ports, and so on."""
    given = [_protocol_of(o.args[0], ctx) for o in options if o.name == "-p" and not o.negated]
    for o in options:
        if o.module in PROTOCOL_OF and not set(given) & PROTOCOL_OF[o.module]:
            raise ctx.error(f"-m {o.module} without the protocol it needs (-p)")


def _protocol(o: Option, ctx: Context) -> Match:
    number = _protocol_of(o.args[0], ctx)
    return (lambda p, m, s: True) if number == 0 else (lambda p, m, s: PROTOCOLS[p.proto] == number)


def _address(o: Option, ctx: Context) -> Match:
    try:
        net = ip_network(o.args[0], strict=False)
    except ValueError:
        raise ctx.error(f"bad address {o.args[0]!r}") from None
    if net.version != ctx.family:
        raise ctx.error(f"an IPv{net.version} address in IPv{ctx.family} rules")
    base, mask = int(net.network_address), int(net.netmask)
    address: Callable[[Packet], IPv4Address | IPv6Address] = attrgetter(
        "src" if o.name == "-s" else "dst"
    )
    return lambda p, m, s: (int(address(p)) & mask) == base


def _interface(o: Option, ctx: Context) -> Match:
    name = o.args[0]
    field: Callable[[Packet], str | None] = attrgetter("iif" if o.name == "-i" else "oif")
    prefix = name[:-1]
    if name.endswith("+"):  # iptables' wildcard: any interface whose name starts so
        return lambda p, m, s: (field(p) or "").startswith(prefix)
    return lambda p, m, s: field(p) == name


def _set(o: Option, ctx: Context) -> Match:
    """The set's flags: the first says which address, a second (ip,port sets) which port."""
    name, flags = o.args[0], o.args[1].split(",")
    if flags[2:] or not set(flags) <= {"src", "dst"}:
        raise ctx.error(f"unsupported set flags {o.args[1]!r}")
    address = attrgetter(flags[0])
    if not flags[1:]:
        return lambda p, m, s: s.member(name, address(p), None, None)
    port = attrgetter(f"{flags[1][0]}port")  # sport or dport
    return lambda p, m, s: s.member(name, address(p), p.proto, port(p))


def value_mask(spec: str, ctx: Context) -> tuple[int, int]:
    """Return `VALUE[/MASK]` as integers (mask all ones when left out)."""
    value, _, mask = spec.partition("/")
    try:
        return int(value, 0), (int(mask, 0) if mask else ALL_BITS)
    except ValueError:
        raise ctx.error(f"bad mark {spec!r}") from None


def _mark(o: Option, ctx: Context) -> Match:
    value, mask = value_mask(o.args[0], ctx)
    return lambda p, mark, s: (mark & mask) == value


@lru_cache(maxsize=256)
def packet_states(ctstate: str) -> frozenset[str]:
    """Return a packet's conntrack states: "NEW", or several as "NEW,DNAT"."""
    return frozenset(ctstate.split(","))


def _ctstate(o: Option, ctx: Context) -> Match:
    states = frozenset(o.args[0].split(","))
    if not states <= CT_STATES:
        raise ctx.error(f"unknown conntrack state in {o.args[0]!r}")
    return lambda p, m, s: not states.isdisjoint(packet_states(p.ctstate))


def _addrtype(o: Option, ctx: Context) -> Match:
    """LOCAL only; with an interface limit, asked of the packet only when its address is local."""
    side, text = o.name[2:5], ctx.text
    if o.args[0] != "LOCAL":
        raise ctx.error(f"address type {o.args[0]!r} (only LOCAL is understood)")
    limits = {x.name for x in ctx.options if x.instance == o.instance and x.name[:7] == "--limit"}
    local: Callable[[Packet], bool] = attrgetter(f"{side}_local")
    if not limits:
        return lambda p, m, s: local(p)
    if limits != {"--limit-iface-out" if side == "src" else "--limit-iface-in"}:
        raise ctx.error(f"--{side}-type with {' '.join(sorted(limits))}")
    field = "src_on_oif" if side == "src" else "dst_on_iif"
    on_iface: Callable[[Packet], bool | None] = attrgetter(field)

    def test(p: Packet, m: int, s: SetMembership) -> bool:
        on = on_iface(p) if local(p) else False  # not local at all: not the interface's either
        if on is None:
            raise RuleError(f"the packet leaves {field} unsaid, needed by rule: {text}")
        return on

    return test


def _number(field: str, text: str) -> Callable[[Packet], int]:
    """Return a getter of a packet's port or ICMP type that refuses a missing one."""

    def number(p: Packet) -> int:
        found: int | None = getattr(p, field)
        if found is None:
            raise RuleError(f"the packet has no {field}, needed by rule: {text}")
        return found

    return number


def _ports(o: Option, ctx: Context) -> Match:
    """A port or range (tcp, udp, sctp --dport/--sport), or a list of them (multiport)."""
    ranges = []
    for spec in o.args[0].split(",") if o.module == "multiport" else o.args:
        low, sep, high = spec.partition(":")
        if not (low or "0").isdigit() or not (high or "0").isdigit():
            raise ctx.error(f"bad port {spec!r}")
        first = int(low or 0)
        ranges.append((first, int(high or 65535) if sep else first))
    port = _number(o.name[2:7], ctx.text)  # sport or dport
    return lambda p, m, s: any(low <= port(p) <= high for low, high in ranges)


def _icmp(o: Option, ctx: Context) -> Match:
    """An ICMP (family 4) or ICMPv6 (family 6) type, by name or number, without a code."""
    v6, word = o.module == "icmp6", o.args[0]
    if ctx.family != (6 if v6 else 4):
        raise ctx.error(f"-m {o.module} in IPv{ctx.family} rules")
    if word == "any":
        return lambda p, m, s: True
    kind = int(word) if word.isdigit() else (ICMPV6_TYPES if v6 else ICMP_TYPES).get(word)
    if kind is None:
        raise ctx.error(f"unsupported ICMP type {word!r} (a name or number, no code)")
    icmp_type = _number("icmp_type", ctx.text)
    return lambda p, m, s: icmp_type(p) == kind


COMPILERS: dict[str, Callable[[Option, Context], Match]] = {"-p": _protocol, "-s": _address}
COMPILERS |= {"-d": _address, "-i": _interface, "-o": _interface, "--match-set": _set}
COMPILERS |= {"--mark": _mark, "--ctstate": _ctstate, "--src-type": _addrtype}
COMPILERS |= {"--dst-type": _addrtype, "--icmp-type": _icmp, "--icmpv6-type": _icmp}
COMPILERS |= dict.fromkeys(("--dport", "--sport", "--dports", "--sports"), _ports)
