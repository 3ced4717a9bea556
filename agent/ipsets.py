"""ipsets: read with `ipset save`, diff, and change in one `ipset restore` session.

Only sets whose names start with "cali" are owned. Membership changes are deltas; a temporary
set and `swap` are used only when a set's type or maxelem must change. Selector sets (filled by
the CNI plugin at runtime) are created when missing but their members are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.runner import Runner
from compiler.model.manifest import Ipset

OWNED_PREFIX = "cali"
MAXELEM = 1048576
MIN_WORDS = 3  # "add NAME MEMBER"


@dataclass(frozen=True)
class SetState:
    """One set: name, type, maxelem and members (None: membership not managed here)."""

    name: str
    type: str
    maxelem: int = MAXELEM
    members: frozenset[str] | None = frozenset()


def member(text: str) -> str:
    """Normalise a member as `ipset save` prints it (a /32 network is a bare address).

    Examples:
        >>> member("10.0.0.1/32"), member("10.0.0.0/24")
        ('10.0.0.1', '10.0.0.0/24')
    """
    text = text.strip().lower()
    return text.removesuffix("/32")


def desired_sets(ipsets: tuple[Ipset, ...]) -> dict[str, SetState]:
    """Return the manifest's sets; selector sets leave their membership unmanaged."""
    return {
        s.name: SetState(
            s.name,
            s.type,
            MAXELEM,
            None if s.selector is not None else frozenset(member(m) for m in s.members),
        )
        for s in ipsets
    }


def parse_save(text: str, prefix: str = OWNED_PREFIX) -> dict[str, SetState]:
    """Parse `ipset save` output, keeping only the owned sets."""
    meta: dict[str, tuple[str, int]] = {}
    members: dict[str, set[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < MIN_WORDS or not words[1].startswith(prefix):
            continue
        if words[0] == "create":
            opts = dict(zip(words[3::2], words[4::2], strict=False))
            meta[words[1]] = (words[2], int(opts.get("maxelem", MAXELEM)))
            members.setdefault(words[1], set())
        elif words[0] == "add":
            members.setdefault(words[1], set()).add(member(words[2]))
    return {n: SetState(n, t, m, frozenset(members[n])) for n, (t, m) in meta.items()}


def _create(name: str, want: SetState) -> list[str]:
    lines = [f"create {name} {want.type} family inet maxelem {want.maxelem}"]
    return lines + [f"add {name} {m}" for m in sorted(want.members or ())]


def _temp_name(taken: set[str]) -> str:
    index = 0
    while f"cali4t{index}" in taken:
        index += 1
    return f"cali4t{index}"


def _update(name: str, want: SetState, have: SetState, taken: set[str]) -> list[str]:
    if (want.type, want.maxelem) != (have.type, have.maxelem):
        temp = _temp_name(taken)
        taken.add(temp)
        return [*_create(temp, want), f"swap {name} {temp}", f"destroy {temp}"]
    if want.members is None or have.members is None:
        return []
    adds = [f"add {name} {m} -exist" for m in sorted(want.members - have.members)]
    return adds + [f"del {name} {m} -exist" for m in sorted(have.members - want.members)]


def diff_sets(
    desired: dict[str, SetState], current: dict[str, SetState]
) -> tuple[list[str], list[str]]:
    """Return (restore lines to reach `desired`, names of stale owned sets)."""
    taken = set(current) | set(desired)
    lines: list[str] = []
    for name, want in sorted(desired.items()):
        have = current.get(name)
        lines += _create(name, want) if have is None else _update(name, want, have, taken)
    return lines, sorted(set(current) - set(desired))


def read_sets(runner: Runner) -> dict[str, SetState]:
    """Return the owned sets as the kernel holds them."""
    return parse_save(runner.run(["ipset", "save"]))


def restore(runner: Runner, lines: list[str]) -> None:
    """Run one `ipset restore` session with `lines`."""
    runner.run(["ipset", "restore"], stdin="\n".join(lines) + "\n", write=True)


def unreferenced(runner: Runner, names: list[str]) -> list[str]:
    """Return the sets among `names` that no iptables rule refers to any more."""
    free = []
    for name in names:
        header = runner.run(["ipset", "list", "-t", name])
        refs = [line for line in header.splitlines() if line.startswith("References:")]
        if refs and refs[0].split()[-1] == "0":
            free.append(name)
    return free
