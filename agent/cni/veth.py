"""Pod wiring through netlink (pyroute2): the veth pair, the /32, the routes, host sysctls.

What ADD programs is Calico's DoNetworking (CALICO-FACTS §3.2): host end `cali…` with MAC
ee:ee:ee:ee:ee:ee, no address, the pod MTU, proxy ARP; pod end CNI_IFNAME with the /32,
`169.254.1.1 dev IF scope link` and `default via 169.254.1.1`; a host route `<ip>/32 dev cali…
scope link`. Host routes use the kernel's default protocol (boot), never the agent's route
protocol, so the agent's stale-route sweep leaves pod routes alone.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from agent.cni.errors import CONTAINER_UNKNOWN, NETLINK_FAILURE, CniError
from agent.cni.netns import in_netns, netns_exists, open_netns
from agent.cni.result import GATEWAY, Interface

HOST_MAC = "ee:ee:ee:ee:ee:ee"
SCOPE_LINK = 253
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


def netlink_error(action: str, exc: NetlinkError) -> CniError:
    """Translate a netlink failure into a CNI error naming what was being done."""
    return CniError(NETLINK_FAILURE, f"{action}: {os.strerror(exc.code)} (errno {exc.code})")


def _delete_link(ipr: IPRoute, name: str) -> None:
    try:
        ipr.link("del", ifname=name)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise netlink_error(f"deleting {name}", exc) from exc


def set_host_sysctls(name: str, root: Path = PROC_SYS_NET) -> None:
    """Set proxy ARP, proxy_delay 0, forwarding, route_localnet (and accept_ra 0 with IPv6)."""
    for template, value in HOST_SYSCTLS:
        path = root / template.format(name)
        if template.startswith("ipv6") and not path.exists():
            continue
        path.write_text(value)


def _wire_pod(w: Wiring) -> str:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=w.ifname)
        if not found:
            raise CniError(NETLINK_FAILURE, f"{w.ifname} did not appear in {w.netns}")
        index = found[0]
        ipr.addr("add", index=index, address=str(w.address), prefixlen=32)
        ipr.link("set", index=index, state="up")
        ipr.route("add", dst=f"{GATEWAY}/32", oif=index, scope=SCOPE_LINK)
        ipr.route("add", dst="0.0.0.0/0", gateway=str(GATEWAY), oif=index)
        return str(ipr.get_links(index)[0].get("IFLA_ADDRESS"))


def _host_route(ipr: IPRoute, w: Wiring, index: int) -> None:
    try:
        ipr.route("add", dst=f"{w.address}/32", oif=index, scope=SCOPE_LINK)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
        current = ipr.get_routes(dst=f"{w.address}/32", table=254)
        if not any(r.get("RTA_OIF") == index for r in current):
            raise CniError(
                NETLINK_FAILURE,
                f"a host route to {w.address}/32 already exists on another link: "
                "another pod holds this address; check IPAM state and DEL the stale pod",
            ) from exc


def add_veth(w: Wiring) -> tuple[Interface, Interface]:
    """Create and configure the pair; an existing host link of the same name is replaced."""
    with IPRoute() as ipr:
        try:
            _delete_link(ipr, w.host)
            nsfd = open_netns(w.netns)
            try:
                peer = {"ifname": w.ifname, "net_ns_fd": nsfd, "mtu": w.mtu}
                ipr.link("add", ifname=w.host, kind="veth", address=HOST_MAC, mtu=w.mtu, peer=peer)
            finally:
                os.close(nsfd)
            pod_mac = in_netns(w.netns, lambda: _wire_pod(w))
            index = ipr.link_lookup(ifname=w.host)[0]
            set_host_sysctls(w.host)
            ipr.link("set", index=index, state="up")
            _host_route(ipr, w, index)
        except NetlinkError as exc:
            _delete_link(ipr, w.host)
            raise netlink_error(f"wiring {w.host} <-> {w.netns}:{w.ifname}", exc) from exc
        except BaseException:
            _delete_link(ipr, w.host)
            raise
    return Interface(w.host, HOST_MAC), Interface(w.ifname, pod_mac, w.netns)


def _delete_pod_link(ifname: str) -> None:
    with IPRoute() as ipr:
        _delete_link(ipr, ifname)


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
