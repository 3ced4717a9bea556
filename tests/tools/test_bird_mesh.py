"""Real BIRD 2 in namespaces with calicc's rendered bird.conf: the node-to-node mesh.

This kernel has no ipip module, so each node namespace gets a stand-in `tunl0`
(`ip link add tunl0 type ifb`): the `<block> via <peer> dev tunl0 proto bird onlink` routes
BIRD installs can be checked in the kernel table, but no IPIP packet can flow through them.
The kernel blackholes of a node's own blocks are routes.sh's job and are not added here; BIRD
must not install them (nor anything inside them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.lab.harness import bgp_lab
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

MESH = """\
name: mesh
network_cidr: 10.244.0.0/16
block_size: 26
ipip_mode: {mode}
bgp: {{as_number: 64512, fast_timers: true}}
nodes:
  - {{name: node-a, address: 192.168.49.2/24}}
  - {{name: node-b, address: 192.168.49.3/24}}
  - {{name: node-c, address: 192.168.49.4/24}}
"""


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_root()
    need_tool("bird", "birdc")


def _cluster(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(MESH.format(mode=mode))
    return path


def test_mesh_ipip_always_routes_via_tunl0_onlink(tmp_path: Path) -> None:
    with bgp_lab(_cluster(tmp_path, "Always"), tmp_path / "lab") as lab:
        sessions = lab.wait_sessions()
        assert {n: sorted(s) for n, s in sessions.items()} == {
            "node-a": ["Mesh_192_168_49_3", "Mesh_192_168_49_4"],
            "node-b": ["Mesh_192_168_49_2", "Mesh_192_168_49_4"],
            "node-c": ["Mesh_192_168_49_2", "Mesh_192_168_49_3"],
        }
        for node in lab.plan.nodes:
            have = lab.wait_block_routes(node.name)
            remote = [b for p in lab.plan.nodes if p.name != node.name for b in p.blocks]
            assert len(remote) == 4
            for block in remote:
                owner = next(p for p in lab.plan.nodes if block in p.blocks)
                key = (str(block.cidr), str(owner.address.ip), "tunl0", "bird", True)
                assert key in have
            assert lab.leaks(node.name) == []


def test_mesh_never_routes_via_eth0(tmp_path: Path) -> None:
    with bgp_lab(_cluster(tmp_path, "Never"), tmp_path / "lab") as lab:
        lab.wait_sessions()
        for node in lab.plan.nodes:
            have = lab.wait_block_routes(node.name)
            bird_routes = {k for k in have if k[3] == "bird"}
            assert len(bird_routes) == 4
            assert all(dev == "eth0" and not onlink for _, _, dev, _, onlink in bird_routes)
            assert lab.leaks(node.name) == []
