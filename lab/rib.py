"""What a lab speaker learned: one path per (prefix, neighbor), read from BIRD or GoBGP.

The lab proves BGP features by the speakers' RIBs, not by the text calicc rendered: the prefix,
its next hop, AS path, communities (standard "a:b", large "a:b:c"), local preference and MED,
in one shape whichever daemon learned them (calicc.lab.bird.bird_rib, calicc.lab.gobgp.rib_paths).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RibPath:
    """One path of one prefix as a speaker holds it."""

    prefix: str
    next_hop: str
    as_path: tuple[int, ...] = ()
    communities: tuple[str, ...] = ()  # standard: "asn:value", 16 bits each
    large_communities: tuple[str, ...] = ()  # "global:local1:local2", 32 bits each
    local_pref: int | None = None
    med: int | None = None


def standard_community(value: int) -> str:
    """Return a 32-bit community as "high:low".

    Examples:
        >>> standard_community(64512 << 16 | 100)
        '64512:100'
    """
    return f"{value >> 16}:{value & 0xFFFF}"


def by_prefix(paths: Iterable[RibPath]) -> dict[str, list[RibPath]]:
    """Group paths by prefix, each prefix's paths sorted (deterministic for comparisons)."""
    grouped: dict[str, list[RibPath]] = {}
    for path in paths:
        grouped.setdefault(path.prefix, []).append(path)
    return {k: sorted(v, key=repr) for k, v in sorted(grouped.items())}
