"""`calicc lab check` probes every intent and every pod pair of the pods file with real packets
and fails when the lab disagrees with `calicc trace` (root, real tools).

examples/policies-demo (its pods file, intents and policies: NetworkPolicies, Admin and
Baseline ClusterNetworkPolicies, selectors across nodes), carried over VXLAN: the example's IPIP
cannot carry packets on this kernel (no ipip module), so its cross-node pairs would be skipped.
Then a rule the tree does not have, added in a pod's namespace, makes the lab disagree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from calicc.compiler.build import build, load_cluster
from calicc.lab.check import lab_check, lab_context
from calicc.lab.matrix import Paths
from calicc.lab.netns import ns_run
from calicc.lab.reach import reach_rows
from calicc.lab.verify import FAIL, PASS, SKIP
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import running_lab

pytestmark = [pytest.mark.root, pytest.mark.tools]


def vxlan_demo(work: Path) -> Path:
    """Copy policies-demo to `work` with VXLAN instead of IPIP; return its cluster file."""
    shutil.copytree(EXAMPLES / "policies-demo", work, ignore=shutil.ignore_patterns("rendered"))
    (work / "cluster.lock.yaml").unlink()
    cluster = work / "cluster.yaml"
    data = yaml.safe_load(cluster.read_text())
    data |= {"ipip_mode": "Never", "vxlan_mode": "Always"}
    cluster.write_text(yaml.safe_dump(data, sort_keys=False))
    intents = yaml.safe_load((work / "intents.yaml").read_text())
    for intent in intents["intents"]:
        if intent.get("encapsulation") == "ipip":
            intent |= {"encapsulation": "vxlan", "min_mtu": 1450}
    (work / "intents.yaml").write_text(yaml.safe_dump(intents, sort_keys=False))
    build(load_cluster(cluster), work / "rendered")  # the lock, as a user's first build
    return cluster


def test_intents_and_pod_pairs_agree_with_real_packets_then_a_foreign_rule_disagrees(
    tmp_path: Path,
) -> None:
    need_root()
    need_tool("bird", "birdc", "ping", "ip", "iptables")
    with running_lab(vxlan_demo(tmp_path / "demo")) as state:
        listed = [p for p in state.pods.values() if p.kube_name]
        assert len(listed) == 11  # every pod of pods.yaml, on its node
        rows = lab_check(state, policy=False)
        assert [r for r in rows if r.status == FAIL] == []
        (agreement,) = [r for r in rows if r.check == "trace"]
        agreed = int(agreement.observed.split(" of ")[0])
        print(f"trace and packets, policies-demo over VXLAN: {agreement.observed}")
        assert agreed > 300
        assert "0 disagreed" in agreement.observed
        intents = [r for r in rows if r.check == "intent"]
        assert len(intents) == 5
        assert {r.status for r in intents} == {PASS}
        words = {r.subject.split(" ")[0]: r.observed for r in intents}
        assert words["client-reaches-nginx"] == "connected"
        assert words["quarantine-is-cut-off"] == "no answer"
        assert words["api-reaches-web-dns"] == "connected"  # UDP, echoed

        nginx = state.pods["demo_nginx"]
        ns_run(nginx.netns, ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "80", "-j", "DROP"])
        plan, topo = lab_context(state)
        rows = reach_rows(state, Paths(plan, topo, state.pods, state.tunnel == "ifb"))
        failed = {r.subject for r in rows if r.status == FAIL}
        assert "every pod pair and port" in failed
        assert "demo/client -> demo/nginx TCP/80 (IPv4)" in failed
        (broken,) = [r for r in rows if r.subject.startswith("client-reaches-nginx")]
        assert (broken.status, broken.observed) == (FAIL, "no answer: the lab disagrees")
        assert not [r for r in rows if r.check == "intent" and r.status == SKIP]
