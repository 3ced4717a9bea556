"""The agent and the stock routes script build one and the same vxlan.calico.

With no interface named in the cluster file, both attach the device to the interface that
holds the node address (as Felix does), so running `calicc apply` and then `routes.sh NODE` on
one node changes nothing: the script finds the agent's device as it would have made it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.bundles import MakeNs, apply, rendered, routed_node, stop_bird
from tests.tools.routeskit import routes_command

pytestmark = [pytest.mark.root, pytest.mark.tools]
BUNDLE = rendered("vxlan-crosssubnet", "rack1-node1")  # its row names no interface
CLUSTER_DIR = BUNDLE.parent.parent / "cluster"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "bridge", "bash", "iptables-restore", "ipset")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "root"
    try:
        yield path
    finally:
        stop_bird(path)


def vxlan_device(ns: str) -> dict[str, Any]:
    out = ns_run(ns, ["ip", "-d", "-j", "link", "show", "dev", "vxlan.calico"]).stdout
    found: dict[str, Any] = json.loads(out)[0]
    return found


def test_apply_then_routes_sh_keeps_the_agents_device(
    make_ns: MakeNs, root: Path, tmp_path: Path
) -> None:
    ns, _ = routed_node(make_ns, BUNDLE)
    result = apply(ns, BUNDLE, root, tmp_path / "log.json")
    assert result.returncode == 0, result.stderr
    made = vxlan_device(ns)
    assert made["linkinfo"]["info_data"]["link"] == "eth0"  # the interface holding the address
    installed = tmp_path / "etc" / "cluster"  # a copy: the script's scratch goes beside it
    shutil.copytree(CLUSTER_DIR, installed)
    script = ns_run(ns, routes_command(installed, "rack1-node1"), check=False)
    assert script.returncode == 0, script.stderr
    after = vxlan_device(ns)
    assert after["ifindex"] == made["ifindex"]  # not deleted and made again
