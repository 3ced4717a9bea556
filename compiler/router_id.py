"""BGP router ids: 32-bit in both families, so an IPv6-only node needs one found elsewhere.

A node's router id is its `router_id` when set, else its IPv4 address (Calico's default), else
one derived from its name: the first four bytes of sha256(name) with the top bit set, so it is
stable across builds, never 0.0.0.0 (which BGP refuses), and needs no state in the lock. The
checks refuse two nodes with the same id, naming both.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address

from calicc.compiler.model.spec import Node

TOP_BIT = 0x80


def derived_router_id(name: str) -> IPv4Address:
    """Return the router id derived from a node's name.

    Examples:
        >>> derived_router_id("n1")
        IPv4Address('231.107.139.184')
    """
    digest = bytearray(hashlib.sha256(name.encode()).digest()[:4])
    digest[0] |= TOP_BIT
    return IPv4Address(bytes(digest))


def router_id(node: Node) -> IPv4Address:
    """Return the node's BGP router id: its router_id, its IPv4 address, or the derived one."""
    if node.router_id is not None:
        return IPv4Address(node.router_id)
    if node.address is not None:
        return node.address.ip
    return derived_router_id(node.name)
