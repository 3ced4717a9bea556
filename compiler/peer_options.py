"""A session's per-peer options, decided once from a `bgp.peers[]` entry (or the mesh settings).

peering.py puts them on the Session; the BIRD target prints them (targets/bird_options.py); the
lab's ToR mirrors them (lab/tor.py). Decisions taken here: the AS the node presents (its own or
local_as_number), whether the next hop is this node or kept, and passivity.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address

from calicc.compiler.model.bgp_peer import ImportLimitAction, NextHopMode, SourceAddress
from calicc.compiler.model.spec import BgpPeer


@dataclass(frozen=True)
class SessionOptions:
    """What a session sets beyond calicc's session template; None or False: BIRD's default."""

    local_as: int | None = None  # the AS this node presents to the peer
    keepalive_time: int | None = None
    hold_time: int | None = None
    restart_time: int | None = None  # graceful restart time
    ttl_security: int | None = None  # hops to the peer, with GTSM
    no_source_address: bool = False  # the kernel picks the TCP source address
    reachable_by: IPv4Address | IPv6Address | None = None  # gateway of a static /32 to the peer
    import_limit: int | None = None
    import_limit_action: ImportLimitAction | None = None
    allow_local_as: int | None = None


def peer_options(peer: BgpPeer) -> SessionOptions | None:
    """Return the options `peer` sets, or None when it sets none (the session is as before)."""
    options = SessionOptions(
        local_as=peer.local_as_number,
        keepalive_time=peer.keepalive_time,
        hold_time=peer.hold_time,
        restart_time=peer.max_restart_time,
        ttl_security=peer.ttl_security,
        no_source_address=peer.source_address == SourceAddress.NONE,
        reachable_by=peer.reachable_by,
        import_limit=peer.import_limit,
        import_limit_action=peer.import_limit_action,
        allow_local_as=peer.num_allowed_local_as,
    )
    return None if options == SessionOptions() else options


@lru_cache(maxsize=8)
def mesh_options(restart_time: int | None) -> SessionOptions | None:
    """Return the options of every mesh session (bgp.node_mesh_max_restart_time), if any."""
    return None if restart_time is None else SessionOptions(restart_time=restart_time)


def presented_as(peer: BgpPeer, node_as: int) -> int:
    """Return the AS a node in AS `node_as` presents to `peer` (local_as_number, else its own)."""
    return node_as if peer.local_as_number is None else peer.local_as_number


def next_hop(peer: BgpPeer, node_as: int) -> tuple[bool, bool]:
    """Return (next hop self, next hop keep) toward `peer`, for a node in AS `node_as`.

    next_hop_mode decides when set (Calico's nextHopMode: Keep keeps toward iBGP too); else the
    older flags: next_hop_self, and keep_next_hop only toward eBGP (as Calico's
    keepOriginalNextHop), eBGP judged by the AS the node presents.
    """
    if peer.next_hop_mode is not None:
        return peer.next_hop_mode == NextHopMode.SELF, peer.next_hop_mode == NextHopMode.KEEP
    ebgp = peer.as_number != presented_as(peer, node_as)
    return peer.next_hop_self, peer.keep_next_hop and ebgp


def session_as(options: SessionOptions | None, node_as: int) -> int:
    """Return the AS a session with `options` presents for a node in AS `node_as`."""
    if options is None or options.local_as is None:
        return node_as
    return options.local_as
