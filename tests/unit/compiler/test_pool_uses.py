"""Pools' allowed uses and reservations: located errors, the lock, the NAT sets, cluster.json."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import build, load_cluster
from calicc.compiler.errors import CaliccError
from calicc.compiler.lock import Lock
from calicc.compiler.reserve import Reserved
from calicc.compiler.targets.ipset import static_sets
from tests.support.clusters import plan_of, problems, with_, write_cluster

LB = {"name": "lb", "cidr": "192.168.50.0/24", "allowed_uses": ["LoadBalancer"]}
TUNNELS = {"name": "tunnels", "cidr": "10.250.0.0/24", "block_size": 30, "allowed_uses": ["Tunnel"]}


def one(tmp_path: Path, data: dict[str, Any]) -> str:
    found = problems(tmp_path, data)
    assert len(found) == 1, found
    return found[0]


# --- validation: file:line: field: message ------------------------------------------------------


@pytest.mark.parametrize(
    ("uses", "says"),
    [
        (["Workload", "Pods"], "pools[0].allowed_uses[1]: Input should be 'Workload', 'Tunnel'"),
        ([], "pools[0].allowed_uses: allowed_uses is empty: leave it out"),
        (["Tunnel", "Tunnel"], "allowed_uses names Tunnel twice"),
        (["LoadBalancer", "Workload"], "LoadBalancer cannot be combined with Workload or Tunnel"),
    ],
)
def test_bad_uses_are_located(tmp_path: Path, uses: list[str], says: str) -> None:
    pool = {"name": "extra", "cidr": "10.245.0.0/16", "allowed_uses": uses}
    msg = one(tmp_path, with_(pools=[pool]))
    assert msg.startswith(f"{tmp_path / 'cluster.yaml'}:"), msg
    assert says in msg


def test_load_balancer_pool_takes_no_encapsulation_or_selector(tmp_path: Path) -> None:
    pool = {**LB, "vxlan_mode": "Always", "node_selector": "rack == 'r1'"}
    found = problems(tmp_path, with_(pools=[pool]))
    assert any("pools[0].vxlan_mode: pool lb is for LoadBalancer" in p for p in found)
    assert any("pools[0].node_selector: pool lb is for LoadBalancer" in p for p in found)


def test_load_balancer_pool_does_not_inherit_ipip(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Always", pools=[LB]))
    lb = next(p for p in plan.pools if p.name == "lb")
    assert lb.encap is None
    assert lb.load_balancer


def test_a_family_whose_pools_leave_nothing_for_pods(tmp_path: Path) -> None:
    data = with_(
        network_cidr=None,
        network_cidr_v6="fd00:244::/56",
        pools=[{**LB, "cidr": "10.245.0.0/16"}],
    )
    for n, node in enumerate(data["nodes"]):
        node["address_v6"] = f"fd00:30::{n + 1}/64"
    only = {"name": "only", "cidr": "10.246.0.0/16", "ipip_mode": "Never"}
    data["pools"].append({**only, "allowed_uses": ["Tunnel"]})
    found = problems(tmp_path, data)
    assert any(
        "pools[0].allowed_uses: no IPv4 pool allows Workload (lb, only): pods would get no IPv4"
        in p
        for p in found
    ), found
    assert any(
        "pools[1].allowed_uses: pool only allows only Tunnel but uses neither" in p for p in found
    )


def test_encapsulated_nodes_need_a_tunnel_pool(tmp_path: Path) -> None:
    pods = {"name": "pods", "cidr": "10.245.0.0/16", "allowed_uses": ["Workload"]}
    data = with_(ipip_mode="Never", pools=[{**pods, "vxlan_mode": "Always"}])
    msg = one(tmp_path, data)
    assert (
        "pools[0].allowed_uses: pool pods uses VXLAN but no VXLAN pool serving nodes n1, n2, n3"
        in msg
    )


@pytest.mark.parametrize(
    ("cidr", "says"),
    [
        ("10.9.0.0/24", "reservations[0].cidr: reservation 10.9.0.0/24 is outside every pool"),
        ("fd00::1", "reservations[0].cidr: reservation fd00::1/128 is outside every pool (IPv6"),
        ("10.244.0.0/15", "reservation 10.244.0.0/15 reaches outside pool default-ipv4-ippool"),
        ("10.244.0.1/24", "reservations[0].cidr: 10.244.0.1/24 has host bits set"),
        ("10.244.0.0/33", "reservations[0].cidr:"),
        ("10.244.0.0/16", "network_cidr: pool default-ipv4-ippool (10.244.0.0/16) holds 0 blocks"),
    ],
)
def test_bad_reservations_are_located(tmp_path: Path, cidr: str, says: str) -> None:
    found = problems(tmp_path, with_(reservations=[{"cidr": cidr, "name": "gw"}]))
    msg = next((p for p in found if says in p), None)
    assert msg is not None, found
    assert msg.startswith(f"{tmp_path / 'cluster.yaml'}:"), msg


def test_bad_input_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, with_(reservations=[{"cidr": "10.9.0.0/24"}]))
    done = subprocess.run(
        [sys.executable, "-m", "calicc", "build", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    line = path.read_text().splitlines().index("- cidr: 10.9.0.0/24") + 1
    assert f"cluster.yaml:{line}:3: reservations[0].cidr: reservation" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml"]


# --- the lock ---------------------------------------------------------------------------------


def test_tunnel_addresses_avoid_reservations_and_pod_only_pools(tmp_path: Path) -> None:
    data = with_(
        pools=[TUNNELS],
        reservations=[{"cidr": "10.250.0.0/31"}, {"cidr": "10.250.0.6"}, {"cidr": "10.244.0.0"}],
    )
    plan = plan_of(tmp_path, data)
    tunnels = {n.name: n.tunnel_address for n in plan.nodes}
    assert tunnels == {  # 10.250.0.0/30 keeps 10.250.0.2-3, 10.250.0.4/30 all but .6
        "n1": IPv4Address("10.250.0.2"),
        "n2": IPv4Address("10.250.0.4"),
        "n3": IPv4Address("10.250.0.8"),
    }
    blocks = {n.name: [str(b.cidr) for b in n.blocks] for n in plan.nodes}
    assert blocks["n1"] == ["10.244.0.0/26", "10.244.0.64/26", "10.250.0.0/30"]


def test_a_workload_only_pool_holds_no_tunnel_address(tmp_path: Path) -> None:
    pods = {"name": "pods", "cidr": "10.245.0.0/16", "allowed_uses": ["Workload"]}
    plan = plan_of(tmp_path, with_(network_cidr="10.244.0.0/22", pools=[pods]))
    for node in plan.nodes:
        assert node.tunnel_address in IPv4Network("10.244.0.0/22")


def test_wholly_reserved_blocks_are_skipped_and_partly_reserved_ones_topped_up(
    tmp_path: Path,
) -> None:
    data = with_(
        reservations=[{"cidr": "10.244.0.64/26"}, {"cidr": "10.244.0.16/28"}],
        nodes=[{"name": "n1", "address": "10.0.0.1/24", "max_pods": 63}],
    )
    plan = plan_of(tmp_path, data)
    assert [str(b.cidr) for b in plan.nodes[0].blocks] == ["10.244.0.0/26", "10.244.0.128/26"]
    assert plan.nodes[0].tunnel_address == IPv4Address("10.244.0.0")


def test_ipv6_reservations(tmp_path: Path) -> None:
    data = with_(
        network_cidr_v6="fd00:244::/56",
        reservations=[{"cidr": "fd00:244::/126"}],
        vxlan_mode="Always",
        ipip_mode="Never",
    )
    for n, node in enumerate(data["nodes"]):
        node["address_v6"] = f"fd00:30::{n + 1}/64"
    plan = plan_of(tmp_path, data)
    v6 = {n.name: n.tunnel_address_v6 for n in plan.nodes}
    assert v6["n1"] == IPv6Address("fd00:244::4")


def test_a_kept_tunnel_address_stays_when_reserved_later(tmp_path: Path) -> None:
    first = plan_of(tmp_path, with_())
    later = plan_of(tmp_path, with_(reservations=[{"cidr": "10.244.0.0/30"}]), first.lock)
    assert later.node("n1").tunnel_address == IPv4Address("10.244.0.0")
    fresh = plan_of(tmp_path, with_(reservations=[{"cidr": "10.244.0.0/30"}]), Lock())
    assert fresh.node("n1").tunnel_address == IPv4Address("10.244.0.4")


def test_reserved_counts() -> None:
    reserved = Reserved([IPv4Network("10.0.0.0/30"), IPv4Network("10.0.0.2/31")])
    assert reserved.count(IPv4Network("10.0.0.0/29")) == 4
    assert reserved.first_free(IPv4Network("10.0.0.0/29")) == IPv4Address("10.0.0.4")
    assert reserved.first_free(IPv4Network("10.0.0.0/30")) is None
    assert reserved.covers(IPv4Network("10.0.0.0/30"))
    assert reserved.holds(IPv4Address("10.0.0.3"))
    assert not reserved.holds(IPv4Address("10.0.0.4"))
    assert reserved.blocks_of(IPv4Network("10.0.0.0/24"), 31) == (2, 0)
    assert reserved.blocks_of(IPv4Network("10.0.0.0/24"), 29) == (0, 1)
    assert not Reserved([])


# --- NAT sets and cluster.json ------------------------------------------------------------------


def test_load_balancer_pool_stays_out_of_the_all_pools_set(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(pools=[LB]))
    sets = {s.name: s.members for s in static_sets(plan)}
    assert sets["cali40all-ipam-pools"] == ("10.244.0.0/16",)
    assert sets["cali40masq-ipam-pools"] == ("10.244.0.0/16", "192.168.50.0/24")  # as Calico
    assert all(not any(b.pool == "lb" for b in n.blocks) for n in plan.nodes)


def test_cluster_json_names_uses_and_reservations_only_when_set(tmp_path: Path) -> None:
    data = with_(pools=[LB, {"name": "plain", "cidr": "10.245.0.0/16"}])
    data["reservations"] = [{"cidr": "10.244.0.0/30"}, {"cidr": "10.244.0.2"}]
    build(load_cluster(write_cluster(tmp_path, data)), tmp_path / "rendered")
    settings = json.loads((tmp_path / "rendered/cluster/cluster.json").read_text())
    uses = {p["name"]: p.get("allowed_uses") for p in settings["pools"]}
    assert uses == {"default-ipv4-ippool": None, "plain": None, "lb": ["LoadBalancer"]}
    assert settings["reservations"] == ["10.244.0.0/30"]
    del data["reservations"]
    data["pools"] = data["pools"][1:]
    build(load_cluster(write_cluster(tmp_path, data)), tmp_path / "rendered")
    text = (tmp_path / "rendered/cluster/cluster.json").read_text()
    assert "reservations" not in text
    assert "allowed_uses" not in text


def test_a_pool_made_tunnel_only_moves_no_tunnel_address(tmp_path: Path) -> None:
    extra = {"name": "extra", "cidr": "10.245.0.0/16"}
    first = plan_of(tmp_path, with_(pools=[extra]))
    later = plan_of(tmp_path, with_(pools=[{**extra, "allowed_uses": ["Tunnel"]}]), first.lock)
    for node in later.nodes:
        assert node.tunnel_address == first.node(node.name).tunnel_address
        assert node.blocks == first.node(node.name).blocks  # kept: pods hold its addresses
    fresh = plan_of(tmp_path, with_(pools=[{**extra, "allowed_uses": ["Tunnel"]}]))
    assert fresh.node("n1").tunnel_address == IPv4Address("10.245.0.0")  # the Tunnel-only pool


def test_a_pool_made_load_balancer_is_a_move_the_lock_refuses(tmp_path: Path) -> None:
    data = with_(pools=[{"name": "extra", "cidr": "10.245.0.0/16"}])
    path = write_cluster(tmp_path, data)
    build(load_cluster(path), tmp_path / "rendered")
    data["pools"][0]["allowed_uses"] = ["LoadBalancer"]
    write_cluster(tmp_path, data)
    with pytest.raises(CaliccError) as caught:
        build(load_cluster(path), tmp_path / "rendered")
    assert "node n1 would lose block 10.245.0.0/26: pool extra is now for LoadBalancer" in str(
        caught.value
    )


def test_ipv6_load_balancer_pool_stays_out_of_the_ipv6_all_pools_set(tmp_path: Path) -> None:
    data = with_(
        network_cidr_v6="fd00:244::/56",
        pools=[{"name": "lb6", "cidr": "fd00:99::/64", "allowed_uses": ["LoadBalancer"]}],
    )
    for n, node in enumerate(data["nodes"]):
        node["address_v6"] = f"fd00:30::{n + 1}/64"
    sets = {s.name: s.members for s in static_sets(plan_of(tmp_path, data))}
    assert sets["cali60all-ipam-pools"] == ("fd00:244::/56",)
    assert sets["cali60masq-ipam-pools"] == ("fd00:99::/64", "fd00:244::/56")
