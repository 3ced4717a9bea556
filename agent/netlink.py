"""Small helpers over pyroute2's IPRoute: lookups and errno translation, nothing else."""

from __future__ import annotations

import errno
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from calicc.agent import AgentError

IPRoute = Any  # pyroute2.IPRoute (untyped)


def link_index(ipr: IPRoute, name: str) -> int | None:
    """Return the index of interface `name`, or None when it does not exist."""
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def need_index(ipr: IPRoute, name: str, why: str) -> int:
    """Return the index of `name`, or raise an AgentError saying what needed it."""
    index = link_index(ipr, name)
    if index is None:
        raise AgentError(f"interface {name} does not exist (needed by {why})")
    return index


def link_kind(msg: Any) -> str | None:
    """Return the kind (ipip, vxlan, veth...) of a link message, None for plain devices."""
    info = msg.get_attr("IFLA_LINKINFO")
    return None if info is None else info.get_attr("IFLA_INFO_KIND")


def call(what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a pyroute2 method; translate NetlinkError into an AgentError naming `what`."""
    try:
        return func(*args, **kwargs)
    except NetlinkError as exc:
        name = errno.errorcode.get(exc.code, str(exc.code))
        raise AgentError(f"{what}: {name} ({exc})") from exc
