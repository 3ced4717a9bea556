"""Behaviour: ClusterNetworkPolicy tiers enforced by real iptables and ipsets in namespaces.

The node namespace holds the compiled ipsets.restore and iptables.rules of a policies-demo copy
whose policies are the ones below, and the pod's endpoint chains from contract/endpoint.py for
its namespace and namespace labels (as the CNI plugin and the agent compute them), with its
address in the selector sets it matches (the tier chains find a ClusterNetworkPolicy's subject
by its set). The client stands for a pod of a namespace labelled team=client: its address is
put in the selector set of that namespace selector, as the agent fills runtime sets. Each case
re-applies the endpoint with other namespace labels and pings across the node.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.compiler.targets.iptables import policy_bindings
from calicc.contract.endpoint import (
    endpoint_rules,
    policies_for_pod,
    selector_sets_for_pod,
    with_endpoints,
)
from calicc.contract.manifest import ClusterPolicy
from calicc.contract.names import CLUSTER_POLICY, IPTABLES_FILE
from calicc.lab.netns import ns_ping, ns_run
from tests.conftest import EXAMPLES, need_tool
from tests.tools.test_iptables_policy import IFACE, POD_IP, hook, wire
from tests.tools.treekit import role_text

pytestmark = [pytest.mark.root, pytest.mark.tools]
CLIENT_IP = "10.99.0.2"


def _cnp(name: str, tier: str, priority: int, subject: str, action: str) -> str:
    return f"""apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {{name: {name}}}
spec:
  tier: {tier}
  priority: {priority}
  subject:
    namespaces: {{matchLabels: {{{subject}}}}}
  ingress:
    - name: {name}-rule
      action: {action}
      from:
        - namespaces: {{matchLabels: {{team: client}}}}
"""


POLICIES = "---\n".join(
    [
        _cnp("admin-deny", "Admin", 10, "admin: deny", "Deny"),
        _cnp("admin-pass", "Admin", 10, "admin: pass", "Pass"),
        _cnp("admin-accept", "Admin", 20, "admin: accept", "Accept"),
        _cnp("base-pass", "Baseline", 1, "basepass: 'yes'", "Pass"),
        _cnp("base-deny", "Baseline", 5, "baseline: deny", "Deny"),
        """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-egress-to-client}
spec:
  tier: Admin
  priority: 30
  subject:
    namespaces: {matchLabels: {egress: deny}}
  egress:
    - name: client-network
      action: Deny
      to:
        - networks: [10.99.0.0/24]
""",
        """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client, namespace: np-allow}
spec:
  podSelector: {}
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {team: client}}
""",
        """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: np-deny}
spec:
  podSelector: {}
  policyTypes: [Ingress]
""",
    ]
)


def compiled(tmp_path: Path) -> tuple[ClusterPlan, dict[str, str]]:
    copy = tmp_path / "demo"
    shutil.copytree(EXAMPLES / "policies-demo", copy, ignore=shutil.ignore_patterns("rendered"))
    for old in (copy / "policies").iterdir():
        old.unlink()
    (copy / "policies" / "tiers.yaml").write_text(POLICIES)
    build = compile_cluster(load_cluster(copy / "cluster.yaml"))
    return build.plan, build.files


def client_set(files: dict[str, str]) -> str:
    """Return the selector set of namespaces team=client (the client's namespace)."""
    policy = ClusterPolicy.model_validate_json(files[CLUSTER_POLICY])
    team = {"matchExpressions": [], "matchLabels": {"team": "client"}}
    (found,) = [
        s.name for s in policy.ipsets if (s.selector or {}).get("namespaceSelector") == team
    ]
    return found


def join_sets(node: str, files: dict[str, str], ns: str, spaces: dict[str, str]) -> None:
    """Put the pod's address into exactly the selector sets it matches, as the agent does."""
    policy = ClusterPolicy.model_validate_json(files[CLUSTER_POLICY])
    runtime = [s.name for s in policy.ipsets if s.selector is not None and s.type == "hash:ip"]
    joined = selector_sets_for_pod(policy.ipsets, ns, {"app": "x"}, spaces)
    lines = [f"del {name} {POD_IP}" for name in runtime]
    lines += [f"add {name} {POD_IP}" for name in joined]
    ns_run(node, ["ipset", "restore", "-exist"], input_text="\n".join(lines) + "\n")


def place(node: str, plan: ClusterPlan, files: dict[str, str], ns: str, labels: str) -> None:
    """(Re)program the pod's endpoint chains and selector sets for namespace `ns` labelled
    `labels` (k=v,...): the tier chains match the pod by its subject sets."""
    spaces = dict(pair.split("=") for pair in labels.split(",") if pair)
    join_sets(node, files, ns, spaces)
    pod = policies_for_pod(policy_bindings(plan), ns, {"app": "x"}, spaces)
    rules = with_endpoints(role_text(files, "node-1", IPTABLES_FILE), [endpoint_rules(IFACE, pod)])
    ns_run(node, ["iptables-restore", "--noflush"], input_text=rules)


CASES = [
    # namespace, its labels, client reaches the pod, why
    ("free", "", True, "no policy: Kubernetes' default allow"),
    ("np-allow", "admin=deny", False, "Admin Deny beats a NetworkPolicy allow"),
    ("np-allow", "admin=pass", True, "Admin Pass defers to the NetworkPolicy, which allows"),
    ("np-deny", "admin=pass", False, "Admin Pass defers to the NetworkPolicy's default deny"),
    ("np-deny", "admin=accept", True, "Admin Accept beats a NetworkPolicy deny"),
    ("np-deny", "admin=accept,admin2=deny", True, "one label, one value: still Accept"),
    ("free", "baseline=deny", False, "Baseline Deny applies to a pod no NetworkPolicy selects"),
    ("np-allow", "baseline=deny", True, "Baseline is never reached for a selected pod"),
    ("free", "admin=pass,baseline=deny", False, "Admin Pass, no NetworkPolicy: Baseline Deny"),
    ("free", "admin=accept,baseline=deny", True, "Admin Accept, no NetworkPolicy: no Baseline"),
    ("free", "basepass=yes,baseline=deny", True, "Baseline Pass skips the later Baseline Deny"),
]


def test_tiers_decide_in_order(make_ns: Callable[[str], str], tmp_path: Path) -> None:
    need_tool("ping", "ipset", "iptables-restore")
    client, node = wire(make_ns)
    plan, files = compiled(tmp_path)
    ns_run(node, ["ipset", "restore"], input_text=files["cluster/ipsets.restore"])
    ns_run(node, ["ipset", "add", client_set(files), CLIENT_IP])
    place(node, plan, files, "free", "")
    hook(node, plan)
    wrong = []
    for namespace, labels, expected, why in CASES:
        place(node, plan, files, namespace, labels)
        if ns_ping(client, POD_IP) != expected:
            wrong.append(f"{namespace} {labels or '-'}: expected {expected}: {why}")
    assert wrong == []


def test_admin_egress_deny_to_networks(make_ns: Callable[[str], str], tmp_path: Path) -> None:
    need_tool("ping", "ipset", "iptables-restore")
    client, node = wire(make_ns)
    pod = f"{node[: -len('nd')]}pod"
    plan, files = compiled(tmp_path)
    ns_run(node, ["ipset", "restore"], input_text=files["cluster/ipsets.restore"])
    place(node, plan, files, "free", "")
    hook(node, plan)
    assert ns_ping(pod, CLIENT_IP), "no policy: the pod reaches the client"
    place(node, plan, files, "free", "egress=deny")
    assert not ns_ping(pod, CLIENT_IP), "Admin Deny to networks 10.99.0.0/24 drops it"
    assert ns_ping(client, POD_IP), "ingress is not affected by an egress-only policy"
