"""The seed walkthrough's policies, proved on a running lab through rebuilt bundles.

Step 1 adds `default-deny-ingress` for namespace lab-walkthrough (where every node's `-b` pod
lives) to a copy of the cluster, rebuilds it and runs `calicc apply` on the nodes whose pods the
probes use (the nodes that have pods): ingress to those pods is blocked while their egress still
works, in each address family the pods have. Step 2 adds `allow-all-ingress`: ingress is
restored. The lab's own bundle is then re-applied on those nodes, so the lab ends as it began.
Other nodes are never touched: on a 200-node lab with pods on 8, re-applying every node would
be most of the check's time.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.build import build, load_cluster
from calicc.lab.agent import ApplyJob, apply_nodes, node_root
from calicc.lab.matrix import Paths, Probe
from calicc.lab.podcheck import run_probes
from calicc.lab.pods import WALK_NAMESPACE
from calicc.lab.state import LabState
from calicc.lab.verify import Row

POLICY_FILE = "lab-walkthrough-policies.yaml"
DENY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "default-deny-ingress", "namespace": WALK_NAMESPACE},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
}
ALLOW = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "allow-all-ingress", "namespace": WALK_NAMESPACE},
    "spec": {"podSelector": {}, "ingress": [{}]},
}


def variant(cluster: Path, out: Path, policies: list[dict[str, Any]]) -> Path:
    """Copy `cluster` (its directory, lock included) to `out` with `policies` added; return it."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(cluster.parent, out, ignore=shutil.ignore_patterns("rendered"))
    (out / POLICY_FILE).write_text(yaml.safe_dump_all(policies, sort_keys=True))
    copy = out / cluster.name
    data = yaml.safe_load(copy.read_text())
    data["policies"] = [*data.get("policies", []), POLICY_FILE]
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def walk_nodes(paths: Paths) -> list[str]:
    """Return the nodes whose pods the walkthrough's probes use, in node order."""
    used = {p.node for v in paths.families() for p in paths.first_pods(v)}
    return [n.name for n in paths.plan.nodes if n.name in used]


def apply_all(state: LabState, paths: Paths, rendered: Path) -> None:
    """Run `calicc apply` with the bundles under `rendered` on every walkthrough node."""
    root = Path(state.root)
    jobs = [
        ApplyJob(
            node,
            paths.topo.node(node).ns,
            rendered / "nodes" / node,
            node_root(root, node),
            paths.standin,
        )
        for node in walk_nodes(paths)
    ]
    apply_nodes(jobs)


@contextmanager
def policies_applied(
    state: LabState, paths: Paths, tag: str, policies: list[dict[str, Any]]
) -> Iterator[None]:
    """Apply the lab's cluster plus `policies` to the walkthrough's nodes; re-apply after."""
    work = Path(state.root) / "walkthrough" / tag
    copy = variant(Path(state.cluster), work / "cluster", policies)
    build(load_cluster(copy), work / "rendered")  # the one writer (the copy keeps the lock)
    try:
        apply_all(state, paths, work / "rendered")
        yield
    finally:
        apply_all(state, paths, Path(state.root) / "rendered")


def walk_probes(paths: Paths, isolated: bool) -> list[Probe]:
    """Ingress to each node's `-b` pod from its `-a` pod, and the `-b` pod's own egress.

    In each family the pods have (IPv4 probes first): the policies select pods, not addresses.
    """
    what = "default-deny-ingress" if isolated else "default-deny + allow-all-ingress"
    probes = []
    for version in paths.families():
        for pod in paths.first_pods(version):
            walled = paths.pods[f"{pod.node}-b"]
            there, back = walled.address_of(version), pod.address_of(version)
            probes.append(
                Probe(
                    "policy",
                    f"{what}: {pod.name} -> {walled.name} ({there})",
                    pod.netns,
                    there,
                    answered=not isolated,
                )
            )
            subject = f"{what}: {walled.name} -> {pod.name} ({back}, egress)"
            probes.append(Probe("policy", subject, walled.netns, back))
    return probes


def policy_rows(state: LabState, paths: Paths) -> list[Row]:
    """Run both steps of the walkthrough; return their rows."""
    with policies_applied(state, paths, "deny", [DENY]):
        rows = run_probes(walk_probes(paths, isolated=True))
    with policies_applied(state, paths, "allow", [DENY, ALLOW]):
        rows += run_probes(walk_probes(paths, isolated=False))
    return rows
