"""Semantic checks: one test per check, each asserting the located message."""

from __future__ import annotations

from pathlib import Path

from tests.support.clusters import BASE, load, problems, with_


def one(tmp_path: Path, data: dict[str, object]) -> str:
    found = problems(tmp_path, data)
    assert len(found) == 1, found
    return found[0]


def test_valid_base_passes(tmp_path: Path) -> None:
    assert len(load(tmp_path, BASE).spec.nodes) == 3


def test_pools_overlap_each_other(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(pools=[{"name": "extra", "cidr": "10.244.128.0/17"}]))
    assert "pools[0]: pool extra (10.244.128.0/17) overlaps pool default-ipv4-ippool" in msg


def test_pool_overlaps_service_range(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(service_cluster_ip_range="10.244.0.0/20"))
    assert "network_cidr: pool default-ipv4-ippool (10.244.0.0/16) overlaps service" in msg


def test_pool_overlaps_node_subnet(tmp_path: Path) -> None:
    data = with_()
    data["nodes"][0]["address"] = "10.244.1.1/24"
    msg = one(tmp_path, data)
    assert "nodes[0].address: node subnet 10.244.1.0/24 overlaps pool" in msg


def test_block_larger_than_pool(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(network_cidr="10.244.0.0/24", block_size=22))
    assert "block_size: block size /22 is larger than pool" in msg


def test_pool_too_small_for_blocks(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(network_cidr="10.244.0.0/26", block_size=26))
    assert "holds 1 blocks of /26 but its nodes need 6" in msg


def test_duplicate_names_and_addresses(tmp_path: Path) -> None:
    data = with_()
    data["nodes"][1] = {"name": "n1", "address": "10.0.0.1/24"}
    found = problems(tmp_path, data)
    assert any("nodes[1].name: duplicate node name 'n1' (also nodes[0])" in p for p in found)
    assert any("nodes[1].address: duplicate node address 10.0.0.1" in p for p in found)


def test_address_not_a_host_of_its_subnet(tmp_path: Path) -> None:
    data = with_()
    data["nodes"][0]["address"] = "10.0.0.255/24"
    msg = one(tmp_path, data)
    assert "is not a host address inside its own subnet 10.0.0.0/24" in msg


def test_icp_style_ip_names_are_valid(tmp_path: Path) -> None:
    data = with_()
    data["nodes"][0]["name"] = "10.0.0.1"
    assert load(tmp_path, data).spec.nodes[0].name == "10.0.0.1"


def test_ipip_and_vxlan_on_one_pool(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(ipip_mode="Always", vxlan_mode="Always"))
    assert "enables both IPIP (Always) and VXLAN (Always); set one of them to Never" in msg


def test_cross_subnet_without_prefix(tmp_path: Path) -> None:
    data = with_(ipip_mode="CrossSubnet")
    data["nodes"][2]["address"] = "10.0.1.3/32"
    msg = one(tmp_path, data)
    assert "nodes[2].address: pool default-ipv4-ippool uses CrossSubnet but node n3" in msg


def test_mtu_too_large_for_link(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(mtu=1490, vxlan_mode="Always", ipip_mode="Never"))
    assert (
        "MTU 1490 plus vxlan overhead (50) does not fit the link MTU 1500 of nodes n1, n2, n3"
        in msg
    )
    assert "use at most 1450" in msg


def test_selector_matching_no_node(tmp_path: Path) -> None:
    peers = [{"peer_ip": "10.0.0.254", "as_number": 65000, "node_selector": "rack == 'r9'"}]
    msg = one(tmp_path, with_(bgp={"peers": peers}))
    assert "bgp.peers[0].node_selector: selector \"rack == 'r9'\" matches no node" in msg


def test_pool_selector_matching_no_node(tmp_path: Path) -> None:
    pools = [{"name": "p2", "cidr": "10.250.0.0/16", "node_selector": "has(gpu)"}]
    msg = one(tmp_path, with_(pools=pools))
    assert "pools[0].node_selector: selector 'has(gpu)' matches no node" in msg


def test_peer_that_is_a_node(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(bgp={"peers": [{"peer_ip": "10.0.0.2", "as_number": 64512}]}))
    assert "bgp.peers[0].peer_ip: 10.0.0.2 is a cluster node" in msg


def test_icp_ipip_enabled_false_means_never(tmp_path: Path) -> None:
    spec = load(tmp_path, with_(calico_ipip_enabled=False)).spec
    assert spec.ipip_mode == "Never"


def test_mesh_warning_past_100_nodes(tmp_path: Path) -> None:
    from calicc.compiler.peering import mesh_warning
    from calicc.compiler.pools import resolve_pools

    nodes = [{"name": f"n{i}", "address": f"10.0.{i // 200}.{i % 200 + 1}/16"} for i in range(101)]
    spec = load(tmp_path, with_(nodes=nodes)).spec
    warning = mesh_warning(spec, resolve_pools(spec))
    assert warning is not None
    assert "5050 BGP sessions" in warning
    assert "route_reflector_cluster_id" in warning
    spec100 = load(tmp_path, with_(nodes=nodes[:100])).spec
    assert mesh_warning(spec100, resolve_pools(spec100)) is None


def test_ipip_and_vxlan_pools_in_one_cluster(tmp_path: Path) -> None:
    pools = [{"name": "vx", "cidr": "10.250.0.0/16", "vxlan_mode": "Always", "ipip_mode": "Never"}]
    msg = one(tmp_path, with_(pools=pools))
    assert "pools[0]: pool vx uses VXLAN while pool default-ipv4-ippool uses IPIP" in msg
    disabled = [{**pools[0], "disabled": True}]
    assert load(tmp_path, with_(pools=disabled)).spec.pools[0].disabled
