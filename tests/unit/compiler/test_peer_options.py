"""Per-peer BGP options (bgp.peers[]): sessions, BIRD text that real BIRD parses, located errors."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import compile_cluster
from calicc.compiler.model.bgp_peer import ImportLimitAction
from calicc.compiler.peer_options import SessionOptions
from calicc.compiler.toolcheck import bird_parse
from tests.conftest import need_tool
from tests.support.clusters import load, node_file, plan_of, problems, with_, write_cluster

ALL: dict[str, Any] = {
    "peer_ip": "192.0.2.9",
    "as_number": 65001,
    "local_as_number": 65010,
    "keepalive_time": 3,
    "hold_time": 9,
    "max_restart_time": 30,
    "passive": True,
    "ttl_security": 2,
    "source_address": "None",
    "next_hop_mode": "Self",
    "reachable_by": "10.0.0.254",
    "import_limit": 100,
    "import_limit_action": "Restart",
    "num_allowed_local_as": 1,
}


def peers(*entries: dict[str, Any], **bgp: Any) -> dict[str, Any]:
    return with_(bgp={"peers": list(entries), **bgp})


def one(tmp_path: Path, data: dict[str, Any]) -> str:
    found = problems(tmp_path, data)
    assert len(found) == 1, found
    return found[0]


def session_text(conf: str, name: str) -> str:
    start = conf.index(f"protocol bgp {name} ")
    return conf[start : conf.index("\n}\n", start) + 3]


# --- sessions and BIRD text ----------------------------------------------------------------------


def test_every_option_reaches_the_session(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, peers(ALL))
    session = plan.node("n1").sessions[0]
    assert session.passive
    assert session.next_hop_self
    assert not session.keep_next_hop
    assert session.options == SessionOptions(
        local_as=65010,
        keepalive_time=3,
        hold_time=9,
        restart_time=30,
        ttl_security=2,
        no_source_address=True,
        reachable_by=IPv4Address("10.0.0.254"),
        import_limit=100,
        import_limit_action=ImportLimitAction.RESTART,
        allow_local_as=1,
    )


def test_every_option_is_printed(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, peers(ALL, node_to_node_mesh=False))
    conf = node_file(plan, "n1", "bird.conf")
    assert session_text(conf, "Global_192_0_2_9") == (
        "protocol bgp Global_192_0_2_9 from calicc_peer {\n"
        '  description "192.0.2.9 (external peer of every node)";\n'
        "  neighbor 192.0.2.9 as 65001;\n"
        "  ttl security on; multihop 2;\n"
        "  passive on;\n"
        "  local as 65010;\n"
        "  source address ::;   # source_address: None (the kernel picks it)\n"
        "  hold time 9;\n"
        "  keepalive time 3;\n"
        "  graceful restart time 30;\n"
        "  allow local as 1;\n"
        "  ipv4 {\n"
        "    export where calicc_own_block();\n"
        "    next hop self;\n"
        "    import limit 100 action restart;\n"
        "  };\n"
        "}\n"
    )
    assert (
        "protocol static calicc_reachable {\n  ipv4;\n"
        "  route 192.0.2.9/32 via 10.0.0.254;   # reachable_by of Global_192_0_2_9\n}\n"
    ) in conf
    kernel = conf[conf.index("filter calicc_kernel_export") :]
    assert kernel.index('if proto = "calicc_reachable" then accept;') < kernel.index(
        "if source != RTS_BGP then reject;"
    )


def test_a_peer_without_options_renders_as_before(tmp_path: Path) -> None:
    plain = {"peer_ip": "192.0.2.9", "as_number": 65001, "multihop": 3}
    plan = plan_of(tmp_path, peers(plain))
    conf = node_file(plan, "n1", "bird.conf")
    assert plan.node("n1").sessions[0].options is None
    assert "calicc_reachable" not in conf
    assert session_text(conf, "Global_192_0_2_9") == (
        "protocol bgp Global_192_0_2_9 from calicc_peer {\n"
        '  description "192.0.2.9 (external peer of every node)";\n'
        "  neighbor 192.0.2.9 as 65001;\n"
        "  multihop 3;\n"
        "  ipv4 {\n"
        "    export where calicc_own_block();\n"
        "  };\n"
        "}\n"
    )


@pytest.mark.parametrize(
    ("entry", "self_hop", "keep_hop"),
    [
        ({"next_hop_mode": "Keep", "as_number": 64512}, False, True),  # Keep holds for iBGP too
        ({"next_hop_mode": "Auto"}, False, False),
        ({"keep_next_hop": True}, False, True),  # eBGP
        ({"keep_next_hop": True, "local_as_number": 65001}, False, False),  # now iBGP
        ({"next_hop_self": True}, True, False),
    ],
)
def test_next_hop_mode_and_the_older_flags(
    tmp_path: Path, entry: dict[str, Any], self_hop: bool, keep_hop: bool
) -> None:
    plan = plan_of(tmp_path, peers({"peer_ip": "192.0.2.9", "as_number": 65001, **entry}))
    session = plan.node("n1").sessions[0]
    assert (session.next_hop_self, session.keep_next_hop) == (self_hop, keep_hop)


def test_mesh_restart_time_on_every_mesh_session(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(bgp={"node_mesh_max_restart_time": 90}))
    sessions = plan.node("n2").sessions
    assert len(sessions) == 2
    assert all(s.options == SessionOptions(restart_time=90) for s in sessions)
    assert "  graceful restart time 90;\n" in session_text(
        node_file(plan, "n2", "bird.conf"), "Mesh_10_0_0_1"
    )


def test_an_ipv6_peer_gets_its_options_and_route_in_the_ipv6_part(tmp_path: Path) -> None:
    data = peers(
        {"peer_ip": "fd00:2::9", "as_number": 65001, "reachable_by": "fd00::fe", "hold_time": 0}
    )
    data.update(network_cidr_v6="fd10::/48")
    for i, node in enumerate(data["nodes"], start=1):
        node["address_v6"] = f"fd00::{i}/64"
    plan = plan_of(tmp_path, data)
    conf = node_file(plan, "n1", "bird.conf")
    assert "route fd00:2::9/128 via fd00::fe;" in conf
    assert 'if proto = "calicc_reachable_v6" then accept;' in conf
    assert 'if proto = "calicc_reachable" then' not in conf
    assert "  hold time 0;\n" in session_text(conf, "Global_fd00_2__9")


@pytest.mark.tools
def test_options_parse_with_real_bird(tmp_path: Path) -> None:
    need_tool("bird")
    second = {
        "peer_ip": "fd00:2::9",
        "as_number": 65002,
        "reachable_by": "fd00::fe",
        "ttl_security": 1,
        "import_limit": 5,
        "next_hop_mode": "Keep",
    }
    data = peers(ALL, second, node_mesh_max_restart_time=60)
    data.update(network_cidr_v6="fd10::/48")
    for i, node in enumerate(data["nodes"], start=1):
        node["address_v6"] = f"fd00::{i}/64"
    files = compile_cluster(load(tmp_path, data)).files
    confs = {rel: text for rel, text in files.items() if rel.endswith("bird.conf")}
    assert len(confs) == 3
    for rel, text in confs.items():
        assert "import limit 5 action disable;" in text
        assert bird_parse(text) is None, rel


# --- bad input: file:line: field: message ---------------------------------------------------------


BASE_PEER = {"peer_ip": "192.0.2.9", "as_number": 65001}


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"hold_time": 2}, "bgp.peers[0].hold_time: a hold time of 2 s is too short"),
        ({"hold_time": 70000}, "bgp.peers[0].hold_time: Input should be less than or equal to"),
        ({"keepalive_time": 0}, "bgp.peers[0].keepalive_time: Input should be greater than"),
        ({"keepalive_time": 9, "hold_time": 9}, "keepalive_time 9 is not below hold_time 9"),
        ({"keepalive_time": 240}, "not below BIRD's default hold time 240"),
        ({"keepalive_time": 5, "hold_time": 0}, "hold_time 0 turns keepalives off"),
        ({"max_restart_time": 5000}, "bgp.peers[0].max_restart_time: Input should be less"),
        ({"ttl_security": 0}, "bgp.peers[0].ttl_security: Input should be greater than"),
        ({"ttl_security": 2, "multihop": 2}, "bgp.peers[0].ttl_security: ttl_security 2 sets"),
        ({"source_address": "Auto"}, "bgp.peers[0].source_address: Input should be 'UseNodeIP'"),
        ({"local_as_number": 0}, "bgp.peers[0].local_as_number: Input should be greater"),
        ({"next_hop_mode": "Other"}, "bgp.peers[0].next_hop_mode: Input should be 'Auto'"),
        (
            {"next_hop_mode": "Self", "keep_next_hop": True},
            "bgp.peers[0].next_hop_mode: next_hop_mode replaces keep_next_hop",
        ),
        (
            {"next_hop_self": True, "keep_next_hop": True},
            "bgp.peers[0].keep_next_hop: next_hop_self and keep_next_hop contradict",
        ),
        ({"import_limit": 0}, "bgp.peers[0].import_limit: Input should be greater than"),
        (
            {"import_limit_action": "Block"},
            "bgp.peers[0].import_limit_action: import_limit_action applies past import_limit",
        ),
        ({"num_allowed_local_as": 256}, "bgp.peers[0].num_allowed_local_as: Input should be less"),
        ({"reachable_by": "fd00::1"}, "reachable_by fd00::1 must be a gateway of the peer's"),
        ({"reachable_by": "192.0.2.9"}, "other than the peer 192.0.2.9 itself"),
        ({"reachable_by": "10.9.0.1"}, "gateway 10.9.0.1 is not another address on node n1's"),
        ({"reachable_by": "10.0.0.1"}, "gateway 10.0.0.1 is not another address on node n1's"),
        (
            {"peer_ip": "10.0.0.200", "reachable_by": "10.0.0.254"},
            "peer 10.0.0.200 is on node n1's own subnet 10.0.0.0/24 and needs no gateway",
        ),
    ],
)
def test_bad_options_are_located(tmp_path: Path, entry: dict[str, Any], says: str) -> None:
    msg = one(tmp_path, peers({**BASE_PEER, **entry}))
    assert says in msg, msg
    assert msg.startswith(f"{tmp_path / 'cluster.yaml'}:"), msg


def test_mesh_restart_time_needs_the_mesh(tmp_path: Path) -> None:
    msg = one(tmp_path, with_(bgp={"node_to_node_mesh": False, "node_mesh_max_restart_time": 60}))
    assert "bgp.node_mesh_max_restart_time: node_mesh_max_restart_time applies to the" in msg
    assert "mesh, which is off" in msg
    data = with_(bgp={"node_mesh_max_restart_time": 60})
    data["nodes"][0]["route_reflector_cluster_id"] = "1.0.0.1"
    assert "mesh, which in-cluster reflectors (n1) replace" in one(tmp_path, data)


def _node_peers(passive_back: bool) -> dict[str, Any]:
    data = peers(
        {
            "peer_ip": "10.0.0.2",
            "as_number": 64512,
            "node_selector": "rack == 'a'",
            "passive": True,
        },
        {
            "peer_ip": "10.0.0.1",
            "as_number": 64512,
            "node_selector": "rack == 'b'",
            "passive": passive_back,
        },
        node_to_node_mesh=False,
    )
    data["nodes"][0]["labels"] = {"rack": "a"}
    data["nodes"][1]["labels"] = {"rack": "b"}
    return data


def test_a_session_between_nodes_passive_on_both_ends_is_refused(tmp_path: Path) -> None:
    msg = one(tmp_path, _node_peers(passive_back=True))
    assert "bgp.peers[1].passive: both ends of the session between nodes n2 and n1" in msg


def test_one_passive_end_between_nodes_is_fine(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, _node_peers(passive_back=False))
    (to_n2,) = plan.node("n1").sessions
    (to_n1,) = plan.node("n2").sessions
    assert to_n2.passive
    assert not to_n1.passive


def test_local_as_toward_a_cluster_node_is_refused(tmp_path: Path) -> None:
    entry = {"peer_ip": "10.0.0.2", "as_number": 64512, "node_selector": "all()"}
    msg = one(tmp_path, peers({**entry, "local_as_number": 65010}, node_to_node_mesh=False))
    assert "bgp.peers[0].local_as_number: 10.0.0.2 is node n2, whose session expects" in msg


def test_bad_option_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, _node_peers(passive_back=True))
    done = subprocess.run(
        [sys.executable, "-m", "calicc", "build", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = path.read_text().splitlines()
    second = [n for n, text in enumerate(lines, start=1) if text.strip() == "passive: true"][1]
    assert f"cluster.yaml:{second}:" in done.stderr
    assert "bgp.peers[1].passive: both ends" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml"]


def test_two_entries_for_one_peer_on_one_node_are_refused(tmp_path: Path) -> None:
    msg = one(tmp_path, peers(BASE_PEER, {**BASE_PEER, "node_selector": "all()", "port": 179}))
    assert "bgp.peers[1].peer_ip: node n1 would peer with 192.0.2.9 twice (bgp.peers[0] and" in msg


def test_entries_for_one_peer_may_split_the_nodes(tmp_path: Path) -> None:
    data = peers(
        {**BASE_PEER, "node_selector": "rack == 'a'", "num_allowed_local_as": 1},
        {**BASE_PEER, "node_selector": "rack != 'a'"},
    )
    data["nodes"][0]["labels"] = {"rack": "a"}
    plan = plan_of(tmp_path, data)
    options = [s.options for n in plan.nodes for s in n.sessions if s.name == "Node_192_0_2_9"]
    assert options == [SessionOptions(allow_local_as=1), None, None]


def test_a_node_peer_entry_may_not_duplicate_the_mesh(tmp_path: Path) -> None:
    data = _node_peers(passive_back=False)
    data["bgp"]["node_to_node_mesh"] = True
    found = problems(tmp_path, data)
    assert len(found) == 2, found
    assert (
        "bgp.peers[0].peer_ip: node n1 already peers with node n2 (10.0.0.2) over the "
        in (found[0])
    )
    assert "node-to-node mesh: a second session would not come up" in found[0]


def test_a_node_peer_entry_may_not_duplicate_a_reflector_session(tmp_path: Path) -> None:
    data = _node_peers(passive_back=False)
    data["nodes"][1]["route_reflector_cluster_id"] = "1.0.0.1"
    msg = problems(tmp_path, data)[0]
    assert "over the in-cluster route reflector sessions" in msg
