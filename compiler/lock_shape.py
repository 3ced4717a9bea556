"""The shape of cluster.lock.yaml: which keys, which types, which spelling of each value.

Shape only: whether a block fits its pool, or collides with another node's, is decided in
lock_check.py against the cluster's pools. Every value is checked for its type before it is
used, so a string where a list belongs is reported, never iterated character by character.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Any

from calicc.compiler.errors import Problem
from calicc.compiler.load import Source
from calicc.compiler.lock import LOCK_VERSION, Lock, Network, NodeAllocation
from calicc.compiler.lock_adopted import shape_adopted
from calicc.contract.text import cut

Loc = tuple[str | int, ...]
TOP_KEYS = ("nodes", "version")
NODE_KEYS = ("adopted", "blocks", "tunnel_address", "tunnel_address_v6", "vtep_mac", "vtep_mac_v6")
MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
GIT = "restore the file from git"
RESTORE = f"{GIT}, or fix this entry"


def show(value: Any) -> str:
    """Return a short description of a value for a message (long values are cut)."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list"}
    if isinstance(value, str):
        return f"the string {cut(repr(value))}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    return kinds.get(type(value), type(value).__name__)


class _Shape:
    """Collects shape problems while converting the data into a Lock."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def fail(self, loc: Sequence[str | int], message: str) -> None:
        self.problems.append(self.source.problem(loc, message))

    def mapping(self, loc: Loc, value: Any, what: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(loc, f"expected {what}, got {show(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.fail(loc, f"expected {what}; the key {key!r} is not a name (quote it)")
                return None
        return value

    def keys(self, loc: Loc, value: dict[str, Any], valid: Sequence[str]) -> None:
        for key in value:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail((*loc, key), f"unknown key{hint}; valid keys here: {', '.join(valid)}")

    def version(self, data: dict[str, Any]) -> None:
        if "version" not in data:
            missing = f"`version: {LOCK_VERSION}` is missing (calicc writes it last)"
            self.fail((), f"{missing}: a truncated file? {GIT}")
        elif type(data["version"]) is not int or data["version"] != LOCK_VERSION:
            self.fail(
                ("version",),
                f"unsupported lock version {show(data['version'])}: "
                f"this calicc reads version {LOCK_VERSION}",
            )

    def lock(self) -> Lock:
        if self.source.data is None:
            self.problems.append(Problem(str(self.source.path), 1, None, "", f"empty: {GIT}"))
            return Lock()
        data = self.mapping((), self.source.data, "a mapping with `version` and `nodes`")
        if data is None:
            return Lock()
        self.keys((), data, TOP_KEYS)
        self.version(data)
        if "nodes" not in data:
            self.fail((), f"`nodes` is missing: {GIT}")
            return Lock()
        nodes = self.mapping(("nodes",), data["nodes"], "a mapping of node name to allocations")
        if nodes is None:
            return Lock()
        found = {name: self.node(("nodes", name), entry) for name, entry in nodes.items()}
        return Lock(nodes={name: alloc for name, alloc in found.items() if alloc is not None})

    def node(self, loc: Loc, entry: Any) -> NodeAllocation | None:
        mine = self.mapping(loc, entry, "a mapping with `blocks` (and tunnel_address, vtep_mac)")
        if mine is None:
            return None
        self.keys(loc, mine, NODE_KEYS)
        if "blocks" not in mine:
            self.fail(loc, f"`blocks` is missing; {RESTORE}")
            return None
        pools = self.mapping((*loc, "blocks"), mine["blocks"], "a mapping of pool name to blocks")
        blocks = {pool: self.blocks((*loc, "blocks", pool), v) for pool, v in (pools or {}).items()}
        tunnel = self.address((*loc, "tunnel_address"), mine.get("tunnel_address"))
        tunnel_v6 = self.address_v6((*loc, "tunnel_address_v6"), mine.get("tunnel_address_v6"))
        mac = self.mac((*loc, "vtep_mac"), mine.get("vtep_mac"))
        mac_v6 = self.mac((*loc, "vtep_mac_v6"), mine.get("vtep_mac_v6"))
        adopted = mine.get("adopted", [])
        found = shape_adopted((*loc, "adopted"), adopted, self.fail)
        return NodeAllocation(
            blocks=blocks,
            tunnel_address=tunnel,
            vtep_mac=mac,
            tunnel_address_v6=tunnel_v6,
            vtep_mac_v6=mac_v6,
            adopted=found,
        )

    def blocks(self, loc: Loc, value: Any) -> tuple[Network, ...]:
        if isinstance(value, str):
            self.fail(
                loc,
                f"expected a list of blocks, got {show(value)}: write each block "
                "on its own line as `- 10.244.0.0/26`",
            )
            return ()
        if not isinstance(value, list):
            self.fail(
                loc, f"expected a list of blocks such as `- 10.244.0.0/26`, got {show(value)}"
            )
            return ()
        found = (self.network((*loc, i), item) for i, item in enumerate(value))
        return tuple(net for net in found if net is not None)

    def network(self, loc: Loc, value: Any) -> Network | None:
        if not isinstance(value, str) or "/" not in value:
            self.fail(
                loc,
                f"expected a block such as 10.244.0.0/26 or fd00:244::/122, got {show(value)}",
            )
            return None
        try:
            net = ip_network(value)
        except ValueError:
            self.fail(loc, _bad_network(value))
            return None
        if str(net) != value:
            self.fail(loc, f"write {show(value)} as {net}")
            return None
        return net

    def address(self, loc: Loc, value: Any) -> IPv4Address | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return IPv4Address(value)
            except ValueError:
                pass
        self.fail(loc, f"expected an IPv4 address such as 10.244.0.0, got {show(value)}")
        return None

    def address_v6(self, loc: Loc, value: Any) -> IPv6Address | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                address = IPv6Address(value)
            except ValueError:
                pass
            else:
                if str(address) == value:
                    return address
                self.fail(loc, f"write {show(value)} as {address}")
                return None
        self.fail(loc, f"expected an IPv6 address such as fd00:244::, got {show(value)}")
        return None

    def mac(self, loc: Loc, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            self.fail(loc, "YAML read this MAC as a number (sexagesimal): quote it")
        elif not isinstance(value, str) or not MAC.fullmatch(value):
            self.fail(loc, f"expected a MAC such as 66:b3:68:28:39:8e, got {show(value)}")
        elif int(value[:2], 16) & 1:
            self.fail(
                loc, f"{value} is a multicast MAC; a VTEP needs a unicast one (even first octet)"
            )
        else:
            return value.lower()
        return None


def _bad_network(value: str) -> str:
    try:
        loose = ip_network(value, strict=False)
    except ValueError:
        return f"{show(value)} is not a block such as 10.244.0.0/26 or fd00:244::/122"
    return f"{value} is not aligned to /{loose.prefixlen}: the block holding it is {loose}"


def shape_lock(source: Source) -> tuple[Lock, list[Problem]]:
    """Return the lock in `source` and every shape problem (the lock is unusable if any)."""
    shape = _Shape(source)
    lock = shape.lock()
    return lock, shape.problems
