"""Incremental builds: a one-node change renders and rewrites that node (bird.conf and
node.json), the reflectors' bird.conf (and the node.json listing its digest) and the cluster
files that change (node table, ipsets, indexes), nothing else; a policy change rewrites only
cluster files; an unchanged node is not rendered again unless one of its files was edited by
hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from calicc.compiler import stage
from calicc.compiler.build import build
from calicc.compiler.render import render_node
from tests.support.clusters import load

REFLECTOR = {"nodes/n0/bird.conf", "nodes/n0/node.json"}
CLUSTER_CHANGES = {
    "cluster/nodes.tsv",
    "cluster/ipsets.restore",
    "cluster/index.json",
    "index.json",
}


def cluster(count: int, vxlan: bool = False) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"name": f"n{i}", "address": f"10.0.{i // 3}.{10 + i}/24"} for i in range(count)
    ]
    nodes[0]["route_reflector_cluster_id"] = "1.0.0.1"
    data: dict[str, Any] = {"name": "t", "network_cidr": "10.244.0.0/16", "nodes": nodes}
    if vxlan:
        data |= {"ipip_mode": "Never", "vxlan_mode": "CrossSubnet"}
    return data


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the nodes rendered since the fixture started."""
    names: list[str] = []
    real = render_node  # what stage calls (it imports it from render)

    def counting(plan: Any, node: Any) -> dict[str, str]:
        names.append(node.name)
        return real(plan, node)

    monkeypatch.setattr(stage, "render_node", counting)
    return names


@pytest.mark.parametrize("vxlan", [False, True], ids=["ipip-reflector", "vxlan-crosssubnet"])
def test_a_node_joining_rewrites_it_the_reflector_and_the_cluster_part(
    tmp_path: Path, rendered: list[str], vxlan: bool
) -> None:
    data = cluster(7, vxlan)
    build(load(tmp_path, data), tmp_path / "rendered")
    rendered.clear()
    data["nodes"].append({"name": "n7", "address": "10.0.2.17/24"})
    report = build(load(tmp_path, data), tmp_path / "rendered")
    # the new node, and the reflector whose sessions changed (VXLAN alone runs no BGP)
    assert sorted(rendered) == (["n7"] if vxlan else ["n0", "n7"])
    new_node = {"nodes/n7/bird.conf", "nodes/n7/node.json"}
    assert set(report.written) == new_node | CLUSTER_CHANGES | (set() if vxlan else REFLECTOR)
    assert report.removed == []


def test_a_node_of_a_new_kind_adds_its_shared_file(tmp_path: Path, rendered: list[str]) -> None:
    data = cluster(7)
    build(load(tmp_path, data), tmp_path / "rendered")
    data["nodes"].append({"name": "n7", "address": "10.0.2.17/24", "link_mtu": 9000})
    report = build(load(tmp_path, data), tmp_path / "rendered")
    conflist = "cluster/cni/mtu-8980.conflist"  # its own pod MTU: its own conflist
    new_node = {"nodes/n7/bird.conf", "nodes/n7/node.json"}
    assert set(report.written) == new_node | CLUSTER_CHANGES | REFLECTOR | {conflist}
    assert (tmp_path / "rendered" / "cluster/cni/mtu-1480.conflist").is_file()


def test_a_node_leaving_removes_it_and_rewrites_only_reflector_and_cluster(
    tmp_path: Path, rendered: list[str]
) -> None:
    data = cluster(7)
    build(load(tmp_path, data), tmp_path / "rendered")
    rendered.clear()
    data["nodes"] = [n for n in data["nodes"] if n["name"] != "n4"]
    report = build(load(tmp_path, data), tmp_path / "rendered")
    assert rendered == ["n0"]
    assert set(report.written) == CLUSTER_CHANGES | REFLECTOR
    assert set(report.removed) == {"nodes/n4/bird.conf", "nodes/n4/node.json"}
    assert not (tmp_path / "rendered/nodes/n4").exists()


def test_unchanged_input_renders_nothing_and_a_hand_edit_is_repaired(
    tmp_path: Path, rendered: list[str]
) -> None:
    data = cluster(4)
    build(load(tmp_path, data), tmp_path / "rendered")
    rendered.clear()
    assert build(load(tmp_path, data), tmp_path / "rendered").written == []
    assert rendered == []
    edited = tmp_path / "rendered/nodes/n2/bird.conf"
    text = edited.read_text()
    edited.write_text(text + "# edited\n")
    report = build(load(tmp_path, data), tmp_path / "rendered")
    assert rendered == ["n2"]
    assert report.written == ["nodes/n2/bird.conf"]
    assert edited.read_text() == text


def test_a_hand_edited_shared_file_is_repaired_without_rendering_a_node(
    tmp_path: Path, rendered: list[str]
) -> None:
    data = cluster(4)
    build(load(tmp_path, data), tmp_path / "rendered")
    rendered.clear()
    edited = tmp_path / "rendered/cluster/iptables/ipip.rules"
    text = edited.read_text()
    edited.write_text(text + "# edited\n")
    report = build(load(tmp_path, data), tmp_path / "rendered")
    assert rendered == []
    assert report.written == ["cluster/iptables/ipip.rules"]
    assert edited.read_text() == text


POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - ports: [{protocol: TCP, port: PORT}]
"""


def test_a_policy_change_renders_no_node_and_rewrites_only_cluster_files(
    tmp_path: Path, rendered: list[str]
) -> None:
    data = {**cluster(4), "policies": ["policies/*.yaml"]}
    (tmp_path / "policies").mkdir()
    policy = tmp_path / "policies" / "web.yaml"
    policy.write_text(POLICY.replace("PORT", "80"))
    build(load(tmp_path, data), tmp_path / "rendered")
    rendered.clear()
    policy.write_text(POLICY.replace("PORT", "8080"))
    report = build(load(tmp_path, data), tmp_path / "rendered")
    assert set(report.written) == {
        "cluster/iptables/ipip.rules",  # the policy's chain, once for every node of the kind
        "cluster/index.json",
        "index.json",
    }
    assert report.removed == []
    assert rendered == []  # no node's inputs hold the policies


def test_a_cluster_wide_setting_renders_every_node(tmp_path: Path, rendered: list[str]) -> None:
    data = cluster(4)
    build(load(tmp_path, data), tmp_path / "rendered")
    rendered.clear()
    build(load(tmp_path, {**data, "mtu": 1400}), tmp_path / "rendered")
    assert sorted(rendered) == ["n0", "n1", "n2", "n3"]
