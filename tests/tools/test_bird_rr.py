"""Real BIRD 2 with in-cluster route reflectors: 2 reflectors, 3 clients, one subnet.

Reflectors peer with each other and with every client; clients peer only with the reflectors,
yet every node must learn every remote block with the owning node as next hop (reflection
keeps the next hop). This kernel has no ipip module: tunl0 is an ifb stand-in
(`ip link add tunl0 type ifb`) so `via <owner> dev tunl0 onlink` routes can be checked; no IPIP
packet flows. Own-block blackholes are routes.sh's and are not added; BIRD must not install them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.lab.harness import bgp_lab
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

RR = """\
name: rr
network_cidr: 10.244.0.0/16
block_size: 26
ipip_mode: Always
bgp: {as_number: 64512, fast_timers: true}
nodes:
  - {name: rr-1, address: 10.10.0.11/24, route_reflector_cluster_id: 1.0.0.1}
  - {name: rr-2, address: 10.10.0.12/24, route_reflector_cluster_id: 1.0.0.1}
  - {name: worker-1, address: 10.10.0.21/24}
  - {name: worker-2, address: 10.10.0.22/24}
  - {name: worker-3, address: 10.10.0.23/24}
"""


def test_reflectors_carry_every_block_with_owner_next_hop(tmp_path: Path) -> None:
    need_root()
    need_tool("bird", "birdc")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(RR)
    with bgp_lab(cluster, tmp_path / "lab") as lab:
        sessions = lab.wait_sessions()
        assert sorted(sessions["worker-1"]) == ["RR_10_10_0_11", "RR_10_10_0_12"]
        assert sorted(sessions["rr-1"]) == [
            "RRClient_10_10_0_21",
            "RRClient_10_10_0_22",
            "RRClient_10_10_0_23",
            "RR_10_10_0_12",
        ]
        for node in lab.plan.nodes:
            have = lab.wait_block_routes(node.name)
            for peer in lab.plan.nodes:
                if peer.name == node.name:
                    continue
                for block in peer.blocks:
                    key = (str(block.cidr), str(peer.address.ip), "tunl0", "bird", True)
                    assert key in have, f"{node.name} lacks {key}"
            assert lab.leaks(node.name) == []
