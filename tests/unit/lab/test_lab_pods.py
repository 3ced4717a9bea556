"""Pure parts of the lab's pods: the runtime's netconfs, pod plans, probe plans, walkthrough."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.contract.names import IPTABLES_FILE
from calicc.lab.matrix import (
    NO_FABRIC,
    STANDIN,
    Paths,
    first_probe,
    mtu_probes,
    node_pod_probes,
    pod_pod_probes,
)
from calicc.lab.names import lab_prefix
from calicc.lab.pods import WALK_NAMESPACE, attachment, default_pod_nodes, plan_pods
from calicc.lab.runtime import Attachment, CniFailed, find_plugin, plugin_conf
from calicc.lab.state import LabState, Pod, load_state
from calicc.lab.topology import plan_topology
from calicc.lab.walkthrough import DENY, POLICY_FILE, variant
from tests.conftest import EXAMPLES
from tests.support.clusters import node_file

CONFLIST = {
    "name": "k8s-pod-network",
    "cniVersion": "1.0.0",
    "plugins": [
        {"type": "calicc", "capabilities": {"labels": True, "namespaceLabels": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": False}},
    ],
}


def plan_of(example: str) -> ClusterPlan:
    return compile_cluster(load_cluster(EXAMPLES / example / "cluster.yaml")).plan


def addressed(plan: ClusterPlan, lab: str) -> dict[str, Pod]:
    """The lab's pods with the addresses IPAM would give: the first two of the first block."""
    pods = {}
    for pod in plan_pods(plan, lab):
        node = plan.node(pod.node)
        block = min(node.blocks, key=lambda b: b.cidr).cidr
        offset = 1 if pod.name.endswith("-a") else 2
        pods[pod.name] = replace(pod, address=str(block.network_address + offset))
    return pods


def paths_of(example: str, standin: bool) -> Paths:
    plan = plan_of(example)
    return Paths(plan, plan_topology(plan, "u"), addressed(plan, "u"), standin)


def test_plugin_conf_passes_only_declared_capabilities_and_prev_result() -> None:
    att = Attachment("c1", "/var/run/netns/p", "eth0", {}, {"labels": {"a": "b"}, "bandwidth": 1})
    first = plugin_conf(CONFLIST, CONFLIST["plugins"][0], att, None)
    assert first["name"] == "k8s-pod-network"
    assert first["cniVersion"] == "1.0.0"
    assert first["runtimeConfig"] == {"labels": {"a": "b"}}
    assert "prevResult" not in first
    later = plugin_conf(CONFLIST, CONFLIST["plugins"][2], att, {"ips": []})
    assert "runtimeConfig" not in later, "a capability switched off is not passed"
    assert later["prevResult"] == {"ips": []}


def test_find_plugin_searches_cni_path_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory in (first, second):
        directory.mkdir()
        exe = directory / "calicc"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    assert find_plugin("calicc", (first, second)) == first / "calicc"
    with pytest.raises(CniFailed, match="'portmap' not found"):
        find_plugin("portmap", (first, second))


def test_pods_two_per_node_named_after_the_lab() -> None:
    plan = plan_of("crosssubnet")
    pods = plan_pods(plan, "lab1")
    assert len(pods) == 2 * len(plan.nodes)
    assert len({p.netns for p in pods}) == len(pods)
    assert len({p.container_id for p in pods}) == len(pods)
    assert all(p.netns.startswith(lab_prefix("lab1")) for p in pods)
    assert {p.namespace for p in pods} == {"default", WALK_NAMESPACE}
    att = attachment(pods[0])
    assert att.netns == f"/var/run/netns/{pods[0].netns}"
    assert att.args == {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": pods[0].name}
    assert att.capability_args["labels"]["app"] == "calicc-lab"


def test_state_round_trips_pods(tmp_path: Path) -> None:
    pod = Pod("n1-a", "n1", "default", "calicc-x.pod-n1-a", "x-1", "10.244.0.1")
    LabState("x", "c.yaml", str(tmp_path), pods={"n1-a": pod}).save()
    state = load_state(tmp_path)
    assert state is not None
    assert state.pods == {"n1-a": pod}


def test_ipip_standin_skips_cross_node_pod_rows_only() -> None:
    paths = paths_of("minikube-ipip", standin=True)
    probes = pod_pod_probes(paths)
    local = [p for p in probes if p.check == "pod-pod node"]
    across = [p for p in probes if p.check == "pod-pod nodes"]
    assert len(local) == 3
    assert len(across) == 3
    assert not any(p.skip for p in local)
    assert all(p.skip == STANDIN for p in across)
    assert first_probe(paths).check == "pod-pod node"
    node_pod = [p for p in node_pod_probes(paths) if p.check == "node-pod"]
    own = [p for p in node_pod if p.subject.startswith(p.subject.split(" ")[2][:-2] + " ")]
    assert len(own) == 3
    assert not any(p.skip for p in own)
    assert all(p.skip == STANDIN for p in node_pod if p not in own)


def test_real_ipip_or_no_encap_runs_every_row() -> None:
    assert not any(p.skip for p in pod_pod_probes(paths_of("minikube-ipip", standin=False)))
    tor = paths_of("tor-ebgp", standin=False)
    probes = pod_pod_probes(tor)
    assert any(p.check == "pod-pod subnets" for p in probes)
    assert first_probe(tor).check in {"pod-pod nodes", "pod-pod subnets"}


def test_pod_to_remote_node_skipped_when_reply_needs_tunl0() -> None:
    paths = paths_of("minikube-ipip", standin=True)
    pod_node = [p for p in node_pod_probes(paths) if p.check == "pod-node"]
    local = [p for p in pod_node if p.subject.split("-a -> ")[0] == p.subject.split(" ")[2]]
    assert len(local) == 3
    assert not any(p.skip for p in local)
    assert all(p.skip for p in pod_node if p not in local)


def test_mtu_probe_sizes() -> None:
    paths = paths_of("vxlan", standin=False)
    mtu = paths.plan.nodes[0].pod_mtu
    probes = mtu_probes(paths)
    assert [(p.size, p.answered) for p in probes[:2]] == [(mtu - 28, True), (mtu - 27, False)]


def test_nat_follows_the_pool_of_the_address() -> None:
    paths = paths_of("tor-ebgp", standin=False)
    rack2 = [p for p in paths.first_pods() if p.node.startswith("rack2")]
    assert all(IPv4Address(p.address) in paths.plan.pools[1].cidr for p in rack2)
    assert not paths.pool_nat(rack2[0].address)
    assert paths.pool_nat(paths.pods["rack1-node1-a"].address)


def test_walkthrough_variant_adds_the_policy_and_keeps_the_lock(tmp_path: Path) -> None:
    copy = variant(EXAMPLES / "tor-ebgp" / "cluster.yaml", tmp_path / "v", [DENY])
    assert list(yaml.safe_load_all((copy.parent / POLICY_FILE).read_text())) == [DENY]
    assert POLICY_FILE in yaml.safe_load(copy.read_text())["policies"]
    assert (copy.parent / "cluster.lock.yaml").read_text() == (
        EXAMPLES / "tor-ebgp" / "cluster.lock.yaml"
    ).read_text()
    compiled = compile_cluster(load_cluster(copy))
    original = plan_of("tor-ebgp")
    assert [n.blocks for n in compiled.plan.nodes] == [n.blocks for n in original.nodes]
    assert "default-deny-ingress" in node_file(compiled.plan, "rack1-node1", IPTABLES_FILE)
    assert "default-deny-ingress" not in node_file(original, "rack1-node1", IPTABLES_FILE)


def test_mtu_probe_stays_on_the_node_over_the_standin() -> None:
    paths = paths_of("minikube-ipip", standin=True)
    probes = mtu_probes(paths)
    assert probes
    assert all(p.target == paths.pods[p.subject.split(" ")[0][:-2] + "-b"].address for p in probes)


def test_unencapsulated_cross_subnet_without_tor_is_skipped_not_passed() -> None:
    paths = paths_of("large-rr", standin=False)
    probes = pod_pod_probes(paths)
    across = [p for p in probes if p.check == "pod-pod subnets"]
    assert across
    assert all(p.skip == NO_FABRIC for p in across)
    assert not any(p.skip for p in probes if p.check == "pod-pod nodes")
    assert not any(p.skip for p in pod_pod_probes(paths_of("tor-ebgp", standin=False)))


def test_pod_nodes_spread_over_the_racks() -> None:
    plan = plan_of("large-rr")
    pods = plan_pods(plan, "big", pod_nodes=8)
    nodes = {p.node for p in pods}
    assert len(pods) == 16
    assert len({str(plan.node(n).subnet) for n in nodes}) == len(plan.node_subnets)
    assert len(plan_pods(plan, "big")) == 2 * len(plan.nodes)


def test_without_pod_nodes_a_large_cluster_gets_pods_on_8_nodes_a_small_one_on_all() -> None:
    assert default_pod_nodes(plan_of("large-rr")) == 8
    assert default_pod_nodes(plan_of("rr-inline")) == 0  # 0: every node
