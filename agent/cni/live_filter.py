"""The node's filter table as endpoint policy reads it, kept between requests in the agent.

ADD and DEL need the live filter table (is the node's dispatch chain there, is this endpoint's
dispatch rule already in place). `iptables-save` costs 2-20 ms per request, so the agent's CNI
server keeps the text it last read or wrote, keyed by the network namespace and the nftables
ruleset generation (any change by anyone bumps it). A read with an unchanged generation reuses
the text; after one of our own `iptables-restore --noflush` transactions the
text is updated with what that transaction did (`apply_restore`) when the generation moved by
exactly one, i.e. nothing else changed the ruleset in between; otherwise the next read runs
`iptables-save` again. Without a readable generation (legacy backend) every read runs it.
Callers hold `FilterCache.lock` across read, restore and `restored`, so the requests of one
process program endpoints one at a time (iptables-restore serialises on the xtables lock anyway).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass

from calicc.agent.cni.rtnl import nft_generation


@dataclass(frozen=True)
class Snapshot:
    """The filter table's text and the generation it was read (or computed) at."""

    netns: int
    generation: int | None
    text: str


def _chain_of(line: str) -> str:
    return line.split(" ", 2)[1]


def _apply_line(lines: list[str], line: str) -> None:
    verb, _, rest = line.partition(" ")
    if line.startswith(":"):  # declaring a chain under --noflush also flushes it
        name = line[1:].split(" ", 1)[0]
        lines[:] = [ln for ln in lines if not ln.startswith(f"-A {name} ")]
        if not any(ln.startswith(f":{name} ") for ln in lines):
            at = max((i + 1 for i, ln in enumerate(lines) if ln.startswith(":")), default=0)
            lines.insert(at, line)
    elif verb == "-A":
        lines.append(line)
    elif verb == "-I":
        chain, _, rule = rest.partition(" 1 ")
        first = [i for i, ln in enumerate(lines) if ln.startswith(f"-A {chain} ")]
        lines.insert(first[0] if first else len(lines), f"-A {chain} {rule}")
    elif verb == "-D" and f"-A {rest}" in lines:
        lines.remove(f"-A {rest}")
    elif verb == "-F":
        lines[:] = [ln for ln in lines if not ln.startswith(f"-A {rest} ")]
    elif verb == "-X":
        lines[:] = [ln for ln in lines if not ln.startswith(f":{rest} ")]


def apply_restore(live: str, restore: str) -> str:
    r"""Return `live` (iptables-save text of the filter table) after a `--noflush` restore.

    Understands what contract.endpoint's add_restore and del_restore emit: chain
    declarations, -A, -I CHAIN 1, -D, -F, -X. Rules are kept in the form they were restored in,
    which for dispatch rules is iptables-save's own form (add_restore relies on that).

    Examples:
        >>> apply_restore(":X - [0:0]\n-A X -j DROP\n", "*filter\n-I X 1 -j RETURN\nCOMMIT\n")
        ':X - [0:0]\n-A X -j RETURN\n-A X -j DROP\n'
    """
    lines = [ln for ln in live.splitlines() if ln]
    tail = [ln for ln in lines if ln == "COMMIT" or ln.startswith("# Completed")]
    lines = [ln for ln in lines if ln not in tail]
    for line in restore.splitlines():
        if line and line not in ("*filter", "COMMIT") and not line.startswith("#"):
            _apply_line(lines, line)
    return "\n".join([*lines, *tail]) + "\n"


def iptables_backend() -> str:
    """Return "nft" or "legacy": the backend the `iptables` on PATH uses (no command is run).

    Debian's alternatives point iptables at xtables-nft-multi or xtables-legacy-multi.
    """
    found = shutil.which("iptables")
    target = os.path.basename(os.path.realpath(found)) if found else ""
    return "nft" if "nft" in target else "legacy"


def current_netns() -> int:
    """Return the inode of the calling thread's network namespace."""
    return os.stat("/proc/thread-self/ns/net").st_ino


class FilterCache:
    """The last filter text per network namespace (see the module docstring)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and iptables_backend() == "nft"
        self.lock = threading.Lock()
        self._known: dict[int, Snapshot] = {}

    def read(self, save: Callable[[], str]) -> Snapshot:
        """Return the live filter text: cached while the generation holds, else `save()`."""
        netns = current_netns()
        generation = nft_generation() if self.enabled else None
        known = self._known.get(netns)
        if generation is not None and known is not None and known.generation == generation:
            return known
        snapshot = Snapshot(netns, generation, save())
        if generation is not None:
            self._known[netns] = snapshot
        return snapshot

    def advance(self, base: Snapshot, steps: int) -> None:
        """Keep this table's text across `steps` transactions of ours on the other family's.

        `base` is what the restored table was read at: when this table's snapshot is of that
        generation and the ruleset moved by exactly `steps`, nothing changed this table (an
        ip6tables restore leaves iptables' filter table as it is, and the reverse).
        """
        known = self._known.get(base.netns)
        if known is None or base.generation is None or known.generation != base.generation:
            return
        if nft_generation() == base.generation + steps:
            self._known[base.netns] = Snapshot(base.netns, base.generation + steps, known.text)

    def restored(self, before: Snapshot, restore: str, steps: int = 1) -> None:
        """Record that `restore` was applied on top of `before` (one nftables transaction).

        `steps`: the transactions of ours since `before`, this one included (an ip6tables
        restore run beside the iptables one moves the same generation).
        """
        self._known.pop(before.netns, None)
        if before.generation is None:
            return
        generation = nft_generation()
        if generation == before.generation + steps:
            text = apply_restore(before.text, restore)
            self._known[before.netns] = Snapshot(before.netns, generation, text)
