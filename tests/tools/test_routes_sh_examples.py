"""Every node of the examples runs the cluster part's routes.sh with its name, in a namespace.

The compiled example (its committed lock) is written as a node installs its cluster part; each
node's namespace holds its address on eth0 and, for IPIP clusters, a stand-in tunl0 (this
kernel has no ipip module). The script must program exactly what the node's NodeManifest says,
change nothing on a second run, and the node's shared kernel settings must then apply.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from calicc.compiler.build import Compiled, compile_cluster
from calicc.contract.names import SYSCTL_FILE, TUNNEL_DEVICE
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.examples import load_example
from tests.tools.routeskit import (
    MakeNs,
    assert_programs,
    node_ns,
    run_routes,
    shared_text,
    state,
    write_cluster_part,
)

pytestmark = [pytest.mark.root, pytest.mark.tools]

EXAMPLES = (
    "crosssubnet",
    "dual-stack-mesh",
    "dual-stack-vxlan-crosssubnet",
    "ipv6-rr",
    "minikube-ipip",
    "tor-ebgp",
    "vxlan",
    "vxlan-crosssubnet",
)


@cache
def compiled_example(name: str) -> Compiled:
    return compile_cluster(load_example(name))


def example_nodes() -> list[tuple[str, str]]:
    return [(e, n.name) for e in EXAMPLES for n in compiled_example(e).plan.nodes]


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "bridge", "bash", "sysctl")


@pytest.mark.parametrize(("example", "node"), example_nodes())
def test_example_node_programs_its_manifest_twice(
    tmp_path: Path, make_ns: MakeNs, example: str, node: str
) -> None:
    compiled = compiled_example(example)
    cluster = write_cluster_part(compiled, tmp_path)
    manifest = compiled.node_manifest(node)
    addresses = (manifest.node.address, manifest.node.address_v6)
    ns = node_ns(make_ns, "ex", *(str(a) for a in addresses if a is not None))
    if any(link.name == TUNNEL_DEVICE for link in manifest.links):
        ns_run(ns, ["ip", "link", "add", TUNNEL_DEVICE, "type", "ifb"])  # no ipip module here
    run_routes(ns, cluster, node)
    first = state(ns)
    run_routes(ns, cluster, node)
    assert state(ns) == first
    assert_programs(ns, manifest, manifest.node.interface or "eth0")
    sysctl = tmp_path / "99-calicc.conf"
    sysctl.write_text(shared_text(compiled, node, SYSCTL_FILE))
    result = ns_run(ns, ["sysctl", "-p", str(sysctl)], check=False)
    assert result.returncode == 0, result.stderr


def test_examples_cover_direct_and_vxlan_routes() -> None:
    """vxlan-crosssubnet has both kinds of route to other nodes' blocks on one node."""
    manifest = compiled_example("vxlan-crosssubnet").node_manifest("rack1-node1")
    assert {r.dev for r in manifest.routes if r.type == "unicast"} == {None, "vxlan.calico"}
