"""cluster/routes.sh run for real in scratch namespaces as `routes.sh NODE`, state read back.

Every node runs the cluster part's one script with its own name; CALICC_CLUSTER_DIR points it
at the cluster part (its node table). What it programs is compared with the node's
NodeManifest (tests/tools/routeskit.py): the devices, routes, neighbours and FDB entries the
agent would program from the same files.

This kernel has no ipip module, so IPIP tests first create a stand-in `tunl0`
(`ip link add tunl0 type ifb`); routes.sh then finds the device and only sets its MTU, address
and state, as it would on a kernel with IPIP. The script's own failure without IPIP support is
tested too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import Compiled, compile_cluster
from calicc.contract.names import SYSCTL_FILE
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.clusters import load, with_
from tests.tools.routeskit import (
    MakeNs,
    assert_programs,
    calicc_routes,
    link_json,
    node_ns,
    routes_command,
    run_routes,
    shared_text,
    state,
    write_cluster_part,
)

pytestmark = [pytest.mark.root, pytest.mark.tools]

VXLAN = {"ipip_mode": "Never", "vxlan_mode": "Always"}


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "bridge", "bash", "sysctl")


def compiled_in(tmp_path: Path, data: dict[str, Any]) -> tuple[Compiled, Path]:
    """Compile `data` and write its cluster part; return both (the cluster dir second)."""
    compiled = compile_cluster(load(tmp_path, data))
    return compiled, write_cluster_part(compiled, tmp_path / "rendered")


def test_ipip_script_twice_sets_tunl0_and_blackholes(tmp_path: Path, make_ns: MakeNs) -> None:
    compiled, cluster = compiled_in(tmp_path, with_())
    manifest = compiled.node_manifest("n1")
    ns = node_ns(make_ns, "ipip", "10.0.0.1/24")
    ns_run(ns, ["ip", "link", "add", "tunl0", "type", "ifb"])  # stand-in: no ipip module here
    run_routes(ns, cluster, "n1")
    first = state(ns)
    run_routes(ns, cluster, "n1")
    assert state(ns) == first
    assert_programs(ns, manifest)
    assert calicc_routes(ns) == {f"blackhole {b.cidr}" for b in manifest.blocks}
    sysctl = tmp_path / "99-calicc.conf"
    sysctl.write_text(shared_text(compiled, "n1", SYSCTL_FILE))
    result = ns_run(ns, ["sysctl", "-p", str(sysctl)], check=False)
    assert result.returncode == 0, result.stderr
    assert ns_run(ns, ["sysctl", "-n", "net/ipv4/conf/tunl0/rp_filter"]).stdout.strip() == "2"
    assert ns_run(ns, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"


def test_ipip_script_fails_clearly_without_ipip(tmp_path: Path, make_ns: MakeNs) -> None:
    _, cluster = compiled_in(tmp_path, with_())
    ns = node_ns(make_ns, "noipip", "10.0.0.1/24")
    if ns_run(ns, ["ip", "link", "add", "probe0", "type", "ipip"], check=False).returncode == 0:
        pytest.skip("this kernel supports IPIP")
    result = ns_run(ns, routes_command(cluster, "n1"), check=False)
    assert result.returncode != 0
    assert "cannot create tunl0 (type ipip)" in result.stderr
    assert calicc_routes(ns) == set()


def test_vxlan_script_twice_programs_what_the_manifest_says(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    compiled, cluster = compiled_in(tmp_path, with_(**VXLAN))
    manifest = compiled.node_manifest("n1")
    assert len(manifest.neighbors) == len(manifest.fdb) == 2
    ns = node_ns(make_ns, "vx", "10.0.0.1/24")
    run_routes(ns, cluster, "n1")
    first = state(ns)
    run_routes(ns, cluster, "n1")
    assert state(ns) == first
    assert_programs(ns, manifest)


def test_vxlan_script_removes_stale_state_and_keeps_foreign_routes(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    compiled, cluster = compiled_in(tmp_path, with_(**VXLAN))
    ns = node_ns(make_ns, "stale", "10.0.0.1/24")
    run_routes(ns, cluster, "n1")
    stale = [
        "ip route add 10.244.200.0/26 via 10.244.200.0 dev vxlan.calico onlink proto 81",
        "ip route add blackhole 10.244.201.0/26 proto 81",
        "ip route add unreachable 10.244.202.0/26 proto 81",
        "ip route add 10.244.203.0/26 via 10.0.0.9 proto 81",
        "ip neigh add 10.244.200.0 lladdr 66:00:00:00:00:01 dev vxlan.calico nud permanent",
        "bridge fdb add 66:00:00:00:00:01 dev vxlan.calico dst 10.0.0.200 self permanent",
        "ip addr add 10.244.200.0/32 dev vxlan.calico",  # a tunnel address of an earlier build
        "ip link set vxlan.calico mtu 1300 down",
        "ip route add 192.0.2.0/24 via 10.0.0.254 proto static",
    ]
    for cmd in stale:
        ns_run(ns, cmd.split())
    run_routes(ns, cluster, "n1")
    assert_programs(ns, compiled.node_manifest("n1"))
    assert "192.0.2.0/24 via 10.0.0.254" in ns_run(ns, ["ip", "route"]).stdout


def test_vxlan_device_with_wrong_vni_is_recreated(tmp_path: Path, make_ns: MakeNs) -> None:
    compiled, cluster = compiled_in(tmp_path, with_(**VXLAN))
    ns = node_ns(make_ns, "vni", "10.0.0.1/24")
    ns_run(ns, ["ip", "link", "add", "vxlan.calico", "type", "vxlan", "id", "7", "dstport", "4789"])
    run_routes(ns, cluster, "n1")
    assert_programs(ns, compiled.node_manifest("n1"))


def test_named_interface_is_the_parent_and_the_direct_routes_device(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    """A node whose row names its interface: vxlan.calico's parent, and the device of the
    direct (CrossSubnet, same subnet) routes; another subnet's blocks go over VXLAN."""
    nodes = [
        {"name": "n1", "address": "10.0.0.1/24", "interface": "eth0"},
        {"name": "n2", "address": "10.0.0.2/24", "interface": "eth0"},
        {"name": "n3", "address": "10.0.1.3/24", "interface": "eth0"},
    ]
    data = with_(ipip_mode="Never", vxlan_mode="CrossSubnet", nodes=nodes)
    compiled, cluster = compiled_in(tmp_path, data)
    manifest = compiled.node_manifest("n1")
    assert {r.dev for r in manifest.routes} == {None, "eth0", "vxlan.calico"}
    ns = node_ns(make_ns, "iface", "10.0.0.1/24")
    run_routes(ns, cluster, "n1")
    assert_programs(ns, manifest)


def test_node_without_tunnels_gets_blackholes_and_loses_an_old_vxlan_device(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    compiled, cluster = compiled_in(tmp_path, with_(ipip_mode="Never", vxlan_mode="Never"))
    manifest = compiled.node_manifest("n2")
    assert manifest.links == ()
    ns = node_ns(make_ns, "plain", "10.0.0.2/24")
    ns_run(
        ns, ["ip", "link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789"]
    )
    run_routes(ns, cluster, "n2")
    first = state(ns)
    run_routes(ns, cluster, "n2")
    assert state(ns) == first
    assert_programs(ns, manifest)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "usage: routes.sh NODE"),
        (("n1", "n2"), "usage: routes.sh NODE"),
        (("n9",), "node n9 is not in "),
        (("",), "usage: routes.sh NODE"),
        (("#",), "node # is not in "),
    ],
)
def test_unknown_node_or_no_argument_fails_clearly_and_changes_nothing(
    tmp_path: Path, make_ns: MakeNs, args: tuple[str, ...], message: str
) -> None:
    _, cluster = compiled_in(tmp_path, with_(**VXLAN))
    ns = node_ns(make_ns, "bad", "10.0.0.1/24")
    ns_run(ns, ["ip", "route", "add", "blackhole", "10.244.201.0/26", "proto", "81"])  # stale
    before = state(ns)
    result = ns_run(ns, routes_command(cluster, *args), check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("routes.sh: "), result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert state(ns) == before


def test_missing_node_table_fails_clearly_and_changes_nothing(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    _, cluster = compiled_in(tmp_path, with_(**VXLAN))
    (cluster / "nodes.tsv").unlink()
    ns = node_ns(make_ns, "notable", "10.0.0.1/24")
    before = state(ns)
    result = ns_run(ns, routes_command(cluster, "n1"), check=False)
    assert result.returncode != 0
    assert "cannot read the node table" in result.stderr
    assert state(ns) == before
    assert link_json(ns, "vxlan.calico") is None


def test_node_without_blocks_keeps_no_calicc_route(tmp_path: Path, make_ns: MakeNs) -> None:
    """A node no pool gives a block (its row's blocks are -) still removes stale routes."""
    _, cluster = compiled_in(tmp_path, with_(ipip_mode="Never", vxlan_mode="Never"))
    table = cluster / "nodes.tsv"
    rows = [line.split("\t") for line in table.read_text().splitlines()]
    for row in rows:
        if row[0] == "n1":
            row[4] = "-"
    table.write_text("".join("\t".join(row) + "\n" for row in rows))
    ns = node_ns(make_ns, "noblocks", "10.0.0.1/24")
    ns_run(ns, ["ip", "route", "add", "blackhole", "10.244.201.0/26", "proto", "81"])
    run_routes(ns, cluster, "n1")
    assert calicc_routes(ns) == set()
