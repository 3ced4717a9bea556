"""The autodetection methods of both families (agent/autodetect.py), over a fake netlink dump.

calico-node's semantics: interfaces in reverse kernel order, global unicast only (no
link-local fe80::/10, no loopback), Calico's default interface exclusions, regexes searched
anywhere in the name, cidr= of the method's family, and the address check naming the family's
field and method. Real kernels: tests/tools/test_autodetect_netns.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from typing import Any

import pytest

from calicc.agent import AgentError, autodetect
from calicc.agent.autodetect import (
    Candidate,
    check_address,
    check_node_addresses,
    detect,
    is_global_unicast,
    method_filter,
    ordered,
)
from calicc.contract.manifest import NodeIdentity


@dataclass
class Msg:
    """A pyroute2 message: fields by key, attributes by get_attr."""

    fields: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get_attr(self, name: str) -> Any:
        return self.attrs.get(name)


class FakeIPRoute:
    """Links (index, name) and their addresses, as get_links/get_addr return them."""

    def __init__(self, links: dict[int, str], addrs: list[tuple[int, str]]) -> None:
        self.links = links
        self.addrs = addrs

    def get_links(self) -> list[Msg]:
        return [Msg({"index": i}, {"IFLA_IFNAME": n}) for i, n in self.links.items()]

    def get_addr(self, family: int) -> list[Msg]:
        out = []
        for index, text in self.addrs:
            iface = ip_interface(text)
            if (iface.version == 6) == (family == socket.AF_INET6):
                attrs = {"IFA_ADDRESS": str(iface.ip)}
                out.append(Msg({"index": index, "prefixlen": iface.network.prefixlen}, attrs))
        return out


LINKS = {1: "lo", 2: "eth0", 3: "eth1", 4: "docker0", 5: "cali1234", 6: "br-f00", 7: "podman0"}
ADDRS = [
    (1, "127.0.0.1/8"),
    (1, "::1/128"),
    (2, "10.30.0.11/24"),
    (2, "fe80::1/64"),
    (2, "fd00:30::11/64"),
    (3, "fe80::2/64"),
    (3, "192.168.9.3/24"),
    (3, "2001:db8:9::3/64"),
    (4, "172.17.0.1/16"),
    (4, "fd00:d0c::1/64"),
    (5, "fd00:ca::1/64"),
    (6, "fd00:b1::1/64"),
    (7, "fd00:9d::1/64"),
]


@pytest.fixture
def ipr() -> FakeIPRoute:
    return FakeIPRoute(LINKS, ADDRS)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("fd00::1", True),
        ("2001:db8::1", True),
        ("fe80::1", False),
        ("febf::1", False),  # fe80::/10 ends at febf
        ("fec0::1", True),
        ("::1", False),
        ("::", False),
        ("ff02::1", False),
        ("10.0.0.1", True),
        ("169.254.1.1", False),
        ("127.0.0.1", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),
    ],
)
def test_global_unicast_is_gos(address: str, expected: bool) -> None:
    assert is_global_unicast(ip_interface(address).ip) is expected


def test_ordered_highest_index_first_addresses_in_kernel_order() -> None:
    a, b, c = (
        Candidate(n, ip_interface(x))
        for n, x in [("a", "fd::1/64"), ("a", "fd::2/64"), ("b", "fd::3/64")]
    )
    link_local = Candidate("b", ip_interface("fe80::3/64"))
    assert ordered([(1, a), (1, b), (2, link_local), (2, c)]) == [c, a, b]
    assert ordered([(1, a), (2, link_local)], unicast=False) == [link_local, a]


def test_first_found_v6_skips_link_local_loopback_and_calicos_exclusions(ipr: FakeIPRoute) -> None:
    found = detect(ipr, "first-found", 6)
    assert found == Candidate("eth1", IPv6Interface("2001:db8:9::3/64"))


def test_first_found_v4_unchanged(ipr: FakeIPRoute) -> None:
    assert detect(ipr, "first-found") == Candidate("eth1", IPv4Interface("192.168.9.3/24"))


@pytest.mark.parametrize(
    ("method", "ifname", "address"),
    [
        ("interface=eth0", "eth0", "fd00:30::11/64"),
        ("interface=^eth0$,^docker.*", "docker0", "fd00:d0c::1/64"),
        ("interface=ker", "docker0", "fd00:d0c::1/64"),  # Go's MatchString searches
        ("skip-interface=eth1", "eth0", "fd00:30::11/64"),
        ("cidr=fd00:30::/64", "eth0", "fd00:30::11/64"),
        ("cidr=10.0.0.0/8,fd00:ca::/64", "cali1234", "fd00:ca::1/64"),
        ("cidr=fd00::/8", "podman0", "fd00:9d::1/64"),  # cidr= has no exclusions
    ],
)
def test_methods_v6(ipr: FakeIPRoute, method: str, ifname: str, address: str) -> None:
    assert detect(ipr, method, 6) == Candidate(ifname, IPv6Interface(address))


def test_v4_cidr_of_a_v6_method_matches_nothing(ipr: FakeIPRoute) -> None:
    with pytest.raises(AgentError, match=r"ip6_autodetection_method cidr=10\.0\.0\.0/8: no IPv6"):
        detect(ipr, "cidr=10.0.0.0/8", 6)


def test_new_default_exclusions_br_and_podman() -> None:
    accept = method_filter("first-found", 6)
    for name in ("br-0a1b2c", "podman0", "vxlan-v6.calico", "wg-v6.cali", "lo", "cali1"):
        assert not accept(Candidate(name, IPv6Interface("fd00::1/64")))
    assert accept(Candidate("bond0", IPv6Interface("fd00::1/64")))


def test_unknown_method_names_the_family_key() -> None:
    with pytest.raises(AgentError, match="unknown ip6_autodetection_method 'kubernetes-internal"):
        method_filter("kubernetes-internal-ip", 6)


def test_check_address_v6_mismatch_is_a_clear_error(ipr: FakeIPRoute) -> None:
    with pytest.raises(AgentError) as err:
        check_address(ipr, "first-found", IPv6Interface("fd00:30::11/64"))
    text = str(err.value)
    assert "detected IPv6 address 2001:db8:9::3/64 (on eth1, method first-found)" in text
    assert "is not the address_v6 fd00:30::11/64 the bundle was compiled for" in text
    assert "ip6_autodetection_method" in text


def test_check_address_v6_prefix_counts(ipr: FakeIPRoute) -> None:
    with pytest.raises(AgentError, match=r"fd00:30::11/64 .* not the address_v6 fd00:30::11/80"):
        check_address(ipr, "interface=eth0", IPv6Interface("fd00:30::11/80"))
    found = check_address(ipr, "interface=eth0", IPv6Interface("fd00:30::11/64"))
    assert found.ifname == "eth0"


def node(**kw: Any) -> NodeIdentity:
    return NodeIdentity.model_validate({"name": "n1", "as_number": 64512, **kw})


def test_node_both_families_checked_and_both_reported(ipr: FakeIPRoute) -> None:
    ok = node(
        address="10.30.0.11/24",
        autodetection_method="interface=eth0",
        address_v6="fd00:30::11/64",
        autodetection_method_v6="cidr=fd00:30::/64",
    )
    assert [c.ifname for c in check_node_addresses(ipr, ok)] == ["eth0", "eth0"]
    bad = node(address="10.30.0.12/24", address_v6="fd00:30::12/64")
    with pytest.raises(AgentError) as err:
        check_node_addresses(ipr, bad)
    assert "not the address 10.30.0.12/24" in str(err.value)
    assert "not the address_v6 fd00:30::12/64" in str(err.value)


def test_node_v6_without_method_is_first_found(ipr: FakeIPRoute) -> None:
    only_v6 = node(address_v6="2001:db8:9::3/64")
    assert check_node_addresses(ipr, only_v6) == [
        Candidate("eth1", IPv6Interface("2001:db8:9::3/64"))
    ]


def test_can_reach_v6_matches_the_source_on_any_interface(
    ipr: FakeIPRoute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        autodetect, "reach_source", lambda dest, version: ip_interface("fd00:ca::1").ip
    )
    assert detect(ipr, "can-reach=fd00:ca::fe", 6) == Candidate(
        "cali1234", IPv6Interface("fd00:ca::1/64")
    )
    monkeypatch.setattr(
        autodetect, "reach_source", lambda dest, version: ip_interface("fd00:99::1").ip
    )
    with pytest.raises(AgentError, match="source fd00:99::1 is on no local interface"):
        detect(ipr, "can-reach=fd00:99::fe", 6)


def test_ifa_local_wins_over_ifa_address() -> None:
    """A point-to-point IPv4 address: IFA_ADDRESS is the peer's, IFA_LOCAL the node's."""
    msg = Msg({"index": 2, "prefixlen": 32}, {"IFA_ADDRESS": "10.9.9.9", "IFA_LOCAL": "10.1.1.1"})
    assert autodetect._message_address(msg) == IPv4Interface("10.1.1.1/32")
