"""Reserved addresses (cluster.yaml `reservations`, Calico's IPReservation), as integer ranges.

The lock asks three questions of them: is a block wholly reserved (then it is never allocated,
as Calico's IPAM skips such a block), how many of a block's addresses are reserved (a node's
blocks must still hold its pods), and which is a block's first address that is not (its tunnel
address). Every answer costs a bisection over the reservations of the block's family, never a
walk over the block's addresses; with no reservation every answer is immediate.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    collapse_addresses,
    ip_address,
)

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


class Reserved:
    """The reserved ranges of both families, merged: sorted, disjoint (first, last) pairs."""

    def __init__(self, networks: Iterable[Network]) -> None:
        nets = tuple(networks)
        self.ranges: dict[int, list[tuple[int, int]]] = {}
        for version, kind in ((4, IPv4Network), (6, IPv6Network)):
            mine = [n for n in nets if isinstance(n, kind)]
            if mine:
                merged = collapse_addresses(mine)  # type: ignore[type-var]  # one family
                self.ranges[version] = [
                    (int(n.network_address), int(n.broadcast_address)) for n in merged
                ]
        self.firsts = {v: [first for first, _ in r] for v, r in self.ranges.items()}

    def __bool__(self) -> bool:
        """Return whether anything is reserved."""
        return bool(self.ranges)

    def _overlapping(self, first: int, last: int, version: int) -> list[tuple[int, int]]:
        """Return the reserved ranges of `version` that overlap first..last."""
        ranges = self.ranges.get(version)
        if not ranges:
            return []
        at = max(0, bisect.bisect_right(self.firsts[version], first) - 1)
        found = []
        for low, high in ranges[at:]:
            if low > last:
                break
            if high >= first:
                found.append((low, high))
        return found

    def count(self, block: Network) -> int:
        """Return how many addresses of `block` are reserved."""
        first, last = int(block.network_address), int(block.broadcast_address)
        return sum(
            min(high, last) - max(low, first) + 1
            for low, high in self._overlapping(first, last, block.version)
        )

    def covers(self, block: Network) -> bool:
        """Return whether every address of `block` is reserved."""
        return self.count(block) == block.num_addresses

    def first_free(self, block: Network) -> Address | None:
        """Return the lowest address of `block` that is not reserved (None: all are)."""
        first, last = int(block.network_address), int(block.broadcast_address)
        value = first
        for low, high in self._overlapping(first, last, block.version):
            if low > value:
                break
            value = max(value, high + 1)
        return ip_address(value) if value <= last else None

    def holds(self, address: Address) -> bool:
        """Return whether `address` is reserved."""
        value = int(address)
        return bool(self._overlapping(value, value, address.version))

    def blocks_of(self, pool: Network, block_size: int) -> tuple[int, int]:
        """Return (wholly, partly) reserved blocks of /`block_size` in `pool`.

        `partly` may count a block twice when two reservations touch it (an upper bound).
        """
        shift = pool.max_prefixlen - block_size
        first, last = int(pool.network_address), int(pool.broadcast_address)
        whole = touched = 0
        for start, end in self._overlapping(first, last, pool.version):
            low, high = max(start, first) - first, min(end, last) - first
            whole += max(0, ((high + 1) >> shift) - (-(-low >> shift)))
            touched += (high >> shift) - (low >> shift) + 1
        return whole, touched - whole
