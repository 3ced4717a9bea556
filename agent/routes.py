"""Kernel routes the agent owns: dump, diff against the manifest, apply through netlink.

Routes of both families (an IPv6 block's blackhole beside the IPv4 ones). Ownership is the
rtnetlink protocol number (manifest.route_protocol): only routes carrying it
are ever replaced or deleted, so routes of BIRD, Docker, kube-proxy or an admin are never touched.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from calicc.agent.netlink import IPRoute, call, need_index
from calicc.contract.manifest import Route

MAIN_TABLE = 254
RTN_UNICAST = 1
RTN_BLACKHOLE = 6
RTNH_F_ONLINK = 4
ANY = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}  # the dump's families, and their "any"


@dataclass(frozen=True, order=True)
class RouteState:
    """A route as compared: destination, type, gateway, device index and onlink flag."""

    dst: IPv4Network | IPv6Network
    type: str
    via: str | None = None
    oif: int | None = None
    onlink: bool = False


@dataclass(frozen=True)
class RouteDiff:
    """What to do to reach the desired routes."""

    add: tuple[RouteState, ...]
    replace: tuple[RouteState, ...]
    delete: tuple[RouteState, ...]

    @property
    def empty(self) -> bool:
        """Return whether nothing needs doing."""
        return not (self.add or self.replace or self.delete)


def _as_wanted(have: RouteState, want: RouteState | None) -> RouteState:
    """Drop the kernel-resolved device when the desired route names none."""
    if want is not None and want.oif is None and have.oif is not None:
        return replace(have, oif=None)
    return have


def _order(r: RouteState) -> tuple[int, IPv4Network | IPv6Network]:
    return r.dst.version, r.dst  # IPv4 first: networks of two families do not compare


def diff_routes(desired: list[RouteState], current: list[RouteState]) -> RouteDiff:
    """Compare desired with the current owned routes (both keyed by destination).

    Examples:
        >>> bh = RouteState(IPv4Network("10.0.0.0/26"), "blackhole")
        >>> diff_routes([bh], [bh]).empty
        True
        >>> diff_routes([], [bh]).delete == (bh,)
        True
    """
    want = {r.dst: r for r in desired}
    have = {r.dst: _as_wanted(r, want.get(r.dst)) for r in current}
    return RouteDiff(
        add=tuple(sorted((r for d, r in want.items() if d not in have), key=_order)),
        replace=tuple(
            sorted((r for d, r in want.items() if d in have and have[d] != r), key=_order)
        ),
        delete=tuple(sorted((r for d, r in have.items() if d not in want), key=_order)),
    )


def desired_routes(ipr: IPRoute, routes: tuple[Route, ...]) -> list[RouteState]:
    """Resolve the manifest's routes (device names to indexes)."""
    states = []
    for r in routes:
        oif = None if r.dev is None else need_index(ipr, r.dev, f"the route to {r.dst}")
        via = None if r.via is None else str(r.via)
        states.append(RouteState(r.dst, r.type, via, oif, r.onlink))
    return states


def _state(msg: Any) -> RouteState:
    dst = ip_network(f"{msg.get_attr('RTA_DST') or ANY[msg['family']]}/{msg['dst_len']}")
    kind = "blackhole" if msg["type"] == RTN_BLACKHOLE else "unicast"
    oif = msg.get_attr("RTA_OIF")
    return RouteState(
        dst, kind, msg.get_attr("RTA_GATEWAY"), oif, bool(msg["flags"] & RTNH_F_ONLINK)
    )


def current_routes(ipr: IPRoute, protocol: int) -> list[RouteState]:
    """Dump the main table's IPv4 and IPv6 routes carrying `protocol` (the owned ones)."""
    return [
        _state(m)
        for family in ANY
        for m in ipr.get_routes(family=family, table=MAIN_TABLE, proto=protocol)
        if m["proto"] == protocol
    ]


def _netlink_args(r: RouteState, protocol: int) -> dict[str, Any]:
    args: dict[str, Any] = {"dst": str(r.dst), "proto": protocol, "table": MAIN_TABLE}
    if r.type == "blackhole":
        args["type"] = "blackhole"
        return args
    if r.via is not None:
        args["gateway"] = r.via
    if r.oif is not None:
        args["oif"] = r.oif
    if r.onlink:
        args["flags"] = RTNH_F_ONLINK
    return args


def apply_routes(ipr: IPRoute, diff: RouteDiff, protocol: int) -> list[str]:
    """Apply a RouteDiff; return one line per change."""
    changes = []
    for r in (*diff.add, *diff.replace):
        call(f"route {r.dst}", ipr.route, "replace", **_netlink_args(r, protocol))
        changes.append(f"route {r.dst}: {'added' if r in diff.add else 'replaced'}")
    for r in diff.delete:
        args = {"dst": str(r.dst), "proto": protocol, "table": MAIN_TABLE}
        if r.type == "blackhole":
            args["type"] = "blackhole"
        call(f"delete stale route {r.dst}", ipr.route, "del", **args)
        changes.append(f"route {r.dst}: deleted (stale)")
    return changes


def reconcile_routes(ipr: IPRoute, routes: tuple[Route, ...], protocol: int) -> list[str]:
    """Dump, diff and apply the owned routes; return the changes."""
    diff = diff_routes(desired_routes(ipr, routes), current_routes(ipr, protocol))
    return [] if diff.empty else apply_routes(ipr, diff, protocol)
