"""Interoperability: GoBGP (Debian's gobgpd) as an off-cluster route reflector, mesh off.

gobgpd runs in its own namespace on the nodes' subnet with a config written from Python (every
node a route-reflector client). Its RIB, read with `gobgp global rib -j` over gRPC on that
namespace's loopback, must hold every node's block with that node as next hop, and every node's
BIRD must learn the others' blocks through it (no encapsulation: `via <owner> dev eth0`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.lab.gobgp import rib, wait_neighbors
from calicc.lab.harness import bgp_lab
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

OFF_CLUSTER_RR = """\
name: offrr
network_cidr: 10.200.0.0/16
block_size: 24
ipip_mode: Never
bgp:
  as_number: 64512
  node_to_node_mesh: false
  fast_timers: true
  peers:
    - {peer_ip: 10.30.0.100, as_number: 64512}
nodes:
  - {name: node-1, address: 10.30.0.11/24, max_pods: 250}
  - {name: node-2, address: 10.30.0.12/24, max_pods: 250}
  - {name: node-3, address: 10.30.0.13/24, max_pods: 250}
"""


def test_gobgp_reflects_every_block_with_owner_next_hop(tmp_path: Path) -> None:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(OFF_CLUSTER_RR)
    with bgp_lab(cluster, tmp_path / "lab") as lab:
        sessions = lab.wait_sessions()
        assert all(list(s) == ["Global_10_30_0_100"] for s in sessions.values())
        speaker = lab.topo.speakers[0]
        assert speaker.ns != lab.topo.router_ns
        states = wait_neighbors(speaker.ns)
        assert sorted(states) == ["10.30.0.11", "10.30.0.12", "10.30.0.13"]
        want = {str(b.cidr): {str(n.address.ip)} for n in lab.plan.nodes for b in n.blocks}
        assert len(want) == 3
        for node in lab.plan.nodes:
            have = lab.wait_block_routes(node.name)
            learned = sorted(k for k in have if k[3] == "bird")
            assert learned == sorted(
                (str(b.cidr), str(p.address.ip), "eth0", "bird", False)
                for p in lab.plan.nodes
                if p.name != node.name
                for b in p.blocks
            )
            assert lab.leaks(node.name) == []
        assert rib(speaker.ns) == want
