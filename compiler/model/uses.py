"""Pools' allowed uses and reservations (Calico's IPPool allowedUses and IPReservation)."""

from __future__ import annotations

from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network

from pydantic import Field

from calicc.contract.fields import Dns1123Subdomain
from calicc.contract.manifest import Strict


class PoolUse(StrEnum):
    """What a pool's addresses are for (Calico's IPPool allowedUses)."""

    WORKLOAD = "Workload"
    TUNNEL = "Tunnel"
    LOAD_BALANCER = "LoadBalancer"


DEFAULT_USES = frozenset({PoolUse.WORKLOAD, PoolUse.TUNNEL})  # Calico's default


def check_uses(value: tuple[PoolUse, ...] | None) -> tuple[PoolUse, ...] | None:
    """Uses are a non-empty set; LoadBalancer stands alone (Calico's IPPool rules)."""
    if value is None:
        return None
    if not value:
        raise ValueError(
            "allowed_uses is empty: leave it out for Calico's default [Workload, Tunnel], "
            "or name the uses"
        )
    twice = sorted({u.value for u in value if value.count(u) > 1})
    if twice:
        raise ValueError(f"allowed_uses names {', '.join(twice)} twice; name each use once")
    if PoolUse.LOAD_BALANCER in value and len(value) > 1:
        raise ValueError(
            "LoadBalancer cannot be combined with Workload or Tunnel (as in Calico): "
            "make a separate pool for LoadBalancer addresses"
        )
    return value


class Reservation(Strict):
    """Addresses no pod and no tunnel is given (Calico's IPReservation reservedCIDRs)."""

    cidr: IPv4Network | IPv6Network = Field(
        description="a CIDR or a single address (a /32 or /128) inside a pool, either family"
    )
    name: Dns1123Subdomain | None = Field(None, description="what the addresses are kept for")
