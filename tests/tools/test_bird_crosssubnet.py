"""Real BIRD 2, IPIP CrossSubnet, 4 nodes in two subnets joined by a router namespace.

Same-subnet blocks must be routed `via <owner> dev eth0` (no encapsulation) and other-subnet
blocks `via <owner> dev tunl0 proto bird onlink`. iBGP crosses the router as multihop, the next
hop resolving through each node's default route. This kernel has no ipip module: tunl0 is an
ifb stand-in (`ip link add tunl0 type ifb`), so only the routes are checked, no IPIP packets.
Own-block blackholes are routes.sh's and are not added; BIRD must not install them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.lab.harness import bgp_lab
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

CROSS = """\
name: cross
network_cidr: 10.244.0.0/16
block_size: 26
ipip_mode: CrossSubnet
bgp: {as_number: 64512, fast_timers: true}
nodes:
  - {name: a1, address: 10.20.1.11/24}
  - {name: a2, address: 10.20.1.12/24}
  - {name: b1, address: 10.20.2.11/24}
  - {name: b2, address: 10.20.2.12/24}
"""


def test_crosssubnet_direct_in_subnet_tunnel_across(tmp_path: Path) -> None:
    need_root()
    need_tool("bird", "birdc")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CROSS)
    with bgp_lab(cluster, tmp_path / "lab") as lab:
        lab.wait_sessions()
        for node in lab.plan.nodes:
            have = lab.wait_block_routes(node.name)
            for peer in lab.plan.nodes:
                if peer.name == node.name:
                    continue
                same = peer.address.network == node.address.network
                dev, onlink = ("eth0", False) if same else ("tunl0", True)
                for block in peer.blocks:
                    key = (str(block.cidr), str(peer.address.ip), dev, "bird", onlink)
                    assert key in have, f"{node.name} lacks {key}"
            assert lab.leaks(node.name) == []
