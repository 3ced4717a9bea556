"""Find this node's IPv4 and IPv6 addresses the way calico-node does.

Calico's IP_AUTODETECTION_METHOD and IP6_AUTODETECTION_METHOD
(node/pkg/lifecycle/startup/autodetection): one grammar for both families, each method run
over the addresses of its family only:

- interfaces are taken in reverse kernel order (highest index first), each interface's
  addresses in the kernel's order (for IPv6 the newest of a scope first);
- first-found, interface=, skip-interface= and cidr= take the first *global unicast* address
  the method accepts, with its prefix length: not unspecified, loopback, multicast or link-local
  (169.254.0.0/16; fe80::/10), and not 255.255.255.255 (Go's `IP.IsGlobalUnicast`). Unique
  local addresses (fd00::/8) and private IPv4 count as global unicast, as in Go. No address
  flag is looked at: as calico-node, a deprecated, temporary (privacy) or tentative IPv6
  address is a candidate like any other;
- interface regexes match anywhere in the name (Go's `MatchString` is a search; the default
  exclusions are anchored with `^`), joined as alternatives;
- can-reach=DEST connects a UDP socket of the family to DEST port 80 (a route lookup, no
  packet sent) and takes the interface address equal to the source the kernel chose, of any
  scope, as calico-node's ReachDestination does.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv6Address,
    IPv6Interface,
    ip_address,
    ip_interface,
    ip_network,
)
from typing import Any

from calicc.agent import AgentError
from calicc.agent.netlink import IPRoute
from calicc.contract.manifest import NodeIdentity
from calicc.contract.names import V4

# Calico's DEFAULT_INTERFACES_TO_EXCLUDE (autodetection_linux.go), for both families.
DEFAULT_EXCLUDES = (
    r"^docker.*",
    r"^cbr.*",
    r"^dummy.*",
    r"^podman.*",
    r"^virbr.*",
    r"^lxcbr.*",
    r"^veth.*",
    r"^lo",
    r"^br-.*",
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
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
METHOD_KEY = {4: "ip_autodetection_method", 6: "ip6_autodetection_method"}
BROADCAST = IPv4Address("255.255.255.255")

Address = IPv4Interface | IPv6Interface


@dataclass(frozen=True)
class Candidate:
    """An interface and one of its addresses (of the family being detected)."""

    ifname: str
    address: Address


Filter = Callable[[Candidate], bool]


def is_global_unicast(ip: IPv4Address | IPv6Address) -> bool:
    """Return Go's `net.IP.IsGlobalUnicast` of `ip`.

    Examples:
        >>> [is_global_unicast(ip_address(a)) for a in ("fd00::1", "fe80::1", "::1", "10.0.0.1")]
        [True, False, False, True]
    """
    special = ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local
    return not special and ip != BROADCAST


def ordered(entries: Iterable[tuple[int, Candidate]], *, unicast: bool = True) -> list[Candidate]:
    """Return the candidates of (interface index, candidate) pairs in calico-node's order.

    Highest interface index first; an interface's addresses keep their (kernel) order.
    `unicast` keeps global unicast addresses only (see the module docstring).
    """
    kept = [(i, c) for i, c in entries if not unicast or is_global_unicast(c.address.ip)]
    return [c for _, c in sorted(kept, key=lambda item: -item[0])]


def _message_address(msg: Any) -> Address:
    """Return the local address of an RTM_NEWADDR message, with its prefix length.

    IFA_LOCAL when present (on a point-to-point IPv4 link IFA_ADDRESS is the peer's), else
    IFA_ADDRESS, as Go's netlink.AddrList reads it.
    """
    local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return ip_interface(f"{str(local).split('%')[0]}/{msg['prefixlen']}")


def candidates(ipr: IPRoute, version: int = 4, *, unicast: bool = True) -> list[Candidate]:
    """Return the node's addresses of IP `version`, in calico-node's order (see `ordered`)."""
    names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
    entries = [
        (msg["index"], Candidate(names.get(msg["index"], "?"), _message_address(msg)))
        for msg in ipr.get_addr(family=FAMILY[version])
    ]
    return ordered([(i, c) for i, c in entries if c.address.version == version], unicast=unicast)


def _regex_filter(patterns: list[str], include: bool) -> Filter:
    joined = re.compile("|".join(f"(?:{p})" for p in patterns))
    return lambda c: bool(joined.search(c.ifname)) == include


def _cidr_filter(cidrs: list[str]) -> Filter:
    nets = [ip_network(c.strip(), strict=False) for c in cidrs]
    return lambda c: any(c.address.ip in n for n in nets)


def method_filter(method: str, version: int = 4) -> Filter:
    """Return the candidate filter of an autodetection method (can-reach excepted).

    Raises:
        AgentError: the method is not one calico-node knows, or a value does not parse.
    """
    kind, _, arg = method.partition("=")
    values = [v for v in arg.split(",") if v]
    try:
        if kind in ("first-found", ""):
            return _regex_filter(list(DEFAULT_EXCLUDES), include=False)
        if kind == "interface":
            return _regex_filter(values, include=True)
        if kind == "skip-interface":
            return _regex_filter([*DEFAULT_EXCLUDES, *values], include=False)
        if kind == "cidr":
            return _cidr_filter(values)
    except (re.error, ValueError) as exc:
        raise AgentError(f"{METHOD_KEY[version]} {method!r}: {exc}") from exc
    raise AgentError(
        f"unknown {METHOD_KEY[version]} {method!r}: use first-found, can-reach=DEST, "
        "interface=REGEX, skip-interface=REGEX or cidr=CIDR[,CIDR]"
    )


def reach_source(dest: str, version: int = 4) -> IPv4Address | IPv6Address:
    """Return the source address the kernel picks towards `dest` (UDP connect: no packet)."""
    with socket.socket(FAMILY[version], socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((dest, 80))
        except OSError as exc:
            raise AgentError(f"can-reach={dest}: no IPv{version} route to it ({exc})") from exc
        return ip_address(str(sock.getsockname()[0]).split("%")[0])


def _can_reach(ipr: IPRoute, dest: str, version: int) -> Candidate:
    source = reach_source(dest, version)
    for cand in candidates(ipr, version, unicast=False):
        if cand.address.ip == source:
            return cand
    raise AgentError(f"can-reach={dest}: source {source} is on no local interface")


def detect(ipr: IPRoute, method: str, version: int = 4) -> Candidate:
    """Return the node's interface and IPv`version` address according to `method`."""
    if method.startswith("can-reach="):
        return _can_reach(ipr, method.partition("=")[2], version)
    accept = method_filter(method, version)
    for cand in candidates(ipr, version):
        if accept(cand):
            return cand
    raise AgentError(f"{METHOD_KEY[version]} {method}: no IPv{version} interface address matches")


def check_address(ipr: IPRoute, method: str, expected: Address) -> Candidate:
    """Detect the node's address of `expected`'s family; require it to be `expected`.

    The bundle was compiled for `expected` (node.json `address`, or `address_v6` with the
    IPv6 method): a node that detects another address is refused, nothing applied.
    """
    version = expected.version
    found = detect(ipr, method, version)
    if found.address != expected:
        field, family = ("address", "") if version == V4 else ("address_v6", "IPv6 ")
        raise AgentError(
            f"this node's detected {family}address {found.address} "
            f"(on {found.ifname}, method {method}) is not the {field} {expected} the bundle was "
            f"compiled for: fix the node's {field} in cluster.yaml or {METHOD_KEY[version]}, "
            "or apply this node's own bundle"
        )
    return found


def check_node_addresses(ipr: IPRoute, node: NodeIdentity) -> list[Candidate]:
    """Check each address node.json's `node` has (IPv4, IPv6) with its family's method.

    Every family is checked; all mismatches are raised
    together (one AgentError), so a dual-stack node names both when both are wrong. An
    `address_v6` without a method (a hand-made bundle) is found by first-found, calico-node's
    default.
    """
    wanted: list[tuple[str, Address | None]] = [
        (node.autodetection_method, node.address),
        (node.autodetection_method_v6 or "first-found", node.address_v6),
    ]
    found, errors = [], []
    for method, expected in wanted:
        if expected is None:
            continue
        try:
            found.append(check_address(ipr, method, expected))
        except AgentError as exc:
            errors.append(str(exc))
    if errors:
        raise AgentError("; ".join(errors))
    return found
