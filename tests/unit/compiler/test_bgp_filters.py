"""BGP communities and filters: located errors, the BIRD text, the sessions' calls, `bird -p`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.model.bgp_filters import FilterRule
from calicc.compiler.targets.bird_filters import SYMBOL_MAX, rule_statement, symbol
from tests.support.clusters import node_file, plan_of, problems, with_

PEER = {"peer_ip": "10.0.0.254", "as_number": 65000}
PEER6 = {"peer_ip": "fd00:30::254", "as_number": 65000}
EDGE: dict[str, Any] = {
    "name": "edge",
    "export_v4": [
        {
            "action": "Reject",
            "cidr": "10.244.0.0/16",
            "match_operator": "In",
            "prefix_length": {"min": 27},
        },
        {
            "action": "Accept",
            "cidr": "10.244.0.0/16",
            "match_operator": "In",
            "operations": [
                {"prepend_as_path": {"prefix": [64512, 64513]}},
                {"add_community": {"value": "gold"}},
            ],
        },
    ],
    "import_v4": [
        {
            "action": "Accept",
            "cidr": "10.250.0.0/16",
            "match_operator": "NotIn",
            "source": "RemotePeers",
            "interface": "eth*",
            "communities": {"values": ["65000:1:2"]},
            "as_path_prefix": [65000, 65001],
            "operations": [{"set_local_preference": {"value": 200}}],
        },
        {"action": "Reject", "cidr": "10.251.0.0/16", "match_operator": "Equal"},
    ],
}


def bgp(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "communities": [{"name": "gold", "value": "65000:100"}],
        "filters": [EDGE],
        "peers": [{**PEER, "filters": ["edge"]}],
    }
    return {**base, **changes}


def one(tmp_path: Path, data: dict[str, Any]) -> str:
    found = problems(tmp_path, data)
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'cluster.yaml'}:"), found[0]
    return found[0]


# --- validation: file:line: field: message ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("65536:1", "65536 is out of range; each part of a standard community is 0-65535"),
        ("1:2:4294967296", "each part of a large community is 0-4294967295"),
        ("1:2:3:4", "is not a community: write aa:nn"),
        ("a:b", "is not a community"),
    ],
)
def test_community_out_of_range_is_located(tmp_path: Path, value: str, says: str) -> None:
    data = with_(bgp={"communities": [{"name": "x", "value": value}]})
    msg = one(tmp_path, data)
    assert re.search(r"cluster\.yaml:\d+:\d+: bgp\.communities\[0\]\.value: ", msg), msg
    assert says in msg, msg


def test_rule_cidr_of_the_other_family(tmp_path: Path) -> None:
    flt = {
        "name": "f",
        "export_v4": [{"action": "Reject", "cidr": "fd00::/8", "match_operator": "In"}],
    }
    msg = one(tmp_path, with_(bgp={"filters": [flt]}))
    assert "bgp.filters[0].export_v4[0].cidr: fd00::/8 is an IPv6 CIDR in export_v4" in msg
    assert "move the rule to export_v6" in msg


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"action": "Drop"}, "export_v4[0].action: Input should be 'Accept' or 'Reject'"),
        ({"action": "Accept", "source": "Kernel"}, "source: Input should be 'RemotePeers'"),
        ({"action": "Accept", "peer_type": "external"}, "peer_type: Input should be 'eBGP' or"),
        (
            {"action": "Accept", "cidr": "10.0.0.0/8", "match_operator": "Within"},
            "match_operator: Input should be 'Equal', 'NotEqual', 'In' or 'NotIn'",
        ),
        ({"action": "Accept", "cidr": "10.0.0.0/8"}, "cidr and match_operator go together"),
        (
            {
                "action": "Reject",
                "cidr": "10.0.0.0/8",
                "match_operator": "Equal",
                "prefix_length": {"min": 24},
            },
            "prefix_length goes with match_operator In or NotIn",
        ),
        (
            {"action": "Reject", "operations": [{"set_local_preference": {"value": 5}}]},
            "operations change accepted routes: they need action Accept",
        ),
        (
            {"action": "Accept", "operations": [{}]},
            "an operation sets exactly one of add_community",
        ),
        ({"action": "Accept", "interface": 'eth0"; accept'}, "interface: String should match"),
        (
            {
                "action": "Accept",
                "cidr": "10.0.0.0/8",
                "match_operator": "In",
                "prefix_length": {"min": 33},
            },
            "prefix_length.min: /33 is longer than an IPv4 prefix can be; use 0 to 32",
        ),
        (
            {
                "action": "Accept",
                "cidr": "10.0.0.0/8",
                "match_operator": "In",
                "prefix_length": {"min": 24, "max": 16},
            },
            "no route inside 10.0.0.0/8 is /24 to /16 long",
        ),
        (
            {
                "action": "Accept",
                "cidr": "10.0.0.0/16",
                "match_operator": "In",
                "prefix_length": {"max": 8},
            },
            "no route inside 10.0.0.0/16 is /16 to /8 long",
        ),
    ],
)
def test_bad_rule_is_located(tmp_path: Path, rule: dict[str, Any], says: str) -> None:
    msg = one(tmp_path, with_(bgp={"filters": [{"name": "f", "export_v4": [rule]}]}))
    assert "bgp.filters[0].export_v4[0]" in msg, msg
    assert says in msg, msg


def test_unknown_names_are_located(tmp_path: Path) -> None:
    data = with_(
        bgp={
            "filters": [EDGE],
            "global_filters": ["nope"],
            "peers": [{**PEER, "filters": ["edge", "missing"]}],
            "prefix_advertisements": [{"cidr": "10.244.0.0/16", "communities": ["silver"]}],
        }
    )
    found = problems(tmp_path, data)
    assert any(
        "bgp.global_filters[0]: no filter named 'nope' in bgp.filters (defined: edge)" in p
        for p in found
    ), found
    assert any("bgp.peers[0].filters[1]: no filter named 'missing'" in p for p in found), found
    assert any(
        "prefix_advertisements[0].communities[0]: no community named 'silver'" in p for p in found
    ), found
    assert any("add_community.value: no community named 'gold'" in p for p in found), found
    assert len(found) == 4, found


def test_duplicate_names(tmp_path: Path) -> None:
    data = with_(
        bgp={
            "communities": [{"name": "a", "value": "1:1"}, {"name": "a", "value": "1:2"}],
            "filters": [{"name": "f"}, {"name": "f"}],
        }
    )
    found = problems(tmp_path, data)
    assert any("bgp.communities[1].name: community 'a' is defined twice" in p for p in found)
    assert any("bgp.filters[1].name: filter 'f' is defined twice" in p for p in found)


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    flt = {
        "name": "f",
        "import_v6": [{"action": "Accept", "cidr": "10.0.0.0/8", "match_operator": "In"}],
    }
    path = tmp_path / "cluster.yaml"
    problems(tmp_path, with_(bgp={"filters": [flt]}))
    run = subprocess.run(
        [sys.executable, "-m", "calicc", "build", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "bgp.filters[0].import_v6[0].cidr: 10.0.0.0/8 is an IPv4 CIDR in import_v6" in run.stderr
    assert not (tmp_path / "rendered").exists()
    assert not (tmp_path / "cluster.lock.yaml").exists()


# --- rendering ----------------------------------------------------------------------------------


def test_symbol_fits_bird_and_stays_distinct() -> None:
    long_a, long_b = "a" * 50 + "-x", "a" * 50 + "-y"
    names = {
        symbol(n, d, v)
        for n in (long_a, long_b, "a-b")
        for d in ("import", "export")
        for v in (4, 6)
    }
    assert len(names) == 12
    assert all(len(n) <= SYMBOL_MAX for n in names)
    assert symbol("a-b", "import", 6) == "calicc_filter_a_b_import_v6"


def test_rule_statements_follow_calico() -> None:
    rule = FilterRule.model_validate(EDGE["import_v4"][0])
    assert rule_statement(rule, {}) == (
        'if (net !~ 10.250.0.0/16) && (source = RTS_BGP) && (ifname ~ "eth*") && '
        "((65000, 1, 2) ~ bgp_large_community) && (bgp_path ~ [= 65000 65001 * =]) "
        "then { bgp_local_pref = 200; accept; }"
    )
    prepend = FilterRule.model_validate(EDGE["export_v4"][1])
    assert rule_statement(prepend, {"gold": "65000:100"}) == (
        "if (net ~ 10.244.0.0/16) then { bgp_path.prepend(64513); bgp_path.prepend(64512); "
        "bgp_community.add((65000, 100)); accept; }"
    )
    ranged = FilterRule.model_validate(EDGE["export_v4"][0])
    assert rule_statement(ranged, {}) == "if (net ~ [ 10.244.0.0/16{27,32} ]) then { reject; }"
    assert rule_statement(FilterRule.model_validate({"action": "Reject"}), {}) == "reject;"


def test_peer_type_guards_a_rule_as_calico_does() -> None:
    ibgp = FilterRule.model_validate({"action": "Reject", "peer_type": "iBGP"})
    assert rule_statement(ibgp, {}) == "if (is_same_as) then { reject; }"
    ebgp = {"action": "Accept", "cidr": "10.0.0.0/8", "match_operator": "In", "peer_type": "eBGP"}
    assert rule_statement(FilterRule.model_validate(ebgp), {}) == (
        "if (!is_same_as) then { if (net ~ 10.0.0.0/8) then { accept; } }"
    )


def test_a_session_says_whether_it_is_ibgp(tmp_path: Path) -> None:
    peers = [
        {**PEER, "filters": ["edge"]},  # AS 65000: eBGP
        {"peer_ip": "10.0.0.253", "as_number": 64512, "filters": ["edge"]},  # the cluster's AS
        {
            "peer_ip": "10.0.0.252",
            "as_number": 64512,
            "local_as_number": 64999,
            "filters": ["edge"],
        },
    ]
    text = node_file(plan_of(tmp_path, with_(bgp=bgp(peers=peers))), "n1", "bird.conf")
    for name, same in (("10_0_0_254", "false"), ("10_0_0_253", "true"), ("10_0_0_252", "false")):
        body = text[text.index(f"protocol bgp Global_{name}") :].split("\n}\n", 1)[0]
        assert f"calicc_filter_edge_import_v4({same});" in body, (name, body)
        assert f"calicc_filter_edge_export_v4({same});" in body, (name, body)


def test_sessions_call_their_filters(tmp_path: Path) -> None:
    data = with_(
        network_cidr_v6="fd00:244::/56",
        nodes=[
            {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"},
            {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:30::2/64"},
        ],
        bgp=bgp(
            prefix_advertisements=[{"cidr": "10.244.0.0/16", "communities": ["gold", "1:2:3"]}],
            peers=[{**PEER, "filters": ["edge"]}, PEER6],
            global_filters=["edge"],
        ),
    )
    text = node_file(plan_of(tmp_path, data), "n1", "bird.conf")
    ext = text[text.index("protocol bgp Global_10_0_0_254") :]
    assert (
        "import filter { calicc_import_guard(); calicc_filter_edge_import_v4(false); "
        "if calicc_pool_route() then accept; reject; };" in ext
    )
    assert (
        "export filter { calicc_communities(); calicc_filter_edge_export_v4(false); "
        "if calicc_own_block() then accept; reject; };" in ext
    )
    mesh = text[text.index("protocol bgp Mesh_10_0_0_2") :]
    assert "export filter { calicc_communities(); if calicc_own_block() then accept;" in mesh
    assert "calicc_filter_edge" not in mesh.split("}\n", 1)[0]  # no filters in-cluster
    assert "if net ~ [ 10.244.0.0/16+ ] then { bgp_community.add((65000, 100)); " in text
    assert "bgp_large_community.add((1, 2, 3)); }" in text
    v6 = text[text.index("protocol bgp Global_fd00_30__254") :]
    assert "export where calicc_own_block_v6();" in v6  # edge has no IPv6 rules, no communities
    assert "calicc_communities_v6" not in text
    assert text.count("function calicc_filter_edge_export_v4(bool is_same_as)") == 1


def test_a_cluster_without_the_keys_has_none_of_it(tmp_path: Path) -> None:
    text = node_file(plan_of(tmp_path, with_(bgp={"peers": [PEER]})), "n1", "bird.conf")
    assert "calicc_communities" not in text
    assert "calicc_filter_" not in text
    assert "export where calicc_own_block();" in text


def test_unused_filters_stay_out_of_a_node(tmp_path: Path) -> None:
    data = with_(bgp=bgp(peers=[{**PEER, "node_selector": "rack == 'r1'", "filters": ["edge"]}]))
    data["nodes"][0]["labels"] = {"rack": "r1"}
    plan = plan_of(tmp_path, data)
    assert "calicc_filter_edge_export_v4(false);" in node_file(plan, "n1", "bird.conf")
    assert "calicc_filter_edge" not in node_file(plan, "n2", "bird.conf")


@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD is not installed")
def test_every_form_passes_bird(tmp_path: Path) -> None:
    v6_rule = {
        "action": "Accept",
        "cidr": "fd00:244::/56",
        "match_operator": "In",
        "prefix_length": {"min": 64, "max": 120},
        "peer_type": "iBGP",
        "communities": {"values": ["gold"]},
        "operations": [{"add_community": {"value": "1:2:3"}}],
    }
    edge6 = {**EDGE, "export_v6": [v6_rule], "import_v6": [{"action": "Reject"}]}
    data = with_(
        network_cidr_v6="fd00:244::/56",
        pools=[{"name": "extra", "cidr": "10.250.0.0/16", "communities": ["gold", "7:8:9"]}],
        nodes=[
            {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"},
            {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:30::2/64"},
        ],
        bgp=bgp(
            filters=[edge6],
            prefix_advertisements=[{"cidr": "fd00:244::/56", "communities": ["gold"]}],
            peers=[{**PEER, "filters": ["edge"]}, {**PEER6, "filters": ["edge"]}],
        ),
    )
    conf = tmp_path / "bird.conf"
    conf.write_text(node_file(plan_of(tmp_path, data), "n1", "bird.conf"), encoding="utf-8")
    run = subprocess.run(
        ["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    text = conf.read_text(encoding="utf-8")
    assert "function calicc_filter_edge_export_v6(bool is_same_as)" in text
    assert "if (is_same_as) then { if (net ~ [ fd00:244::/56{64,120} ])" in text
    assert "calicc_import_guard_v6(); calicc_filter_edge_import_v6(false);" in text
