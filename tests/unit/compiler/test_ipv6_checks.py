"""IPv6 and dual-stack input: every check per family, each a located file:line:field error."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.router_id import derived_router_id
from tests.support.clusters import load, plan_of, problems, write_cluster

DS: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"},
        {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:30::2/64"},
        {"name": "n3", "address": "10.0.0.3/24", "address_v6": "fd00:30::3/64"},
    ],
}
V6: dict[str, Any] = {
    "name": "t",
    "network_cidr_v6": "fd00:244::/56",
    "nodes": [{"name": f"n{i}", "address_v6": f"fd00:30::{i}/64"} for i in (1, 2, 3)],
}


def ds(**changes: Any) -> dict[str, Any]:
    data = {**DS, "nodes": [dict(n) for n in DS["nodes"]]}
    data.update(changes)
    return data


def v6(**changes: Any) -> dict[str, Any]:
    data = {**V6, "nodes": [dict(n) for n in V6["nodes"]]}
    data.update(changes)
    return data


def one(tmp_path: Path, data: dict[str, Any]) -> str:
    found = problems(tmp_path, data)
    assert len(found) == 1, found
    return found[0]


def test_dual_stack_and_ipv6_only_are_valid(tmp_path: Path) -> None:
    assert len(load(tmp_path, DS).spec.nodes) == 3
    assert load(tmp_path, V6).spec.network_cidr is None


def test_a_cluster_needs_a_default_pool_of_some_family(tmp_path: Path) -> None:
    data = ds()
    del data["network_cidr"], data["network_cidr_v6"]
    msg = one(tmp_path, data)
    assert "network_cidr: give network_cidr (the default IPv4 pool" in msg
    assert "network_cidr_v6" in msg


def test_a_node_needs_an_address_of_some_family(tmp_path: Path) -> None:
    data = ds()
    data["nodes"][1] = {"name": "n2"}
    msg = one(tmp_path, data)
    assert ":8:" in msg
    assert "nodes[1]: a node needs an address: give address (IPv4" in msg


def test_ipv6_in_ipv4_fields_says_where_it_goes(tmp_path: Path) -> None:
    data = ds(network_cidr="fd00:1::/64")
    data["nodes"][0]["address"] = "fd00:30::9/64"
    found = problems(tmp_path, data)
    assert len(found) == 2, found
    assert "network_cidr: fd00:1::/64 is IPv6: this field takes IPv4" in found[0]
    assert "an IPv6 one goes in network_cidr_v6" in found[0]
    assert "nodes[0].address: fd00:30::9/64 is IPv6" in found[1]
    assert "an IPv6 one goes in address_v6" in found[1]


def test_ipv4_in_ipv6_fields_says_where_it_goes(tmp_path: Path) -> None:
    data = ds(network_cidr_v6="10.1.0.0/16", service_cluster_ip_range_v6="10.96.0.0/12")
    data["nodes"][2]["address_v6"] = "10.0.0.3/24"
    found = problems(tmp_path, data)
    assert len(found) == 3, found
    joined = "\n".join(found)
    assert "network_cidr_v6: 10.1.0.0/16 is IPv4: this field takes IPv6" in joined
    assert "an IPv4 one goes in network_cidr\n" in joined + "\n"
    assert "service_cluster_ip_range_v6: 10.96.0.0/12 is IPv4" in joined
    assert "nodes[2].address_v6: 10.0.0.3/24 is IPv4" in joined


def test_a_field_of_either_family_says_so_once(tmp_path: Path) -> None:
    msg = one(tmp_path, ds(pools=[{"name": "p", "cidr": "nope"}]))
    assert "pools[0].cidr: expected an IPv4 or IPv6 network such as" in msg
    msg = one(tmp_path, ds(pools=[{"name": "p", "cidr": "fd00:9::1/64"}]))
    assert "fd00:9::1/64 has host bits set: the network holding it is fd00:9::/64" in msg


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ({"cidr": "fd00:9::/64", "block_size": 26}, "outside the IPv6 range of pool p"),
        ({"cidr": "10.9.0.0/16", "block_size": 122}, "outside the IPv4 range of pool p"),
    ],
)
def test_block_size_outside_the_family_range(
    tmp_path: Path, pool: dict[str, Any], expected: str
) -> None:
    msg = one(tmp_path, ds(pools=[{"name": "p", **pool}]))
    assert "pools[0].block_size: block size" in msg
    assert expected in msg
    assert ("use /116 to /128" if "IPv6" in expected else "use /20 to /32") in msg


def test_block_size_v6_bounds_and_fit(tmp_path: Path) -> None:
    msg = one(tmp_path, ds(block_size_v6=64))
    assert "block_size_v6: Input should be greater than or equal to 116" in msg
    msg = one(tmp_path, ds(network_cidr_v6="fd00:244::/120", block_size_v6=116))
    assert "block_size_v6: block size /116 is larger than pool default-ipv6-ippool" in msg
    assert "use /120 to /128" in msg


def test_ipv6_pool_capacity(tmp_path: Path) -> None:
    msg = one(tmp_path, ds(network_cidr_v6="fd00:244::/120"))  # 4 blocks of /122, 6 needed
    assert "network_cidr_v6: pool default-ipv6-ippool (fd00:244::/120) holds 4 blocks" in msg


def test_ipip_on_an_ipv6_pool_is_refused(tmp_path: Path) -> None:
    pool = {"name": "v6", "cidr": "fd00:9::/64", "ipip_mode": "Always"}
    msg = one(tmp_path, ds(pools=[pool]))
    assert "pools[0].ipip_mode: pool v6 (fd00:9::/64) is IPv6 and IPIP has no IPv6" in msg
    assert "use vxlan_mode or Never" in msg


def test_ipip_in_an_ipv6_only_cluster_is_refused(tmp_path: Path) -> None:
    msg = one(tmp_path, v6(ipip_mode="Always"))
    assert "ipip_mode: ipip_mode Always in a cluster with no IPv4 pool" in msg
    load(tmp_path, v6(vxlan_mode="Always"))  # the cluster default IPIP is not inherited


def test_dual_stack_ipip_stays_on_ipv4(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, ds(ipip_mode="Always"))
    assert [p.encap for p in plan.pools] == ["ipip", None]


def test_ipv6_pool_with_no_node_holding_ipv6(tmp_path: Path) -> None:
    data = ds()
    for node in data["nodes"]:
        del node["address_v6"]
    msg = one(tmp_path, data)
    assert "network_cidr_v6: IPv6 pool default-ipv6-ippool (fd00:244::/56) serves nodes" in msg
    assert "none has an IPv6 address (n1, n2, n3); give them address_v6" in msg


def test_a_node_served_by_an_ipv6_pool_needs_address_v6(tmp_path: Path) -> None:
    data = ds()
    del data["nodes"][1]["address_v6"]
    msg = one(tmp_path, data)
    assert (
        "nodes[1]: node n2 is served by IPv6 pool default-ipv6-ippool but has no address_v6" in msg
    )


def test_a_node_with_ipv6_in_a_cluster_without_ipv6_pool(tmp_path: Path) -> None:
    data = ds()
    del data["network_cidr_v6"]
    del data["nodes"][1]["address_v6"], data["nodes"][2]["address_v6"]
    msg = one(tmp_path, data)
    assert "nodes[0].address_v6: node n1 has an IPv6 address but the cluster has no IPv6" in msg
    assert "add network_cidr_v6" in msg


def test_overlaps_are_per_family(tmp_path: Path) -> None:
    msg = one(tmp_path, ds(pools=[{"name": "p", "cidr": "fd00:244:0:10::/64"}]))
    assert "pools[0]: pool p (fd00:244:0:10::/64) overlaps pool default-ipv6-ippool" in msg
    msg = one(tmp_path, ds(service_cluster_ip_range_v6="fd00:244::/108"))
    assert "overlaps service_cluster_ip_range_v6 (fd00:244::/108)" in msg
    data = ds()
    data["nodes"][0]["address_v6"] = "fd00:244::1/64"
    msg = one(tmp_path, data)
    assert "nodes[0].address_v6: node subnet fd00:244::/64 overlaps pool default-ipv6" in msg


def test_duplicate_and_non_host_ipv6_addresses(tmp_path: Path) -> None:
    data = ds()
    data["nodes"][1]["address_v6"] = "fd00:30::1/64"
    msg = one(tmp_path, data)
    assert "nodes[1].address_v6: duplicate node address fd00:30::1 (also nodes[0])" in msg
    data = ds()
    data["nodes"][2]["address_v6"] = "fd00:30::/64"
    msg = one(tmp_path, data)
    assert "nodes[2].address_v6: fd00:30::/64 is not a host address inside its own subnet" in msg


def test_cross_subnet_ipv6_needs_a_prefix(tmp_path: Path) -> None:
    data = ds(vxlan_mode="CrossSubnet", ipip_mode="Never")
    data["nodes"][0]["address_v6"] = "fd00:30::1/128"
    msg = one(tmp_path, data)
    assert "nodes[0].address_v6: pool default-ipv6-ippool uses CrossSubnet" in msg
    assert "e.g. fd00:30::1/64" in msg


def test_mixed_families_in_one_peer(tmp_path: Path) -> None:
    peer = {"peer_ip": "fd00:30::fe", "as_number": 64512, "export": ["10.50.0.0/16"]}
    msg = one(tmp_path, ds(bgp={"peers": [peer]}))
    assert "bgp.peers[0].export[0]: 10.50.0.0/16 is IPv4 but peer fd00:30::fe is IPv6" in msg


def test_a_peer_of_a_family_its_nodes_lack(tmp_path: Path) -> None:
    data = ds(bgp={"peers": [{"peer_ip": "fd00:30::fe", "as_number": 64512}]})
    del data["network_cidr_v6"]
    for node in data["nodes"]:
        del node["address_v6"]
    msg = one(tmp_path, data)
    assert "bgp.peers[0].peer_ip: peer fd00:30::fe is IPv6 but none of the nodes" in msg


def test_router_ids_derived_for_ipv6_only_nodes(tmp_path: Path) -> None:
    data = v6()
    data["nodes"][2]["router_id"] = "192.0.2.7"
    plan = plan_of(tmp_path, data)
    ids = {n.name: n.router_id for n in plan.nodes}
    assert ids["n1"] == derived_router_id("n1") != ids["n2"]
    assert ids["n3"] == IPv4Address("192.0.2.7")
    assert all(int(i) >= 2**31 for n, i in ids.items() if n != "n3")  # never 0.0.0.0
    assert plan_of(tmp_path, DS).nodes[0].router_id == IPv4Address("10.0.0.1")


def test_router_id_collision_names_both_nodes(tmp_path: Path) -> None:
    data = v6()
    data["nodes"][0]["router_id"] = "192.0.2.7"
    data["nodes"][2]["router_id"] = "192.0.2.7"
    msg = one(tmp_path, data)
    assert ":11:3: nodes[2].router_id: node n3 has BGP router id 192.0.2.7, as has node n1" in msg
    assert "cluster.yaml:6)" in msg  # where n1's router_id is written
    data = ds()
    data["nodes"][1]["router_id"] = "10.0.0.1"  # n1's IPv4 address
    msg = one(tmp_path, data)
    assert "nodes[1].router_id: node n2 has BGP router id 10.0.0.1, as has node n1" in msg


def test_router_id_is_a_dotted_quad(tmp_path: Path) -> None:
    data = v6()
    data["nodes"][0]["router_id"] = "fd00::1"
    assert "nodes[0].router_id: 'fd00::1' is not a dotted quad" in one(tmp_path, data)


@pytest.mark.parametrize(
    ("key", "method", "bad"),
    [
        ("ip6_autodetection_method", "cidr=fd00:30::/64", "cidr=10.0.0.0/24"),
        ("ip6_autodetection_method", "can-reach=fd00:30::fe", "can-reach=10.0.0.254"),
        ("ip_autodetection_method", "cidr=10.0.0.0/24", "cidr=fd00:30::/64"),
    ],
)
def test_autodetection_methods_per_family(tmp_path: Path, key: str, method: str, bad: str) -> None:
    load(tmp_path, ds(**{key: method}))
    msg = one(tmp_path, ds(**{key: bad}))
    assert f"{key}:" in msg
    assert ("IPv6" if key.startswith("ip6") else "IPv4") in msg


def calicc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the calicc command as a user does (its exit code and stderr)."""
    command = [sys.executable, "-m", "calicc", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def test_build_renders_ipv6_only_nodes(tmp_path: Path) -> None:
    """IPv6-only nodes build end to end: a node-table row without an IPv4 address, node.json
    without one, bird.conf with the IPv6 part only and the router id derived from the name."""
    path = write_cluster(tmp_path, v6())
    result = calicc("build", str(path))
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "rendered"
    table = (rendered / "cluster" / "nodes.tsv").read_text(encoding="utf-8").splitlines()
    assert table[2].endswith("\tpod_mtu\taddress_v6\ttunnel_address_v6\tvtep_mac_v6")
    assert table[4].startswith("n2\t-\t-\t-\tdefault-ipv6-ippool=")
    assert table[4].endswith("\tfd00:30::2/64\t-\t-")
    node = json.loads((rendered / "nodes" / "n2" / "node.json").read_text(encoding="utf-8"))
    assert "address" not in node["node"]
    assert node["node"]["address_v6"] == "fd00:30::2/64"
    bird = (rendered / "nodes" / "n2" / "bird.conf").read_text(encoding="utf-8")
    assert f"router id {derived_router_id('n2')};" in bird
    assert "ipv4 {" not in bird
    assert "ipv4;" not in bird  # no IPv4 channel anywhere (kernel, direct, static)
    assert "ipv6 {" in bird


def test_build_renders_vxlan_over_ipv6(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, ds(vxlan_mode="Always", ipip_mode="Never"))
    result = calicc("build", str(path))
    assert result.returncode == 0, result.stderr
    node = json.loads((tmp_path / "rendered/nodes/n1/node.json").read_text(encoding="utf-8"))
    links = {link["name"]: link for link in node["links"]}
    assert sorted(links) == ["vxlan-v6.calico", "vxlan.calico"]
    assert links["vxlan-v6.calico"]["local"] == "fd00:30::1"
    assert links["vxlan-v6.calico"]["address"] == f"{node['tunnel_address_v6']}/128"
    assert links["vxlan-v6.calico"]["mac"] == node["vtep_mac_v6"]
    assert node["pod_mtu"] == 1430  # 1500 less VXLAN over IPv6's 70 bytes


def test_a_dual_stack_cluster_without_encapsulation_builds(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, ds(ipip_mode="Never"))
    result = calicc("build", str(path))
    assert result.returncode == 0, result.stderr
    bird = (tmp_path / "rendered" / "nodes" / "n1" / "bird.conf").read_text(encoding="utf-8")
    assert "fd00:244::/122" in bird


def test_the_checks_come_before_the_refusal(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, ds(block_size_v6=64))
    result = calicc("validate", str(path))
    assert result.returncode == 1
    assert "block_size_v6: Input should be greater than or equal to 116" in result.stderr
    assert "not rendered" not in result.stderr
