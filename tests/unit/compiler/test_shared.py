"""The files nodes of one kind share (compiler/targets/shared.py): which kind each node is, one
file per kind, and texts that never name a node (so they are the same for every node)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import compile_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_cluster
from calicc.compiler.targets.shared import encap_kind, shared_plan
from calicc.contract.names import CLUSTER_ROUTES, CONFLIST, IPTABLES_FILE, ROUTES_FILE, SYSCTL_FILE
from calicc.contract.nodes_table import parse_table
from tests.support.clusters import plan_of, with_
from tests.support.examples import example_names, load_example

RACKS = [
    {"name": "alpha-node", "address": "10.0.0.1/24", "labels": {"rack": "r1"}},
    {"name": "bravo-node", "address": "10.0.0.2/24", "labels": {"rack": "r2"}},
    {"name": "charlie-node", "address": "10.0.0.3/24", "labels": {"rack": "r2"}},
]
# VXLAN for rack r2 only, beside the default pool without encapsulation
R2_VXLAN = {
    "name": "r2-pool",
    "cidr": "10.245.0.0/24",
    "ipip_mode": "Never",
    "vxlan_mode": "Always",
    "node_selector": "rack == 'r2'",
}


def sources(plan: ClusterPlan, node: str) -> dict[str, str]:
    return shared_plan(plan).sources[node]


def test_encap_kind_names_a_set_of_encapsulations() -> None:
    assert encap_kind(["vxlan", "ipip", "vxlan"]) == "ipip-vxlan"
    assert encap_kind(["ipip"]) == "ipip"
    assert encap_kind([]) == "plain"


def test_nodes_of_one_kind_share_one_file_per_role(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())  # three IPIP nodes, one MTU
    expected = {
        ROUTES_FILE: CLUSTER_ROUTES,
        IPTABLES_FILE: "cluster/iptables/ipip.rules",
        SYSCTL_FILE: "cluster/sysctl/ipip.conf",
        CONFLIST: "cluster/cni/mtu-1480.conflist",
    }
    assert {node: sources(plan, node) for node in ("n1", "n2", "n3")} == dict.fromkeys(
        ("n1", "n2", "n3"), expected
    )
    assert sorted(shared_plan(plan).files) == sorted(set(expected.values()) - {CLUSTER_ROUTES})
    rendered = render_cluster(plan)
    assert [rel for rel in rendered if rel.startswith("cluster/iptables/")] == [
        "cluster/iptables/ipip.rules"
    ]


def test_a_node_with_another_pod_mtu_gets_its_own_conflist(tmp_path: Path) -> None:
    nodes: list[dict[str, Any]] = [
        {"name": "n1", "address": "10.0.0.1/24"},
        {"name": "n2", "address": "10.0.0.2/24"},
        {"name": "n3", "address": "10.0.0.3/24", "link_mtu": 9000},
    ]
    plan = plan_of(tmp_path, with_(nodes=nodes))
    assert sources(plan, "n3")[CONFLIST] == "cluster/cni/mtu-8980.conflist"
    assert sources(plan, "n1")[CONFLIST] == sources(plan, "n2")[CONFLIST]
    assert sources(plan, "n1")[CONFLIST] == "cluster/cni/mtu-1480.conflist"
    for role in (IPTABLES_FILE, SYSCTL_FILE):  # the MTU changes nothing else
        assert sources(plan, "n3")[role] == sources(plan, "n1")[role]
    rendered = render_cluster(plan)
    small, large = (rendered[f"cluster/cni/mtu-{mtu}.conflist"] for mtu in (1480, 8980))
    assert small.replace('"mtu": 1480', '"mtu": 8980') == large


def test_a_node_no_vxlan_pool_serves_has_no_vtep_and_shares_the_plain_files(
    tmp_path: Path,
) -> None:
    plan = plan_of(tmp_path, with_(nodes=RACKS, ipip_mode="Never", pools=[R2_VXLAN]))
    alpha, bravo = plan.node("alpha-node"), plan.node("bravo-node")
    assert alpha.vtep_mac is None
    assert alpha.tunnel_address is None
    assert bravo.vtep_mac is not None
    assert sources(plan, "alpha-node") == {
        ROUTES_FILE: CLUSTER_ROUTES,
        IPTABLES_FILE: "cluster/iptables/plain.rules",
        SYSCTL_FILE: "cluster/sysctl/plain.conf",
        CONFLIST: "cluster/cni/mtu-1500.conflist",
    }
    assert (
        sources(plan, "bravo-node")
        == sources(plan, "charlie-node")
        == {
            ROUTES_FILE: CLUSTER_ROUTES,
            IPTABLES_FILE: "cluster/iptables/vxlan.rules",
            SYSCTL_FILE: "cluster/sysctl/vxlan.conf",
            CONFLIST: "cluster/cni/mtu-1450.conflist",
        }
    )
    rendered = render_cluster(plan)
    assert "--dport 4789" not in rendered["cluster/iptables/plain.rules"]
    assert "VXLAN from cluster nodes" in rendered["cluster/iptables/vxlan.rules"]
    assert "vxlan.calico" not in rendered["cluster/sysctl/plain.conf"]
    assert "net/ipv4/conf/vxlan.calico/rp_filter" in rendered["cluster/sysctl/vxlan.conf"]
    row = {r.name: r for r in parse_table(rendered["cluster/nodes.tsv"])}["alpha-node"]
    assert (row.tunnel_address, row.vtep_mac, row.pod_mtu) == (None, None, 1500)


def test_an_ipip_cluster_gives_every_node_tunl0_settings(tmp_path: Path) -> None:
    pools = [{**R2_VXLAN, "vxlan_mode": "Never", "ipip_mode": "Always"}]
    plan = plan_of(tmp_path, with_(nodes=RACKS, ipip_mode="Never", pools=pools))
    # alpha-node is served by no IPIP pool, so its rules are plain; but BIRD routes the other
    # rack's IPIP blocks through tunl0, which every node has (and its kernel settings)
    assert sources(plan, "alpha-node")[IPTABLES_FILE] == "cluster/iptables/plain.rules"
    assert sources(plan, "alpha-node")[SYSCTL_FILE] == "cluster/sysctl/ipip.conf"
    assert sources(plan, "bravo-node")[IPTABLES_FILE] == "cluster/iptables/ipip.rules"
    assert sources(plan, "bravo-node")[SYSCTL_FILE] == "cluster/sysctl/ipip.conf"


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-]|\.\d)", text) is not None


@pytest.mark.parametrize(
    "data",
    [
        with_(nodes=RACKS),
        with_(nodes=RACKS, ipip_mode="Never", pools=[R2_VXLAN]),
        with_(nodes=RACKS, ipip_mode="Never", vxlan_mode="CrossSubnet"),
    ],
    ids=["ipip", "plain-and-vxlan", "vxlan-crosssubnet"],
)
def test_shared_texts_never_name_a_node(tmp_path: Path, data: dict[str, Any]) -> None:
    plan = plan_of(tmp_path, data)
    rendered = render_cluster(plan)
    shared = [*shared_plan(plan).files, CLUSTER_ROUTES]
    for node in plan.nodes:
        for rel in shared:
            text = rendered[rel]
            for word in (node.name, str(node.address.ip), str(node.tunnel_address)):
                assert not _mentions(text, word), (rel, word)
            assert node.vtep_mac is None or node.vtep_mac not in text


@pytest.mark.parametrize("name", example_names())
def test_no_example_s_shared_file_names_a_node(name: str) -> None:
    compiled = compile_cluster(load_example(name))
    shared = [*shared_plan(compiled.plan).files, CLUSTER_ROUTES]
    for rel in shared:  # the header names the cluster (minikube-ipip's is node minikube's name)
        text = compiled.files[rel].replace(f"cluster {compiled.plan.name}", "cluster")
        for node in compiled.plan.nodes:
            assert not _mentions(text, node.name), (rel, node.name)
            for address in (node.address, node.address_v6):  # an IPv6-only node has no IPv4
                assert address is None or not _mentions(text, str(address.ip)), (rel, node.name)
