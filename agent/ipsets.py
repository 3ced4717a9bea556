"""ipsets: read through netlink, diff, and change in one `ipset restore` session.

Only sets whose names start with "cali" are owned. A set's family follows from its name: cali6
sets are `family inet6` (contract/names.py set_family), the others inet. The kernel's sets are
dumped over netlink (pyroute2's IPSet: no command runs, so a no-op reconcile is cheap);
`ipset save` is the fallback when the dump fails. Membership changes are deltas; a temporary
set and `swap` are used only when a set's type or maxelem must change. Runtime sets (pod
selectors and named ports, which the CNI plugin fills at ADD) hold the addresses of the node's
live endpoints (agent/endpoints.py): a re-apply keeps the running pods' memberships and removes
those of pods that are gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyroute2.ipset import IPSet
from pyroute2.netlink.exceptions import NetlinkError

from calicc.agent.runner import Runner
from calicc.contract.manifest import Ipset
from calicc.contract.names import IPSET_MAXELEM as MAXELEM
from calicc.contract.names import OWNED_SET_PREFIX as OWNED_PREFIX
from calicc.contract.names import TEMP_SET_PREFIX as TEMP_PREFIX
from calicc.contract.names import TEMP_SET_PREFIX_V6 as TEMP_PREFIX_V6
from calicc.contract.names import set_family

TEMP_PREFIXES = (TEMP_PREFIX, TEMP_PREFIX_V6)

MIN_WORDS = 3  # "add NAME MEMBER"
HOST_PREFIX = 32
HOST_PREFIX_V6 = 128
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}


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
        >>> member("10.0.0.1/32"), member("10.0.0.0/24"), member("FD00::1/128")
        ('10.0.0.1', '10.0.0.0/24', 'fd00::1')
    """
    text = text.strip().lower()
    return text.removesuffix("/128" if ":" in text else "/32")


def desired_sets(
    ipsets: tuple[Ipset, ...], runtime: Mapping[str, frozenset[str]]
) -> dict[str, SetState]:
    """Return the manifest's sets; runtime (selector) sets hold the live endpoints' members.

    Args:
        ipsets: node.json's ipsets.
        runtime: members of each runtime set, from the live endpoints (agent/endpoints.py).
    """
    return {
        s.name: SetState(
            s.name,
            s.type,
            MAXELEM,
            frozenset(
                member(m)
                for m in (runtime.get(s.name, ()) if s.selector is not None else s.members)
            ),
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


def _create(name: str, want: SetState, family: str | None = None) -> list[str]:
    """Return the lines creating set `name` like `want` (family: the name's, cali6 is inet6)."""
    family = family or set_family(name)
    lines = [f"create {name} {want.type} family {family} maxelem {want.maxelem}"]
    return lines + [f"add {name} {m}" for m in sorted(want.members or ())]


def _temp_name(taken: set[str], family: str = "inet") -> str:
    prefix = TEMP_PREFIX_V6 if family == "inet6" else TEMP_PREFIX
    index = 0
    while f"{prefix}{index}" in taken:
        index += 1
    return f"{prefix}{index}"


def _update(name: str, want: SetState, have: SetState, taken: set[str]) -> list[str]:
    if (want.type, want.maxelem) != (have.type, have.maxelem):
        temp = _temp_name(taken, set_family(name))
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


def summarize(lines: list[str]) -> list[str]:
    """Describe a restore input: one line per set created, swapped or destroyed, per member.

    Examples:
        >>> summarize(["create cali40a hash:ip", "add cali40a 10.0.0.1", "del cali40b 10.0.0.2"])
        ['ipset cali40a: created with 1 members', 'ipset cali40b: del 10.0.0.2']
    """
    created = {w[1] for w in (line.split() for line in lines) if w[0] == "create"}
    out: list[str] = []
    for words in (line.split() for line in lines):
        verb, name = words[0], words[1]
        if verb == "create" and not name.startswith(TEMP_PREFIXES):
            count = sum(1 for line in lines if line.startswith(f"add {name} "))
            out.append(f"ipset {name}: created with {count} members")
        elif verb in ("add", "del") and name not in created:
            out.append(f"ipset {name}: {verb} {words[2]}")
        elif verb in ("swap", "destroy") and not name.startswith(TEMP_PREFIXES):
            out.append(f"ipset {name}: {'replaced (type or size)' if verb == 'swap' else verb}")
    return sorted(out)


def _member(data: Any) -> str:
    """Return one netlink ADT entry in `ipset save`'s notation (e.g. "10.0.0.5,tcp:80")."""
    address = data.get_attr("IPSET_ATTR_IP_FROM")
    v4 = address.get_attr("IPSET_ATTR_IPADDR_IPV4")
    text = str(v4 if v4 is not None else address.get_attr("IPSET_ATTR_IPADDR_IPV6"))
    cidr = data.get_attr("IPSET_ATTR_CIDR")
    if cidr is not None and cidr != (HOST_PREFIX if v4 is not None else HOST_PREFIX_V6):
        text += f"/{cidr}"
    port = data.get_attr("IPSET_ATTR_PORT_FROM")
    if port is not None:
        proto = data.get_attr("IPSET_ATTR_PROTO")
        text += f",{PROTOCOLS.get(proto, str(proto))}:{port}"
    return text


@dataclass
class Dump:
    """The owned sets as a netlink dump returned them, with their iptables reference counts."""

    sets: dict[str, SetState]
    references: dict[str, int]


def dump_sets(prefix: str = OWNED_PREFIX) -> Dump:
    """Dump the owned sets over netlink (a large set arrives in several messages)."""
    meta: dict[str, tuple[str, int]] = {}
    refs: dict[str, int] = {}
    members: dict[str, set[str]] = {}
    with IPSet() as ips:
        for msg in ips.list():
            name = str(msg.get_attr("IPSET_ATTR_SETNAME"))
            if not name.startswith(prefix):
                continue
            data = msg.get_attr("IPSET_ATTR_DATA")
            if name not in meta and data is not None:
                maxelem = data.get_attr("IPSET_ATTR_MAXELEM") or MAXELEM
                meta[name] = (str(msg.get_attr("IPSET_ATTR_TYPENAME")), int(maxelem))
                refs[name] = int(data.get_attr("IPSET_ATTR_REFERENCES") or 0)
            found = members.setdefault(name, set())
            adt = msg.get_attr("IPSET_ATTR_ADT")
            if adt is not None:
                found.update(member(_member(d)) for d in adt.get_attrs("IPSET_ATTR_DATA"))
    sets = {n: SetState(n, t, m, frozenset(members[n])) for n, (t, m) in meta.items()}
    return Dump(sets, refs)


def read_sets(runner: Runner) -> dict[str, SetState]:
    """Return the owned sets as the kernel holds them (netlink; `ipset save` if that fails)."""
    try:
        return dump_sets().sets
    except (NetlinkError, OSError, ValueError, AttributeError):
        return parse_save(runner.run(["ipset", "save"]))


def restore(runner: Runner, lines: list[str]) -> None:
    """Run one `ipset restore` session with `lines`."""
    runner.run(["ipset", "restore"], stdin="\n".join(lines) + "\n", write=True)


def _references(runner: Runner, name: str) -> int:
    header = runner.run(["ipset", "list", "-t", name])
    refs = [line for line in header.splitlines() if line.startswith("References:")]
    return int(refs[0].split()[-1]) if refs else -1


def unreferenced(runner: Runner, names: list[str]) -> list[str]:
    """Return the sets among `names` that no iptables rule refers to any more."""
    try:
        counts = dump_sets().references
    except (NetlinkError, OSError, ValueError, AttributeError):
        counts = {name: _references(runner, name) for name in names}
    return [name for name in names if counts.get(name, -1) == 0]
