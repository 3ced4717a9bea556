"""The trace's routing (trace/route.py, trace/bgp.py) on the examples' rendered trees: local,
BGP over the mesh, reflectors and a ToR, IPIP and VXLAN CrossSubnet, MTU, unroutable."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from calicc.trace.bgp import Speakers, session_with, sessions
from calicc.trace.errors import TraceError
from calicc.trace.route import Forward, forward
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES
from tests.support.clusters import built_example


def view_of(example: str) -> TreeView:
    return TreeView.open(EXAMPLES / example / "rendered")


def route(view: TreeView, src: str, dst: str, family: int = 4) -> Forward:
    """Return src's route to the first address of dst's first block of `family`."""
    block = next(c for _, c in view.row(dst).blocks if c.version == family)
    return forward(view, Speakers(view.bird_conf, view.node_at), view.row(src), block[1], None)


def test_ipip_crosssubnet_is_direct_in_the_rack_and_tunnelled_across() -> None:
    view = view_of("crosssubnet")
    same = route(view, "rack1-node1", "rack1-node2")
    assert (same.kind, same.device, same.encapsulation) == ("bgp", "eth0", "none")
    assert "inside rack1-node1's subnet 10.30.1.0/24" in same.why
    across = route(view, "rack1-node1", "rack2-node1")
    assert (across.device, across.encapsulation, across.mtu) == ("tunl0", "ipip", 1480)
    assert across.route.endswith(f"via {view.row('rack2-node1').address.ip} dev tunl0 onlink")
    assert "outside rack1-node1's subnet" in across.why
    assert "Mesh_" in across.installed_by


def test_reflected_routes_name_the_reflectors() -> None:
    view = view_of("rr-inline")
    found = route(view, "worker-1", "worker-2")
    assert found.kind == "bgp"
    assert len(found.learned) == 2  # both in-cluster reflectors pass it on
    assert {x.through for x in found.learned} == {
        ("route reflector rr-1",),
        ("route reflector rr-2",),
    }
    assert found.via == view.row("worker-2").address.ip  # reflectors keep the next hop


def test_a_tor_passes_blocks_between_racks_without_encapsulation() -> None:
    view = view_of("tor-ebgp")
    found = route(view, "rack1-node1", "rack2-node1")
    assert (found.kind, found.encapsulation) == ("bgp", "none")
    (learned,) = found.learned
    assert learned.through == ("external peer 10.60.1.254",)
    assert "resolved through" in found.route  # the next hop is in the other rack


def test_vxlan_crosssubnet_uses_the_static_route() -> None:
    view = view_of("vxlan-crosssubnet")
    same = route(view, "rack1-node1", "rack1-node2")
    assert (same.kind, same.encapsulation) == ("vxlan", "none")
    across = route(view, "rack1-node1", "rack2-node1")
    assert (across.device, across.encapsulation, across.mtu) == ("vxlan.calico", "vxlan", 1450)
    assert across.via == view.row("rack2-node1").tunnel_address


def test_ipv6_routes_follow_the_ipv6_sessions() -> None:
    view = view_of("dual-stack-vxlan-crosssubnet")
    across = route(view, "rack1-node1", "rack2-node1", family=6)
    assert (across.device, across.encapsulation, across.mtu) == ("vxlan-v6.calico", "vxlan", 1430)
    mesh = route(view_of("dual-stack-mesh"), "node-1", "node-2", family=6)
    assert mesh.kind == "bgp"
    assert mesh.learned[0].session.neighbor.version == 6


def test_an_address_of_the_nodes_own_block_without_a_pod_is_blackholed() -> None:
    view = view_of("minikube-ipip")
    block = view.row("minikube").blocks[0][1]
    found = forward(
        view, Speakers(view.bird_conf, view.node_at), view.row("minikube"), block[5], None
    )
    assert (found.kind, found.routable) == ("blackhole", False)
    local = forward(
        view, Speakers(view.bird_conf, view.node_at), view.row("minikube"), block[5], "calix"
    )
    assert (local.kind, local.device, local.route) == (
        "local-pod",
        "calix",
        f"{block[5]}/32 dev calix scope link",
    )


def test_outside_and_node_addresses_go_to_the_underlay() -> None:
    view = view_of("minikube-ipip")
    speakers = Speakers(view.bird_conf, view.node_at)
    out = forward(view, speakers, view.row("minikube"), ip_address("192.0.2.7"), None)
    assert (out.kind, out.routable) == ("underlay", True)
    node = forward(view, speakers, view.row("minikube"), view.row("minikube-m02").address.ip, None)
    assert node.kind == "node"
    assert node.dst_node is not None
    assert node.dst_node.name == "minikube-m02"


def test_a_node_peering_with_no_one_the_others_reach_is_unroutable(tmp_path: Path) -> None:
    def isolate(data: dict[str, Any]) -> None:  # only rack r1 peers with the ToR
        data["bgp"]["peers"][0]["node_selector"] = "rack == 'r1'"

    built_example(tmp_path, "tor-ebgp", isolate)
    view = TreeView.open(tmp_path / "rendered")
    found = route(view, "rack1-node1", "rack2-node1")
    assert (found.kind, found.routable) == ("unroutable", False)
    assert "learns no route to rack2-node1's block" in found.why
    assert route(view, "rack1-node1", "rack1-node2").routable


def test_sessions_read_from_bird_conf() -> None:
    text = (EXAMPLES / "rr-inline/rendered/nodes/rr-1/bird.conf").read_text()
    found = {s.name: s for s in sessions(text)}
    client = found["RRClient_10_50_0_21"]
    assert (client.rr_client, client.reflects, client.peer_as) == (True, True, 64512)
    assert client.description == "node worker-1 (route reflector client)"


def test_a_tree_that_is_not_one_and_an_unknown_node(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="point --tree at the directory"):
        TreeView.open(tmp_path)
    with pytest.raises(TraceError, match="unknown node 'nope': the cluster's nodes are minikube"):
        view_of("minikube-ipip").row("nope")


def test_a_reflector_learns_a_clients_block_without_asking_its_other_clients() -> None:
    view = view_of("rr-inline")
    read: set[str] = set()

    def bird_conf(node: str) -> str:
        read.add(node)
        return view.bird_conf(node)

    speakers = Speakers(bird_conf, view.node_at)
    found = speakers.learned(view.row("rr-1"), view.row("worker-2"), 4)
    assert [x.session.name for x in found] == ["RRClient_10_50_0_22", "RR_10_50_0_12"]
    assert found[1].through == ("route reflector rr-2",)
    assert read == {"rr-1", "rr-2", "worker-2"}, "no other client's bird.conf is read"
    assert set(speakers._sessions) == {"rr-1"}, "of the others, only the sessions asked about"


def test_one_session_read_alone_is_the_one_of_all_sessions() -> None:
    checked = 0
    for conf in sorted(EXAMPLES.glob("*/rendered/nodes/*/bird.conf")):
        text = conf.read_text()
        every = {s.neighbor: s for s in sessions(text)}
        for neighbor, session in every.items():
            assert session_with(text, neighbor) == session, (conf, neighbor)
            checked += 1
        assert session_with(text, ip_address("192.0.2.255")) is None
    assert checked > 100
