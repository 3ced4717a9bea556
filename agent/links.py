"""Tunnel devices (tunl0, vxlan.calico, vxlan-v6.calico): existence, kind, MTU, state, address.

vxlan.calico sends through its parent: the node's interface when the cluster file names one,
else the interface that holds the node address (as Felix chooses it, and as cluster/routes.sh
does), so the agent and the stock script build the same device and neither recreates the
other's. vxlan-v6.calico is the same over IPv6: its `local` is the node's IPv6 address, its
address a /128 (added without duplicate address detection, as routes.sh does), and the
kernel's link-local address on it is left alone, as Felix leaves it.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from calicc.agent import AgentError
from calicc.agent.netlink import IPRoute, call, link_index, link_kind, need_index
from calicc.contract.manifest import Link
from calicc.contract.names import V6

IFF_UP = 1
IFA_F_NODAD = 0x02
RT_SCOPE_LINK = 253


def family(link: Link) -> int:
    """Return the address family of `link` (AF_INET6 for vxlan-v6.calico, else AF_INET)."""
    ipv6 = any(v is not None and v.version == V6 for v in (link.address, link.local))
    return socket.AF_INET6 if ipv6 else socket.AF_INET


def parent_index(ipr: IPRoute, link: Link, parent: str | None) -> int | None:
    """Return the index of the device a VXLAN link sends through (None: not a VXLAN link).

    The named parent, else the interface holding the link's local address.
    """
    if link.kind != "vxlan":
        return None
    if parent is not None:
        return need_index(ipr, parent, f"{link.name} as its parent")
    if link.local is None:
        return None
    for msg in ipr.get_addr(family=family(link)):
        if msg.get_attr("IFA_ADDRESS") == str(link.local):
            return int(msg["index"])
    raise AgentError(
        f"no interface holds the node address {link.local}: cannot attach {link.name} "
        "(name the node's interface in the cluster file, or check the address)"
    )


def _create(ipr: IPRoute, link: Link, parent: int | None) -> None:
    args: dict[str, Any] = {"ifname": link.name, "kind": link.kind}
    if link.kind == "vxlan":
        args.update(vxlan_id=link.vni, vxlan_port=link.port, vxlan_learning=0)
        if link.local is not None:
            args["vxlan_local6" if link.local.version == V6 else "vxlan_local"] = str(link.local)
        if parent is not None:
            args["vxlan_link"] = parent
        if link.mac:
            args["address"] = link.mac
    try:
        ipr.link("add", **args)
    except NetlinkError as exc:
        if exc.code == errno.EOPNOTSUPP and link.kind == "ipip":
            raise AgentError(
                f"cannot create {link.name} as an ipip device: this kernel has no ipip module "
                "(load it with `modprobe ipip`, or use vxlan_mode instead of ipip_mode)"
            ) from exc
        raise AgentError(f"cannot create {link.name} ({link.kind}): {exc}") from exc


def _vxlan_matches(msg: Any, link: Link, parent: int | None) -> bool:
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    six = family(link) == socket.AF_INET6
    local = data.get_attr("IFLA_VXLAN_LOCAL6" if six else "IFLA_VXLAN_LOCAL")
    return bool(
        data.get_attr("IFLA_VXLAN_ID") == link.vni
        and data.get_attr("IFLA_VXLAN_PORT") == link.port
        and (link.local is None or local == str(link.local))
        and (parent is None or data.get_attr("IFLA_VXLAN_LINK") == parent)
        and (not link.mac or str(msg.get_attr("IFLA_ADDRESS")).lower() == link.mac.lower())
    )


def _check_existing(
    ipr: IPRoute, index: int, link: Link, parent: int | None, allow_standin: bool
) -> bool:
    """Return whether the device must be recreated; raise if it is of a foreign kind."""
    msg = ipr.get_links(index)[0]
    kind = link_kind(msg)
    if kind == link.kind:
        return link.kind == "vxlan" and not _vxlan_matches(msg, link, parent)
    if allow_standin and link.kind == "ipip":
        return False
    raise AgentError(
        f"{link.name} exists but is a {kind or 'plain'} device, not {link.kind}; delete it, or "
        "pass --allow-tunnel-standin (tests and labs only) to use it as it is"
    )


def _ensure_address(ipr: IPRoute, index: int, link: Link) -> bool:
    """Make the link's address its only one of its family (an IPv6 link-local one stays)."""
    kind = family(link)
    current = {
        (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
        for a in ipr.get_addr(index=index, family=kind)
        if not (kind == socket.AF_INET6 and a["scope"] == RT_SCOPE_LINK)
    }
    wanted = (
        set() if link.address is None else {(str(link.address.ip), link.address.network.prefixlen)}
    )
    for ip, plen in sorted(current - wanted):
        call(
            f"remove {ip}/{plen} from {link.name}",
            ipr.addr,
            "del",
            index=index,
            address=ip,
            prefixlen=plen,
        )
    flags = {"flags": IFA_F_NODAD} if kind == socket.AF_INET6 else {}
    for ip, plen in sorted(wanted - current):
        call(
            f"add {ip}/{plen} to {link.name}",
            ipr.addr,
            "add",
            index=index,
            address=ip,
            prefixlen=plen,
            **flags,
        )
    return current != wanted


def ensure_link(
    ipr: IPRoute, link: Link, parent: str | None, allow_standin: bool = False
) -> list[str]:
    """Make `link` exist with its kind, MTU, state up and address; return what changed."""
    changes: list[str] = []
    index = link_index(ipr, link.name)
    via = parent_index(ipr, link, parent)
    if index is not None and _check_existing(ipr, index, link, via, allow_standin):
        call(f"delete mismatched {link.name}", ipr.link, "del", index=index)
        changes.append(f"{link.name}: recreated (parameters changed)")
        index = None
    if index is None:
        _create(ipr, link, via)
        changes.append(f"{link.name}: created")
        index = need_index(ipr, link.name, "the tunnel just created")
    msg = ipr.get_links(index)[0]
    if msg.get_attr("IFLA_MTU") != link.mtu or not msg["flags"] & IFF_UP:
        call(f"set {link.name} mtu/up", ipr.link, "set", index=index, mtu=link.mtu, state="up")
        changes.append(f"{link.name}: mtu {link.mtu}, up")
    if _ensure_address(ipr, index, link):
        changes.append(f"{link.name}: address {link.address}")
    return changes
