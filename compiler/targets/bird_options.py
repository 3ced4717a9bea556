"""BIRD 2 statements for a session's per-peer options (compiler/peer_options.py).

Protocol options (local as, timers, TTL security, source address, allow local as) go in the
`protocol bgp`, the import limit in its channel. A peer reached through `reachable_by` gets a
static /32 via that gateway in BIRD's table (as Calico's bird_aggr.cfg), and BIRD alone installs
it in the kernel: the route serves only BIRD's own TCP session to the peer, so it lives and goes
with BIRD (one owner per kernel route; routes.sh and the agent never list it).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_network

from calicc.compiler.peer_options import SessionOptions
from calicc.compiler.peering import Session

# `source address ::` is BIRD's "none": with no local address the kernel picks the source by
# its route to the peer, for either family (BIRD stores IPv4 as IPv4-mapped; only :: is none).
NO_SOURCE = "source address ::;   # source_address: None (the kernel picks it)"
REACHABLE_PROTOCOL = "calicc_reachable"  # + the family's suffix


def multihop(session: Session) -> str:
    """Return the session's multihop statement: GTSM's hop count when TTL security is on."""
    hops = session.options.ttl_security if session.options else None
    if hops is not None:
        return f"ttl security on; multihop {hops};"
    return f"multihop {session.multihop};" if session.multihop else "multihop;"


def protocol_lines(options: SessionOptions | None) -> tuple[str, ...]:
    """Return the protocol-level statements of `options`, in a fixed order."""
    if options is None:
        return ()
    lines = []
    if options.local_as is not None:
        lines.append(f"local as {options.local_as};")
    if options.no_source_address:
        lines.append(NO_SOURCE)
    if options.hold_time is not None:
        lines.append(f"hold time {options.hold_time};")
    if options.keepalive_time is not None:
        lines.append(f"keepalive time {options.keepalive_time};")
    if options.restart_time is not None:
        lines.append(f"graceful restart time {options.restart_time};")
    if options.allow_local_as is not None:
        lines.append(f"allow local as {options.allow_local_as};")
    return tuple(lines)


def channel_lines(options: SessionOptions | None) -> tuple[str, ...]:
    """Return the channel-level statements of `options` (the import limit and its action)."""
    if options is None or options.import_limit is None:
        return ()
    action = (options.import_limit_action or "Disable").lower()
    return (f"import limit {options.import_limit} action {action};",)


def reachable_routes(sessions: Iterable[Session]) -> tuple[str, ...]:
    """Return the static routes to peers reached through a gateway, one per peer, sorted."""
    routes: dict[IPv4Address | IPv6Address, tuple[str, IPv4Address | IPv6Address]] = {}
    for session in sessions:
        gateway = session.options.reachable_by if session.options else None
        if gateway is not None:
            routes.setdefault(session.peer_ip, (session.name, gateway))
    return tuple(
        f"route {ip_network(peer)} via {gateway};   # reachable_by of {name}"
        for peer, (name, gateway) in sorted(routes.items(), key=lambda item: item[0].packed)
    )
