"""Pod wiring through rtnetlink (agent/cni/rtnl.py): the veth pair, the /32, the routes, sysctls.

What ADD programs is Calico's DoNetworking (CALICO-FACTS §3.2): host end `cali…` with MAC
ee:ee:ee:ee:ee:ee, no address, the pod MTU, proxy ARP; pod end CNI_IFNAME with the /32,
`169.254.1.1 dev IF scope link` and `default via 169.254.1.1`; a host route `<ip>/32 dev cali…
scope link`. Host routes use the kernel's default protocol (boot), never the agent's route
protocol, so the agent's stale-route sweep leaves pod routes alone.

With an IPv6 address (docs/ipv6.md): the pod end gets the /128 (nodad) and `default via
fe80::ecee:eeff:feee:eeee dev IF`, the host veth's link-local, which the kernel derives from
its MAC (addr_gen_mode eui64) when it comes up; the host has `<ip6>/128 dev cali…`. Duplicate
address detection is off on both ends before they come up (accept_dad 0), so both link-locals
are usable at once and no ADD waits for DAD: the pod resolves its gateway from its link-local,
the host resolves the pod from the host veth's.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Set
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from calicc.agent.cni.errors import CONTAINER_UNKNOWN, NETLINK_FAILURE, CniError
from calicc.agent.cni.netns import in_netns, netns_exists, open_netns
from calicc.agent.cni.result import GATEWAY, GATEWAY_V6, Interface
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
from calicc.contract.names import V4, V6

HOST_MAC = "ee:ee:ee:ee:ee:ee"
HOST_MAC_RAW = bytes.fromhex("eeeeeeeeeeee")
ANY = IPv4Address("0.0.0.0")
ANY_V6 = IPv6Address("::")
Address = IPv4Address | IPv6Address
HOST_SYSCTLS = (
    ("ipv4/conf/{}/route_localnet", "1"),
    ("ipv4/neigh/{}/proxy_delay", "0"),
    ("ipv4/conf/{}/proxy_arp", "1"),
    ("ipv4/conf/{}/forwarding", "1"),
    ("ipv6/conf/{}/accept_ra", "0"),
)
# With an IPv6 pod address, before the host veth comes up: IPv6 on, the EUI-64 link-local
# (fe80::ecee:eeff:feee:eeee from ee:ee:ee:ee:ee:ee) without DAD, Calico's proxy_ndp and
# forwarding. The node's net.ipv6.conf.all.forwarding=1 is the node's sysctl (node.json).
HOST_SYSCTLS_V6 = (
    ("ipv6/conf/{}/disable_ipv6", "0"),
    ("ipv6/conf/{}/addr_gen_mode", "0"),
    ("ipv6/conf/{}/accept_dad", "0"),
    ("ipv6/conf/{}/proxy_ndp", "1"),
    ("ipv6/conf/{}/forwarding", "1"),
)
# Inside the pod, before its end comes up: IPv6 on, no DAD for the link-local it resolves with.
POD_SYSCTLS_V6 = (
    ("ipv6/conf/{}/disable_ipv6", "0"),
    ("ipv6/conf/{}/accept_dad", "0"),
)
PROC_SYS_NET = Path("/proc/sys/net")


@dataclass(frozen=True)
class Wiring:
    """What one attachment needs: names, addresses (IPv4 first), MTU and the pod's namespace."""

    host: str
    ifname: str
    netns: str
    addresses: tuple[Address, ...]
    mtu: int

    @property
    def ipv6(self) -> bool:
        """Whether the pod has an IPv6 address."""
        return any(a.version == V6 for a in self.addresses)


def netlink_error(action: str, exc: OSError) -> CniError:
    """Translate a netlink failure into a CNI error naming what was being done."""
    code = exc.errno or 0
    return CniError(NETLINK_FAILURE, f"{action}: {os.strerror(code)} (errno {code})")


def set_host_sysctls(name: str, root: Path = PROC_SYS_NET, ipv6: bool = False) -> None:
    """Set proxy ARP, proxy_delay 0, forwarding, route_localnet (and accept_ra 0 with IPv6).

    `ipv6`: the pod has an IPv6 address; also set HOST_SYSCTLS_V6 (a kernel without IPv6
    then fails with ENOENT).
    """
    for template, value in HOST_SYSCTLS:
        path = root / template.format(name)
        if template.startswith("ipv6") and not path.exists():
            continue
        path.write_text(value)
    if ipv6:
        write_sysctls(HOST_SYSCTLS_V6, name, root)


def write_sysctls(table: tuple[tuple[str, str], ...], name: str, root: Path) -> None:
    """Write each (path template, value) of `table` for interface `name` that differs.

    Most IPv6 ones (disable_ipv6, addr_gen_mode, forwarding, proxy_ndp) take the RTNL lock on
    write, retrying the syscall while another holds it; a new link usually has several of the
    values already (forwarding, from the node's default), and reading costs no lock.
    """
    for template, value in table:
        path = root / template.format(name)
        if path.read_text().strip() != value:
            path.write_text(value)


def pod_mac() -> bytes:
    """Return a random unicast, locally administered MAC (what the kernel would pick)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return bytes(raw)


def mac_text(raw: bytes) -> str:
    """Return a MAC address in the usual colon notation."""
    return ":".join(f"{b:02x}" for b in raw)


def _open_pod(w: Wiring) -> Rtnl:
    """Return a netlink socket of the pod's namespace (runs on a thread inside it).

    The pod end's IPv6 sysctls are written here too, on the same thread: /proc/sys/net is the
    writing thread's namespace's (the caller's is the host's), and each thread that joins a
    namespace costs about a millisecond.
    """
    if w.ipv6:
        try:
            write_sysctls(POD_SYSCTLS_V6, w.ifname, PROC_SYS_NET)
        except FileNotFoundError as exc:
            raise CniError(NETLINK_FAILURE, f"{w.ifname} did not appear in {w.netns}") from exc
    return Rtnl()


def _wire_pod(w: Wiring) -> None:
    """Configure the pod end through a socket opened in the pod's namespace."""
    with in_netns(w.netns, partial(_open_pod, w)) as pod:
        index = pod.link_index(w.ifname)
        if index is None:
            raise CniError(NETLINK_FAILURE, f"{w.ifname} did not appear in {w.netns}")
        for address in w.addresses:
            pod.create(RTM_NEWADDR, address_body(index, address, address.max_prefixlen))
        pod.set_up(index)
        for address in w.addresses:
            if address.version == V4:
                pod.create(RTM_NEWROUTE, route_body(GATEWAY, 32, index, SCOPE_LINK))
                pod.create(RTM_NEWROUTE, route_body(ANY, 0, index, SCOPE_UNIVERSE, GATEWAY))
            else:  # the link-local gateway needs no route of its own
                pod.create(RTM_NEWROUTE, route_body(ANY_V6, 0, index, SCOPE_UNIVERSE, GATEWAY_V6))


def _host_route(host: Rtnl, address: Address, index: int) -> None:
    prefix = address.max_prefixlen
    try:
        host.create(RTM_NEWROUTE, route_body(address, prefix, index, SCOPE_LINK))
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        raise CniError(
            NETLINK_FAILURE,
            f"a host route to {address}/{prefix} already exists on another link: "
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
    set_host_sysctls(w.host, ipv6=w.ipv6)
    host.set_up(index)
    for address in w.addresses:
        _host_route(host, address, index)


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


def _remove_host_end(rtnl: Rtnl, name: str, address: Address, keep_link: bool) -> None:
    index = rtnl.link_index(name)
    if index is None:
        return
    try:
        rtnl.request(RTM_DELROUTE, route_body(address, address.max_prefixlen, index, SCOPE_LINK))
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
    if not keep_link:
        rtnl.delete_link(name)


def remove_host_ends(ends: Iterable[tuple[str, Address]], live: Set[str]) -> None:
    """GC: delete each reclaimed attachment's host route and host veth (its pod end goes too).

    A veth whose name a live attachment also has (the same pod re-created with another
    container id) stays; only the reclaimed address's route on it goes.
    """
    with Rtnl() as rtnl:
        for name, address in ends:
            try:
                _remove_host_end(rtnl, name, address, name in live)
            except OSError as exc:
                prefix = address.max_prefixlen
                raise netlink_error(f"removing {name} and {address}/{prefix}", exc) from exc
