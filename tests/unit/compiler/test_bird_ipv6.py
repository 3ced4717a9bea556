"""bird.conf of IPv6 and dual-stack nodes: one daemon, per-family filters and sessions.

These tests plan the cluster and call the BIRD renderer directly (written before the build
rendered IPv6; `calicc build` renders the same). Every text is also parsed by real
BIRD when it is installed (bird_parse returns None without it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_bird
from calicc.compiler.router_id import derived_router_id
from calicc.compiler.targets.bird import bird_view, families
from calicc.compiler.targets.manifest import bird_section
from calicc.compiler.toolcheck import bird_parse
from tests.conftest import ROOT, need_tool
from tests.support.clusters import plan_of

DS: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "ipip_mode": "Never",
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"},
        {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:30::2/64"},
        {"name": "n3", "address": "10.0.0.3/24", "address_v6": "fd00:30::3/64"},
    ],
}
V6_RR: dict[str, Any] = {
    "name": "t",
    "network_cidr_v6": "fd00:244::/56",
    "nodes": [
        {"name": "rr-1", "address_v6": "fd00:30::11/64", "route_reflector_cluster_id": "1.0.0.1"},
        {"name": "rr-2", "address_v6": "fd00:30::12/64", "route_reflector_cluster_id": "1.0.0.1"},
        {"name": "w-1", "address_v6": "fd00:30::21/64"},
        {"name": "w-2", "address_v6": "fd00:30::22/64", "router_id": "192.0.2.22"},
    ],
}


def ds(**changes: Any) -> dict[str, Any]:
    data = {**DS, "nodes": [dict(n) for n in DS["nodes"]]}
    data.update(changes)
    return data


def texts(plan: ClusterPlan) -> dict[str, str]:
    """Return every node's bird.conf, each checked by `bird -p` (when BIRD is installed)."""
    rendered = {node.name: render_bird(plan, node) for node in plan.nodes}
    errors = {name: bird_parse(text) for name, text in rendered.items()}
    assert not {name: err for name, err in errors.items() if err}
    return rendered


def block(text: str, start: str) -> str:
    """Return the `{ ... }` block of `text` that starts with the line `start`."""
    begin = text.index(start + "\n")
    return text[begin : text.index("\n}\n", begin) + 2]


def test_dual_stack_mesh_context(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, DS)
    v4, v6 = families(plan, plan.node("n1"))
    assert (v4.channel, v4.suffix, v4.kernel) == ("ipv4", "", "")
    assert (v6.channel, v6.suffix, v6.kernel) == ("ipv6", "_v6", " kernel6")
    assert v6.own_blocks == "[ fd00:244::/122, fd00:244::40/122 ]"
    assert v6.shared.pool_routes == "[ fd00:244::/56+ ]"
    assert v6.shared.node_subnets == "[ fd00:30::/64+ ]"
    assert v4.shared.pool_routes == "[ 10.244.0.0/16+ ]"  # IPv4 filters hold no IPv6 pool
    assert [r.action for r in v6.shared.kernel_rules] == ["direct"]
    assert str(v6.local) == "fd00:30::1"
    view = bird_view(plan, plan.node("n1"))
    assert "vxlan-v6.calico" in view["excluded_interfaces"]  # type: ignore[operator]


def test_dual_stack_mesh_text(tmp_path: Path) -> None:
    text = texts(plan_of(tmp_path, DS))["n2"]
    assert "router id 10.0.0.2;" in text
    assert "protocol direct {\n  ipv4;\n  ipv6;\n  interface" in text
    kernel6 = block(text, "protocol kernel kernel6 {")
    assert "ipv6 {\n    import where !calicc_pool_route_v6();" in kernel6
    assert "export filter calicc_kernel_export_v6;" in kernel6
    static6 = block(text, "protocol static calicc_blocks_v6 {")
    assert "route fd00:244::80/122 blackhole;   # pool default-ipv6-ippool" in static6
    assert "route 10." not in static6
    assert "local fd00:30::2 port 179 as 64512;" in block(text, "template bgp calicc_peer_v6 {")
    mesh6 = block(text, "protocol bgp Mesh_fd00_30__3 from calicc_peer_v6 {")
    assert "neighbor fd00:30::3 as 64512;" in mesh6
    assert "ipv6 {\n    export where calicc_own_block_v6();" in mesh6
    assert "passive on;" in mesh6
    assert "passive on;" not in block(text, "protocol bgp Mesh_fd00_30__1 from calicc_peer_v6 {")
    mesh4 = block(text, "protocol bgp Mesh_10_0_0_1 from calicc_peer {")
    assert "ipv4 {\n    export where calicc_own_block();" in mesh4
    import6 = block(text, "filter calicc_bgp_import_v6")
    assert "if net ~ [ fd00:30::/64+ ] then reject;" in import6
    assert "if net ~ [ fd00:244::80/122+, fd00:244::c0/122+ ] then reject;" in import6
    export6 = block(text, "filter calicc_kernel_export_v6")
    assert "if net ~ [ fd00:244::/56+ ] then accept;" in export6
    assert "10.244" not in export6


def test_ipv6_only_route_reflectors(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, V6_RR)
    confs = texts(plan)
    for name, text in confs.items():
        assert "ipv4" not in text, name
        assert "template bgp calicc_peer {" not in text
        assert "protocol kernel kernel6 {" in text
    assert f"router id {derived_router_id('w-1')};" in confs["w-1"]
    assert "router id 192.0.2.22;" in confs["w-2"]
    worker = confs["w-1"]
    assert worker.count("protocol bgp ") == 2
    assert "protocol bgp RR_fd00_30__11 from calicc_peer_v6 {" in worker
    assert "protocol bgp RR_fd00_30__12 from calicc_peer_v6 {" in worker
    rr = confs["rr-1"]
    client = block(rr, "protocol bgp RRClient_fd00_30__22 from calicc_peer_v6 {")
    assert "rr client; rr cluster id 1.0.0.1;" in client
    reflected = "calicc_own_block_v6() || (source = RTS_BGP && calicc_pool_route_v6())"
    assert f"export where {reflected};" in client
    assert "protocol bgp RR_fd00_30__12 from calicc_peer_v6 {" in rr
    assert bird_section(plan.node("w-1")).enabled


def test_external_peers_get_a_session_of_their_family(tmp_path: Path) -> None:
    peers = [
        {"peer_ip": "fd00:30::fe", "as_number": 65001, "export": ["fd00:96::/112"]},
        {"peer_ip": "10.0.0.254", "as_number": 65001, "export": ["10.96.0.0/12"], "port": 1790},
    ]
    text = texts(plan_of(tmp_path, ds(bgp={"as_number": 64512, "peers": peers})))["n1"]
    ext6 = block(text, "protocol bgp Global_fd00_30__fe from calicc_peer_v6 {")
    assert "neighbor fd00:30::fe as 65001;" in ext6
    assert "ipv6 {\n    export where calicc_own_block_v6() || net ~ [ fd00:96::/112 ];" in ext6
    ext4 = block(text, "protocol bgp Global_10_0_0_254_port_1790 from calicc_peer {")
    assert "ipv4 {\n    export where calicc_own_block() || net ~ [ 10.96.0.0/12 ];" in ext4
    assert "route fd00:96::/112 blackhole;" in block(text, "protocol static calicc_advertised_v6 {")
    assert "route 10.96.0.0/12 blackhole;" in block(text, "protocol static calicc_advertised {")


def test_vxlan_ipv6_pool_routes_stay_the_agents(tmp_path: Path) -> None:
    pools = [{"name": "v6-vxlan", "cidr": "fd00:245::/64", "vxlan_mode": "Always"}]
    text = texts(plan_of(tmp_path, ds(pools=pools)))["n1"]
    export6 = block(text, "filter calicc_kernel_export_v6")
    assert "if net ~ [ fd00:245::/64+ ] then reject;" in export6
    assert "if net ~ [ fd00:244::/56+ ] then accept;" in export6
    assert "fd00:245" not in block(text, "filter calicc_kernel_export")
    assert "return net ~ [ fd00:244::/56+, fd00:245::/64+ ];" in text


def test_node_outside_every_ipv6_pool_still_learns_ipv6(tmp_path: Path) -> None:
    data = ds(network_cidr_v6=None, pools=[{"name": "p6", "cidr": "fd00:9::/64"}])
    data["pools"][0]["node_selector"] = "v6 == 'yes'"
    for node in data["nodes"][:2]:
        node["labels"] = {"v6": "yes"}
    del data["network_cidr_v6"]
    text = texts(plan_of(tmp_path, data))["n3"]
    assert "return net ~ [  ];" in block(text, "function calicc_own_block_v6()")
    assert "protocol bgp Mesh_fd00_30__1 from calicc_peer_v6 {" in text


def test_mesh_password_secrets_of_both_families(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, ds(bgp={"mesh_password": {"file": "/etc/pw"}}))
    text = texts(plan)["n1"]
    assert 'include "secrets/Mesh_fd00_30__2.conf";' in text
    secrets = bird_section(plan.node("n1")).secrets
    assert sorted(secrets) == [
        "secrets/Mesh_10_0_0_2.conf",
        "secrets/Mesh_10_0_0_3.conf",
        "secrets/Mesh_fd00_30__2.conf",
        "secrets/Mesh_fd00_30__3.conf",
    ]


def test_ipv4_only_node_has_one_family(tmp_path: Path) -> None:
    data = {k: v for k, v in ds().items() if k != "network_cidr_v6"}
    data["nodes"] = [{k: v for k, v in n.items() if k != "address_v6"} for n in DS["nodes"]]
    plan = plan_of(tmp_path, data)
    assert [f.channel for f in families(plan, plan.node("n1"))] == ["ipv4"]
    text = render_bird(plan, plan.node("n1"))
    assert "ipv6" not in text
    assert "vxlan-v6" not in text


@pytest.mark.tools
def test_every_ipv6_variant_parses_with_real_bird(tmp_path: Path) -> None:
    need_tool("bird")
    peers = [
        {"peer_ip": "fd00:30::fe", "as_number": 65001, "password": {"env": "X"}, "multihop": 2},
        {"peer_ip": "fd00:31::1", "as_number": 64512, "next_hop_self": True, "port": 1790},
    ]
    data = ds(
        ipip_mode="CrossSubnet",
        pools=[{"name": "v6x", "cidr": "fd00:245::/64", "vxlan_mode": "CrossSubnet"}],
        bgp={"as_number": 64512, "peers": peers, "listen_port": 1179, "fast_timers": True},
    )
    data["nodes"][0]["route_reflector_cluster_id"] = "1.0.0.1"
    assert len(texts(plan_of(tmp_path, data))) == 3


RENDER = """
import json, sys
from pathlib import Path
from calicc.compiler.build import load_cluster
from calicc.compiler.lock import Lock
from calicc.compiler.plan import build_plan
from calicc.compiler.render import render_bird
plan = build_plan(load_cluster(Path(sys.argv[1])).spec, Lock())
print(json.dumps({n.name: render_bird(plan, n) for n in plan.nodes}))
"""


def _render_in_subprocess(cluster: Path, seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    args = [sys.executable, "-c", RENDER, str(cluster)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    confs: dict[str, str] = json.loads(out.stdout)
    return confs


def test_dual_stack_bytes_do_not_depend_on_node_order_or_hash_seed(tmp_path: Path) -> None:
    peers = [
        {
            "peer_ip": "fd00:30::fe",
            "as_number": 65001,
            "export": ["fd00:96::/112", "fd00:95::/112"],
        },
        {"peer_ip": "10.0.0.254", "as_number": 65001, "export": ["10.96.0.0/12", "10.95.0.0/16"]},
    ]
    data = ds(bgp={"as_number": 64512, "peers": peers})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "cluster.yaml").write_text(yaml.safe_dump(data))
    data["nodes"].reverse()
    (tmp_path / "b" / "cluster.yaml").write_text(yaml.safe_dump(data))
    first = _render_in_subprocess(tmp_path / "a" / "cluster.yaml", "1")
    second = _render_in_subprocess(tmp_path / "b" / "cluster.yaml", "2")
    assert first == second
    assert "route fd00:95::/112 blackhole;\n  route fd00:96::/112 blackhole;" in first["n1"]
