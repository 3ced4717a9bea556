"""The pods file in a lab (lab/filepods.py) and the rows of `lab check`'s reachability section
(lab/reach.py): what is made, what is written back as a pods file, and how traces and probe
results become rows. The probes themselves run as root in tests/tools/test_lab_reach_probe.py
and on labs in tests/e2e/test_lab_intents.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from calicc.compiler.build import load_cluster, plan_cluster
from calicc.compiler.plan import ClusterPlan
from calicc.lab.filepods import file_pods, read_pods_file, with_namespace_labels, write_lab_pods
from calicc.lab.pods import attachment, plan_pods
from calicc.lab.reach import Question, agreement_rows, intent_row
from calicc.lab.reach_probe import CONNECTED, NO_ANSWER, Shot
from calicc.lab.state import LabState, load_state
from calicc.lab.verify import FAIL, PASS, SKIP
from calicc.trace.answer import Port, Trace, Tracer
from calicc.trace.ends import Cluster
from calicc.trace.intents import Intent
from calicc.trace.pods import load_pods
from calicc.trace.view import TreeView
from tests.support.trace_demo import DEMO, demo_cluster

NODES = ("node-1", "node-2")


@pytest.fixture(scope="module")
def demo() -> Cluster:
    return demo_cluster()


def test_the_pods_file_becomes_lab_pods_with_their_labels_and_ports() -> None:
    pods_file = read_pods_file(load_cluster(DEMO / "cluster.yaml"), NODES)
    assert pods_file is not None
    pods = file_pods(pods_file, "t")
    assert len(pods) == len(pods_file.pods)
    web = next(p for p in pods if p.key == "shop/web-1")
    assert web.name == "shop_web-1"  # "_" is in no node name: never a lab pod's name
    assert web.kube_name == "web-1"
    assert web.labels == {"app": "web", "tier": "frontend"}
    assert web.namespace_labels == {"team": "shop"}  # the name label is the plugin's to add
    assert ("http", 8080, "TCP") in web.ports
    made = attachment(web)
    assert made.args == {"K8S_POD_NAMESPACE": "shop", "K8S_POD_NAME": "web-1"}
    assert made.capability_args == {
        "labels": {"app": "web", "tier": "frontend"},
        "namespaceLabels": {"team": "shop"},
    }
    assert len({p.netns for p in pods}) == len(pods)


def test_a_cluster_without_a_pods_file_has_no_file_pods() -> None:
    assert read_pods_file(load_cluster(DEMO.parent / "vxlan" / "cluster.yaml"), NODES) is None


def test_the_labs_own_pods_take_the_labels_the_file_gives_their_namespace(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text("namespaces: {default: {zone: a}}\npods: []\n")
    pods_file = load_pods(path, NODES)
    plan = demo_plan()
    own = with_namespace_labels(plan_pods(plan, "t"), pods_file)
    default = [p for p in own if p.namespace == "default"]
    assert default
    assert all(p.namespace_labels == {"zone": "a"} for p in default)
    assert all(p.namespace_labels == {} for p in own if p.namespace != "default")


def demo_plan() -> ClusterPlan:
    return plan_cluster(load_cluster(DEMO / "cluster.yaml"))


def test_the_lab_writes_its_pods_back_as_a_pods_file_calicc_trace_reads(tmp_path: Path) -> None:
    pods_file = read_pods_file(load_cluster(DEMO / "cluster.yaml"), NODES)
    assert pods_file is not None
    state = LabState(name="t", cluster=str(DEMO / "cluster.yaml"), root=str(tmp_path))
    own = with_namespace_labels(plan_pods(demo_plan(), "t"), pods_file)
    base = {"node-1": 2, "node-2": 130}  # in each node's first block
    for index, pod in enumerate([*own, *file_pods(pods_file, "t")]):
        state.pods[pod.name] = replace(pod, address=f"10.244.0.{base[pod.node] + index}")
    state.save()
    assert load_state(tmp_path) == state  # ports and labels survive the state file

    view = TreeView.open(DEMO / "rendered")
    written = load_pods(write_lab_pods(state), view.by_name)
    assert sorted(p.key for p in written.pods) == sorted(p.key for p in state.pods.values())
    web = next(p for p in written.pods if p.key == "shop/web-1")
    assert [str(a) for a in web.ips] == [state.pods["shop_web-1"].address]
    assert dict(web.labels) == {"app": "web", "tier": "frontend"}
    assert [(p.name, p.port, p.protocol) for p in web.ports] == list(state.pods["shop_web-1"].ports)
    lab_pod = next(p for p in written.pods if p.key == "default/node-1-a")
    assert lab_pod.labels["app"] == "calicc-lab"
    assert written.namespaces["shop"]["team"] == "shop"
    # the trace now answers for the lab's own pods too
    cluster = Cluster(view, written)
    found = Tracer(cluster).trace(
        cluster.resolve("quarantine/suspect", 4), cluster.resolve("default/node-1-a", 4), PING
    )
    assert found.outcome == "denied"


PING = Port("icmp", None)


def traced(cluster: Cluster, src: str, dst: str, port: Port) -> Trace:
    return Tracer(cluster).trace(cluster.resolve(src, 4), cluster.resolve(dst, 4), port)


def question(trace: Trace, skip: str = "") -> Question:
    shot = Shot("ns", str(trace.dst.address), trace.port.proto, trace.port.port)
    return Question(f"{trace.src.given} -> {trace.dst.given}", trace, shot, None, skip)


def test_agreement_counts_pairs_and_lists_each_disagreement(demo: Cluster) -> None:
    allowed = traced(demo, "demo/client", "demo/nginx", Port("tcp", 80))
    denied = traced(demo, "quarantine/suspect", "demo/nginx", Port("tcp", 80))
    assert (allowed.outcome, denied.outcome) == ("allowed", "denied")
    questions = [question(allowed), question(denied), question(allowed, skip="stand-in")]
    rows = agreement_rows(questions, [CONNECTED, NO_ANSWER, ""])
    assert [r.status for r in rows] == [PASS]
    assert rows[0].observed == "2 of 3 agreed, 0 disagreed, 1 skipped"

    rows = agreement_rows(questions, [NO_ANSWER, CONNECTED, ""])
    assert [r.status for r in rows] == [FAIL, FAIL, FAIL]
    assert rows[0].observed == "0 of 3 agreed, 2 disagreed, 1 skipped"
    assert (rows[1].expected, rows[1].observed) == ("trace: allowed", NO_ANSWER)
    assert (rows[2].expected, rows[2].observed) == ("trace: denied", CONNECTED)

    unproved = agreement_rows([question(allowed)], ["not served: Address in use"])
    assert unproved[0].status == SKIP
    assert agreement_rows([], []) == []


def intent(expect: str, **kw: object) -> Intent:
    fields: dict[str, object] = {
        "name": "i", "source": "demo/client", "to": "demo/nginx", "port": Port("tcp", 80),
        "expect": expect, "encapsulation": None, "min_mtu": None, "family": None,
        "where": "intents.yaml:3",
    }  # fmt: skip
    return Intent(**(fields | kw))  # type: ignore[arg-type]


def test_an_intent_passes_only_when_the_trace_holds_it_and_the_packets_agree(
    demo: Cluster,
) -> None:
    trace = traced(demo, "demo/client", "demo/nginx", Port("tcp", 80))
    held = question(trace)
    assert intent_row(intent("allow"), held, CONNECTED).status == PASS
    disagreed = intent_row(intent("allow"), held, NO_ANSWER)
    assert (disagreed.status, disagreed.observed) == (FAIL, "no answer: the lab disagrees")
    contradicted = intent_row(intent("deny"), held, NO_ANSWER)
    assert contradicted.status == FAIL
    assert "the trace contradicts it: expected deny, the trace says allowed" in (
        contradicted.observed
    )
    mtu = intent_row(intent("allow", min_mtu=9000), held, CONNECTED)
    assert mtu.status == FAIL
    skipped = intent_row(intent("allow"), question(trace, skip="tunl0 is a stand-in"), "")
    assert (skipped.status, skipped.observed) == (SKIP, "tunl0 is a stand-in")
