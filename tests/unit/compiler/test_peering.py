"""The peering graph: mesh, in-cluster reflectors, external peers, passivity, passwords."""

from __future__ import annotations

from pathlib import Path

from calicc.compiler.peering import Role
from tests.support.clusters import plan_of, with_


def names(plan, node: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.name for s in plan.node(node).sessions]


def test_full_mesh_with_string_passivity(tmp_path: Path) -> None:
    data = with_()
    data["nodes"][2]["address"] = "10.0.0.10/24"  # "10.0.0.10" < "10.0.0.2" as strings
    plan = plan_of(tmp_path, data)
    n1 = {s.name: s for s in plan.node("n1").sessions}
    assert set(n1) == {"Mesh_10_0_0_2", "Mesh_10_0_0_10"}
    assert n1["Mesh_10_0_0_2"].passive  # the peer's address is greater: wait for it
    assert n1["Mesh_10_0_0_10"].passive
    n3 = {s.name: s for s in plan.node("n3").sessions}
    assert not n3["Mesh_10_0_0_1"].passive
    assert n3["Mesh_10_0_0_2"].passive
    # each pair has exactly one active side
    for a in plan.nodes:
        for s in a.sessions:
            back = next(x for x in plan.node(s.peer_node).sessions if x.peer_ip == a.address.ip)
            assert s.passive != back.passive


def test_mesh_off_means_no_internal_sessions(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(bgp={"node_to_node_mesh": False}))
    assert all(not n.sessions for n in plan.nodes)


def test_reflectors_peer_with_each_other_and_clients_only_with_reflectors(tmp_path: Path) -> None:
    data = with_()
    data["nodes"].append({"name": "n4", "address": "10.0.0.4/24"})
    data["nodes"][0]["route_reflector_cluster_id"] = "1.0.0.1"
    data["nodes"][1]["route_reflector_cluster_id"] = "1.0.0.1"
    plan = plan_of(tmp_path, data)
    rr1 = {s.name: s for s in plan.node("n1").sessions}
    assert set(rr1) == {"RR_10_0_0_2", "RRClient_10_0_0_3", "RRClient_10_0_0_4"}
    assert rr1["RRClient_10_0_0_3"].rr_cluster_id == "1.0.0.1"
    assert rr1["RR_10_0_0_2"].rr_cluster_id is None
    assert all(s.reflects for s in rr1.values())
    assert names(plan, "n3") == ["RR_10_0_0_1", "RR_10_0_0_2"]
    assert all(s.role == Role.REFLECTOR and not s.reflects for s in plan.node("n3").sessions)


def test_a_client_in_another_as_is_an_ebgp_peer_of_the_reflector_not_its_rr_client(
    tmp_path: Path,
) -> None:
    """BIRD refuses `rr client` toward an external neighbor; Calico sets it only for iBGP."""
    data = with_()
    data["nodes"][0]["route_reflector_cluster_id"] = "1.0.0.1"
    data["nodes"][2]["as_number"] = 64513
    plan = plan_of(tmp_path, data)
    rr = {s.name: s for s in plan.node("n1").sessions}
    assert rr["RRClient_10_0_0_2"].rr_cluster_id == "1.0.0.1"
    assert rr["RRClient_10_0_0_3"].rr_cluster_id is None
    assert rr["RRClient_10_0_0_3"].peer_as == 64513


def test_external_peers_global_and_by_selector(tmp_path: Path) -> None:
    data = with_(
        bgp={
            "node_to_node_mesh": False,
            "peers": [
                {"peer_ip": "172.18.0.2", "as_number": 64512, "password": {"env": "BGP_PW"}},
                {
                    "peer_ip": "10.0.0.254",
                    "as_number": 65001,
                    "node_selector": "rack == 'r1'",
                    "keep_next_hop": True,
                },
            ],
        }
    )
    data["nodes"][0]["labels"] = {"rack": "r1"}
    data["nodes"][0]["as_number"] = 65101
    plan = plan_of(tmp_path, data)
    n1 = {s.name: s for s in plan.node("n1").sessions}
    assert set(n1) == {"Global_172_18_0_2", "Node_10_0_0_254"}
    assert n1["Node_10_0_0_254"].keep_next_hop  # eBGP
    assert n1["Global_172_18_0_2"].secret_include == "secrets/Global_172_18_0_2.conf"
    assert plan.node("n1").as_number == 65101
    assert names(plan, "n2") == ["Global_172_18_0_2"]


def test_vxlan_only_cluster_needs_no_internal_bgp(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(vxlan_mode="Always", ipip_mode="Never"))
    assert all(not n.sessions for n in plan.nodes)
