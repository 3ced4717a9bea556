"""The lab's wiring as ip -batch scripts: stages, where each veth is made, lab namespaces only."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Interface
from pathlib import Path

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.lab.names import lab_prefix
from calicc.lab.topology import Host, Topology, plan_topology
from calicc.lab.wiring import (
    BRIDGE_STAGE,
    HOST_STAGE,
    ROUTER_STAGE,
    Script,
    base_scripts,
    host_scripts,
    merged,
)

CLUSTER = """\
name: wire
network_cidr: 10.244.0.0/16
bgp:
  peers:
    - {peer_ip: 10.20.1.100, as_number: 64512}
nodes:
  - {name: a1, address: 10.20.1.11/24}
  - {name: a2, address: 10.20.1.12/24}
  - {name: b1, address: 10.20.2.11/24}
"""


def _topology(tmp_path: Path) -> Topology:
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER)
    return plan_topology(compile_cluster(load_cluster(path)).plan, "w")


def _all(topo: Topology) -> list[list[Script]]:
    scripts = base_scripts(topo)
    for host in (*topo.nodes, *topo.speakers):
        scripts += host_scripts(topo, host)
    return merged(scripts)


def test_stages_run_router_then_bridges_then_hosts_one_script_per_namespace(
    tmp_path: Path,
) -> None:
    topo = _topology(tmp_path)
    stages = _all(topo)
    assert [{s.stage for s in stage} for stage in stages] == [
        {ROUTER_STAGE},
        {BRIDGE_STAGE},
        {HOST_STAGE},
    ]
    assert [s.ns for s in stages[0]] == [topo.router_ns]
    assert [s.ns for s in stages[1]] == [s.ns for s in topo.subnets]
    hosts = [s.ns for s in stages[2]]
    assert len(hosts) == len(set(hosts))
    assert set(hosts) == {topo.external_ns, *(h.ns for h in (*topo.nodes, *topo.speakers))}
    every = [script for stage in stages for script in stage]
    assert all(s.ns.startswith(lab_prefix("w")) for s in every)  # never the root namespace


def test_each_node_eth0_is_made_on_its_subnet_bridge_and_routes_via_the_gateway(
    tmp_path: Path,
) -> None:
    topo = _topology(tmp_path)
    stages = _all(topo)
    bridges = {s.ns: s.lines for s in stages[1]}
    hosts = {s.ns: s.lines for s in stages[2]}
    for node in topo.nodes:
        subnet = topo.subnet_of(node.address.ip)
        assert subnet is not None
        made = bridges[subnet.ns]
        veth = f"link add {node.bridge_port} type veth peer name eth0 netns {node.ns}"
        assert veth in made
        assert made.index(veth) < made.index(f"link set {node.bridge_port} master br0")
        assert hosts[node.ns] == (
            "link set lo up",
            "link set eth0 up",
            f"addr add {node.address} dev eth0",
            f"route add default via {subnet.gateway}",
        )
    router = stages[0][0].lines
    for subnet in topo.subnets:
        assert f"link add {subnet.router_port} type veth peer name router netns {subnet.ns}" in (
            router
        )
        assert "link set router master br0" in bridges[subnet.ns]


def test_a_host_outside_every_subnet_hangs_off_the_router(tmp_path: Path) -> None:
    topo = _topology(tmp_path)
    far = Host("far", "calicc-w.peer-far", IPv4Interface("10.99.0.1/32"), "pfar")
    holder, mine = host_scripts(replace(topo, speakers=(far,)), far)
    assert (holder.stage, holder.ns) == (ROUTER_STAGE, topo.router_ns)
    assert "route add 10.99.0.1/32 dev pfar" in holder.lines
    gateway = topo.subnets[0].gateway
    assert mine.lines[-2:] == (
        f"route add {gateway}/32 dev eth0",
        f"route add default via {gateway}",
    )


def test_merged_keeps_each_namespaces_lines_in_order() -> None:
    scripts = [
        Script(HOST_STAGE, "n1", ("a",)),
        Script(ROUTER_STAGE, "r", ("x",)),
        Script(HOST_STAGE, "n1", ("b",)),
        Script(HOST_STAGE, "n0", ("c",)),
    ]
    assert merged(scripts) == [
        [Script(ROUTER_STAGE, "r", ("x",))],
        [Script(HOST_STAGE, "n1", ("a", "b")), Script(HOST_STAGE, "n0", ("c",))],
    ]
