"""Kernel settings (cluster/sysctl/<tunnels>.conf, and the same as data in node.json).

They depend on a node only through its tunnel devices: one file per set of devices, which
every node of that kind installs as /etc/sysctl.d/99-calicc.conf.

Host-wide settings live here. Per workload interface settings are not: the CNI plugin sets
them at runtime on each host-side veth (caliXXXXXXXXXXX) as Calico's does (CALICO-FACTS 3.2):
proxy_arp=1, neigh/<if>/proxy_delay=0, forwarding=1 and route_localnet=1.

Keys that name a device are written with "/" separators (net/ipv4/conf/vxlan.calico/rp_filter),
because device names may hold dots; sysctl and the agent read a key holding "/" as a path under
/proc/sys, any other key with "." as the separator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from calicc.compiler.plan import ClusterPlan

LOOSE_RP_FILTER = "2"


@dataclass(frozen=True)
class Sysctl:
    """One setting.

    `device` settings name a tunnel device that exists only once the agent (or routes.sh)
    created it, so the file marks them to be skipped until then.
    """

    key: str
    value: str
    comment: str
    device: bool = False

    @property
    def line(self) -> str:
        """Return the sysctl.d line; a leading '-' tells sysctl to ignore a missing key."""
        return f"{'-' if self.device else ''}{self.key} = {self.value}"


@lru_cache(maxsize=16)
def host_sysctls(devices: tuple[str, ...], ipv6: bool = False) -> tuple[Sysctl, ...]:
    """Return the host-wide settings of a node with `devices`: forwarding, then per device.

    A node with IPv6 (`ipv6`) forwards IPv6 too (Felix sets the same). With forwarding on, the
    kernel ignores router advertisements on interfaces whose accept_ra is 1: a node that takes
    its IPv6 default route from them needs accept_ra 2 on that interface.
    """
    settings = [
        Sysctl("net.ipv4.ip_forward", "1", "route pod traffic between interfaces"),
    ]
    if ipv6:
        settings.append(
            Sysctl("net.ipv6.conf.all.forwarding", "1", "route IPv6 pod traffic between interfaces")
        )
    for device in devices:
        settings.append(
            Sysctl(
                f"net/ipv4/conf/{device}/rp_filter",
                LOOSE_RP_FILTER,
                f"{device}: loose reverse-path filter; a strict one drops tunnelled "
                "packets whose return route leaves by another device",
                device=True,
            )
        )
    return tuple(settings)


def sysctl_values(devices: tuple[str, ...], ipv6: bool = False) -> dict[str, str]:
    """Return the settings of a node with tunnel `devices` as node.json carries them."""
    return {s.key: s.value for s in host_sysctls(devices, ipv6)}


def sysctl_view(
    cluster: ClusterPlan, devices: tuple[str, ...], ipv6: bool = False
) -> dict[str, object]:
    """Return the template context of the settings of nodes with tunnel `devices`."""
    return {"cluster": cluster.name, "devices": devices, "sysctls": host_sysctls(devices, ipv6)}
