"""The node address autodetection methods calico-node knows, checked whole.

first-found, can-reach=DEST (an address or a DNS name), interface=REGEX[,REGEX],
skip-interface=REGEX[,REGEX], cidr=CIDR[,CIDR]. The agent runs the method on the node, so the
regexes must compile there and nothing outside these forms reaches it. The same grammar serves
both families (Calico's IP_AUTODETECTION_METHOD and IP6_AUTODETECTION_METHOD): addresses and
CIDRs are of the method's family.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network, ip_address

from calicc.contract.text import cut

LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"{LABEL}(\.{LABEL})*")
HOSTNAME_MAX = 253
REGEX_TEXT = re.compile(r"[!-~]{1,256}")  # printable ASCII, no spaces
VALID = (
    "valid: first-found, can-reach=HOST, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX], "
    "cidr=CIDR[,CIDR]"
)


FAMILY = {4: (IPv4Network, "10.30.0.0/24"), 6: (IPv6Network, "fd00:30::/64")}


def _can_reach(dest: str, version: int) -> None:
    try:
        address = ip_address(dest)
    except ValueError:
        if len(dest) > HOSTNAME_MAX or HOSTNAME.fullmatch(dest) is None:
            message = f"can-reach needs an IPv{version} address or a DNS name, not {cut(dest)!r}"
            raise ValueError(message) from None
        return
    if address.version != version:
        message = f"can-reach needs an IPv{version} address or a DNS name, not IPv{address.version}"
        raise ValueError(f"{message} {dest}")


def _regexes(values: list[str]) -> None:
    for value in values:
        if REGEX_TEXT.fullmatch(value) is None or any(q in value for q in "\"'`"):
            raise ValueError(f"{cut(value)!r}: an interface regex is printable, without quotes")
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{cut(value)!r} is not a regular expression: {exc}") from exc


def _cidrs(values: list[str], version: int) -> None:
    network, example = FAMILY[version]
    for value in values:
        try:
            network(value, strict=False)
        except ValueError as exc:
            raise ValueError(
                f"{cut(value)!r} is not an IPv{version} CIDR such as {example}"
            ) from exc


def autodetection_method(method: str, version: int = 4) -> str:
    """Return `method` when it is one calico-node knows with valid arguments; else ValueError.

    `version` is the family of the address the method finds (4, or 6 for
    ip6_autodetection_method): can-reach addresses and cidr values must be of it.
    """
    kind, equals, arg = method.partition("=")
    if method == "first-found":
        return method
    values = arg.split(",")
    if not equals or not arg or "" in values:
        raise ValueError(f"{cut(method)!r} is not an autodetection method; {VALID}")
    if kind == "can-reach":
        _can_reach(arg, version)
    elif kind in ("interface", "skip-interface"):
        _regexes(values)
    elif kind == "cidr":
        _cidrs(values, version)
    else:
        raise ValueError(f"{cut(method)!r} is not an autodetection method; {VALID}")
    return method
