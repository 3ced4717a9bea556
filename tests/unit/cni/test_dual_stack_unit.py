"""Dual stack in the CNI plugin, without namespaces: IPAM per family, result shapes, CHECK's
reading of prevResult, the netlink bodies and the endpoint record (docs/ipv6.md)."""

from __future__ import annotations

import json
import socket
import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from calicc.agent.cni.endpoint_policy import EndpointRecord
from calicc.agent.cni.errors import POOL_EXHAUSTED, CniError
from calicc.agent.cni.ipam import STATE_FILE, IpamStore
from calicc.agent.cni.netconf import check_prev_result
from calicc.agent.cni.result import Interface, ipam_result, plugin_result
from calicc.agent.cni.rtnl import IFA_F_NODAD, SCOPE_LINK, SCOPE_UNIVERSE, address_body, route_body

V4 = IPv4Network("10.244.0.0/30")
V6 = IPv6Network("fd00:10:244::/126")
TUNNEL_V6 = IPv6Address("fd00:10:244::")


def dual(tmp_path: Path, v4: IPv4Network = V4, v6: IPv6Network = V6) -> IpamStore:
    return IpamStore(tmp_path / "ipam", "n1", [v6, v4], [IPv4Address("10.244.0.0"), TUNNEL_V6])


def addresses(store: IpamStore, handle: str) -> list[str]:
    claim = store.claim(handle, handle, "eth0", {})
    return [str(a.address) for a in claim.allocations]


def test_a_dual_stack_pod_gets_one_address_per_family_ipv4_first(tmp_path: Path) -> None:
    store = dual(tmp_path)
    assert store.families == (4, 6)
    assert addresses(store, "net.c1") == ["10.244.0.1", "fd00:10:244::1"]
    assert addresses(store, "net.c1") == ["10.244.0.1", "fd00:10:244::1"]  # same handle
    assert addresses(store, "net.c2") == ["10.244.0.2", "fd00:10:244::2"]
    held = [(str(a.address), a.handle) for a in store.allocations()]
    assert held == [
        ("10.244.0.1", "net.c1"),
        ("10.244.0.2", "net.c2"),
        ("fd00:10:244::1", "net.c1"),
        ("fd00:10:244::2", "net.c2"),
    ]


def test_an_ipv6_only_node_gives_only_ipv6_and_never_its_tunnel_address(tmp_path: Path) -> None:
    store = IpamStore(tmp_path / "ipam", "n1", [V6], [TUNNEL_V6])
    assert store.families == (6,)
    assert store.candidates(4) == []
    got = [addresses(store, f"net.c{i}") for i in range(3)]
    assert got == [["fd00:10:244::1"], ["fd00:10:244::2"], ["fd00:10:244::3"]]
    with pytest.raises(CniError) as caught:
        store.claim("net.c9", "c9", "eth0", {})
    assert caught.value.code == POOL_EXHAUSTED
    assert "no free pod address (IPv6)" in caught.value.msg
    assert "fd00:10:244::/126" in caught.value.msg
    assert "block_size_v6" in caught.value.msg


def test_one_family_exhausted_takes_no_address_of_the_other(tmp_path: Path) -> None:
    store = dual(tmp_path, v6=IPv6Network("fd00:10:244::/127"))  # ::1 only (:: is the tunnel)
    addresses(store, "net.c1")
    with pytest.raises(CniError, match=r"no free pod address \(IPv6\)"):
        store.claim("net.c2", "c2", "eth0", {})
    assert [a.handle for a in store.allocations()] == ["net.c1", "net.c1"]


def test_del_releases_both_families_together_and_gc_each_allocation(tmp_path: Path) -> None:
    store = dual(tmp_path)
    addresses(store, "net.c1")
    addresses(store, "net.c2")
    released = store.release("net.c1")
    assert [str(a) for a in released] == ["10.244.0.1", "fd00:10:244::1"]
    gone = store.gc({("net.c3", "eth0")}, "net")
    assert [str(a) for a in gone] == ["10.244.0.2", "fd00:10:244::2"]
    assert store.allocations() == []


def test_a_released_address_is_not_reused_at_once_in_either_family(tmp_path: Path) -> None:
    store = dual(tmp_path)
    addresses(store, "net.c1")
    store.release("net.c1")
    assert addresses(store, "net.c2") == ["10.244.0.2", "fd00:10:244::2"]


def test_unclaim_gives_back_both_addresses_and_both_cursors(tmp_path: Path) -> None:
    store = dual(tmp_path)
    addresses(store, "net.c1")
    claim = store.claim("net.c2", "c2", "eth0", {})
    assert [str(a.address) for a in claim.fresh] == ["10.244.0.2", "fd00:10:244::2"]
    store.unclaim(claim)
    assert addresses(store, "net.c3") == ["10.244.0.2", "fd00:10:244::2"]


def test_a_pod_of_a_node_that_became_dual_stack_gets_the_missing_family(tmp_path: Path) -> None:
    v4_only = IpamStore(tmp_path / "ipam", "n1", [V4], [IPv4Address("10.244.0.0")])
    assert addresses(v4_only, "net.c1") == ["10.244.0.1"]
    claim = dual(tmp_path).claim("net.c1", "c1", "eth0", {})
    assert [str(a.address) for a in claim.fresh] == ["fd00:10:244::1"]
    assert [str(a.address) for a in claim.allocations] == ["10.244.0.1", "fd00:10:244::1"]


def test_an_ipv4_only_state_file_keeps_its_keys(tmp_path: Path) -> None:
    store = IpamStore(tmp_path / "ipam", "n1", [V4], [IPv4Address("10.244.0.0")])
    addresses(store, "net.c1")
    data = json.loads((tmp_path / "ipam" / STATE_FILE).read_text())
    assert sorted(data) == ["allocations", "cursor", "node"]
    store = dual(tmp_path)
    addresses(store, "net.c2")
    data = json.loads((tmp_path / "ipam" / STATE_FILE).read_text())
    assert data["cursor"] == "10.244.0.2"
    assert data["cursor_v6"] == "fd00:10:244::1"


HOST = Interface("cali0123456789a", "ee:ee:ee:ee:ee:ee")
POD = Interface("eth0", "02:00:00:00:00:01", "/var/run/netns/p1")
BOTH: list[IPv4Address | IPv6Address] = [IPv4Address("10.244.0.1"), IPv6Address("fd00:10:244::1")]


def test_the_result_lists_both_addresses_with_their_gateways_and_routes() -> None:
    result = plugin_result("1.0.0", BOTH, HOST, POD)
    assert result["ips"] == [
        {"address": "10.244.0.1/32", "gateway": "169.254.1.1", "interface": 1},
        {"address": "fd00:10:244::1/128", "gateway": "fe80::ecee:eeff:feee:eeee", "interface": 1},
    ]
    assert result["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
        {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"},
    ]
    old = plugin_result("0.3.1", BOTH, HOST, POD)
    assert [(ip["version"], ip["address"]) for ip in old["ips"]] == [
        ("4", "10.244.0.1/32"),
        ("6", "fd00:10:244::1/128"),
    ]
    assert plugin_result("0.4.0", BOTH[1:], HOST, POD)["routes"] == [
        {"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"}
    ]
    assert ipam_result("1.0.0", BOTH) == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.244.0.1/32"}, {"address": "fd00:10:244::1/128"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    }


def test_an_ipv4_result_is_as_before() -> None:
    assert plugin_result("0.3.1", BOTH[:1], HOST, POD) == {
        "cniVersion": "0.3.1",
        "interfaces": [HOST.to_json(), POD.to_json()],
        "ips": [
            {"address": "10.244.0.1/32", "gateway": "169.254.1.1", "interface": 1, "version": "4"}
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
        "dns": {},
    }


def test_check_reads_both_addresses_of_prev_result_ipv4_first() -> None:
    prev = {"ips": [{"address": "fd00:10:244::1/128"}, {"address": "10.244.0.1/32"}]}
    assert check_prev_result({"prevResult": prev}) == (BOTH[0], BOTH[1])
    only = {"ips": [{"address": "fd00:10:244::1/128"}]}
    assert check_prev_result({"prevResult": only}) == (BOTH[1],)
    with pytest.raises(
        CniError, match=r"prevResult\.ips must be a list holding the pod's addresses"
    ):
        check_prev_result({"prevResult": {"ips": []}})


def test_ipv6_netlink_bodies_use_inet6_nodad_and_no_scope() -> None:
    body = address_body(7, BOTH[1], 128)
    family, prefix, flags, scope, index = struct.unpack_from("=BBBBI", body)
    assert (family, prefix, flags, scope, index) == (socket.AF_INET6, 128, IFA_F_NODAD, 0, 7)
    assert BOTH[1].packed in body
    route = route_body(BOTH[1], 128, 7, SCOPE_LINK)
    assert struct.unpack_from("=BB", route) == (socket.AF_INET6, 128)
    assert route[6] == SCOPE_UNIVERSE
    v4 = route_body(BOTH[0], 32, 7, SCOPE_LINK)
    assert (v4[0], v4[6]) == (socket.AF_INET, SCOPE_LINK)


def test_an_ipv4_endpoint_record_is_stored_as_before_and_a_dual_one_adds_address_v6() -> None:
    record = EndpointRecord("cali1", "c1", "eth0", "10.244.0.1", "default", {}, {}, ())
    assert "address_v6" not in record.to_json()
    assert record.addresses() == [BOTH[0]]
    dual_record = EndpointRecord(
        "cali1", "c1", "eth0", "10.244.0.1", "default", {}, {}, (), "fd00:10:244::1"
    )
    assert dual_record.to_json()["address_v6"] == "fd00:10:244::1"
    assert dual_record.addresses() == BOTH
    v6_only = EndpointRecord(
        "cali1", "c1", "eth0", "fd00:10:244::1", "default", {}, {}, (), "fd00:10:244::1"
    )
    assert v6_only.addresses() == [BOTH[1]]
