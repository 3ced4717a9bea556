"""Pod wiring through rtnetlink (agent/cni/rtnl.py): the veth pair, the /32, the routes, sysctls.

What ADD programs is Calico's DoNetworking (CALICO-FACTS §3.2): host end `cali…` with MAC
ee:ee:ee:ee:ee:ee, no address, the pod MTU, proxy ARP; pod end CNI_IFNAME with the /32,
`169.254.1.1 dev IF scope link` and `default via 169.254.1.1`; a host route `<ip>/32 dev cali…
scope link`. Host routes use the kernel's default protocol (boot), never the agent's route
protocol, so the agent's stale-route sweep leaves pod routes alone.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Set
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from calicc.agent.cni.errors import CONTAINER_UNKNOWN, NETLINK_FAILURE, CniError
from calicc.agent.cni.netns import in_netns, netns_exists, open_netns
from calicc.agent.cni.result import GATEWAY, Interface
from calicc.agent.cni.rtnl import (
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    SCOPE_LINK,
    SCOPE_UNIVERSE,
    Rtnl,
    address_body,
    link_attrs,
    route_body,
    veth_body,
)

HOST_MAC = "ee:ee:ee:ee:ee:ee"
HOST_MAC_RAW = bytes.fromhex("eeeeeeeeeeee")
ANY = IPv4Address("0.0.0.0")
HOST_SYSCTLS = (
    ("ipv4/conf/{}/route_localnet", "1"),
    ("ipv4/neigh/{}/proxy_delay", "0"),
    ("ipv4/conf/{}/proxy_arp", "1"),
    ("ipv4/conf/{}/forwarding", "1"),
    ("ipv6/conf/{}/accept_ra", "0"),
)
PROC_SYS_NET = Path("/proc/sys/net")


@dataclass(frozen=True)
class Wiring:
    """What one attachment needs: names, address, MTU and the pod's namespace."""

    host: str
    ifname: str
    netns: str
    address: IPv4Address
    mtu: int


def netlink_error(action: str, exc: OSError) -> CniError:
    """Translate a netlink failure into a CNI error naming what was being done."""
    code = exc.errno or 0
    return CniError(NETLINK_FAILURE, f"{action}: {os.strerror(code)} (errno {code})")


def set_host_sysctls(name: str, root: Path = PROC_SYS_NET) -> None:
    """Set proxy ARP, proxy_delay 0, forwarding, route_localnet (and accept_ra 0 with IPv6)."""
    for template, value in HOST_SYSCTLS:
        path = root / template.format(name)
        if template.startswith("ipv6") and not path.exists():
            continue
        path.write_text(value)


def pod_mac() -> bytes:
    """Return a random unicast, locally administered MAC (what the kernel would pick)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return bytes(raw)


def mac_text(raw: bytes) -> str:
    """Return a MAC address in the usual colon notation."""
    return ":".join(f"{b:02x}" for b in raw)


def _wire_pod(w: Wiring) -> None:
    with in_netns(w.netns, Rtnl) as pod:
        index = pod.link_index(w.ifname)
        if index is None:
            raise CniError(NETLINK_FAILURE, f"{w.ifname} did not appear in {w.netns}")
        pod.create(RTM_NEWADDR, address_body(index, w.address, 32))
        pod.set_up(index)
        pod.create(RTM_NEWROUTE, route_body(GATEWAY, 32, index, SCOPE_LINK))
        pod.create(RTM_NEWROUTE, route_body(ANY, 0, index, SCOPE_UNIVERSE, GATEWAY))


def _host_route(host: Rtnl, w: Wiring, index: int) -> None:
    try:
        host.create(RTM_NEWROUTE, route_body(w.address, 32, index, SCOPE_LINK))
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        raise CniError(
            NETLINK_FAILURE,
            f"a host route to {w.address}/32 already exists on another link: "
            "another pod holds this address; check IPAM state and DEL the stale pod",
        ) from exc


def _wire(host: Rtnl, w: Wiring, mac: bytes) -> None:
    host.delete_link(w.host)  # a leftover of an earlier sandbox of the same pod
    nsfd = open_netns(w.netns)
    try:
        ends = link_attrs(w.host, HOST_MAC_RAW, w.mtu), link_attrs(w.ifname, mac, w.mtu)
        host.create(RTM_NEWLINK, veth_body(*ends, nsfd))
    finally:
        os.close(nsfd)
    _wire_pod(w)
    index = host.link_index(w.host)
    if index is None:
        raise CniError(NETLINK_FAILURE, f"{w.host} vanished while being configured")
    set_host_sysctls(w.host)
    host.set_up(index)
    _host_route(host, w, index)


def add_veth(w: Wiring) -> tuple[Interface, Interface]:
    """Create and configure the pair; an existing host link of the same name is replaced."""
    mac = pod_mac()
    with Rtnl() as host:
        try:
            _wire(host, w, mac)
        except BaseException as exc:
            host.delete_link(w.host)
            if isinstance(exc, OSError):
                raise netlink_error(f"wiring {w.host} <-> {w.netns}:{w.ifname}", exc) from exc
            raise
    return Interface(w.host, HOST_MAC), Interface(w.ifname, mac_text(mac), w.netns)


def _delete_pod_link(ifname: str) -> None:
    with Rtnl() as pod:
        try:
            pod.delete_link(ifname)
        except OSError as exc:
            raise netlink_error(f"deleting {ifname}", exc) from exc


def del_veth(netns: str, ifname: str) -> None:
    """Delete the pod's interface (its host peer and /32 route go with it); idempotent.

    A missing netns is success: the kernel destroyed the pair with the namespace. The host end
    is never deleted by name, so a late DEL of an old sandbox cannot break a newer pod that
    reused the same namespace/name (and so the same host veth name).
    """
    if not netns_exists(netns):
        return
    try:
        in_netns(netns, lambda: _delete_pod_link(ifname))
    except CniError as exc:
        if exc.code != CONTAINER_UNKNOWN:  # a stale file that is no longer a namespace
            raise


def remove_pair(host: str) -> None:
    """Delete the host end `host` of a pair this ADD created (its pod end and routes go too)."""
    with Rtnl() as rtnl:
        try:
            rtnl.delete_link(host)
        except OSError as exc:
            raise netlink_error(f"deleting {host}", exc) from exc


def _remove_host_end(rtnl: Rtnl, name: str, address: IPv4Address, keep_link: bool) -> None:
    index = rtnl.link_index(name)
    if index is None:
        return
    try:
        rtnl.request(RTM_DELROUTE, route_body(address, 32, index, SCOPE_LINK))
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
    if not keep_link:
        rtnl.delete_link(name)


def remove_host_ends(ends: Iterable[tuple[str, IPv4Address]], live: Set[str]) -> None:
    """GC: delete each reclaimed attachment's host route and host veth (its pod end goes too).

    A veth whose name a live attachment also has (the same pod re-created with another
    container id) stays; only the reclaimed address's route on it goes.
    """
    with Rtnl() as rtnl:
        for name, address in ends:
            try:
                _remove_host_end(rtnl, name, address, name in live)
            except OSError as exc:
                raise netlink_error(f"removing {name} and {address}/32", exc) from exc
