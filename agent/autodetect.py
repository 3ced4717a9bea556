"""Find this node's IPv4 address the way calico-node does (IP_AUTODETECTION_METHOD).

Interfaces are taken in reverse kernel order; the first global unicast address that the method
accepts wins, with its prefix length.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from calicc.agent import AgentError
from calicc.agent.netlink import IPRoute

DEFAULT_EXCLUDES = (
    r"^docker.*",
    r"^cbr.*",
    r"^dummy.*",
    r"^virbr.*",
    r"^lxcbr.*",
    r"^veth.*",
    r"^lo",
    r"^cali.*",
    r"^tunl.*",
    r"^flannel.*",
    r"^kube-ipvs.*",
    r"^cni.*",
    r"^vxlan\.calico.*",
    r"^vxlan-v6\.calico.*",
    r"^wireguard\.cali.*",
    r"^wg-v6\.cali.*",
    r"^nodelocaldns.*",
)


@dataclass(frozen=True)
class Candidate:
    """An interface and one of its IPv4 addresses."""

    ifname: str
    address: IPv4Interface


Filter = Callable[[Candidate], bool]


def candidates(ipr: IPRoute) -> list[Candidate]:
    """Return every global unicast IPv4 address, interfaces in reverse kernel order."""
    names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
    found = []
    for msg in ipr.get_addr(family=socket.AF_INET):
        ip = IPv4Address(msg.get_attr("IFA_ADDRESS"))
        if not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified):
            found.append(
                (
                    msg["index"],
                    Candidate(names[msg["index"]], IPv4Interface(f"{ip}/{msg['prefixlen']}")),
                )
            )
    return [c for _, c in sorted(found, key=lambda item: -item[0])]


def _regex_filter(patterns: list[str], include: bool) -> Filter:
    joined = re.compile("|".join(f"(?:{p})" for p in patterns))
    return lambda c: bool(joined.match(c.ifname)) == include


def _cidr_filter(cidrs: list[str]) -> Filter:
    nets = [IPv4Network(c.strip(), strict=False) for c in cidrs]
    return lambda c: any(c.address.ip in n for n in nets)


def method_filter(method: str) -> Filter:
    """Return the candidate filter of an autodetection method (can-reach excepted).

    Raises:
        AgentError: the method is not one calico-node knows.
    """
    kind, _, arg = method.partition("=")
    values = [v for v in arg.split(",") if v]
    if kind in ("first-found", ""):
        return _regex_filter(list(DEFAULT_EXCLUDES), include=False)
    if kind == "interface":
        return _regex_filter(values, include=True)
    if kind == "skip-interface":
        return _regex_filter([*DEFAULT_EXCLUDES, *values], include=False)
    if kind == "cidr":
        return _cidr_filter(values)
    raise AgentError(
        f"unknown ip_autodetection_method {method!r}: use first-found, can-reach=DEST, "
        "interface=REGEX, skip-interface=REGEX or cidr=CIDR[,CIDR]"
    )


def _can_reach(ipr: IPRoute, dest: str) -> Candidate:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((dest, 80))
        except OSError as exc:
            raise AgentError(f"can-reach={dest}: no route to it from this node ({exc})") from exc
        source = IPv4Address(sock.getsockname()[0])
    for cand in candidates(ipr):
        if cand.address.ip == source:
            return cand
    raise AgentError(f"can-reach={dest}: source {source} is on no local interface")


def detect(ipr: IPRoute, method: str) -> Candidate:
    """Return the node's interface and address according to `method`."""
    if method.startswith("can-reach="):
        return _can_reach(ipr, method.partition("=")[2])
    accept = method_filter(method)
    for cand in candidates(ipr):
        if accept(cand):
            return cand
    raise AgentError(f"ip_autodetection_method {method}: no interface address matches")


def check_address(ipr: IPRoute, method: str, expected: IPv4Interface) -> Candidate:
    """Detect the node's address and require it to be the one the bundle was compiled for."""
    found = detect(ipr, method)
    if found.address != expected:
        raise AgentError(
            f"this node's detected address {found.address} (on {found.ifname}, method {method}) "
            f"is not the address {expected} the bundle was compiled for: fix the node's address "
            "in cluster.yaml or ip_autodetection_method, or apply this node's own bundle"
        )
    return found
