"""Routes, links, neighbours and FDB entries per node (compiler/targets/routes.py, routes.sh)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from calicc.compiler.lock import Lock, vtep_mac
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_cluster, render_routes
from calicc.compiler.targets.routes import dataplane, route_args
from calicc.contract.manifest import Route
from calicc.contract.names import ROUTE_PROTOCOL
from tests.support.clusters import plan_of, with_

TWO_SUBNETS = [
    {"name": "a1", "address": "10.30.1.11/24", "interface": "ens3"},
    {"name": "a2", "address": "10.30.1.12/24"},
    {"name": "b1", "address": "10.30.2.11/24"},
]


def _vxlan(tmp_path: Path, mode: str = "Always", **changes: Any) -> ClusterPlan:
    return plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode=mode, **changes))


def _routes_by_dst(plan: ClusterPlan, node: str) -> dict[str, Route]:
    return {str(r.dst): r for r in dataplane(plan, plan.node(node)).routes}


def test_ipip_node_has_tunl0_and_blackholes_but_no_remote_routes(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())  # IPIP Always by default
    node = plan.node("n1")
    plane = dataplane(plan, node)
    assert [(link.name, link.kind, link.mtu) for link in plane.links] == [("tunl0", "ipip", 1480)]
    assert plane.links[0].address == IPv4Interface(f"{node.tunnel_address}/32")
    assert [r.type for r in plane.routes] == ["blackhole"] * len(node.blocks)
    assert [r.dst for r in plane.routes] == [b.cidr for b in node.blocks]
    assert plane.neighbors == ()
    assert plane.fdb == ()


def test_never_pool_has_no_tunnel_device(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never"))
    plane = dataplane(plan, plan.node("n2"))
    assert plane.links == ()
    assert {r.type for r in plane.routes} == {"blackhole"}


def test_vxlan_always_routes_every_remote_block_via_its_vtep(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path)
    me = plan.node("n1")
    routes = _routes_by_dst(plan, "n1")
    for peer in (plan.node("n2"), plan.node("n3")):
        for block in peer.blocks:
            route = routes[str(block.cidr)]
            assert (route.type, route.via, route.dev, route.onlink) == (
                "unicast",
                peer.tunnel_address,
                "vxlan.calico",
                True,
            )
            assert peer.name in route.comment
    for block in me.blocks:
        assert routes[str(block.cidr)].type == "blackhole"
    assert len(routes) == sum(len(n.blocks) for n in plan.nodes)


def test_vxlan_link_carries_vni_port_local_and_lock_mac(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path, mtu=1400, nodes=[dict(TWO_SUBNETS[0]), dict(TWO_SUBNETS[1])])
    node = plan.node("a1")
    (link,) = dataplane(plan, node).links
    assert (link.name, link.kind, link.vni, link.port) == ("vxlan.calico", "vxlan", 4096, 4789)
    assert link.mac == node.vtep_mac == vtep_mac("a1")
    assert link.local == IPv4Address("10.30.1.11")
    assert link.parent == "ens3"
    assert link.mtu == 1400
    assert link.address == IPv4Interface(f"{node.tunnel_address}/32")
    assert dataplane(plan, plan.node("a2")).links[0].parent is None


def test_vxlan_pod_mtu_is_link_mtu_minus_50(tmp_path: Path) -> None:
    nodes = [{"name": "n1", "address": "10.0.0.1/24", "link_mtu": 9000}]
    plan = _vxlan(tmp_path, nodes=nodes)
    assert dataplane(plan, plan.node("n1")).links[0].mtu == 8950


def test_vxlan_neighbour_and_fdb_per_remote_vtep(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path)
    plane = dataplane(plan, plan.node("n2"))
    peers = [plan.node("n1"), plan.node("n3")]
    assert [(n.address, n.lladdr, n.dev) for n in plane.neighbors] == [
        (p.tunnel_address, p.vtep_mac, "vxlan.calico") for p in peers
    ]
    assert [(f.lladdr, f.dst, f.dev) for f in plane.fdb] == [
        (p.vtep_mac, p.address.ip, "vxlan.calico") for p in peers
    ]


def test_crosssubnet_same_subnet_is_direct_other_subnet_is_vxlan(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path, "CrossSubnet", nodes=[dict(n) for n in TWO_SUBNETS])
    routes = _routes_by_dst(plan, "a1")
    for block in plan.node("a2").blocks:
        route = routes[str(block.cidr)]
        assert (route.via, route.dev, route.onlink) == (IPv4Address("10.30.1.12"), "ens3", False)
    b1 = plan.node("b1")
    for block in b1.blocks:
        route = routes[str(block.cidr)]
        assert (route.via, route.dev, route.onlink) == (b1.tunnel_address, "vxlan.calico", True)
    plane = dataplane(plan, plan.node("a1"))
    assert [n.address for n in plane.neighbors] == [b1.tunnel_address]  # none for the direct peer
    assert [f.dst for f in plane.fdb] == [b1.address.ip]


def test_crosssubnet_direct_route_without_interface_lets_kernel_pick(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path, "CrossSubnet", nodes=[dict(n) for n in TWO_SUBNETS])
    route = _routes_by_dst(plan, "a2")[str(plan.node("a1").blocks[0].cidr)]
    assert route.dev is None
    assert route_args(route) == f"{route.dst} via 10.30.1.11 proto {ROUTE_PROTOCOL}"


def test_route_args() -> None:
    route = Route(
        dst=IPv4Network("10.244.1.0/26"),
        type="unicast",
        via=IPv4Address("10.244.1.0"),
        dev="vxlan.calico",
        onlink=True,
    )
    assert route_args(route) == "10.244.1.0/26 via 10.244.1.0 dev vxlan.calico onlink proto 81"


def test_routes_sh_holds_only_the_node_s_own_routes_and_devices(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path)
    node = plan.node("n1")
    text = render_routes(plan, node)["routes/routes.sh"]
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert '. "$CLUSTER_DIR/routes.sh"' in text
    for block in node.blocks:
        assert (
            f"# pool {block.pool}: block of this node (n1)\n  echo blackhole {block.cidr}\n" in text
        )
    for peer in (plan.node("n2"), plan.node("n3")):  # derived on the node from the node table
        assert str(peer.address.ip) not in text
        assert str(peer.tunnel_address) not in text
    assert "vxlan_state \"$CLUSTER_DIR/nodes.tsv\" n1 10.0.0.1/24 ''\n" in text
    assert (
        f"ensure_vxlan vxlan.calico 4096 4789 10.0.0.1 '' {node.vtep_mac} 1450 "
        f"{node.tunnel_address}/32" in text
    )
    assert 'apply_state "$state"' in text


def test_routes_sh_of_a_node_without_vtep_removes_the_device(tmp_path: Path) -> None:
    text = render_routes(plan := plan_of(tmp_path, with_()), plan.node("n1"))["routes/routes.sh"]
    assert "\nremove_vxlan\n" in text
    assert "vxlan_state" not in text


def test_routes_sh_ipip_fails_clearly_without_ipip_support(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    node = plan.node("n1")
    text = render_routes(plan, node)["routes/routes.sh"]
    assert f"ensure_ipip tunl0 1480 {node.tunnel_address}/32\n" in text
    assert "this kernel has no IPIP support" in render_cluster(plan)["cluster/routes.sh"]


def test_cluster_routes_library_names_the_enabled_vxlan_pools(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path, "CrossSubnet")
    text = render_cluster(plan)["cluster/routes.sh"]
    assert "\nVXLAN_POOLS=default-ipv4-ippool=CrossSubnet\n" in text
    assert "\nPROTO=81\n" in text


def test_bgp_only_dataplane_never_looks_at_other_nodes(tmp_path: Path) -> None:
    """Per-node work must stay O(own blocks) without VXLAN (5,000-node reflector clusters)."""
    plan = plan_of(tmp_path, with_())
    node = plan.node("n2")
    alone = replace(
        plan,
        spec=plan.spec.model_copy(update={"nodes": ()}),
        lock=Lock(nodes={}),
        nodes=(node,),
    )
    assert dataplane(alone, node) == dataplane(plan, node)
