"""The lab's ToR and GoBGP neighbors mirror each node's per-peer options (lab/tor.py)."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from calicc.compiler.plan import ClusterPlan
from calicc.compiler.toolcheck import bird_parse
from calicc.lab.tor import tor_config, tor_peers
from tests.conftest import need_tool
from tests.support.clusters import plan_of, with_

TOR = IPv4Address("10.0.0.254")


def _plan(tmp_path: Path, **options: object) -> ClusterPlan:
    peer = {"peer_ip": str(TOR), "as_number": 65000, "node_selector": "rack == 'a'", **options}
    other = {"peer_ip": str(TOR), "as_number": 65000, "node_selector": "rack == 'b'"}
    data = with_(bgp={"peers": [peer, other]})
    for node, rack in zip(data["nodes"], ("a", "b", "b"), strict=True):
        node["labels"] = {"rack": rack}
    return plan_of(tmp_path, data)


def test_tor_peers_give_the_as_each_node_presents(tmp_path: Path) -> None:
    plan = _plan(tmp_path, local_as_number=65010)
    assert tor_peers(plan, TOR) == (
        (IPv4Address("10.0.0.1"), 65010),
        (IPv4Address("10.0.0.2"), 64512),
        (IPv4Address("10.0.0.3"), 64512),
    )


def test_the_tor_expects_the_local_as_and_runs_gtsm_where_the_node_does(tmp_path: Path) -> None:
    text = tor_config(
        _plan(tmp_path, local_as_number=65010, ttl_security=2, passive=True), TOR, 65000
    )
    lines = [line for line in text.splitlines() if line.startswith("protocol bgp")]
    assert lines == [
        "protocol bgp node_10_0_0_1 from rack { neighbor 10.0.0.1 as 65010; "
        "ttl security on; multihop 2; }",
        "protocol bgp node_10_0_0_2 from rack { neighbor 10.0.0.2 as 64512; }",
        "protocol bgp node_10_0_0_3 from rack { neighbor 10.0.0.3 as 64512; }",
    ]
    assert "passive" not in text  # the ToR connects: a passive node's session comes up


@pytest.mark.tools
def test_the_mirrored_tor_config_parses_with_real_bird(tmp_path: Path) -> None:
    need_tool("bird")
    text = tor_config(_plan(tmp_path, local_as_number=65010, ttl_security=2), TOR, 65000)
    assert bird_parse(text) is None
