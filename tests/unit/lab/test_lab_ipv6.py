"""The lab's IPv6 and dual-stack parts that need no namespace: segments and gateways of both
families, wiring lines, expected IPv6 block routes, an IPv6 ToR, IPv6 probe plans."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from calicc.compiler.build import load_cluster, plan_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.lab.expect import lab_routes
from calicc.lab.gobgp import Neighbor, gobgp_config
from calicc.lab.matrix import Paths, first_probe, mtu_probes, node_pod_probes, pod_pod_probes
from calicc.lab.pods import plan_pods
from calicc.lab.state import Pod
from calicc.lab.topology import EXTERNAL_HOST_V6, plan_topology
from calicc.lab.tor import tor_config, tor_router_id
from calicc.lab.wiring import base_scripts, host_scripts

DUAL = """\
name: dual
network_cidr: 10.244.0.0/16
network_cidr_v6: fd00:244::/56
ipip_mode: Never
vxlan_mode: CrossSubnet
bgp:
  peers:
    - {peer_ip: "fd00:31:1::fe", as_number: 65000}
nodes:
  - {name: a1, address: 10.31.1.11/24, address_v6: "fd00:31:1::11/64"}
  - {name: a2, address: 10.31.1.12/24, address_v6: "fd00:31:1::12/64"}
  - {name: b1, address: 10.31.2.11/24, address_v6: "fd00:31:2::11/64"}
"""

MESH = """\
name: mesh
network_cidr: 10.244.0.0/16
network_cidr_v6: fd00:244::/56
ipip_mode: Never
nodes:
  - {name: n1, address: 10.70.0.11/24, address_v6: "fd00:70::11/64"}
  - {name: n2, address: 10.70.0.12/24, address_v6: "fd00:70::12/64"}
  - {name: n3, address: 10.70.0.13/24, address_v6: "fd00:70::13/64"}
"""

V6_ONLY = """\
name: v6
network_cidr_v6: fd00:245::/56
nodes:
  - {name: rr-1, address_v6: "fd00:80::11/64", route_reflector_cluster_id: 1.0.0.1}
  - {name: w-1, address_v6: "fd00:80::21/64"}
  - {name: w-2, address_v6: "fd00:80::22/64"}
"""


def plan_of(tmp_path: Path, text: str) -> ClusterPlan:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return plan_cluster(load_cluster(path))


def addressed(plan: ClusterPlan) -> dict[str, Pod]:
    """Pods with the addresses IPAM would give in each family: first and second of a block."""
    pods = {}
    for pod in plan_pods(plan, "u"):
        node = plan.node(pod.node)
        offset = 1 if pod.name.endswith("-a") else 2
        v6 = str(node.blocks_v6[0].cidr.network_address + offset)
        v4 = str(node.blocks[0].cidr.network_address + offset) if node.blocks else v6
        pods[pod.name] = replace(pod, address=v4, address_v6=v6)
    return pods


def test_dual_stack_segments_hold_a_gateway_of_each_family(tmp_path: Path) -> None:
    topo = plan_topology(plan_of(tmp_path, DUAL), "u")
    assert [(str(s.cidr), str(s.cidr_v6)) for s in topo.subnets] == [
        ("10.31.1.0/24", "fd00:31:1::/64"),
        ("10.31.2.0/24", "fd00:31:2::/64"),
    ]
    # the highest host address of each family; the peer (not the last host) gets its own netns
    first = topo.subnets[0]
    assert first.gateway_v6 == IPv6Address("fd00:31:1::ffff:ffff:ffff:ffff")
    assert topo.gateways("b1") == {4: topo.subnets[1].gateway, 6: topo.subnets[1].gateway_v6}
    speaker = topo.speakers[0]
    assert speaker.address is None
    assert str(speaker.address_v6) == "fd00:31:1::fe/64"
    assert ":" not in speaker.ns


def test_wiring_gives_ipv6_addresses_nodad_and_an_ipv6_default_route(tmp_path: Path) -> None:
    topo = plan_topology(plan_of(tmp_path, DUAL), "u")
    node = topo.node("a1")
    lines = host_scripts(topo, node)[1].lines
    assert "addr add fd00:31:1::11/64 dev eth0 nodad" in lines
    assert f"route add default via {topo.subnets[0].gateway}" in lines
    assert f"route add default via {topo.subnets[0].gateway_v6}" in lines
    router, *_, external = base_scripts(topo)
    for subnet in topo.subnets:
        leg = f"addr add {subnet.gateway_v6}/64 dev {subnet.router_port} nodad"
        assert leg in router.lines
    assert f"addr add {EXTERNAL_HOST_V6} dev eth0 nodad" in external.lines


def test_ipv6_only_segment_is_keyed_by_its_ipv6_subnet(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, V6_ONLY)
    topo = plan_topology(plan, "u")
    (segment,) = topo.subnets
    assert segment.cidr is None
    assert segment.gateway is None
    assert segment.cidr_v6 == IPv6Network("fd00:80::/64")
    assert ":" not in segment.ns
    lines = host_scripts(topo, topo.node("w-1"))[1].lines
    assert not any(line.startswith("addr add 10.") for line in lines)
    assert lines[-1] == f"route add default via {segment.gateway_v6}"
    assert topo.gateways("w-1") == {6: segment.gateway_v6}


def test_expected_ipv6_routes_go_via_the_owners_ipv6_address(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, MESH)
    topo = plan_topology(plan, "u")
    routes = lab_routes(plan, topo, "n1")
    v6 = [r for r in routes if r.dst.version == 6]
    assert [r.dst.version for r in routes] == sorted(r.dst.version for r in routes)
    assert {(str(r.gateway), r.owner) for r in v6} == {("fd00:70::12", "n2"), ("fd00:70::13", "n3")}
    assert len(v6) == len(plan.node("n2").blocks_v6) + len(plan.node("n3").blocks_v6)
    assert all(r.text.endswith("dev eth0 proto bird") for r in v6)


def test_ipv6_only_expects_every_block_and_no_ipv4_route(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, V6_ONLY)
    topo = plan_topology(plan, "u")
    for node in plan.nodes:
        routes = lab_routes(plan, topo, node.name)
        assert routes
        assert all(r.dst.version == 6 for r in routes)


def test_ipv6_tor_speaks_ipv6_with_the_ipv6_pools(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DUAL)
    ip = IPv6Address("fd00:31:1::fe")
    text = tor_config(plan, ip, 65000)
    assert f"router id {tor_router_id(ip)};" in text
    assert int(tor_router_id(ip)) >= 1 << 31
    assert "ipv6 { next hop keep;" in text
    assert "[ fd00:244::/56+ ]" in text
    assert "10.244" not in text
    assert "neighbor fd00:31:1::11 as 64512;" in text


def test_an_ipv6_gobgp_reflector_listens_on_its_ipv6_address_with_a_32_bit_id() -> None:
    ip = IPv6Address("fd00:40::100")
    clients = (
        Neighbor(IPv6Address("fd00:40::12"), 64512),
        Neighbor(IPv6Address("fd00:40::11"), 64512),
    )
    text = gobgp_config(tor_router_id(ip), 64512, 179, clients, ip)
    assert 'local-address-list = ["fd00:40::100"]' in text
    assert f'router-id = "{tor_router_id(ip)}"' in text
    assert f'route-reflector-cluster-id = "{tor_router_id(ip)}"' in text
    assert text.index('"fd00:40::11"') < text.index('"fd00:40::12"')


def test_ipv6_probes_mirror_the_ipv4_ones_with_48_header_bytes(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, MESH)
    paths = Paths(plan, plan_topology(plan, "u"), addressed(plan), standin=False)
    assert paths.families() == [4, 6]
    v4, v6 = pod_pod_probes(paths, 4), pod_pod_probes(paths, 6)
    assert [p.check for p in v4] == [p.check for p in v6]
    assert all(":" in p.target for p in v6)
    assert not any(p.skip for p in v6 + node_pod_probes(paths, 6))
    assert {p.target for p in node_pod_probes(paths, 6) if p.check == "pod-node"} == {
        "fd00:70::11",
        "fd00:70::12",
        "fd00:70::13",
    }
    mtu = plan.nodes[0].pod_mtu
    sizes = [(p.size, p.answered) for p in mtu_probes(paths, 6)[:2]]
    assert sizes == [(mtu - 48, True), (mtu - 47, False)]


def test_first_probe_of_an_ipv6_only_lab_is_ipv6(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, V6_ONLY)
    pods = {n: replace(p, address=p.address_v6) for n, p in addressed(plan).items()}
    paths = Paths(plan, plan_topology(plan, "u"), pods, standin=False)
    assert paths.families() == [6]
    assert pod_pod_probes(paths, 4) == []
    probe = first_probe(paths)
    assert probe.check == "pod-pod nodes"
    assert ":" in probe.target


@pytest.mark.parametrize(
    ("address", "version", "want"),
    [("10.0.0.1", 4, "10.0.0.1"), ("fd00::1", 4, ""), ("fd00::1", 6, "fd00::1")],
)
def test_pod_address_of_a_family(address: str, version: int, want: str) -> None:
    pod = Pod("p", "n", "default", "ns", "c", address, address if ":" in address else "")
    assert pod.address_of(version) == want


def test_an_ipv6_only_node_joins_the_dual_stack_segment_of_its_ipv6_subnet(
    tmp_path: Path,
) -> None:
    mixed = """\
name: mixed
network_cidr_v6: fd00:244::/56
pools:
  - {name: v4, cidr: 10.244.0.0/16, ipip_mode: Never, node_selector: "stack == 'dual'"}
nodes:
  - {name: n1, address: 10.70.0.11/24, address_v6: "fd00:70::11/64", labels: {stack: dual}}
  - {name: n4, address_v6: "fd00:70::14/64"}
"""
    plan = plan_of(tmp_path, mixed)
    topo = plan_topology(plan, "u")
    (segment,) = topo.subnets
    assert (str(segment.cidr), str(segment.cidr_v6)) == ("10.70.0.0/24", "fd00:70::/64")
    assert topo.segment("n4") == segment
    assert topo.gateways("n4") == {6: segment.gateway_v6}


def test_two_ipv6_subnets_beside_one_ipv4_subnet_are_refused(tmp_path: Path) -> None:
    split = MESH.replace("fd00:70::13/64", "fd00:71::13/64")
    with pytest.raises(ValueError, match="one IPv6 subnet beside each IPv4 subnet"):
        plan_topology(plan_of(tmp_path, split), "u")
