"""The upstream NetworkPolicy e2e cases (tests/support/netpol_cases.py) on a real calicc cluster.

Two nodes in network namespaces run `calicc agent` with the bundles of a VXLAN cluster file;
nine pods are wired by the agents' CNI plugin; labels and named ports come from the stub
Kubernetes API (tests/support/netpol_cluster.py). Each case starts from upstream's labels and
no policy, takes its steps and probes every pod pair on the step's port and protocol, as the
upstream suite does: a table that differs is probed again (up to three times in all, a second
apart, as the agents may still be reading a relabel from the API), then reported as upstream's
expected/observed/comparison tables. Every probed table is also traced (`calicc trace`'s
Tracer on the rendered tree and a pods file of the cluster's pods as the API has them), and the
trace must agree with the probes on every pair; the last test reports how many pairs agreed.

SCTP cases are skipped when the kernel has no SCTP (socket(IPPROTO_SCTP) fails): the pods
could serve nothing to probe.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from calicc.trace.answer import Port, Tracer
from calicc.trace.ends import Cluster
from calicc.trace.pods import load_pods
from calicc.trace.view import TreeView
from tests.conftest import need_root, need_tool
from tests.support.netpol_cases import CASES
from tests.support.netpol_cluster import NetpolCluster, logs
from tests.support.netpol_model import Case, Create, DeleteAll, LabelNamespace, LabelPod, Step
from tests.support.netpol_truth import PODS, diff_report, expected_table, mismatches

pytestmark = [pytest.mark.root, pytest.mark.tools]
TRIES = 3
AGREED = {"tables": 0, "pairs": 0}  # traced tables and pod pairs that matched the probes


def kernel_has_sctp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetpolCluster]:
    need_root()
    need_tool("ip", "iptables-restore", "ipset")
    made = NetpolCluster(tmp_path_factory.mktemp("netpol"))
    try:
        made.up()
        yield made
    finally:
        made.close()


def take(cluster: NetpolCluster, step: Step) -> None:
    policies = dict(cluster.policies)
    for action in step.actions:
        if isinstance(action, Create):
            meta = action.policy["metadata"]
            policies[meta["namespace"], meta["name"]] = action.policy
        elif isinstance(action, DeleteAll):
            policies = {}
        elif isinstance(action, LabelPod):
            cluster.label_pod(action.pod, {**cluster.pod_labels[action.pod], **action.labels})
        elif isinstance(action, LabelNamespace):
            spaces = cluster.ns_labels[action.namespace]
            cluster.label_namespace(action.namespace, {**spaces, **action.labels})
    cluster.set_policies(policies)


def traced(cluster: NetpolCluster, port: int, protocol: str) -> dict[tuple[str, str], bool]:
    """Return calicc trace's verdict for every pod pair, from the tree the agents applied."""
    view = TreeView.open(cluster.work / "rendered")
    pods = Cluster(view, load_pods(cluster.pods_file(), view.by_name))
    tracer = Tracer(pods)
    ends = {pod: pods.resolve(pod, None) for pod in PODS}
    packet = Port(protocol.lower(), port)
    return {(s, d): tracer.trace(ends[s], ends[d], packet).allowed for s in PODS for d in PODS}


def check(cluster: NetpolCluster, case: Case) -> None:
    for index, step in enumerate(case.steps):
        take(cluster, step)
        for probe in step.probes:
            expected = expected_table(probe.edits)
            for attempt in range(TRIES):
                observed = cluster.probe(probe.port, probe.protocol)
                if not mismatches(expected, observed):
                    break
                if attempt < TRIES - 1:
                    time.sleep(1)
            title = f"{case.name}: step {index + 1}, {probe.protocol}/{probe.port}"
            report = diff_report(title, expected, observed)
            assert not mismatches(expected, observed), f"{report}\n\n{logs(cluster.work)}"
            predicted = traced(cluster, probe.port, probe.protocol)
            wrong = sorted(pair for pair, seen in observed.items() if predicted[pair] != seen)
            assert not wrong, f"{title}: calicc trace disagrees with the probes on {wrong}"
            AGREED["tables"] += 1
            AGREED["pairs"] += len(observed)


def marks(case: Case) -> list[pytest.MarkDecorator]:
    found = []
    if "SCTP" in case.protocols and not kernel_has_sctp():
        found.append(pytest.mark.skip(reason="the kernel has no SCTP: nothing to serve or probe"))
    return found


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=marks(c)) for c in CASES])
def test_upstream_network_policy_case(cluster: NetpolCluster, case: Case) -> None:
    started = time.monotonic()
    cluster.reset_labels()
    cluster.set_policies({})
    try:
        check(cluster, case)
    finally:
        print(f"{case.name}: {time.monotonic() - started:.1f} s")


def test_agents_survived_every_change(cluster: NetpolCluster) -> None:
    """Runs last: both agents still run and none logged a traceback.

    (An agent may refuse a tree it read while `calicc build` was replacing its files, and count
    an error: the torn read the digests exist for. It applies the finished tree at its next
    interval, which every case waits for.)
    """
    assert {n: p.poll() for n, p in cluster.agents.items()} == {"node-1": None, "node-2": None}
    text = "".join(path.read_text() for path in sorted(cluster.work.glob("*.log")))
    assert "Traceback" not in text, logs(cluster.work)


def test_trace_agreed_with_every_probe() -> None:
    """Runs after the cases: calicc trace predicted every probed pair (100% agreement)."""
    print(
        f"calicc trace agreed with the probes: {AGREED['pairs']} pod pairs in "
        f"{AGREED['tables']} probed tables"
    )
    assert AGREED["tables"] > 0, "no case ran"
