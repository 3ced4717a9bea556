"""VXLAN over IPv6 derived from the node table (contract/vxlan.py) and its device (node.json).

Each family has its own device and facts: IPv4 VXLAN pools go through vxlan.calico between the
nodes' IPv4 addresses, IPv6 ones through vxlan-v6.calico between their IPv6 addresses, each
with its own tunnel addresses and VTEP MACs; CrossSubnet compares the addresses of the pool's
family.
"""

from __future__ import annotations

import json
from ipaddress import IPv6Address, IPv6Interface, ip_network
from pathlib import Path
from typing import Any

from calicc.compiler.build import Compiled, compile_cluster
from calicc.compiler.targets.routes import dataplane
from calicc.contract.manifest import ClusterPool
from calicc.contract.names import VXLAN_DEVICE, VXLAN_PORT, VXLAN_V6_DEVICE, VXLAN_VNI
from calicc.contract.nodes_table import NodeRow
from calicc.contract.vxlan import vxlan_plane
from tests.support.clusters import load

DUAL: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "ipip_mode": "Never",
    "vxlan_mode": "Always",
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"},
        {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:31::2/64"},
        {"name": "n3", "address_v6": "fd00:30::3/64", "labels": {"v6": "only"}},
    ],
    "pools": [],
}


def compiled(tmp_path: Path, **changes: Any) -> Compiled:
    data = {**DUAL, **changes}
    if "network_cidr" in data and any("address" not in n for n in data["nodes"]):
        v4 = {"name": "v4", "cidr": data.pop("network_cidr"), "node_selector": "!has(v6)"}
        data["pools"] = [*data.get("pools", []), v4]
    return compile_cluster(load(tmp_path, data))


def test_ipv6_blocks_go_over_vxlan_v6_to_the_peers_ipv6_vteps(tmp_path: Path) -> None:
    built = compiled(tmp_path)
    n1 = built.node_manifest("n1")
    for peer in ("n2", "n3"):
        plan = built.plan.node(peer)
        for block in plan.blocks_v6:
            route = next(r for r in n1.routes if r.dst == block.cidr)
            assert (route.via, route.dev, route.onlink) == (
                plan.tunnel_address_v6,
                VXLAN_V6_DEVICE,
                True,
            )
        neighbour = next(n for n in n1.neighbors if n.address == plan.tunnel_address_v6)
        assert (neighbour.dev, neighbour.lladdr) == (VXLAN_V6_DEVICE, plan.vtep_mac_v6)
        fdb = next(f for f in n1.fdb if f.lladdr == plan.vtep_mac_v6)
        assert plan.address_v6 is not None
        assert (fdb.dev, fdb.dst) == (VXLAN_V6_DEVICE, plan.address_v6.ip)
    n2 = built.plan.node("n2")
    for block4 in n2.blocks:  # the IPv4 family as before: vxlan.calico, IPv4 facts
        route = next(r for r in n1.routes if r.dst == block4.cidr)
        assert (route.via, route.dev) == (n2.tunnel_address, VXLAN_DEVICE)
    assert n2.address is not None
    assert {f.dst for f in n1.fdb if f.dev == VXLAN_DEVICE} == {n2.address.ip}  # not n3: no IPv4
    assert len(n1.neighbors) == len(n1.fdb) == 3  # n2 over both families, n3 over IPv6
    # n3 has no IPv4: none of IPv4 VXLAN on n3
    n3 = built.node_manifest("n3")
    assert {n.dev for n in n3.neighbors} == {VXLAN_V6_DEVICE}
    assert {r.dst.version for r in n3.routes} == {6}


def test_the_vxlan_v6_link(tmp_path: Path) -> None:
    built = compiled(tmp_path)
    for name in ("n1", "n3"):
        node = json.loads(built.files[f"nodes/{name}/node.json"])
        plan = built.plan.node(name)
        (link,) = [link for link in node["links"] if link["name"] == VXLAN_V6_DEVICE]
        assert link == {
            "address": f"{plan.tunnel_address_v6}/128",
            "kind": "vxlan",
            "local": str(plan.address_v6.ip) if plan.address_v6 else None,
            "mac": plan.vtep_mac_v6,
            "mtu": 1430,  # 1500 less VXLAN over IPv6's 70 bytes
            "name": VXLAN_V6_DEVICE,
            "parent": None,
            "port": VXLAN_PORT,
            "vni": VXLAN_VNI,
        }
        assert node["pod_mtu"] == 1430
    n3 = json.loads(built.files["nodes/n3/node.json"])
    assert [link["name"] for link in n3["links"]] == [VXLAN_V6_DEVICE]  # IPv6-only: no vxlan.calico
    sysctls = {
        json.loads(built.files[f"nodes/{n}/node.json"])["files"]["sysctl/99-calicc.conf"]["source"]
        for n in ("n1", "n3")
    }
    assert sysctls == {"cluster/sysctl/vxlan-vxlan6-ipv6.conf", "cluster/sysctl/vxlan6-ipv6.conf"}


def test_crosssubnet_per_family(tmp_path: Path) -> None:
    """n1 and n3 share an IPv6 subnet (direct), n2 is in another (over vxlan-v6.calico); over
    IPv4, n1 and n2 share a subnet (direct)."""
    built = compiled(tmp_path, vxlan_mode="CrossSubnet")
    n1 = built.node_manifest("n1")
    n2, n3 = built.plan.node("n2"), built.plan.node("n3")
    assert n3.address_v6 is not None
    for block in n3.blocks_v6:
        route = next(r for r in n1.routes if r.dst == block.cidr)
        assert (route.via, route.dev, route.onlink) == (n3.address_v6.ip, None, False)
    for block in n2.blocks_v6:
        route = next(r for r in n1.routes if r.dst == block.cidr)
        assert (route.via, route.dev) == (n2.tunnel_address_v6, VXLAN_V6_DEVICE)
    for block4 in n2.blocks:
        route = next(r for r in n1.routes if r.dst == block4.cidr)
        assert n2.address is not None
        assert (route.via, route.dev) == (n2.address.ip, None)
    assert [f.dst for f in n1.fdb] == [n2.address_v6.ip if n2.address_v6 else None]


def test_an_ipv6_pool_without_vxlan_adds_no_vxlan_v6(tmp_path: Path) -> None:
    built = compiled(
        tmp_path,
        network_cidr_v6="fd00:244::/56",
        pools=[{"name": "v6-plain", "cidr": "fd00:246::/56", "vxlan_mode": "Never"}],
        vxlan_mode="Never",
        nodes=DUAL["nodes"][:2],
    )
    for name in ("n1", "n2"):
        plane = dataplane(built.plan, built.plan.node(name))
        assert VXLAN_V6_DEVICE not in {link.name for link in plane.links}
        assert all(r.type == "blackhole" for r in plane.routes)
        assert built.plan.node(name).vtep_mac_v6 is None


def row(name: str, address_v6: str, tunnel: str | None, mac: str | None, block: str) -> NodeRow:
    return NodeRow(
        name=name,
        address=None,
        tunnel_address=None,
        vtep_mac=None,
        blocks=(("p6", ip_network(block)),),
        interface=None,
        pod_mtu=1430,
        address_v6=IPv6Interface(address_v6),
        tunnel_address_v6=IPv6Address(tunnel) if tunnel else None,
        vtep_mac_v6=mac,
    )


def test_a_node_without_an_ipv6_vtep_takes_part_in_none_of_it() -> None:
    pool = ClusterPool(
        name="p6",
        cidr=ip_network("fd00:244::/56"),
        encapsulation="vxlan",
        mode="Always",
        nat_outgoing=False,
    )
    me = row("a", "fd00:30::1/64", "fd00:244::", "66:00:00:00:00:01", "fd00:244::/122")
    vtep = row("b", "fd00:30::2/64", "fd00:244::40", "66:00:00:00:00:02", "fd00:244::40/122")
    bare = row("c", "fd00:30::3/64", None, None, "fd00:244::80/122")
    plane = vxlan_plane(me, "ens3", (pool,), (me, vtep, bare))
    assert [str(r.dst) for r in plane.routes] == ["fd00:244::40/122"]  # no VTEP: no route to c
    assert [str(n.address) for n in plane.neighbors] == ["fd00:244::40"]
    assert [str(f.dst) for f in plane.fdb] == ["fd00:30::2"]
    assert vxlan_plane(bare, None, (pool,), (me, vtep, bare)).routes == ()
