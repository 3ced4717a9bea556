"""`calicc trace` end to end on the examples: verdicts with the deciding policy and rule, the
route, SNAT and MTU, and the command's exit codes and errors."""

from __future__ import annotations

import json
from ipaddress import ip_network
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calicc.trace.answer import Port, Trace, Tracer
from calicc.trace.cli import app
from calicc.trace.ends import Cluster
from calicc.trace.errors import TraceError
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES
from tests.support.trace_demo import demo_cluster, demo_with_api

DEMO = EXAMPLES / "policies-demo"
TCP = Port("tcp", 8080)


@pytest.fixture(scope="module")
def demo() -> Cluster:
    return demo_cluster()


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    work = demo_with_api(tmp_path_factory.mktemp("api") / "demo")
    return demo_cluster(work / "rendered", work / "pods.yaml")


def trace(cluster: Cluster, src: str, dst: str, port: Port = TCP) -> Trace:
    return Tracer(cluster).trace(cluster.resolve(src, None), cluster.resolve(dst, None), port)


def test_an_allowed_pair_names_the_allowing_policy_and_rule(demo_api: Cluster) -> None:
    found = trace(demo_api, "monitoring/prometheus", "shop/web-1", Port("tcp", 9102))
    assert found.outcome == "allowed"
    ingress = found.checks[-1]
    assert ingress.node == "node-1"
    assert ingress.what == "ingress of shop/web-1"
    assert (
        ingress.policy == "Admin ClusterNetworkPolicy cluster-guardrails (cluster-policies.yaml:4)"
    )
    decided = ingress.decided_by
    assert decided is not None
    assert decided.chain.startswith("cali-ai-")
    assert "monitoring-scrapes-metrics" in decided.comment
    assert ingress.verdict.deciding is not None
    assert (ingress.verdict.deciding.chain, ingress.verdict.deciding.number) == ("cali-FORWARD", 4)


def test_named_ports_match_nothing_without_the_kubernetes_api(
    demo: Cluster, demo_api: Cluster
) -> None:
    """policies-demo names no API: its CNI plugin knows no container ports, so the metrics
    port cluster-guardrails allows by name is closed there, and open with the API."""
    without = trace(demo, "monitoring/prometheus", "shop/web-1", Port("tcp", 9102))
    assert without.outcome == "denied"
    assert trace(demo_api, "monitoring/prometheus", "shop/web-1", Port("tcp", 9102)).allowed


def test_an_admin_deny_is_traced_to_its_rule(demo: Cluster) -> None:
    found = trace(demo, "quarantine/suspect", "demo/nginx", Port("tcp", 80))
    assert found.outcome == "denied"
    denied = found.checks[-1]
    assert not denied.passed
    assert (
        denied.policy == "Admin ClusterNetworkPolicy cluster-guardrails (cluster-policies.yaml:4)"
    )
    assert denied.verdict.deciding is not None
    assert "deny-from-quarantine" in denied.verdict.deciding.comment


def test_a_default_deny_lists_the_policies_without_an_allow(demo: Cluster) -> None:
    found = trace(demo, "shop/api-1", "shop/web-1")  # web-allow lets api in on UDP/SCTP only
    assert found.outcome == "denied"
    denied = found.checks[-1]
    assert denied.verdict.deciding is not None
    assert denied.verdict.deciding.comment.startswith("default deny:")
    assert denied.policy is not None
    assert "policy shop/web-allow (web.yaml:6)" in denied.policy
    allowed = trace(demo, "shop/api-1", "shop/web-1", Port("udp", 5353))
    assert allowed.outcome == "allowed"


def test_the_route_mtu_and_snat(demo: Cluster) -> None:
    across = trace(demo, "monitoring/prometheus", "shop/web-1", Port("tcp", 9102))
    assert across.route is not None
    assert (across.route.device, across.route.encapsulation) == ("tunl0", "ipip")
    assert (across.path_mtu, across.largest_ping) == (1480, 1452)
    assert across.snat is None
    inbound = [c for c in across.checks if c.hook == "filter INPUT"]
    assert [c.what for c in inbound] == ["IPIP packet from node node-2"]
    out = trace(demo, "shop/web-1", "192.0.2.10", Port("tcp", 443))
    assert out.outcome == "allowed"
    assert out.snat is not None
    assert out.snat.chain == "cali-nat-outgoing"


def test_a_pod_of_a_pool_without_nat_keeps_its_address(demo: Cluster) -> None:
    no_nat = ip_network("10.250.0.0/16")  # the example's pool with nat_outgoing false
    placed = [p for n in ("node-1", "node-2") for p in demo.pods_of(n)]
    pod = next(p for p in placed if p.addresses[0] in no_nat)
    found = trace(demo, pod.key, "192.0.2.10", Port("tcp", 443))
    assert found.snat is None


def test_the_same_node_is_one_forward_walk(demo: Cluster) -> None:
    found = trace(demo, "shop/web-1", "demo/nginx", Port("tcp", 80))
    assert found.route is not None
    assert found.route.kind == "local-pod"
    assert [c.hook for c in found.checks] == ["filter FORWARD"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, [*args, "--tree", str(DEMO / "rendered"), "--pods", str(DEMO / "pods.yaml")]
    )
    return result.exit_code, result.output


def test_the_command_exits_0_when_allowed_1_when_denied_2_on_bad_input() -> None:
    code, out = run("demo/client", "demo/nginx", "--port", "80/TCP")
    assert code == 0
    assert out.splitlines()[-1].split() == ["verdict", "ALLOWED"]
    code, out = run("quarantine/suspect", "demo/nginx", "--port", "80/tcp")
    assert code == 1
    assert "cluster-policies.yaml:4" in out
    assert run("shop/nobody", "demo/nginx")[0] == 2
    assert run("shop/web-1", "demo/nginx", "--port", "http")[0] == 2
    assert run("shop/web-1", "demo/nginx", "--port", "70000/TCP")[0] == 2
    assert run("shop/web-1", "not-an-address")[0] == 2


def test_json_has_the_same_facts() -> None:
    code, out = run("quarantine/suspect", "demo/nginx", "--port", "80/TCP", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["outcome"] == "denied"
    assert data["route"]["encapsulation"] == "ipip"
    last = data["checks"][-1]
    assert last["passed"] is False
    assert last["deciding"]["chain"].startswith("cali-ai-")


def test_unknown_ends_say_what_is_valid(demo: Cluster) -> None:
    with pytest.raises(TraceError, match=r"not in .*pods\.yaml"):
        demo.resolve("shop/nobody", None)
    with pytest.raises(TraceError, match=r"no pod \(namespace/name\), node or IP address"):
        demo.resolve("nothing", None)
    with pytest.raises(TraceError, match="no IPv6 address"):
        demo.resolve("shop/web-1", 6)


def test_a_tree_without_pods_file_traces_nodes_and_addresses(tmp_path: Path) -> None:
    view = TreeView.open(DEMO / "rendered")
    cluster = Cluster(view, None)
    found = Tracer(cluster).trace(
        cluster.resolve("node-1", None), cluster.resolve("node-2", None), Port("tcp", 22)
    )
    assert found.outcome == "allowed"
    with pytest.raises(TraceError, match="name the pods file with --pods"):
        cluster.resolve("shop/web-1", None)


def test_a_node_sending_into_the_tunnel_leaves_from_its_tunnel_address(demo: Cluster) -> None:
    found = trace(demo, "node-2", "shop/web-1")
    assert found.route is not None
    assert found.route.device == "tunl0"
    assert found.snat is not None
    assert (found.snat.chain, found.snat.number) == ("cali-POSTROUTING", 2)
    # no calicc rule in filter OUTPUT without host endpoints: the IPIP packet, then the pod
    assert [c.hook for c in found.checks] == ["filter INPUT", "filter FORWARD"]
    assert found.outcome == "denied", "shop/web-allow admits no node"
    to_nginx = trace(demo, "node-2", "demo/nginx")  # allow-all-ingress: any source
    assert to_nginx.outcome == "allowed"


def test_a_pod_reaches_its_own_address_inside_the_pod(demo: Cluster) -> None:
    found = trace(demo, "shop/web-1", "shop/web-1", Port("tcp", 22))
    assert found.outcome == "allowed"
    assert found.route is not None
    assert found.route.kind == "self"
    assert found.checks == ()
