"""Pure parts of the lab: names, topology, expected routes, daemon configs and parsers."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.lab.bird import parse_protocols, route_key
from calicc.lab.expect import expected_routes
from calicc.lab.gobgp import Neighbor, gobgp_config
from calicc.lab.names import check_lab_name, ns_name, port_name
from calicc.lab.topology import plan_topology

CROSS = """\
name: cross
network_cidr: 10.244.0.0/16
ipip_mode: CrossSubnet
bgp:
  peers:
    - {peer_ip: 10.20.1.100, as_number: 64512}
    - {peer_ip: 10.20.2.254, as_number: 65001}
nodes:
  - {name: a1, address: 10.20.1.11/24}
  - {name: a2, address: 10.20.1.12/24}
  - {name: b1, address: 10.20.2.11/24}
"""


def _plan(tmp_path: Path, text: str) -> ClusterPlan:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return compile_cluster(load_cluster(path)).plan


def test_names_share_the_lab_prefix_and_fit_limits() -> None:
    long = ns_name("lab", "node", "n" * 200)
    assert long.startswith("calicc-lab.node-")
    assert len(long) <= 60
    assert long != ns_name("lab", "node", "n" * 199)
    assert len(port_name("n", "x" * 100)) == 15
    assert port_name("n", "a") != port_name("n", "b")


@pytest.mark.parametrize("bad", ["", "-a", "A", "a.b", "x" * 25])
def test_bad_lab_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="lab name"):
        check_lab_name(bad)


def test_topology_gateways_speakers_and_router_tor(tmp_path: Path) -> None:
    topo = plan_topology(_plan(tmp_path, CROSS), "x")
    assert [str(s.cidr) for s in topo.subnets] == ["10.20.1.0/24", "10.20.2.0/24"]
    assert [str(s.gateway) for s in topo.subnets] == ["10.20.1.254", "10.20.2.254"]
    rr, tor = topo.speakers
    assert (rr.name, rr.ns, str(rr.address)) == (
        "10.20.1.100",
        "calicc-x.peer-10.20.1.100",
        "10.20.1.100/24",
    )
    assert (tor.name, tor.ns) == ("10.20.2.254", topo.router_ns)
    assert str(topo.gateway("b1")) == "10.20.2.254"


def test_expected_routes_follow_the_mode(tmp_path: Path) -> None:
    plan = _plan(tmp_path, CROSS)
    routes = expected_routes(plan, plan.node("a1"), IPv4Address("10.20.1.254"))
    by_owner = {r.owner: r for r in routes}
    assert by_owner["a2"].text.endswith("via 10.20.1.12 dev eth0 proto bird")
    assert by_owner["b1"].text.endswith("via 10.20.2.11 dev tunl0 proto bird onlink")
    assert all(not r.dst.subnet_of(b.cidr) for r in routes for b in plan.node("a1").blocks)


def test_expected_routes_without_encapsulation_use_the_gateway_across_subnets(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path, CROSS.replace("CrossSubnet", "Never"))
    routes = expected_routes(plan, plan.node("a1"), IPv4Address("10.20.1.254"))
    assert {r.owner: str(r.gateway) for r in routes} == {"a2": "10.20.1.12", "b1": "10.20.1.254"}


def test_gobgp_config_makes_every_node_a_client() -> None:
    text = gobgp_config(
        IPv4Address("10.0.0.100"),
        64512,
        179,
        (Neighbor(IPv4Address("10.0.0.12"), 64512), Neighbor(IPv4Address("10.0.0.11"), 64512)),
    )
    assert text.index('"10.0.0.11"') < text.index('"10.0.0.12"')
    assert text.count("route-reflector-client = true") == 2
    assert 'route-reflector-cluster-id = "10.0.0.100"' in text


def test_parse_protocols_and_route_key() -> None:
    out = (
        "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n"
        "device1    Device     ---        up     10:00:00.000  \n"
        "Mesh_1_2_3_4 BGP      ---        start  10:00:00.000  Active        Socket: refused\n"
    )
    protocols = parse_protocols(out)
    assert protocols["Mesh_1_2_3_4"] == {
        "proto": "BGP",
        "state": "start",
        "since": "10:00:00.000",
        "info": "Active Socket: refused",
    }
    assert protocols["device1"]["info"] == ""
    key = route_key(
        {
            "dst": "10.0.0.0/26",
            "gateway": "1.2.3.4",
            "dev": "tunl0",
            "protocol": "bird",
            "flags": ["onlink"],
        }
    )
    assert key == ("10.0.0.0/26", "1.2.3.4", "tunl0", "bird", True)
    assert IPv4Network(key[0]).prefixlen == 26
