"""vxlan-v6.calico in the agent without a kernel: its family, its parent, its one /128.

tests/tools/test_vxlan_v6.py holds the same against the kernel; these pin the choices: the
device's addresses and its parent are looked up among IPv6 addresses, the kernel's link-local
address on it stays, the /128 goes on without duplicate address detection, and its IPv6
permanent neighbours are the ones dumped and diffed.
"""

from __future__ import annotations

import socket
from typing import Any

from calicc.agent.links import IFA_F_NODAD, _ensure_address, family, parent_index
from calicc.agent.neigh import reconcile_l2
from calicc.contract.manifest import Link, Neighbor

V6_LINK = Link(
    name="vxlan-v6.calico",
    kind="vxlan",
    mtu=1430,
    address="fd00:244::/128",  # type: ignore[arg-type]
    vni=4096,
    port=4789,
    mac="66:00:00:00:00:01",
    local="fd00:30::1",  # type: ignore[arg-type]
)
V4_LINK = Link(name="vxlan.calico", kind="vxlan", mtu=1450, local="10.0.0.1")  # type: ignore[arg-type]


class Msg(dict[str, Any]):
    """A netlink message: header fields as keys, attributes in `attrs`."""

    def __init__(self, attrs: dict[str, Any], **fields: Any) -> None:
        super().__init__(fields)
        self.attrs = attrs

    def get_attr(self, name: str) -> Any:
        return self.attrs.get(name)


class FakeIPRoute:
    """Addresses and neighbours per family; records every write."""

    def __init__(self) -> None:
        self.addrs = {
            socket.AF_INET: [Msg({"IFA_ADDRESS": "10.0.0.1"}, index=2, prefixlen=24, scope=0)],
            socket.AF_INET6: [
                Msg({"IFA_ADDRESS": "fd00:30::1"}, index=2, prefixlen=64, scope=0),
                Msg({"IFA_ADDRESS": "fe80::1"}, index=7, prefixlen=64, scope=253),
                Msg({"IFA_ADDRESS": "fd00:244::99"}, index=7, prefixlen=128, scope=0),
            ],
        }
        self.neighbours = [
            Msg(
                {"NDA_DST": "fd00:244::80", "NDA_LLADDR": "66:00:00:00:00:02"},
                ifindex=7,
                state=0x80,
            ),
            Msg({"NDA_DST": "ff02::16", "NDA_LLADDR": "33:33:00:00:00:16"}, ifindex=7, state=0x40),
        ]
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.families: list[int] = []

    def get_addr(self, family: int, index: int | None = None) -> list[Msg]:
        return [m for m in self.addrs[family] if index is None or m["index"] == index]

    def addr(self, verb: str, **args: Any) -> None:
        self.writes.append(("addr", verb, args))

    def link_lookup(self, ifname: str) -> list[int]:
        return [7] if ifname.startswith("vxlan") else []

    def get_neighbours(self, ifindex: int, family: int) -> list[Msg]:
        self.families.append(family)
        return self.neighbours

    def neigh(self, verb: str, **args: Any) -> None:
        self.writes.append(("neigh", verb, args))

    def fdb(self, verb: str, **args: Any) -> list[Msg]:
        if verb != "dump":
            self.writes.append(("fdb", verb, args))
        return []


def test_family_follows_the_link_addresses() -> None:
    assert family(V6_LINK) == socket.AF_INET6
    assert family(V4_LINK) == socket.AF_INET


def test_the_parent_is_the_interface_holding_the_ipv6_local() -> None:
    assert parent_index(FakeIPRoute(), V6_LINK, None) == 2


def test_one_global_128_without_dad_and_the_link_local_kept() -> None:
    ipr = FakeIPRoute()
    assert _ensure_address(ipr, 7, V6_LINK)
    assert ipr.writes == [
        ("addr", "del", {"index": 7, "address": "fd00:244::99", "prefixlen": 128}),
        (
            "addr",
            "add",
            {"index": 7, "address": "fd00:244::", "prefixlen": 128, "flags": IFA_F_NODAD},
        ),
    ]


def test_ipv6_permanent_neighbours_are_reconciled_on_vxlan_v6() -> None:
    ipr = FakeIPRoute()
    wanted = Neighbor(dev="vxlan-v6.calico", address="fd00:244::40", lladdr="66:00:00:00:00:03")  # type: ignore[arg-type]
    changes = reconcile_l2(ipr, (V6_LINK,), (wanted,), ())
    assert ipr.families == [socket.AF_INET6]
    assert (
        "neigh",
        "del",
        {"dst": "fd00:244::80", "lladdr": "66:00:00:00:00:02", "ifindex": 7},
    ) in (ipr.writes)
    assert any(w[:2] == ("neigh", "replace") and w[2]["dst"] == "fd00:244::40" for w in ipr.writes)
    assert not any(w[0] == "neigh" and w[2].get("dst") == "ff02::16" for w in ipr.writes)
    assert changes == [
        "vxlan-v6.calico: neighbour fd00:244::40 set",
        "vxlan-v6.calico: neighbour fd00:244::80 deleted",
    ]
