"""Parse iptables-restore text, as calicc renders it, into chains of compiled rules.

Each rule is parsed once: its matches become small predicates `(packet, mark, sets) -> bool`
(trace/walk.py evaluates them in order, stopping at the first that fails) and its target a
`kind` the walk dispatches on. Only the forms calicc renders are understood; any other option,
match module, target or line raises RuleError naming the rule, since a rule read as matching
less (or more) than it does would give a wrong verdict, which is worse than none.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from calicc.trace.matches import (
    Context,
    Match,
    Option,
    RuleError,
    compile_option,
    needs_protocol,
    value_mask,
)

BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
GENERIC = {"-p": 1, "-s": 1, "-d": 1, "-i": 1, "-o": 1}
MODULES: dict[str, dict[str, int]] = {  # match module -> its options and their arity
    "comment": {"--comment": 1},
    "set": {"--match-set": 2},
    "mark": {"--mark": 1},
    "conntrack": {"--ctstate": 1},
    "addrtype": {"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0},
    "tcp": {"--dport": 1, "--sport": 1},
    "udp": {"--dport": 1, "--sport": 1},
    "sctp": {"--dport": 1, "--sport": 1},
    "multiport": {"--dports": 1, "--sports": 1},
    "icmp": {"--icmp-type": 1},
    "icmp6": {"--icmpv6-type": 1},
}
NAT = frozenset({"nat"})
TARGETS: dict[str, tuple[str, dict[str, int], frozenset[str] | None]] = {  # kind, options, tables
    "ACCEPT": ("verdict", {}, None),
    "DROP": ("verdict", {}, None),
    "REJECT": ("verdict", {"--reject-with": 1}, None),
    "RETURN": ("return", {}, None),
    "MARK": ("mark", {"--set-xmark": 1, "--set-mark": 1}, None),
    "LOG": ("log", {"--log-prefix": 1, "--log-level": 1}, None),
    "MASQUERADE": ("nat", {"--random-fully": 0, "--random": 0, "--to-ports": 1}, NAT),
    "SNAT": ("nat", {"--to-source": 1, "--random-fully": 0, "--random": 0}, NAT),
    "DNAT": ("nat", {"--to-destination": 1, "--random": 0}, NAT),
}


@dataclass(frozen=True, eq=False)  # eq=False: compared and hashed by identity (walk caches)
class Rule:
    """One `-A` rule: its number in its chain (as `iptables -L --line-numbers`), text, target.

    `kind` is what the walk does when it matches: verdict (ACCEPT, DROP, REJECT), return,
    jump, goto, mark (`xmark`: mark = (mark & ~mask) ^ value), log, or nat (MASQUERADE, SNAT,
    DNAT: the nat table's verdict). `action` is how a trace shows that.
    """

    chain: str
    number: int
    text: str
    comment: str
    target: str
    target_args: tuple[str, ...]
    goto: bool
    matches: tuple[Match, ...]
    kind: str
    action: str
    xmark: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Chain:
    """A chain: its policy (ACCEPT or DROP for built-in chains, "-" for user chains), rules."""

    name: str
    policy: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Table:
    """A table's chains by name, for IP `family` 4 (iptables) or 6 (ip6tables)."""

    name: str
    chains: Mapping[str, Chain]
    family: int = 4


def parse_tables(text: str, family: int = 4) -> dict[str, Table]:
    """Return the tables of iptables-restore `text` (`family` 6: ip6tables' ICMPv6, addresses).

    Built-in chains a table appends to without declaring them get the kernel's default
    policy, ACCEPT. A second section for the same table is refused (restore semantics differ
    with and without --noflush).
    """
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, not {family}")
    tables: dict[str, Table] = {}
    draft: _Draft | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            if draft is not None or line[1:] in tables or line[1:] not in BUILTIN_CHAINS:
                raise RuleError(f"line {number}: unexpected table {line!r}")
            draft = _Draft(line[1:])
        elif draft is None:
            raise RuleError(f"line {number}: {line!r} outside a table")
        elif line == "COMMIT":
            tables[draft.name], draft = draft.build(family), None
        else:
            draft.add(line, number)
    if draft is not None:
        raise RuleError(f"table {draft.name} has no COMMIT")
    return tables


class _Draft:
    """A table being read: chain policies and rule lines, compiled at COMMIT."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.policies: dict[str, str] = {}
        self.lines: dict[str, list[str]] = {}

    def add(self, line: str, number: int) -> None:
        words = line.split()
        declare = words[0].startswith(":")
        name = words[0][1:] if declare else (words[1:] or [""])[0]
        builtin = name in BUILTIN_CHAINS[self.name]
        if declare and words[1:] and name not in self.policies:
            if words[1] not in (("ACCEPT", "DROP") if builtin else ("-",)):
                raise RuleError(f"line {number}: bad policy in {line!r}")
            self.policies[name], self.lines[name] = words[1], []
        elif words[0] == "-A" and words[2:] and (builtin or name in self.policies):
            if name not in self.policies:
                self.policies[name], self.lines[name] = "ACCEPT", []
            self.lines[name].append(line)
        else:
            raise RuleError(f"line {number}: unsupported or undeclared: {line!r}")

    def build(self, family: int) -> Table:
        names = frozenset(self.policies)
        chains = {
            name: Chain(
                name,
                self.policies[name],
                tuple(self._rule(text, i, names, family) for i, text in enumerate(lines, 1)),
            )
            for name, lines in self.lines.items()
        }
        return Table(self.name, chains, family)

    def _rule(self, text: str, number: int, chains: frozenset[str], family: int) -> Rule:
        key = (self.name, family, text)
        compiled = _COMPILED.get(key)
        if compiled is None:
            words = _words(text)
            options, target = _options(words, text)
            ctx = Context(family, text, options)
            needs_protocol(options, ctx)
            matches = tuple(m for o in options if (m := compile_option(o, ctx)) is not None)
            comment = " ".join(o.args[0] for o in options if o.name == "--comment")
            compiled = _COMPILED[key] = (words[1], comment, matches, target, ctx)
        chain, comment, matches, target, ctx = compiled
        fields = _target(target, ctx, self.name, chains)  # the jump target must exist here
        return Rule(chain, number, text, comment, *fields[:3], matches, *fields[3:])


# Compiled rules by (table, family, text): every node of a role has the same file, so a trace
# touching many nodes compiles each shared rule once. Rules are immutable; the target is
# checked against each table's chains when the rule is placed.
_COMPILED: dict[tuple[str, int, str], tuple[str, str, tuple[Match, ...], list[str], Context]] = {}


def _words(text: str) -> list[str]:
    """Split a rule as the shell would (shlex).

    str.split serves when every double-quoted part is a whole word without escapes, how
    iptables-save and calicc write comments: 20 times faster than shlex.
    """
    parts = text.split('"')
    simple = "\\" not in text and "'" not in text and len(parts) % 2 == 1
    last = len(parts) - 1
    for i in range(1, last, 2) if simple else ():
        before, after = parts[i - 1], parts[i + 1]
        if not (before.endswith(" ") or (i == 1 and before == "")) or not (
            after.startswith(" ") or (i + 1 == last and after == "")
        ):
            simple = False
            break
    if not simple:
        try:
            return shlex.split(text)
        except ValueError as exc:
            raise RuleError(f"{exc} in rule: {text}") from None
    words: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            words.append(part)
        else:
            words.extend(part.split())
    return words


def _options(words: list[str], text: str) -> tuple[tuple[Option, ...], list[str]]:
    """Split a rule's words into its options (in order) and its target words."""
    out: list[Option] = []
    i, instance, module, negated = 2, 0, "", False
    while i < len(words):
        word = words[i]
        if word in ("-j", "-g") and not negated:
            return tuple(sorted(out, key=lambda o: o.module != "")), words[i:]  # header first
        if word == "!" and not negated:
            negated, i = True, i + 1
            continue
        if word == "-m" and not negated:
            module = words[i + 1] if i + 1 < len(words) else ""
            if module not in MODULES:
                raise RuleError(f"unknown match module {module!r} in rule: {text}")
            instance, i = instance + 1, i + 2
            continue
        owner = "" if word in GENERIC else module
        arity = GENERIC.get(word) if owner == "" else MODULES[owner].get(word)
        if arity is None or i + 1 + arity > len(words):
            raise RuleError(f"unknown option {word!r} (match {module or 'none'}) in rule: {text}")
        out.append(Option(instance, owner, word, negated, tuple(words[i + 1 : i + 1 + arity])))
        i, negated = i + 1 + arity, False
    raise RuleError(f"no -j or -g target in rule: {text}")


def _target(
    words: list[str], ctx: Context, table: str, chains: frozenset[str]
) -> tuple[str, tuple[str, ...], bool, str, str, tuple[int, int]]:
    """Return target, args, goto, kind, action and MARK's (value, mask) of a rule's target."""
    name, args = (words[1] if len(words) > 1 else ""), tuple(words[2:])
    if name in chains and name not in BUILTIN_CHAINS[table] and not args:
        goto = words[0] == "-g"
        kind = "goto" if goto else "jump"
        return name, args, goto, kind, f"{kind} {name}", (0, 0)
    kind, allowed, tables = TARGETS.get(name, ("", {}, None))
    if not kind or words[0] == "-g" or (tables is not None and table not in tables):
        raise ctx.error(f"unknown target {name!r} (table {table})")
    given: dict[str, str] = {}
    i = 0
    while i < len(args):
        arity = allowed.get(args[i])
        if arity is None or i + 1 + arity > len(args):
            raise ctx.error(f"unknown option {args[i]!r} of target {name}")
        given[args[i]], i = " ".join(args[i + 1 : i + 1 + arity]), i + 1 + arity
    if kind != "mark":
        return name, args, False, kind, " ".join((name, *args)), (0, 0)
    if len(given) != 1:
        raise ctx.error("MARK needs one of --set-xmark, --set-mark")
    [(option, spec)] = given.items()
    value, mask = value_mask(spec, ctx)
    xmark = (value, mask) if option == "--set-xmark" else (value, mask | value)
    return name, args, False, kind, f"MARK {xmark[0]:#x}/{xmark[1]:#x}", xmark
