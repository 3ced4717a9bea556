"""routes.sh's awk (`vxlan_state` in cluster/routes.sh) and contract/vxlan.py give one answer.

For every node of every example, and of clusters that reach the cases the examples do not
(CrossSubnet direct routes through a named interface, nodes without a VTEP), the lines
`vxlan_state` prints from the built cluster/ part are exactly the routes, neighbours and FDB
entries `vxlan_plane` derives from the same node table and pools.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import compile_cluster
from calicc.contract.manifest import ClusterSettings, NodeFile
from calicc.contract.names import VXLAN_DEVICE, VXLAN_V6_DEVICE
from calicc.contract.nodes_table import NodeRow, parse_table
from calicc.contract.vxlan import VxlanPlane, vxlan_plane
from tests.support.clusters import load, with_
from tests.support.examples import example_names, load_example

# Three nodes over two subnets, each through a named interface: CrossSubnet routes the same
# subnet directly (through the interface) and the other subnet over VXLAN.
TWO_SUBNETS = [
    {"name": "a1", "address": "10.30.1.11/24", "interface": "ens3"},
    {"name": "a2", "address": "10.30.1.12/24", "interface": "ens3"},
    {"name": "b1", "address": "10.30.2.11/24", "interface": "ens4"},
]
# IPv6-only nodes whose subnets are not nibble-aligned (/62, /65) or are written without "::"
# (/124), so vxlan_state6's prefix test meets every case; d1's /65 holds a1 and a2 only from
# its own side (a node's own subnet decides, as in contract/vxlan.py).
V6_SUBNETS = [
    {"name": "a1", "address_v6": "fd00:30::11/62", "interface": "ens3"},
    {"name": "a2", "address_v6": "fd00:30:0:3::12/62", "interface": "ens3"},
    {"name": "b1", "address_v6": "fd00:30:0:4::11/62"},
    {"name": "c1", "address_v6": "fd00:31:1:2:3:4:5:6/124"},
    {"name": "c2", "address_v6": "fd00:31:1:2:3:4:5:9/124"},
    {"name": "d1", "address_v6": "fd00:30::7fff:0:0:1/65"},
]
V6_ONLY = {"name": "t", "network_cidr_v6": "fd00:244::/56", "nodes": V6_SUBNETS}
DUAL = [
    {**node, "address_v6": f"fd00:30:{index}::{index + 1}/64"}
    for index, node in enumerate(TWO_SUBNETS)
]
RUN_MAIN = 'main "$@"\n'  # routes.sh's last line: routes.sh NODE programs the node
CLUSTERS: dict[str, dict[str, Any]] = {
    "crosssubnet-interfaces": with_(ipip_mode="Never", vxlan_mode="CrossSubnet", nodes=TWO_SUBNETS),
    "always-interfaces": with_(ipip_mode="Never", vxlan_mode="Always", nodes=TWO_SUBNETS),
    "ipip-only": with_(),
    "v6-crosssubnet": {**V6_ONLY, "vxlan_mode": "CrossSubnet"},
    "v6-always": {**V6_ONLY, "vxlan_mode": "Always"},
    "dual-stack-crosssubnet": with_(
        network_cidr_v6="fd00:244::/56", ipip_mode="Never", vxlan_mode="CrossSubnet", nodes=DUAL
    ),
    "dual-stack-v6-only-vxlan": with_(
        network_cidr_v6="fd00:244::/56",
        ipip_mode="Never",
        pools=[{"name": "v6-vxlan", "cidr": "fd00:245::/56", "vxlan_mode": "Always"}],
        nodes=DUAL,
    ),
}


@pytest.fixture(autouse=True)
def _tools() -> None:
    if shutil.which("bash") is None or shutil.which("awk") is None:
        pytest.skip("needs bash and awk")


def expected_lines(plane: VxlanPlane) -> list[str]:
    """Return the state lines (routes.sh's format) of `plane`, sorted."""
    routes = [
        f"route {r.dst} via {r.via}"
        + (f" dev {r.dev}" if r.dev else "")
        + (" onlink" if r.onlink else "")
        for r in plane.routes
    ]
    six = {VXLAN_V6_DEVICE: "6", VXLAN_DEVICE: ""}  # IPv6 VTEPs: neigh6 and fdb6 lines
    neighbors = [f"neigh{six[n.dev]} {n.address} {n.lladdr}" for n in plane.neighbors]
    fdb = [f"fdb{six[f.dev]} {f.lladdr} {f.dst}" for f in plane.fdb]
    return sorted(routes + neighbors + fdb)


def awk_lines(cluster_dir: Path, row: NodeRow, version: int = 4) -> list[str]:
    """Return what `vxlan_state` (`vxlan_state6` for IPv6) prints for the node of `row`, as
    routes.sh's main asks it (the node's name, address of the family and interface from its
    row of nodes.tsv), from `cluster_dir`."""
    address = row.address if version == 4 else row.address_v6
    args = [str(cluster_dir / "nodes.tsv"), row.name, str(address), row.interface or ""]
    function = "vxlan_state" if version == 4 else "vxlan_state6"
    script = f'. "$0/routes.sh"; {function} "$@"'
    done = subprocess.run(
        ["bash", "-c", script, str(cluster_dir), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return sorted(done.stdout.splitlines())


def compare(files: dict[str, str], tmp_path: Path) -> int:
    """Assert both answers agree for every node of a compiled tree; return the lines compared."""
    cluster_dir = tmp_path / "cluster"
    cluster_dir.mkdir()
    script = files["cluster/routes.sh"]
    assert script.endswith(RUN_MAIN)  # its functions alone, without running it for a node:
    (cluster_dir / "routes.sh").write_text(script.removesuffix(RUN_MAIN))
    (cluster_dir / "nodes.tsv").write_text(files["cluster/nodes.tsv"])
    settings = ClusterSettings.model_validate_json(files["cluster/cluster.json"])
    rows = parse_table(files["cluster/nodes.tsv"])
    vxlan_pools = "VXLAN_POOLS=''" not in script
    compared = 0
    for rel in sorted(f for f in files if f.startswith("nodes/") and f.endswith("/node.json")):
        node = NodeFile.model_validate(json.loads(files[rel]))
        me = _row(rows, node)
        assert node.node.interface == me.interface
        assert (me.vtep_mac, me.vtep_mac_v6) == (node.vtep_mac, node.vtep_mac_v6)
        got = []  # no VTEP of a family: routes.sh does not ask, vxlan.py must give nothing
        if node.vtep_mac is not None:
            assert vxlan_pools, "a node has a VTEP: routes.sh asks vxlan_state for it"
            got += awk_lines(cluster_dir, me)
        if node.vtep_mac_v6 is not None:
            assert "VXLAN_V6_POOLS=''" not in script, "an IPv6 VTEP: routes.sh asks vxlan_state6"
            got += awk_lines(cluster_dir, me, 6)
        want = expected_lines(vxlan_plane(me, node.node.interface, settings.pools, rows))
        assert sorted(got) == want, node.node.name
        compared += len(want)
    return compared


def _row(rows: tuple[NodeRow, ...], node: NodeFile) -> NodeRow:
    return next(row for row in rows if row.name == node.node.name)


@pytest.mark.parametrize("name", example_names())
def test_awk_and_contract_agree_on_every_example_node(name: str, tmp_path: Path) -> None:
    compared = compare(compile_cluster(load_example(name)).files, tmp_path)
    if name.startswith("vxlan"):
        assert compared > 0  # the VXLAN examples hold state to compare, not only empty answers


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_awk_and_contract_agree_where_the_examples_do_not_reach(name: str, tmp_path: Path) -> None:
    inputs = load(tmp_path, CLUSTERS[name])
    compared = compare(compile_cluster(inputs).files, tmp_path)
    assert (compared > 0) == (name != "ipip-only")
