"""CHECK: compare a pod's wiring with what ADD programmed and list every difference."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from pyroute2 import IPRoute

from calicc.agent.cni.errors import CHECK_FAILED, CniError
from calicc.agent.cni.netns import in_netns, netns_exists
from calicc.agent.cni.result import GATEWAY, GATEWAY_V6
from calicc.agent.cni.veth import HOST_MAC, Wiring

FAMILIES = {4: (socket.AF_INET, "0.0.0.0"), 6: (socket.AF_INET6, "::")}


def _routes(ipr: IPRoute, index: int, versions: Iterable[int]) -> list[tuple[str, str | None]]:
    found = []
    for version in sorted(set(versions)):
        family, any_address = FAMILIES[version]
        for route in ipr.get_routes(family=family, table=254):
            if route.get("RTA_OIF") == index:
                dst = route.get("RTA_DST") or any_address
                found.append((f"{dst}/{route['dst_len']}", route.get("RTA_GATEWAY")))
    return found


def _pod_routes(w: Wiring) -> list[tuple[str, str | None]]:
    """Return the routes ADD gives the pod: per family, its gateway and default route."""
    wanted: list[tuple[str, str | None]] = []
    versions = {a.version for a in w.addresses}
    if 4 in versions:  # noqa: PLR2004
        wanted += [(f"{GATEWAY}/32", None), ("0.0.0.0/0", str(GATEWAY))]
    if 6 in versions:  # noqa: PLR2004
        wanted.append(("::/0", str(GATEWAY_V6)))
    return wanted


def host_problems(ipr: IPRoute, w: Wiring) -> list[str]:
    """Return what is wrong with the host end and the host route."""
    links = ipr.get_links(ifname=w.host) if ipr.link_lookup(ifname=w.host) else []
    if not links:
        return [f"host veth {w.host} is missing"]
    link: Any = links[0]
    problems = []
    if link.get("IFLA_ADDRESS") != HOST_MAC:
        problems.append(f"{w.host} has MAC {link.get('IFLA_ADDRESS')}, expected {HOST_MAC}")
    if link.get("IFLA_MTU") != w.mtu:
        problems.append(f"{w.host} has MTU {link.get('IFLA_MTU')}, expected {w.mtu}")
    routes = _routes(ipr, link["index"], (a.version for a in w.addresses))
    for address in w.addresses:
        if (f"{address}/{address.max_prefixlen}", None) not in routes:
            problems.append(f"host route {address}/{address.max_prefixlen} dev {w.host} is missing")
    return problems


def pod_problems(w: Wiring) -> list[str]:
    """Return what is wrong inside the pod's namespace (runs on a thread in that netns)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=w.ifname)
        if not found:
            return [f"{w.ifname} is missing in {w.netns}"]
        index = found[0]
        problems = []
        addrs = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
        for address in w.addresses:
            if (str(address), address.max_prefixlen) not in addrs:
                problems.append(
                    f"{w.ifname} lacks {address}/{address.max_prefixlen} (has {sorted(addrs)})"
                )
        routes = _routes(ipr, index, (a.version for a in w.addresses))
        for want in _pod_routes(w):
            if want not in routes:
                problems.append(f"route {want[0]} via {want[1] or 'link'} on {w.ifname} is missing")
        return problems


def check_wiring(w: Wiring) -> None:
    """Raise CHECK_FAILED listing every difference between the pod and its expected wiring."""
    with IPRoute() as ipr:
        problems = host_problems(ipr, w)
    if not netns_exists(w.netns):
        problems.append(f"network namespace {w.netns} is gone")
    else:
        problems += in_netns(w.netns, lambda: pod_problems(w))
    if problems:
        raise CniError(
            CHECK_FAILED,
            "; ".join(problems) + ": delete and re-create the pod (CNI DEL then ADD)",
        )
