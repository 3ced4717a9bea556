"""iptables: read with iptables-save, write owned chains in one `iptables-restore --noflush`.

IPv6 the same way with ip6tables-save and ip6tables-restore (`family` 6): the text is the same.

Owned chains are named "cali-". A chain is rewritten only when its desired content changed or
the kernel's copy drifted. iptables-save prints rules in a canonical form that may differ from
the rendered text, so after each write the agent records, per chain, the digest of the desired
text and of what the kernel then held (the memo); equal digests later mean "unchanged".
Chains also compare equal in canonical form: iptables-save drops the quotes around a one-word
comment, and the per-interface rules of a dispatch chain may stand in any order (each matches
its own interface; the CNI plugin inserts each new pod's rule at the top).
Jump rules into owned chains are kept exactly once, in order, at the top or bottom of the
built-in chains; any other rule of a built-in chain jumping to an owned chain is removed.
The desired rules include the node's live endpoints (agent/endpoints.py), so pods' dispatch
rules and cali-fw-/cali-tw- chains survive, and those of pods that are gone are stale.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shlex
from dataclasses import dataclass, field

from calicc.agent.runner import Runner
from calicc.contract.manifest import JumpRule
from calicc.contract.names import FROM_DISPATCH, TO_DISPATCH
from calicc.contract.names import OWNED_CHAIN_PREFIX as OWNED_PREFIX

DISPATCH_CHAINS = (FROM_DISPATCH, TO_DISPATCH)
QUOTED_WORD = re.compile(r'"([^"\s]*)"')
Chains = dict[str, list[str]]
TOOLS = {4: "iptables", 6: "ip6tables"}  # the family's save/restore commands' stem


@dataclass
class Memo:
    """What the kernel made of what the agent wrote: chain digests and jump rule texts."""

    chains: dict[str, list[str]] = field(default_factory=dict)  # "t/chain" -> [want, have]
    rules: dict[str, str] = field(default_factory=dict)  # "t/chain desired spec" -> kernel spec


@dataclass
class Ruleset:
    """Chains per table (rule specs without "-A CHAIN "), and which chains are built in."""

    tables: dict[str, Chains] = field(default_factory=dict)
    builtins: dict[str, set[str]] = field(default_factory=dict)


def parse_rules(text: str) -> Ruleset:
    """Parse iptables-save or iptables-restore text."""
    rules = Ruleset()
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            rules.tables.setdefault(table, {})
            rules.builtins.setdefault(table, set())
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            rules.tables[table].setdefault(name, [])
            if policy != "-":
                rules.builtins[table].add(name)
        elif line.startswith("-A "):
            _, chain, spec = [*line.split(None, 2), ""][:3]
            rules.tables[table].setdefault(chain, []).append(spec)
    return rules


def digest(lines: list[str]) -> str:
    """Return a short digest of a chain's rule list."""
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:24]


def target(spec: str) -> str | None:
    """Return the chain a rule jumps or goes to, if any.

    Examples:
        >>> target("-m comment --comment 'x y' -j cali-INPUT")
        'cali-INPUT'
    """
    words = shlex.split(spec)
    for flag, name in itertools.pairwise(words):
        if flag in ("-j", "-g", "--jump", "--goto"):
            return name
    return None


def is_owned_jump(spec: str) -> bool:
    """Return whether a rule jumps to an owned chain."""
    name = target(spec)
    return name is not None and name.startswith(OWNED_PREFIX)


def same_rule(key: str, want: str, have: str, memo: Memo) -> bool:
    """Return whether kernel rule `have` is desired rule `want` (token-equal or memoised)."""
    return shlex.split(want) == shlex.split(have) or memo.rules.get(f"{key} {want}") == have


def jump_spec(rule: JumpRule) -> str:
    """Return the rule spec of a jump rule (tolerating a leading "-A CHAIN")."""
    words = rule.rule.split(None, 2)
    if len(words) == 3 and words[0] in ("-A", "-I") and words[1] == rule.chain:  # noqa: PLR2004
        return words[2]
    return rule.rule


def canonical(chain: str, rules: list[str]) -> list[str]:
    """Return a chain's rules in comparable form (see the module docstring).

    Examples:
        >>> canonical("cali-x", ['-m comment --comment "invalid" -j DROP'])
        ['-m comment --comment invalid -j DROP']
        >>> canonical("cali-to-wl-dispatch", ["-o b -g cali-tw-b", "-o a -g cali-tw-a", "-j DROP"])
        ['-o a -g cali-tw-a', '-o b -g cali-tw-b', '-j DROP']
    """
    lines = [QUOTED_WORD.sub(r"\1", r) for r in rules]
    return sorted(lines[:-1]) + lines[-1:] if chain in DISPATCH_CHAINS else lines


def chain_unchanged(key: str, want: list[str], have: list[str] | None, memo: Memo) -> bool:
    """Return whether the kernel's chain `have` already holds the desired rules `want`."""
    if have is None:
        return False
    if have == want or memo.chains.get(key) == [digest(want), digest(have)]:
        return True
    chain = key.split("/", 1)[1]
    return canonical(chain, have) == canonical(chain, want)


@dataclass
class JumpLayout:
    """A built-in chain's desired jump rules, and the rules it holds now."""

    key: str
    tops: list[str]
    bottoms: list[str]
    rules: list[str]

    def project(self, memo: Memo) -> list[int]:
        """Return the indexes of the project's rules in the chain (owned jumps, our rules)."""
        installed = set(memo.rules.values()) | set(self.tops) | set(self.bottoms)
        return [i for i, r in enumerate(self.rules) if is_owned_jump(r) or r in installed]

    def expected(self) -> list[int]:
        """Return the indexes the project's rules must occupy."""
        size = len(self.rules)
        return list(range(len(self.tops))) + list(range(size - len(self.bottoms), size))

    def ok(self, memo: Memo) -> bool:
        """Return whether each desired rule is present exactly once, in place and in order."""
        places = self.expected()
        if self.project(memo) != places or min(places, default=0) < 0:
            return False
        wanted = self.tops + self.bottoms
        return all(
            same_rule(self.key, w, self.rules[i], memo) for w, i in zip(wanted, places, strict=True)
        )

    def fix(self, chain: str, memo: Memo) -> list[str]:
        """Return restore lines that delete the project's rules and put the desired ones back."""
        lines = [f"-D {chain} {i + 1}" for i in reversed(self.project(memo))]
        lines += [f"-I {chain} {n + 1} {spec}" for n, spec in enumerate(self.tops)]
        return lines + [f"-A {chain} {spec}" for spec in self.bottoms]


def jump_layouts(
    table: str, current: Chains, builtins: set[str], jumps: tuple[JumpRule, ...]
) -> dict[str, JumpLayout]:
    """Return the layout of every built-in chain that has, or should have, project rules."""
    layouts: dict[str, JumpLayout] = {}
    for chain in sorted(builtins | {j.chain for j in jumps if j.table == table}):
        mine = [j for j in jumps if j.table == table and j.chain == chain]
        rules = current.get(chain, [])
        if mine or any(is_owned_jump(r) for r in rules):
            tops = [jump_spec(j) for j in mine if j.position == "top"]
            bottoms = [jump_spec(j) for j in mine if j.position == "bottom"]
            layouts[chain] = JumpLayout(f"{table}/{chain}", tops, bottoms, rules)
    return layouts


def owned_chains(chains: Chains, builtins: set[str]) -> set[str]:
    """Return the owned (user-defined "cali-") chains of a table."""
    return {c for c in chains if c.startswith(OWNED_PREFIX) and c not in builtins}


def plan_table(
    table: str, desired: Ruleset, current: Ruleset, jumps: tuple[JumpRule, ...], memo: Memo
) -> list[str]:
    """Return the restore lines for one table (empty when it already matches)."""
    rendered = desired.tables.get(table, {})
    want = {c: rendered[c] for c in owned_chains(rendered, desired.builtins.get(table, set()))}
    have = current.tables.get(table, {})
    builtins = current.builtins.get(table, set())
    write = sorted(
        c for c in want if not chain_unchanged(f"{table}/{c}", want[c], have.get(c), memo)
    )
    stale = sorted(owned_chains(have, builtins) - set(want))
    fixes: list[str] = []
    for chain, layout in jump_layouts(table, have, builtins, jumps).items():
        if not layout.ok(memo):
            fixes += layout.fix(chain, memo)
    if not (write or stale or fixes):
        return []
    lines = [f"*{table}", *(f":{c} - [0:0]" for c in sorted({*write, *stale}))]
    lines += [f"-A {c} {spec}" for c in write for spec in want[c]]
    return [*lines, *fixes, *(f"-X {c}" for c in stale), "COMMIT"]


def plan_ruleset(
    desired: Ruleset, current: Ruleset, jumps: tuple[JumpRule, ...], memo: Memo
) -> list[str]:
    """Return the whole restore input (every table that needs a change), or nothing."""
    tables = sorted(set(desired.tables) | set(current.tables) | {j.table for j in jumps})
    lines: list[str] = []
    for table in tables:
        lines += plan_table(table, desired, current, jumps, memo)
    return lines


def learn(memo: Memo, desired: Ruleset, after: Ruleset, jumps: tuple[JumpRule, ...]) -> None:
    """Record what the kernel holds for every desired chain and jump rule after a write."""
    for table, chains in desired.tables.items():
        held = after.tables.get(table, {})
        for chain in owned_chains(chains, desired.builtins.get(table, set())):
            if chain in held:
                memo.chains[f"{table}/{chain}"] = [digest(chains[chain]), digest(held[chain])]
    for table in {j.table for j in jumps}:
        have = after.tables.get(table, {})
        for chain, layout in jump_layouts(table, have, set(), jumps).items():
            for spec, i in zip(layout.tops + layout.bottoms, layout.expected(), strict=True):
                if 0 <= i < len(layout.rules):
                    memo.rules[f"{table}/{chain} {spec}"] = layout.rules[i]


def summarize(lines: list[str], family: int = 4) -> list[str]:
    """Describe a restore input in one line per chain written, removed or re-jumped."""
    tool = TOOLS[family]
    table = ""
    out: list[str] = []
    for line in lines:
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            out.append(f"{tool} {table}/{line[1:].split()[0]}: written")
        elif line.startswith("-X "):
            out.append(f"{tool} {table}/{line[3:]}: removed (stale)")
        elif line.startswith(("-I ", "-D ")):
            out.append(f"{tool} {table}/{line.split()[1]}: jump rules fixed")
    return sorted(set(out))


def read_ruleset(runner: Runner, family: int = 4) -> Ruleset:
    """Return the kernel's rules (all tables) through iptables-save (ip6tables-save: family 6)."""
    return parse_rules(runner.run([f"{TOOLS[family]}-save"]))


def family_jumps(jumps: tuple[JumpRule, ...], desired: Ruleset) -> tuple[JumpRule, ...]:
    """Return the jump rules whose target chain the desired rules declare in its table.

    The IPv6 rules hold fewer chains than the IPv4 ones (no host protection yet), and both
    files share cluster.json's hooks: a hook into a chain a file lacks is not kept in its
    family (jumping to a missing chain fails the whole restore).
    """
    return tuple(
        j
        for j in jumps
        if (name := target(jump_spec(j))) is None or name in desired.tables.get(j.table, {})
    )


def reconcile_iptables(
    runner: Runner,
    rules_text: str,
    current: Ruleset,
    jumps: tuple[JumpRule, ...],
    memo: Memo,
    *,
    family: int = 4,
) -> list[str]:
    """Plan against `current` and, when anything differs, apply one iptables-restore transaction.

    Args:
        runner: runs the commands.
        rules_text: the desired rules (iptables.rules merged with the live endpoints).
        current: the kernel's rules, read before the endpoint records were (agent/endpoints.py).
        jumps: node.json's jump rules.
        memo: what the kernel made of earlier writes (one per family); updated after a write.
        family: 4 (iptables-save/-restore) or 6 (ip6tables-save/-restore); the text
            processing is the same.

    Returns:
        One line per change; empty when nothing was written (no restore was run).
    """
    desired = parse_rules(rules_text)
    lines = plan_ruleset(desired, current, jumps, memo)
    if not lines:
        return []
    text = "\n".join(lines) + "\n"
    runner.run([f"{TOOLS[family]}-restore", "--noflush", "--wait"], stdin=text, write=True)
    learn(memo, desired, read_ruleset(runner, family), jumps)
    return summarize(lines, family)
