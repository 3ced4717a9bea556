"""Kernel settings: cluster/sysctl/<kind>.conf (a node's sysctl/99-calicc.conf) and node.json's."""

from __future__ import annotations

import json
from pathlib import Path

from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_node
from calicc.compiler.targets.shared import shared_plan
from calicc.contract.names import SYSCTL_FILE
from tests.support.clusters import node_file, plan_of, with_


def node_sysctls(plan: ClusterPlan, node: str) -> dict[str, str]:
    """Return the settings the node's node.json carries."""
    sysctls: dict[str, str] = json.loads(render_node(plan, plan.node(node))["node.json"])["sysctls"]
    return sysctls


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_ipip_node_forwards_and_loosens_rp_filter_on_tunl0(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    text = node_file(plan, "n1", SYSCTL_FILE)
    assert shared_plan(plan).sources["n1"][SYSCTL_FILE] == "cluster/sysctl/ipip.conf"
    assert _lines(text) == ["net.ipv4.ip_forward = 1", "-net/ipv4/conf/tunl0/rp_filter = 2"]
    assert node_sysctls(plan, "n1") == {
        "net.ipv4.ip_forward": "1",
        "net/ipv4/conf/tunl0/rp_filter": "2",
    }


def test_vxlan_node_settings_name_vxlan_device(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never", vxlan_mode="Always"))
    text = node_file(plan, "n1", SYSCTL_FILE)
    assert shared_plan(plan).sources["n1"][SYSCTL_FILE] == "cluster/sysctl/vxlan.conf"
    assert _lines(text) == ["net.ipv4.ip_forward = 1", "-net/ipv4/conf/vxlan.calico/rp_filter = 2"]


def test_no_encapsulation_only_forwarding(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_(ipip_mode="Never"))
    assert node_sysctls(plan, "n3") == {"net.ipv4.ip_forward": "1"}
    assert shared_plan(plan).sources["n3"][SYSCTL_FILE] == "cluster/sysctl/plain.conf"
    assert _lines(node_file(plan, "n3", SYSCTL_FILE)) == ["net.ipv4.ip_forward = 1"]


def test_header_says_which_settings_the_cni_plugin_sets(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, with_())
    text = node_file(plan, "n1", SYSCTL_FILE)
    for name in ("proxy_arp", "proxy_delay", "forwarding", "route_localnet"):
        assert name in text.split("\n\n")[0]
