"""The upstream ClusterNetworkPolicy conformance tests (tests/support/cnp_cases.py) on calicc.

The cluster of the NetworkPolicy cases (tests/support/netpol_cluster.py: two nodes running
`calicc agent`, nine pods wired by the CNI plugin, labels and named ports from the stub API),
shared by every case. Each case starts from upstream's labels and no policy, takes its steps
(a policy state each: upstream's manifest, then its patches in order) and probes every pod
pair on the step's ports and protocols at once: one prober per client pod for all of them, so
a step costs one probe timeout. A table that differs is probed again (three times in all, a
second apart, as the agents may still be reading a relabel), then reported as upstream's
expected/observed/comparison tables.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import need_root, need_tool
from tests.support.cnp_cases import CASES
from tests.support.cnp_model import CnpCase, CnpStep, Delete, policy_key
from tests.support.netpol_cluster import PYTHON, NetpolCluster, logs
from tests.support.netpol_model import Create, Doc, LabelNamespace, Probe
from tests.support.netpol_truth import PODS, diff_report, expected_table, mismatches

pytestmark = [pytest.mark.root, pytest.mark.tools]
TRIES = 3
PROBE_TIMEOUT = 0.6  # a bridge between namespaces: an allowed pair answers in milliseconds
PROBER = """
import json, socket, sys, threading
timeout, specs, targets = float(sys.argv[1]), sys.argv[2].split(","), sys.argv[3:]
seen = {spec: [False] * len(targets) for spec in specs}
def tcp(spec, port, i, ip):
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            seen[spec][i] = s.recv(2) == b"ok"
    except OSError:
        pass
def udp(spec, port, i, ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout / 2)
        for _ in range(2):
            try:
                s.sendto(b"probe", (ip, port))
                seen[spec][i] = s.recvfrom(512)[0] == b"probe"
                return
            except OSError:
                pass
threads = []
for spec in specs:
    protocol, port = spec.split("/")
    run = tcp if protocol == "TCP" else udp
    for i, ip in enumerate(targets):
        threads.append(threading.Thread(target=run, args=(spec, int(port), i, ip)))
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(seen))
"""
Table = dict[tuple[str, str], bool]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetpolCluster]:
    need_root()
    need_tool("ip", "iptables-restore", "ipset")
    made = NetpolCluster(tmp_path_factory.mktemp("cnp"))
    try:
        made.up()
        yield made
    finally:
        made.close()


def probe_all(cluster: NetpolCluster, probes: tuple[Probe, ...]) -> dict[str, Table]:
    """Probe every pod from every pod on each probe's port and protocol at once."""
    specs = [f"{p.protocol}/{p.port}" for p in probes]
    targets = [cluster.addresses[pod] for pod in PODS]
    args = [PYTHON, "-c", PROBER, str(PROBE_TIMEOUT), ",".join(specs), *targets]
    procs = {
        src: subprocess.Popen(
            ["ip", "netns", "exec", cluster.pod_ns[src], *args], stdout=subprocess.PIPE, text=True
        )
        for src in PODS
    }
    tables: dict[str, Table] = {spec: {} for spec in specs}
    for src, proc in procs.items():
        out, _ = proc.communicate(timeout=30)
        for spec, row in json.loads(out).items():
            for dst, ok in zip(PODS, row, strict=True):
                tables[spec][src, dst] = bool(ok)
    return tables


def take(cluster: NetpolCluster, step: CnpStep) -> None:
    policies: dict[tuple[str, str], Doc] = dict(cluster.policies)
    for action in step.actions:
        if isinstance(action, Create):
            policies[policy_key(action.policy)] = action.policy
        elif isinstance(action, Delete):
            del policies[action.namespace, action.name]
        elif isinstance(action, LabelNamespace):
            spaces = cluster.ns_labels[action.namespace]
            cluster.label_namespace(action.namespace, {**spaces, **action.labels})
    cluster.set_policies(policies)


def check(cluster: NetpolCluster, case: CnpCase) -> None:
    for index, step in enumerate(case.steps):
        take(cluster, step)
        expected = {f"{p.protocol}/{p.port}": expected_table(p.edits) for p in step.probes}
        for attempt in range(TRIES):
            observed = probe_all(cluster, step.probes)
            if not any(mismatches(expected[s], observed[s]) for s in expected):
                break
            if attempt < TRIES - 1:
                time.sleep(1)
        reports = [
            diff_report(f"{case.name}: step {index + 1} ({step.subtests[0]}), {spec}", want, got)
            for spec, want in expected.items()
            if mismatches(want, got := observed[spec])
        ]
        assert not reports, "\n\n".join([*reports, logs(cluster.work)])


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_upstream_cluster_network_policy_case(cluster: NetpolCluster, case: CnpCase) -> None:
    started = time.monotonic()
    cluster.reset_labels()
    cluster.set_policies({})
    try:
        check(cluster, case)
    finally:
        print(f"{case.name}: {time.monotonic() - started:.1f} s")


def test_agents_survived_every_change(cluster: NetpolCluster) -> None:
    """Runs last: both agents still run and none logged a traceback."""
    assert {n: p.poll() for n, p in cluster.agents.items()} == {"node-1": None, "node-2": None}
    text = "".join(path.read_text() for path in sorted(cluster.work.glob("*.log")))
    assert "Traceback" not in text, logs(cluster.work)
