"""`calicc trace --kubeconfig`: the pods from the Kubernetes API (trace/kube_pods.py), served by
the stub API (tests/support/kubeapi.py); the same pods give the same traces as the pods file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from calicc.contract.endpoint import NAMESPACE_NAME_LABEL
from calicc.trace.cli import app
from calicc.trace.errors import TraceError
from calicc.trace.kube_pods import pods_from_api
from calicc.trace.pods import NamedPort
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES, ROOT
from tests.support.kubeapi import KubeApi
from tests.support.trace_demo import DEMO, demo_cluster

DEMO_TREE = DEMO / "rendered"
DUAL_TREE = EXAMPLES / "dual-stack-mesh" / "rendered"
LEFT_OUT = ("kube-system/host-agent", "demo/unscheduled", "demo/done", "demo/far", "demo/no-ip")


def put_demo_pods(api: KubeApi) -> None:
    """Serve the pods of policies-demo's pods.yaml, each at the address the trace gives it."""
    cluster = demo_cluster()
    assert cluster.pods is not None
    for name, labels in cluster.pods.namespaces.items():
        api.put_namespace(name, {k: v for k, v in labels.items() if k != NAMESPACE_NAME_LABEL})
    for node in ("node-1", "node-2"):
        for pod in cluster.pods_of(node):
            ports = [(port, number, proto) for port, proto, number in pod.ports]
            ip = str(pod.addresses[0])
            api.put_pod(pod.namespace, pod.name, dict(pod.labels), ip, node, ports)


def put_left_out_pods(api: KubeApi) -> None:
    """Serve pods the trace must leave out: host network, unscheduled, finished, elsewhere."""
    api.put_pod("kube-system", "host-agent", {"app": "agent"}, "10.30.0.11", "node-1")
    api.pods[("kube-system", "host-agent")]["spec"]["hostNetwork"] = True
    api.put_pod("demo", "unscheduled", {"app": "nginx"}, None, "", phase="Pending")
    api.put_pod("demo", "done", {"app": "client"}, "10.244.0.60", "node-1", phase="Succeeded")
    api.put_pod("demo", "far", {"app": "client"}, "10.99.0.5", "node-9")
    api.put_pod("demo", "no-ip", {"app": "client"}, None, "node-1", phase="Pending")


@pytest.fixture
def demo_api(tmp_path: Path) -> Iterator[Path]:
    """The stub API serving policies-demo's pods and the left-out ones; yield its kubeconfig."""
    with KubeApi() as api:
        put_demo_pods(api)
        put_left_out_pods(api)
        api.start()
        yield api.kubeconfig(tmp_path / "kubeconfig")


def trace(*args: str, tree: Path = DEMO_TREE) -> Result:
    return CliRunner().invoke(app, [*args, "--tree", str(tree)])


def test_the_api_pods_have_their_labels_ports_addresses_and_namespaces(demo_api: Path) -> None:
    found = pods_from_api(demo_api, TreeView.open(DEMO_TREE).by_name)
    by_key = {pod.key: pod for pod in found.pods}
    from_file = demo_cluster().pods
    assert from_file is not None
    assert set(by_key) == {pod.key for pod in from_file.pods}
    web = by_key["shop/web-1"]
    assert (web.node, dict(web.labels)) == ("node-1", {"app": "web", "tier": "frontend"})
    assert set(web.ports) == {
        NamedPort("http", 8080, "TCP"),
        NamedPort("metrics", 9102, "TCP"),
        NamedPort("admin", 30080, "TCP"),
    }
    assert by_key["kube-system/coredns-1"].ports[0] == NamedPort("dns", 53, "UDP")
    assert by_key["monitoring/prometheus"].ips == (ip_address("10.250.0.130"),)
    assert found.namespaces["billing"] == {
        "team": "billing",
        "isolation": "baseline",
        NAMESPACE_NAME_LABEL: "billing",
    }
    assert found.path == demo_api
    assert found.elsewhere == {"node-9": 1}


@pytest.mark.parametrize(
    ("src", "dst", "port", "code"),
    [
        ("quarantine/suspect", "demo/nginx", "80/TCP", 1),  # Admin deny from quarantine
        ("demo/client", "demo/nginx", "80/TCP", 0),
        ("shop/api-1", "shop/web-1", "8080/TCP", 1),  # web-allow: from frontend/edge only
        ("monitoring/prometheus", "shop/web-1", "9090/TCP", 0),  # cluster-guardrails accepts
        ("default/debug", "billing/ledger", "8443/TCP", 1),  # Baseline: no team label
    ],
)
def test_a_trace_from_the_api_is_the_trace_from_the_pods_file(
    demo_api: Path, src: str, dst: str, port: str, code: int
) -> None:
    from_file = trace(src, dst, "--port", port, "--json", "--pods", str(DEMO / "pods.yaml"))
    from_api = trace(src, dst, "--port", port, "--json", "--kubeconfig", str(demo_api))
    assert (from_file.exit_code, from_api.exit_code) == (code, code), from_api.output
    assert json.loads(from_api.stdout) == json.loads(from_file.stdout)


def test_the_denial_names_the_policy_and_its_line(demo_api: Path) -> None:
    found = trace("quarantine/suspect", "demo/nginx", "-p", "80/TCP", "--kubeconfig", str(demo_api))
    assert found.exit_code == 1
    assert "pod quarantine/suspect 10.244.0.133 on node-2" in found.stdout
    assert "cluster-policies.yaml:4" in found.stdout
    assert found.stdout.splitlines()[-1].split() == ["verdict", "DENIED"]


@pytest.mark.parametrize("left_out", LEFT_OUT)
def test_pods_without_a_pod_address_on_a_known_node_are_left_out(
    demo_api: Path, left_out: str
) -> None:
    found = trace(left_out, "demo/nginx", "--kubeconfig", str(demo_api))
    assert found.exit_code == 2
    assert f"unknown pod {left_out}" in found.stderr


def test_pods_on_nodes_the_tree_lacks_are_counted(demo_api: Path) -> None:
    found = trace("demo/client", "demo/nginx", "--kubeconfig", str(demo_api))
    assert "left out 1 pod of the Kubernetes API on nodes the tree does not have: node-9 (1)" in (
        found.stderr
    )
    assert "left out" not in found.stdout


def test_dual_stack_pods_keep_both_addresses(tmp_path: Path) -> None:
    with KubeApi() as api:
        api.put_namespace("shop")
        for name, node, ipv4, ipv6 in [
            ("web", "node-1", "10.244.0.5", "fd00:244::5"),
            ("api", "node-2", "10.244.0.133", "fd00:244::85"),
        ]:
            api.put_pod("shop", name, {"app": name}, ipv6, node)
            api.pods[("shop", name)]["status"]["podIPs"] = [{"ip": ipv6}, {"ip": ipv4}]
        api.start()
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        found = pods_from_api(kubeconfig, TreeView.open(DUAL_TREE).by_name)
        web = next(pod for pod in found.pods if pod.key == "shop/web")
        assert web.ips == (ip_address("10.244.0.5"), ip_address("fd00:244::5"))
        args = ("shop/api", "shop/web", "-p", "80/TCP", "--json", "--kubeconfig", str(kubeconfig))
        v6 = trace(*args, "--family", "6", tree=DUAL_TREE)
        v4 = trace(*args, tree=DUAL_TREE)
    assert (v6.exit_code, v4.exit_code) == (0, 0), v6.output
    assert json.loads(v6.stdout)["src"]["address"] == "fd00:244::85"
    assert json.loads(v6.stdout)["dst"]["address"] == "fd00:244::5"
    assert json.loads(v4.stdout)["dst"]["address"] == "10.244.0.5"


def test_bad_pod_data_is_an_error_naming_the_pod_and_field(tmp_path: Path) -> None:
    with KubeApi() as api:
        api.put_namespace("demo", {"team": "-bad-"})
        api.put_pod("demo", "a", {"app": "x" * 64}, "10.244.0.1", "node-1", [("HTTP", 80, "TCP")])
        api.put_pod("demo", "b", {"app": "b"}, "10.244.0.2", "node-1", [("http", 0, "TCP")])
        api.put_pod("demo", "c", {"app": "c"}, "not-an-ip", "node-1")
        api.start()
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        with pytest.raises(TraceError) as caught:
            pods_from_api(kubeconfig, TreeView.open(DEMO_TREE).by_name)
        cli = trace("demo/a", "demo/b", "--kubeconfig", str(kubeconfig))
    lines = str(caught.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "pod demo/a",  # the label value
        "pod demo/a",  # the port name
        "pod demo/b",
        "pod demo/c",
        "namespace demo",
    ]
    assert "pod demo/a: labels.app:" in lines[0]
    assert "pod demo/a: ports[0].name: port name 'HTTP'" in lines[1]
    assert "pod demo/b: ports[0].port:" in lines[2]
    assert "pod demo/c: ips[0]:" in lines[3]
    assert "namespace demo: labels.team:" in lines[4]
    assert cli.exit_code == 2
    assert "pod demo/b: ports[0].port:" in cli.stderr


def test_an_address_outside_the_nodes_blocks_names_the_pod_without_a_line(tmp_path: Path) -> None:
    with KubeApi() as api:
        api.put_pod("demo", "odd", {"app": "odd"}, "10.9.9.9", "node-1")
        api.start()
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        found = trace("demo/odd", "node-2", "--kubeconfig", str(kubeconfig))
    assert found.exit_code == 2
    assert f"Kubernetes API ({kubeconfig}): pod demo/odd ips: 10.9.9.9 is not in a block" in (
        found.stderr
    )
    assert ":0:" not in found.stderr


def test_an_unreachable_or_refusing_api_is_exit_2_with_a_message(tmp_path: Path) -> None:
    with KubeApi() as api:
        api.start()
        closed = api.url
        wrong_token = api.kubeconfig(tmp_path / "wrong-token")
        wrong_token.write_text(wrong_token.read_text().replace(api.token, "not-the-token"))
        refused = trace("demo/client", "demo/nginx", "--kubeconfig", str(wrong_token))
    unreachable = trace("demo/client", "demo/nginx", "--kubeconfig", str(wrong_token))
    assert refused.exit_code == 2
    assert "401" in refused.stderr
    assert "cannot read the cluster's pods from the Kubernetes API" in refused.stderr
    assert unreachable.exit_code == 2
    assert f"GET {closed}/api/v1/pods" in unreachable.stderr
    assert "Traceback" not in refused.output + unreachable.output


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("- not a mapping\n", "is not a YAML mapping"),
        ("current-context: nowhere\ncontexts: []\n", "no context named"),
        (
            json.dumps(
                {
                    "current-context": "c",
                    "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                    "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
                    "users": [{"name": "u", "user": {"tokenFile": "/nonexistent/token"}}],
                }
            ),
            "/nonexistent/token",
        ),
    ],
)
def test_a_bad_kubeconfig_is_exit_2_with_a_message(tmp_path: Path, text: str, said: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    found = trace("demo/client", "demo/nginx", "--kubeconfig", str(kubeconfig))
    assert found.exit_code == 2
    assert said in found.stderr
    assert isinstance(found.exception, SystemExit)  # a message, not a crash


def test_a_missing_kubeconfig_is_exit_2_with_a_message(tmp_path: Path) -> None:
    found = trace("demo/client", "demo/nginx", "--kubeconfig", str(tmp_path / "missing"))
    assert found.exit_code == 2
    assert f"cannot read kubeconfig {tmp_path / 'missing'}" in found.stderr


def test_pods_and_kubeconfig_together_are_exit_2(tmp_path: Path) -> None:
    found = trace(
        "demo/client", "demo/nginx", "--pods", str(DEMO / "pods.yaml"), "--kubeconfig", "k"
    )
    assert found.exit_code == 2
    assert "give --pods or --kubeconfig, not both" in found.stderr


def test_a_trace_from_a_pods_file_does_not_load_the_api_client() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from calicc.trace.cli import app; "
        f"CliRunner().invoke(app, ['demo/client', 'demo/nginx', '--tree', {str(DEMO_TREE)!r}, "
        f"'--pods', {str(DEMO / 'pods.yaml')!r}]); "
        "print(sorted(m for m in ('calicc.trace.kube_pods', 'calicc.agent.cni.kube') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_the_help_names_the_option() -> None:
    found = CliRunner().invoke(app, ["--help"])
    assert "--kubeconfig" in found.stdout
