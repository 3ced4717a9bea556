"""Routes, links, neighbours and FDB entries per node (compiler/targets/routes.py), and
cluster/routes.sh, every node's one routes script (`routes.sh NODE`, from the node table)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.lock import Lock, vtep_mac
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_cluster
from calicc.compiler.targets.routes import dataplane, route_args
from calicc.contract.manifest import Route
from calicc.contract.names import CLUSTER_ROUTES, NODES_TABLE, ROUTE_PROTOCOL
from calicc.contract.nodes_table import parse_table
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


# A stand-in for ip and bridge: logs each call (and what -batch reads) to $LOG; a device
# exists when its name is in $PRESENT (eth0, the node's interface, always); the node address
# is on eth0 ($ADDR).
FAKE_TOOL = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >>"$LOG"
case "$*" in
  "-batch -") sed 's/^/  /' >>"$LOG" ;;
  "link show dev "*) [[ " $PRESENT " == *" $4 "* ]] || exit 1 ;;
  "-d link show dev "*) exit 1 ;;
  "-o -4 addr show") echo "2: eth0    inet $ADDR brd + scope global eth0" ;;
esac
exit 0
"""


def run_routes_sh(tmp_path: Path, plan: ClusterPlan, node: str, present: str = "") -> str:
    """Run cluster/routes.sh NODE against fake ip and bridge; return what it asked of them."""
    if shutil.which("bash") is None or shutil.which("awk") is None:
        pytest.skip("needs bash and awk")
    files = render_cluster(plan)
    cluster_dir, bin_dir = tmp_path / "cluster", tmp_path / "bin"
    cluster_dir.mkdir()
    bin_dir.mkdir()
    for rel in (CLUSTER_ROUTES, NODES_TABLE):
        (tmp_path / rel).write_text(files[rel])
    for tool in ("ip", "bridge"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALICC_CLUSTER_DIR": str(cluster_dir),
        "LOG": str(tmp_path / "log"),
        "PRESENT": f"eth0 {present}",
        "ADDR": "10.0.0.1/24",  # every test node is on eth0 of 10.0.0.0/24
    }
    script = [str(tmp_path / CLUSTER_ROUTES), node]
    done = subprocess.run(["bash", *script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "log").read_text()


def test_routes_sh_is_one_script_naming_no_node(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path, nodes=[dict(n) for n in TWO_SUBNETS])
    text = render_cluster(plan)[CLUSTER_ROUTES]
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert text.endswith('\nmain "$@"\n')
    for node in plan.nodes:  # every node's facts are its row of the node table
        assert node.name not in text
        assert str(node.address.ip) not in text
        assert str(node.tunnel_address) not in text
        assert str(node.vtep_mac) not in text
        assert "ens3" not in text


def test_the_node_table_row_holds_what_routes_sh_needs(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path, mtu=1400, nodes=[dict(n) for n in TWO_SUBNETS])
    rows = {r.name: r for r in parse_table(render_cluster(plan)[NODES_TABLE])}
    a1 = plan.node("a1")
    row = rows["a1"]
    assert (row.address, row.tunnel_address, row.vtep_mac) == (
        a1.address,
        a1.tunnel_address,
        a1.vtep_mac,
    )
    assert (row.interface, row.pod_mtu) == ("ens3", 1400)
    assert [cidr for _, cidr in row.blocks] == sorted(b.cidr for b in a1.blocks)
    assert rows["a2"].interface is None


def test_routes_sh_makes_the_node_s_own_devices_and_blackholes(tmp_path: Path) -> None:
    plan = _vxlan(tmp_path)
    node = plan.node("n1")
    log = run_routes_sh(tmp_path, plan, "n1")
    assert (
        "ip link add name vxlan.calico type vxlan id 4096 dstport 4789 local 10.0.0.1 dev eth0 "
        "nolearning\n" in log
    )
    assert f"ip link set dev vxlan.calico address {node.vtep_mac} mtu 1450 up\n" in log
    assert f"ip addr replace {node.tunnel_address}/32 dev vxlan.calico\n" in log
    for block in node.blocks:
        assert f"  route replace blackhole {block.cidr} proto {ROUTE_PROTOCOL}\n" in log
    for peer in (plan.node("n2"), plan.node("n3")):  # over VXLAN, from the node table
        for block in peer.blocks:
            assert f"blackhole {block.cidr}" not in log
            assert (
                f"  route replace {block.cidr} via {peer.tunnel_address} dev vxlan.calico onlink "
                f"proto {ROUTE_PROTOCOL}\n" in log
            )
    assert "tunl0" not in log


def test_routes_sh_of_a_node_without_vtep_removes_the_device(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    log = run_routes_sh(tmp_path, plan, "n1", present="vxlan.calico")
    assert "ip link delete dev vxlan.calico\n" in log
    assert "type vxlan" not in log
    assert "route replace blackhole" in log
    assert " via " not in log  # IPIP: the other nodes' blocks are BIRD's


def test_routes_sh_ipip_fails_clearly_without_ipip_support(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    node = plan.node("n1")
    log = run_routes_sh(tmp_path, plan, "n1")
    assert "ip link add name tunl0 type ipip\n" in log
    assert "ip link set dev tunl0 mtu 1480 up\n" in log
    assert f"ip addr replace {node.tunnel_address}/32 dev tunl0\n" in log
    assert "this kernel has no IPIP support" in render_cluster(plan)[CLUSTER_ROUTES]


def test_routes_sh_refuses_a_node_missing_from_the_table(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    with pytest.raises(AssertionError, match="node n9 is not in"):
        run_routes_sh(tmp_path, plan, "n9")


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
