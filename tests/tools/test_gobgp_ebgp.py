"""The lab's GoBGP as an external eBGP peer (`--gobgp`), and the RIB readers the BGP proofs use.

gobgpd plays a peer in another AS than the cluster's (by default a BIRD ToR would): it is a
plain neighbor of every node, learns each node's block with the node's AS on the path, and a
route it originates with standard and large communities reaches the nodes' BIRD with them.
Both RIBs are read as calicc.lab.rib.RibPath: gobgp's JSON and `birdc show route all`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.lab.bird import bird_rib
from calicc.lab.gobgp import gobgp, rib_paths, wait_neighbors
from calicc.lab.harness import bgp_lab
from calicc.lab.netns import ns_run
from calicc.lab.rib import RibPath, by_prefix
from calicc.lab.wait import poll
from tests.conftest import need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]

EBGP_PEER = """\
name: ebgp
network_cidr: 10.200.0.0/16
block_size: 24
ipip_mode: Never
bgp:
  as_number: 64512
  node_to_node_mesh: true
  fast_timers: true
  peers:
    - {peer_ip: 10.31.0.100, as_number: 65000}
nodes:
  - {name: node-1, address: 10.31.0.11/24, max_pods: 250}
  - {name: node-2, address: 10.31.0.12/24, max_pods: 250}
"""
INJECTED = "10.200.250.0/24"  # inside the pool, no node's block: the nodes import it


def test_gobgp_plays_an_ebgp_peer_and_both_ribs_read_attributes(tmp_path: Path) -> None:
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(EBGP_PEER)
    with bgp_lab(cluster, tmp_path / "lab", gobgp_peers=["10.31.0.100"]) as lab:
        lab.wait_sessions()
        (speaker,) = lab.topo.speakers
        assert sorted(wait_neighbors(speaker.ns)) == ["10.31.0.11", "10.31.0.12"]
        blocks = {str(b.cidr): str(n.address) for n in lab.plan.nodes for b in n.blocks}

        def learned() -> dict[str, list[RibPath]] | None:
            table = by_prefix(rib_paths(speaker.ns))
            return table if set(blocks) <= set(table) else None

        table = poll(learned, 15, "GoBGP learns every node's block")
        for prefix, owner in blocks.items():
            (path,) = table[prefix]
            assert f"{path.next_hop}/24" == owner
            assert path.as_path == (64512,)
        args = ["gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "add", INJECTED]
        args += ["community", "65000:7", "large-community", "65000:1:2"]
        ns_run(speaker.ns, args)
        assert gobgp(speaker.ns, "global", "rib", INJECTED)
        sock = lab.daemons.birds["node-1"].sock

        def at_node() -> RibPath | None:
            return next((p for p in bird_rib(sock) if p.prefix == INJECTED), None)

        path = poll(at_node, 15, f"node-1's BIRD learns {INJECTED} from GoBGP")
        assert path.as_path == (65000,)
        assert path.communities == ("65000:7",)
        assert path.large_communities == ("65000:1:2",)
        assert path.next_hop == "10.31.0.100"


GTSM_PEER = EBGP_PEER.replace(
    "{peer_ip: 10.31.0.100, as_number: 65000}",
    "{peer_ip: 10.31.0.100, as_number: 65000, ttl_security: 1}",
)


def test_gobgp_mirrors_a_nodes_ttl_security(tmp_path: Path) -> None:
    """The node asks GTSM of a one-hop peer: gobgpd runs it too (ttl-min 255) and peers."""
    need_root()
    need_tool("bird", "birdc", "gobgpd", "gobgp")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(GTSM_PEER)
    with bgp_lab(cluster, tmp_path / "lab", gobgp_peers=["10.31.0.100"]) as lab:
        (speaker,) = lab.topo.speakers
        conf = (tmp_path / "lab" / "speakers" / "gobgp-10.31.0.100.toml").read_text()
        assert conf.count("ttl-min = 255") == 2  # one per node
        assert "ebgp-multihop" not in conf
        lab.wait_sessions()
        assert sorted(wait_neighbors(speaker.ns)) == ["10.31.0.11", "10.31.0.12"]
