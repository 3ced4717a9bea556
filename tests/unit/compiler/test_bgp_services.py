"""Service IP advertisement: bgp.service_* validation, bird.conf (parsed by BIRD), node.json."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import build, compile_cluster
from calicc.compiler.toolcheck import bird_parse
from calicc.contract.names import BIRD_CONFIG
from calicc.contract.services import EXCLUDE_LABEL, host_route_text
from tests.conftest import need_tool
from tests.support.clusters import load, problems, with_, write_cluster

TOR = {"peer_ip": "10.0.0.254", "as_number": 65001}
TOR6 = {"peer_ip": "fd00::fe", "as_number": 65001}


def services(**lists: list[str]) -> dict[str, Any]:
    return with_(bgp={"peers": [TOR], **lists})


def files(tmp_path: Path, data: dict[str, Any]) -> dict[str, str]:
    return compile_cluster(load(tmp_path, data)).files


def one(tmp_path: Path, data: dict[str, Any]) -> str:
    found = problems(tmp_path, data)
    assert len(found) == 1, found
    return found[0]


# --- validation: file:line: field: what would be valid -----------------------------------------


@pytest.mark.parametrize(
    ("lists", "says"),
    [
        (
            {"service_cluster_ips": ["10.96.0.1/12"]},
            "bgp.service_cluster_ips[0]: 10.96.0.1/12 has host bits set: the network holding "
            "it is 10.96.0.0/12",
        ),
        (
            {"service_cluster_ips": ["10.96.0.0/12", "10.96.0.0/12"]},
            "bgp.service_cluster_ips[1]: 10.96.0.0/12 repeats bgp.service_cluster_ips[0]",
        ),
        (
            {
                "service_external_ips": ["192.0.2.0/24"],
                "service_loadbalancer_ips": ["192.0.2.64/26"],
            },
            "bgp.service_loadbalancer_ips[0]: 192.0.2.64/26 overlaps 192.0.2.0/24, which "
            "bgp.service_external_ips[0] holds",
        ),
        (
            {"service_cluster_ips": ["10.200.0.0/16"]},
            "bgp.service_cluster_ips[0]: 10.200.0.0/16 holds no cluster IP: Kubernetes hands "
            "them out of service_cluster_ip_range (10.96.0.0/12)",
        ),
        (
            {"service_loadbalancer_ips": ["10.100.0.0/24"]},
            "bgp.service_loadbalancer_ips[0]: 10.100.0.0/24 overlaps service_cluster_ip_range "
            "(10.96.0.0/12), the cluster IPs' range",
        ),
        (
            {"service_loadbalancer_ips": ["10.244.8.0/24"]},
            "bgp.service_loadbalancer_ips[0]: 10.244.8.0/24 overlaps pool default-ipv4-ippool",
        ),
        (
            {"service_external_ips": ["10.0.0.0/16"]},
            "bgp.service_external_ips[0]: 10.0.0.0/16 overlaps the node subnet 10.0.0.0/24",
        ),
        (
            {"service_cluster_ips": ["fd00:96::/108"]},
            "bgp.service_cluster_ips[0]: fd00:96::/108 is IPv6 but no node has an IPv6 address",
        ),
        ({"service_cluster_ips": ["not-a-cidr"]}, "bgp.service_cluster_ips[0]:"),
    ],
)
def test_bad_service_cidrs_are_located(
    tmp_path: Path, lists: dict[str, list[str]], says: str
) -> None:
    found = one(tmp_path, services(**lists))
    assert found.startswith(f"{tmp_path / 'cluster.yaml'}:"), found
    assert says in found, found


def test_service_cidrs_need_an_external_peer_of_their_family(tmp_path: Path) -> None:
    data = with_(bgp={"service_cluster_ips": ["10.96.0.0/12"]})
    assert "bgp.peers has no IPv4 peer: service IPs are advertised to external peers only" in (
        one(tmp_path, data)
    )


def test_load_balancer_pool_may_lie_in_the_load_balancer_cidrs(tmp_path: Path) -> None:
    lb_pool = {"name": "lb", "cidr": "192.168.50.0/24", "allowed_uses": ["LoadBalancer"]}
    ok = services(service_loadbalancer_ips=["192.168.50.0/24"])
    ok["pools"] = [lb_pool]
    files(tmp_path, ok)  # no error
    bad = services(service_external_ips=["192.168.50.0/24"])
    bad["pools"] = ok["pools"]
    assert "bgp.service_external_ips[0]: 192.168.50.0/24 overlaps pool lb" in one(tmp_path, bad)


def test_bad_input_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, services(service_cluster_ips=["10.0.0.0/8"]))
    out = tmp_path / "rendered"
    run = subprocess.run(
        [sys.executable, "-m", "calicc", "build", str(path), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "bgp.service_cluster_ips[0]: 10.0.0.0/8 overlaps" in run.stderr
    assert not out.exists()


# --- rendering ----------------------------------------------------------------------------------


def test_cidrs_are_bird_only_blackholes_exported_to_external_peers(tmp_path: Path) -> None:
    data = services(
        service_cluster_ips=["10.96.0.0/12"],
        service_external_ips=["192.0.2.0/24", "198.51.100.7/32"],
        service_loadbalancer_ips=["203.0.113.0/24"],
    )
    text = files(tmp_path, data)[f"nodes/n1/{BIRD_CONFIG}"]
    static = text[text.index("protocol static calicc_services {") :]
    static = static[: static.index("}\n") + 2]
    assert static.splitlines()[1:] == [
        "  ipv4;",
        "  route 10.96.0.0/12 blackhole;",
        "  route 192.0.2.0/24 blackhole;",
        "  route 203.0.113.0/24 blackhole;",
        '  include "services/ipv4.conf";   # written on the node by the calicc agent',
        "}",
    ]  # the single external IP is advertised per Service (Calico), never from every node
    assert (
        '  return proto = "calicc_services" && net ~ [ 10.96.0.0/12+, 192.0.2.0/24+, '
        "198.51.100.7/32+, 203.0.113.0/24+ ];"
    ) in text
    assert "export where calicc_own_block() || calicc_service_route();" in text  # the ToR
    mesh = [line for line in text.splitlines() if "export where" in line]
    assert mesh.count("    export where calicc_own_block();") == 2  # n2, n3: no services
    kernel = text[text.index("filter calicc_kernel_export") :]
    assert kernel.splitlines()[2] == "  if source != RTS_BGP then reject;"  # statics never


def test_excluded_node_advertises_nothing(tmp_path: Path) -> None:
    data = services(service_cluster_ips=["10.96.0.0/12"])
    data["nodes"][1]["labels"] = {EXCLUDE_LABEL: "true"}
    out = files(tmp_path, data)
    assert "calicc_services" not in out[f"nodes/n2/{BIRD_CONFIG}"]
    assert "services" not in json.loads(out["nodes/n2/node.json"])["bird"]
    bird = json.loads(out["nodes/n1/node.json"])["bird"]
    assert bird["services"] == {
        "cluster_ips": ["10.96.0.0/12"],
        "external_ips": [],
        "loadbalancer_ips": [],
        "aggregate_loadbalancer_ips": True,
        "families": [4],
    }


def test_without_aggregation_load_balancer_cidrs_are_advertised_per_address(
    tmp_path: Path,
) -> None:
    data = services(
        service_cluster_ips=["10.96.0.0/12"], service_loadbalancer_ips=["198.18.0.0/24"]
    )
    data["bgp"]["service_loadbalancer_aggregation"] = "Disabled"
    out = files(tmp_path, data)
    text = out[f"nodes/n1/{BIRD_CONFIG}"]
    assert "  route 10.96.0.0/12 blackhole;" in text
    assert "198.18.0.0/24 blackhole" not in text
    assert "net ~ [ 10.96.0.0/12+, 198.18.0.0/24+ ];" in text  # its /32s still pass
    services_json = json.loads(out["nodes/n1/node.json"])["bird"]["services"]
    assert services_json["aggregate_loadbalancer_ips"] is False
    data["bgp"]["service_loadbalancer_aggregation"] = "Sometimes"
    assert "bgp.service_loadbalancer_aggregation: Input should be 'Enabled' or 'Disabled'" in (
        one(tmp_path, data)
    )


def test_a_changed_cidr_or_exclusion_rebuilds_the_nodes(tmp_path: Path) -> None:
    data = services(service_cluster_ips=["10.96.0.0/12"])
    out = tmp_path / "rendered"
    build(load(tmp_path, data), out)
    data["bgp"]["service_cluster_ips"] = ["10.96.0.0/16"]
    written = set(build(load(tmp_path, data), out).written)
    assert {f"nodes/{n}/{BIRD_CONFIG}" for n in ("n1", "n2", "n3")} <= written
    assert "route 10.96.0.0/16 blackhole;" in (out / f"nodes/n1/{BIRD_CONFIG}").read_text()
    data["nodes"][2]["labels"] = {EXCLUDE_LABEL: "true"}
    written = set(build(load(tmp_path, data), out).written)
    assert f"nodes/n3/{BIRD_CONFIG}" in written
    assert f"nodes/n1/{BIRD_CONFIG}" not in written
    assert "calicc_services" not in (out / f"nodes/n3/{BIRD_CONFIG}").read_text()


def test_no_services_no_key(tmp_path: Path) -> None:
    out = files(tmp_path, with_(bgp={"peers": [TOR]}))
    assert "services" not in json.loads(out["nodes/n1/node.json"])["bird"]
    assert "calicc_service" not in out[f"nodes/n1/{BIRD_CONFIG}"]


def dual_stack() -> dict[str, Any]:
    data = with_(network_cidr_v6="fd00:244::/64", bgp={"peers": [TOR, TOR6]})
    for i, node in enumerate(data["nodes"], start=1):
        node["address_v6"] = f"fd00::{i}/64"
    data["bgp"]["service_cluster_ips"] = ["10.96.0.0/12", "fd00:96::/108"]
    data["bgp"]["service_loadbalancer_ips"] = ["fd00:99::5/128"]
    return data


def test_ipv6_service_cidrs_have_their_own_protocol(tmp_path: Path) -> None:
    out = files(tmp_path, dual_stack())
    text = out[f"nodes/n1/{BIRD_CONFIG}"]
    assert "protocol static calicc_services_v6 {" in text
    assert "  route fd00:96::/108 blackhole;" in text
    assert "fd00:99::5/128 blackhole" not in text  # a single LoadBalancer IP: per Service
    assert '  include "services/ipv6.conf";' in text
    assert "export where calicc_own_block_v6() || calicc_service_route_v6();" in text
    assert json.loads(out["nodes/n1/node.json"])["bird"]["services"]["families"] == [4, 6]


@pytest.mark.tools
def test_service_variants_parse_with_real_bird(tmp_path: Path) -> None:
    need_tool("bird")
    out = files(tmp_path, dual_stack())
    for node in ("n1", "n2", "n3"):
        assert bird_parse(out[f"nodes/{node}/{BIRD_CONFIG}"]) is None
    text = out[f"nodes/n1/{BIRD_CONFIG}"]
    conf = tmp_path / "bird.conf"
    conf.write_text(text, encoding="utf-8")
    (tmp_path / "services").mkdir()
    for name, routes in (("ipv4.conf", ["10.96.0.10"]), ("ipv6.conf", ["fd00:99::5"])):
        body = host_route_text([ip_address(r) for r in routes])
        (tmp_path / "services" / name).write_text(body, encoding="utf-8")
    run = subprocess.run(
        ["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
