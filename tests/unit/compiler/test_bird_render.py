"""bird.conf content: filters, snippets, secrets by reference, and `bird -p` on real BIRD."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster
from calicc.compiler.toolcheck import bird_parse
from calicc.contract.names import BIRD_CONFIG
from tests.conftest import need_tool
from tests.support.clusters import load, with_
from tests.support.examples import example_names, load_example


def bird_conf(tmp_path: Path, data: dict[str, object], node: str = "n1") -> str:
    return compile_cluster(load(tmp_path, data)).files[f"nodes/{node}/{BIRD_CONFIG}"]


def test_password_is_referenced_never_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BGP_PW", "s3cret-value")
    peers = [{"peer_ip": "172.18.0.2", "as_number": 64512, "password": {"env": "BGP_PW"}}]
    text = bird_conf(tmp_path, with_(bgp={"peers": peers, "mesh_password": {"file": "/etc/pw"}}))
    assert "s3cret" not in text
    assert 'include "secrets/Global_172_18_0_2.conf";' in text
    assert 'include "secrets/Mesh_10_0_0_2.conf";' in text
    assert "password" not in text.replace("# password", "")


def test_snippets_included_verbatim_at_their_points(tmp_path: Path) -> None:
    data = with_(bird_snippets={"top": "log stderr all;", "bottom": "# global bottom"})
    data["nodes"][0]["bird_snippets"] = {"filters": "filter mine { accept; }"}
    text = bird_conf(tmp_path, data)
    assert text.index("log stderr all;") < text.index("function calicc_own_block")
    assert text.index("filter mine { accept; }") < text.index("protocol device")
    assert text.rstrip().endswith("# --- end of snippet ---")
    assert "# global bottom" in text
    assert "filter mine" not in bird_conf(tmp_path, data, "n2")


def test_filters_export_own_blocks_import_pools_only(tmp_path: Path) -> None:
    text = bird_conf(tmp_path, with_())
    assert "return net ~ [ 10.244.0.0/26, 10.244.0.64/26 ];" in text
    assert "if net ~ [ 10.244.0.0/26+, 10.244.0.64/26+ ] then reject;" in text
    assert "if net ~ [ 10.0.0.0/24+ ] then reject;" in text
    assert "export where calicc_own_block();" in text
    assert "route 10.244.0.0/26 blackhole;" in text
    assert "scan time 10;" in text
    assert "merge paths on;" in text


def test_ipip_modes_in_kernel_filter(tmp_path: Path) -> None:
    always = bird_conf(tmp_path, with_(ipip_mode="Always"))
    assert 'onlink = true; ifname = "tunl0"; gw = bgp_next_hop; accept;' in always
    cross = bird_conf(tmp_path, with_(ipip_mode="CrossSubnet"))
    assert "if bgp_next_hop ~ 10.0.0.0/24 then accept;" in cross
    never = bird_conf(tmp_path, with_(ipip_mode="Never"))
    assert 'tunl0"; gw' not in never
    assert "if net ~ [ 10.244.0.0/16+ ] then accept;" in never


def test_reflector_exports_learned_pool_routes(tmp_path: Path) -> None:
    data = with_()
    data["nodes"][0]["route_reflector_cluster_id"] = "1.0.0.1"
    text = bird_conf(tmp_path, data)
    assert "rr client; rr cluster id 1.0.0.1;" in text
    assert "export where calicc_own_block() || (source = RTS_BGP && calicc_pool_route());" in text


@pytest.mark.tools
def test_every_variant_parses_with_real_bird(tmp_path: Path) -> None:
    need_tool("bird")
    peers = [
        {"peer_ip": "172.18.0.2", "as_number": 64512, "password": {"env": "X"}, "port": 1790},
        {
            "peer_ip": "10.0.0.254",
            "as_number": 65001,
            "export": ["10.96.0.0/12"],
            "next_hop_self": True,
            "multihop": 2,
        },
    ]
    data = with_(ipip_mode="CrossSubnet", bgp={"peers": peers, "listen_port": 1179})
    data["nodes"][0]["route_reflector_cluster_id"] = "1.0.0.1"
    files = compile_cluster(load(tmp_path, data)).files
    for rel, text in files.items():
        if rel.endswith("bird.conf"):
            assert bird_parse(text) is None, rel


@pytest.mark.tools
def test_bird_parse_reports_errors(tmp_path: Path) -> None:
    need_tool("bird")
    error = bird_parse("router id 1.2.3.4;\nprotocol nonsense {}\n")
    assert error is not None
    assert "bird.conf:2" in error


@pytest.mark.tools
@pytest.mark.parametrize("name", example_names())
def test_every_example_bird_conf_parses(name: str) -> None:
    need_tool("bird")
    files = compile_cluster(load_example(name)).files
    confs = {rel: text for rel, text in files.items() if rel.endswith(f"/{BIRD_CONFIG}")}
    assert confs
    failures = {rel: bird_parse(text) for rel, text in sorted(confs.items())[:40]}
    assert not {rel: err for rel, err in failures.items() if err}


def test_validate_reports_broken_artifacts() -> None:
    from calicc.compiler.toolcheck import check_with_tools

    files = {
        "cluster/routes.sh": "if then fi\n",
        "cluster/cni/mtu-1480.conflist": "{not json",
        "cluster/cluster.json": "{not json either",
        "cluster/index.json": "{}\n",
        "nodes/n1/node.json": "{}\n",
    }
    failures = check_with_tools(files)
    assert [rel for rel, _ in failures] == [
        "cluster/cluster.json",
        "cluster/cni/mtu-1480.conflist",
        "cluster/routes.sh",
    ]


def test_checkers_go_by_the_file_s_name() -> None:
    from calicc.compiler.toolcheck import bird_parse, checkers_of, json_parse

    assert checkers_of("nodes/n1/bird.conf") == [bird_parse]
    assert checkers_of("bird.conf") == [bird_parse]  # a node's own file, from its directory
    assert checkers_of("cluster/sysctl/ipip.conf") == []
    assert checkers_of("cluster/cni/mtu-1450.conflist") == [json_parse]
    assert checkers_of("cluster/iptables/ipip.rules") == []


@pytest.mark.tools
def test_validate_reports_a_broken_bird_conf() -> None:
    from calicc.compiler.toolcheck import check_with_tools

    need_tool("bird")
    files = {"nodes/n1/bird.conf": "protocol nonsense {}\n", "cluster/sysctl/plain.conf": "x\n"}
    assert [rel for rel, _ in check_with_tools(files)] == ["nodes/n1/bird.conf"]
