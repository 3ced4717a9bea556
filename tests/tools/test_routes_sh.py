"""routes/routes.sh run for real in scratch namespaces: twice, with the state read back.

The script sources the cluster part's functions and reads its node table from the directory in
CALICC_CLUSTER_DIR (the cluster/ part written beside the script, or a built tree's).

This kernel has no ipip module, so IPIP tests first create a stand-in `tunl0`
(`ip link add tunl0 type ifb`); routes.sh then finds the device and only sets its MTU, address
and state, as it would on a kernel with IPIP. The script's own failure without IPIP support is
tested too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_cluster, render_routes, render_sysctl
from calicc.contract.manifest import ClusterSettings, NodeFile, Route
from calicc.contract.nodes_table import parse_table
from calicc.contract.vxlan import vxlan_plane
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.clusters import built_example, plan_of, with_

pytestmark = [pytest.mark.root, pytest.mark.tools]

MakeNs = Callable[[str], str]
STATE = (
    ["ip", "-d", "link", "show"],
    ["ip", "addr", "show"],
    ["ip", "route", "show", "table", "all"],
    ["ip", "neigh", "show", "nud", "permanent"],
    ["bridge", "fdb", "show", "dev", "vxlan.calico"],
)


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "bridge", "bash")


def node_ns(make_ns: MakeNs, suffix: str, address: str) -> str:
    """A node namespace whose eth0 (a veth to a throwaway peer) holds `address`."""
    ns = make_ns(suffix)
    ns_run(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"])
    ns_run(ns, ["ip", "addr", "add", address, "dev", "eth0"])
    ns_run(ns, ["ip", "link", "set", "eth0", "up"])
    ns_run(ns, ["ip", "link", "set", "peer0", "up"])
    return ns


def write_script(tmp_path: Path, plan: ClusterPlan, node: str) -> Path:
    """Write node `node`'s routes.sh, with the cluster part it sources in tmp_path/cluster."""
    for rel, text in render_cluster(plan).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    path = tmp_path / f"routes-{node}.sh"
    path.write_text(render_routes(plan, plan.node(node))["routes/routes.sh"])
    return path


def script_command(script: Path) -> list[str]:
    """Return how to run `script` with the cluster part written beside it (CALICC_CLUSTER_DIR)."""
    return ["env", f"CALICC_CLUSTER_DIR={script.parent / 'cluster'}", "bash", str(script)]


def run_script(ns: str, script: Path) -> None:
    result = ns_run(ns, script_command(script), check=False)
    assert result.returncode == 0, result.stderr


def state(ns: str) -> list[str]:
    return [ns_run(ns, cmd, check=False).stdout for cmd in STATE]


def calicc_routes(ns: str) -> set[str]:
    out = ns_run(ns, ["ip", "-4", "route", "show", "proto", "81"]).stdout
    return {line.strip() for line in out.splitlines()}


def test_ipip_script_twice_sets_tunl0_and_blackholes(tmp_path: Path, make_ns: MakeNs) -> None:
    plan = plan_of(tmp_path, with_())
    node = plan.node("n1")
    ns = node_ns(make_ns, "ipip", "10.0.0.1/24")
    ns_run(ns, ["ip", "link", "add", "tunl0", "type", "ifb"])  # stand-in: no ipip module here
    script = write_script(tmp_path, plan, "n1")
    run_script(ns, script)
    first = state(ns)
    run_script(ns, script)
    assert state(ns) == first
    assert calicc_routes(ns) == {f"blackhole {b.cidr}" for b in node.blocks}
    link = ns_run(ns, ["ip", "-o", "addr", "show", "dev", "tunl0"]).stdout
    assert f"inet {node.tunnel_address}/32" in link
    assert "mtu 1480" in ns_run(ns, ["ip", "link", "show", "tunl0"]).stdout
    sysctl = tmp_path / "99-calicc.conf"
    sysctl.write_text(render_sysctl(plan, node)["sysctl/99-calicc.conf"])
    result = ns_run(ns, ["sysctl", "-p", str(sysctl)], check=False)
    assert result.returncode == 0, result.stderr
    assert ns_run(ns, ["sysctl", "-n", "net/ipv4/conf/tunl0/rp_filter"]).stdout.strip() == "2"
    assert ns_run(ns, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"


def test_ipip_script_fails_clearly_without_ipip(tmp_path: Path, make_ns: MakeNs) -> None:
    plan = plan_of(tmp_path, with_())
    ns = node_ns(make_ns, "noipip", "10.0.0.1/24")
    if ns_run(ns, ["ip", "link", "add", "probe0", "type", "ipip"], check=False).returncode == 0:
        pytest.skip("this kernel supports IPIP")
    result = ns_run(ns, script_command(write_script(tmp_path, plan, "n1")), check=False)
    assert result.returncode != 0
    assert "cannot create tunl0 (type ipip)" in result.stderr
    assert calicc_routes(ns) == set()


def test_vxlan_script_twice_programs_routes_neighbours_fdb(tmp_path: Path, make_ns: MakeNs) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always"))
    me, peers = plan.node("n1"), [plan.node("n2"), plan.node("n3")]
    ns = node_ns(make_ns, "vx", "10.0.0.1/24")
    script = write_script(tmp_path, plan, "n1")
    run_script(ns, script)
    first = state(ns)
    run_script(ns, script)
    assert state(ns) == first
    want = {f"blackhole {b.cidr}" for b in me.blocks} | {
        f"{b.cidr} via {p.tunnel_address} dev vxlan.calico onlink" for p in peers for b in p.blocks
    }
    assert calicc_routes(ns) == want
    link = ns_run(ns, ["ip", "-d", "link", "show", "vxlan.calico"]).stdout
    assert f"link/ether {me.vtep_mac}" in link
    assert "vxlan id 4096 local 10.0.0.1 dev eth0" in link
    assert "dstport 4789 nolearning" in link
    assert "mtu 1450" in link
    neigh = ns_run(ns, ["ip", "neigh", "show", "dev", "vxlan.calico"]).stdout
    fdb = ns_run(ns, ["bridge", "fdb", "show", "dev", "vxlan.calico"]).stdout
    for peer in peers:
        assert f"{peer.tunnel_address} lladdr {peer.vtep_mac} PERMANENT" in neigh
        assert f"{peer.vtep_mac} dst {peer.address.ip} self permanent" in fdb


def test_vxlan_script_removes_stale_state_and_keeps_foreign_routes(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always"))
    ns = node_ns(make_ns, "stale", "10.0.0.1/24")
    script = write_script(tmp_path, plan, "n1")
    run_script(ns, script)
    want = calicc_routes(ns)
    stale = [
        "ip route add 10.244.200.0/26 via 10.244.200.0 dev vxlan.calico onlink proto 81",
        "ip route add blackhole 10.244.201.0/26 proto 81",
        "ip route add unreachable 10.244.202.0/26 proto 81",
        "ip neigh add 10.244.200.0 lladdr 66:00:00:00:00:01 dev vxlan.calico nud permanent",
        "bridge fdb add 66:00:00:00:00:01 dev vxlan.calico dst 10.0.0.200 self permanent",
        "ip route add 192.0.2.0/24 via 10.0.0.254 proto static",
    ]
    for cmd in stale:
        ns_run(ns, cmd.split())
    run_script(ns, script)
    assert calicc_routes(ns) == want
    assert "192.0.2.0/24 via 10.0.0.254" in ns_run(ns, ["ip", "route"]).stdout
    assert "10.244.200.0" not in ns_run(ns, ["ip", "neigh", "show", "dev", "vxlan.calico"]).stdout
    fdb = ns_run(ns, ["bridge", "fdb", "show", "dev", "vxlan.calico"]).stdout
    assert "66:00:00:00:00:01" not in fdb


def test_vxlan_device_with_wrong_vni_is_recreated(tmp_path: Path, make_ns: MakeNs) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always"))
    ns = node_ns(make_ns, "vni", "10.0.0.1/24")
    ns_run(ns, ["ip", "link", "add", "vxlan.calico", "type", "vxlan", "id", "7", "dstport", "4789"])
    run_script(ns, write_script(tmp_path, plan, "n1"))
    link = ns_run(ns, ["ip", "-d", "link", "show", "vxlan.calico"]).stdout
    assert "vxlan id 4096 local 10.0.0.1 dev eth0" in link


def kernel_form(route: Route, device: str) -> str:
    """Return `route` as `ip route show` prints it (`device`: where an unnamed one resolves)."""
    if route.type == "blackhole":
        return f"blackhole {route.dst}"
    text = f"{route.dst} via {route.via} dev {route.dev or device}"
    return text + (" onlink" if route.onlink else "")


def test_rendered_script_programs_exactly_what_the_contract_derives(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    """The built tree's routes.sh, with CALICC_CLUSTER_DIR at its cluster/ part, programs the
    node's blackholes plus exactly the routes, neighbours and FDB entries contract/vxlan.py
    derives from the node table: CrossSubnet direct within the rack, VXLAN to the other."""
    built_example(tmp_path, "vxlan-crosssubnet")
    rendered = tmp_path / "rendered"
    node = NodeFile.model_validate_json((rendered / "nodes/rack1-node1/node.json").read_bytes())
    settings = ClusterSettings.model_validate_json((rendered / "cluster/cluster.json").read_bytes())
    rows = parse_table((rendered / "cluster/nodes.tsv").read_text())
    me = next(row for row in rows if row.name == node.node.name)
    plane = vxlan_plane(me, node.node.interface, settings.pools, rows)
    assert {r.dev for r in plane.routes} == {None, "vxlan.calico"}  # both kinds are exercised
    ns = node_ns(make_ns, "tree", str(node.node.address))
    script = ["bash", str(rendered / "nodes/rack1-node1/routes/routes.sh")]
    done = ns_run(ns, ["env", f"CALICC_CLUSTER_DIR={rendered / 'cluster'}", *script], False)
    assert done.returncode == 0, done.stderr
    assert calicc_routes(ns) == {kernel_form(r, "eth0") for r in (*node.routes, *plane.routes)}
    neigh = ns_run(ns, ["ip", "neigh", "show", "dev", "vxlan.calico", "nud", "permanent"]).stdout
    assert {line.strip() for line in neigh.splitlines()} == {
        f"{n.address} lladdr {n.lladdr} PERMANENT" for n in plane.neighbors
    }
    fdb = ns_run(ns, ["bridge", "fdb", "show", "dev", "vxlan.calico"]).stdout
    assert {line.strip() for line in fdb.splitlines() if " dst " in line} == {
        f"{f.lladdr} dst {f.dst} self permanent" for f in plane.fdb
    }
