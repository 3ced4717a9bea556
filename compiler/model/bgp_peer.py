"""Calico's per-peer session options of `bgp.peers[]` (BGPPeer's spec, in snake_case).

Each option maps to one stock BIRD 2 statement (docs/bgp.md, "Per-peer options"); unset, the
session renders as it always did. The ranges are BIRD's (hold time 0 or 3-65535, keepalive
1-65535) or the protocol's (a graceful restart time is a 12-bit field, RFC 4724). What needs
more than one field, or the cluster's nodes, is checked in compiler/check_peer_options.py.
"""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from pydantic import Field, field_validator

from calicc.contract.manifest import Strict

HOLD_MIN, TIMER_MAX = 3, 65535
RESTART_MAX = 4095  # RFC 4724: the Restart Time field holds 12 bits
BIRD_DEFAULT_HOLD = 240  # BIRD's hold time when none is set (keepalive: a third of it)
Seconds = Annotated[int, Field(ge=1, le=TIMER_MAX)]


class SourceAddress(StrEnum):
    """Which local address a session's TCP connection uses (Calico's sourceAddress)."""

    USE_NODE_IP = "UseNodeIP"  # the node's address of the peer's family (as always)
    NONE = "None"  # none configured: the kernel picks it by its route to the peer


class NextHopMode(StrEnum):
    """The next hop of routes sent to the peer (Calico's nextHopMode)."""

    AUTO = "Auto"  # BGP's default: self toward eBGP, unchanged toward iBGP
    SELF = "Self"  # next hop self
    KEEP = "Keep"  # next hop keep


class ImportLimitAction(StrEnum):
    """What BIRD does when a peer sends more routes than import_limit (BIRD's actions)."""

    WARN = "Warn"  # log it, keep importing
    BLOCK = "Block"  # log it, import no more routes
    RESTART = "Restart"  # shut the session down and start it again
    DISABLE = "Disable"  # shut the session down until an operator enables it (BIRD's default)


class PeerOptions(Strict):
    """Session options of one external peer entry; every one unset by default."""

    keepalive_time: Seconds | None = Field(
        None, description="seconds between keepalives (BIRD: a third of the hold time)"
    )
    hold_time: int | None = Field(
        None,
        ge=0,
        le=TIMER_MAX,
        description="hold time in seconds: 0 (no keepalives) or 3-65535 (BIRD: 240)",
    )
    max_restart_time: int | None = Field(
        None,
        ge=1,
        le=RESTART_MAX,
        description="graceful restart time in seconds, 1-4095 (Calico's maxRestartTime; 120)",
    )
    passive: bool = Field(False, description="wait for the peer to connect, never connect")
    ttl_security: int | None = Field(
        None, ge=1, le=255, description="GTSM: the peer is this many hops away (ttl security on)"
    )
    source_address: SourceAddress = Field(
        SourceAddress.USE_NODE_IP,
        description="UseNodeIP: connect from the node's address; None: the kernel picks",
    )
    local_as_number: int | None = Field(
        None, ge=1, le=4_294_967_295, description="the AS this node presents to this peer"
    )
    next_hop_mode: NextHopMode | None = Field(
        None, description="Auto | Self | Keep (replaces next_hop_self and keep_next_hop)"
    )
    reachable_by: IPv4Address | IPv6Address | None = Field(
        None, description="gateway on the node's subnet through which a multihop peer is reached"
    )
    import_limit: int | None = Field(
        None, ge=1, le=4_294_967_295, description="most routes imported from the peer"
    )
    import_limit_action: ImportLimitAction | None = Field(
        None, description="Warn | Block | Restart | Disable (default) past import_limit"
    )
    num_allowed_local_as: int | None = Field(
        None,
        ge=1,
        le=255,
        description="accept routes whose AS path holds this node's AS up to N times",
    )

    @field_validator("hold_time")
    @classmethod
    def _hold(cls, value: int | None) -> int | None:
        if value is not None and 0 < value < HOLD_MIN:
            raise ValueError(
                f"a hold time of {value} s is too short for BGP: use 0 (no keepalives) or "
                f"{HOLD_MIN} to {TIMER_MAX}"
            )
        return value
