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
RUN_MAIN = 'main "$@"\n'  # routes.sh's last line: routes.sh NODE programs the node
CLUSTERS: dict[str, dict[str, Any]] = {
    "crosssubnet-interfaces": with_(ipip_mode="Never", vxlan_mode="CrossSubnet", nodes=TWO_SUBNETS),
    "always-interfaces": with_(ipip_mode="Never", vxlan_mode="Always", nodes=TWO_SUBNETS),
    "ipip-only": with_(),
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
    neighbors = [f"neigh {n.address} {n.lladdr}" for n in plane.neighbors]
    return sorted(routes + neighbors + [f"fdb {f.lladdr} {f.dst}" for f in plane.fdb])


def awk_lines(cluster_dir: Path, row: NodeRow) -> list[str]:
    """Return what `vxlan_state` prints for the node of `row`, as routes.sh's main asks it (the
    node's name, address and interface from its row of nodes.tsv), from `cluster_dir`."""
    args = [str(cluster_dir / "nodes.tsv"), row.name, str(row.address), row.interface or ""]
    script = '. "$0/routes.sh"; vxlan_state "$@"'
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
        if node.vtep_mac is None:  # no VTEP: routes.sh does not ask, vxlan.py gives nothing
            assert me.vtep_mac is None
            assert expected_lines(vxlan_plane(me, None, settings.pools, rows)) == []
            continue
        assert vxlan_pools, "a node has a VTEP: routes.sh asks vxlan_state for it"
        want = expected_lines(vxlan_plane(me, node.node.interface, settings.pools, rows))
        assert awk_lines(cluster_dir, me) == want, node.node.name
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
