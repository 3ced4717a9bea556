"""Policy selector sets hold the matching pods of other nodes (policies-demo's rendered bundles).

Kubernetes source: two node namespaces on one "lan" namespace (a bridge), each running
`calicc agent --kubeconfig` against a stub API server that listens on the lan namespace's own
bridge address (nothing outside the test's namespaces; tests/support/kubeapi.py). The API lists
pods of both nodes; node A's selector set must hold node B's pod, lose it once the pod is deleted
from the API (a watch event), and keep its members while the API fails.

Peer-record source: node B's endpoint records, written by the real CNI plugin through cnitool,
copied to node A's <state_dir>/peers/node-2/endpoints/, fill node A's set at `calicc apply`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from calicc.lab.netns import ns_run, veth_between
from tests.conftest import need_tool
from tests.support.bundles import MakeNs, apply, rendered, stop_bird
from tests.support.cni import cni, cnitool
from tests.support.kubeapi import KubeApi
from tests.support.poll import wait_for

pytestmark = [pytest.mark.root, pytest.mark.tools]
CALICC = str(Path(sys.executable).parent / "calicc")
NODES = {"node-1": "10.30.0.11", "node-2": "10.30.0.12"}
LAN = "10.30.0.1"
PORT = 6443
TOKEN = "s3cret"
API_SET = "cali40s:Y0wk1bBX7T49x15BqTQ05r8"  # namespace shop, app=api
PORT_SET = "cali40n:pfSn7gpvTdXhnz9puJpFlfW"  # named port http/TCP


def pod(node: str, name: str, ip: str, labels: dict[str, str], port: int = 0) -> dict[str, Any]:
    ports = [{"name": "http", "containerPort": port}] if port else []
    return {
        "metadata": {"namespace": "shop", "name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


PODS = [
    pod("node-1", "api-0", "10.244.0.5", {"app": "api"}),  # node-1's block
    pod("node-2", "api-1", "10.244.0.130", {"app": "api"}),  # node-2's block
    pod("node-2", "web-0", "10.250.0.140", {"app": "web"}, port=8080),
]


def kubeconfig(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "current-context": "ctx",
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": f"http://{LAN}:{PORT}"}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
            }
        )
    )
    return path


def node_on_lan(make_ns: MakeNs, lan: str, name: str, index: int) -> str:
    """A node namespace with its compiled address on eth0, bridged to `lan`; a tunl0 stand-in."""
    ns = make_ns(f"n{index}")
    veth_between(ns, "eth0", lan, f"p{index}")
    ns_run(lan, ["ip", "link", "set", f"p{index}", "master", "br0"])
    ns_run(ns, ["ip", "addr", "add", f"{NODES[name]}/24", "dev", "eth0"])
    ns_run(ns, ["ip", "route", "add", "default", "via", LAN])
    ns_run(ns, ["ip", "link", "add", "tunl0", "type", "ifb"])  # no ipip module here
    return ns


@dataclass
class Cluster:
    """The lan, two nodes with their roots, the stub API's data directory and the processes."""

    nodes: dict[str, tuple[str, Path]]
    lan: str
    procs: list[subprocess.Popen[str]]


def start(procs: list[subprocess.Popen[str]], ns: str, *args: str) -> None:
    procs.append(
        subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )


@pytest.fixture
def cluster(make_ns: MakeNs, tmp_path: Path) -> Iterator[Cluster]:
    """Two nodes on a bridge in the lan namespace, whose bridge address serves the stub API."""
    need_tool("ip", "iptables-save", "ipset", "bird")
    lan = make_ns("lan")
    ns_run(lan, ["ip", "link", "add", "br0", "type", "bridge"])
    ns_run(lan, ["ip", "addr", "add", f"{LAN}/24", "dev", "br0"])
    ns_run(lan, ["ip", "link", "set", "br0", "up"])
    nodes = {n: (node_on_lan(make_ns, lan, n, i), tmp_path / n) for i, n in enumerate(NODES)}
    procs: list[subprocess.Popen[str]] = []
    try:
        yield Cluster(nodes, lan, procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        for _, root in nodes.values():
            stop_bird(root)


def errors(metrics: Path) -> int:
    text = metrics.read_text() if metrics.exists() else ""
    found = [ln for ln in text.splitlines() if ln.startswith("calicc_agent_errors_total ")]
    return int(found[0].split()[1]) if found else 0


def members(ns: str, name: str) -> set[str]:
    """Return the set's members (none while the agent has not created it yet)."""
    text = ns_run(ns, ["ipset", "list", name], check=False).stdout
    return set(text.split("Members:\n", 1)[1].split()) if "Members:\n" in text else set()


def test_agents_fill_selector_sets_from_the_kubernetes_api(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The agents list, then watch, the stub API (tests/support/kubeapi.py) on the lan."""
    api = KubeApi(token=TOKEN)
    api.put_namespace("shop")
    for item in PODS:
        meta, status = item["metadata"], item["status"]
        ports = [
            (p["name"], p["containerPort"], "TCP") for p in item["spec"]["containers"][0]["ports"]
        ]
        api.put_pod(
            "shop", meta["name"], meta["labels"], status["podIP"], item["spec"]["nodeName"], ports
        )
    api.start(cluster.lan, LAN, PORT)
    try:
        config = kubeconfig(tmp_path / "kubeconfig")
        for name, (ns, root) in cluster.nodes.items():
            args = ["agent", "--bundle", str(rendered("policies-demo", name)), "--root", str(root)]
            extra = ["--interval", "0.3", "--allow-tunnel-standin", "--no-cni-socket"]
            metrics = ["--metrics-file", str(root / "metrics.prom"), "--kubeconfig", str(config)]
            start(cluster.procs, ns, CALICC, *args, *extra, *metrics)
        (a, root_a), (b, _) = cluster.nodes["node-1"], cluster.nodes["node-2"]
        both = {"10.244.0.5", "10.244.0.130"}
        wait_for(lambda: members(a, API_SET) == both, "node-1's set holding node-2's api pod")
        wait_for(lambda: members(b, API_SET) == both, "node-2's set holding node-1's api pod")
        assert members(a, PORT_SET) == {"10.250.0.140,tcp:8080"}
        api.delete_pod("shop", "api-1")
        wait_for(lambda: members(a, API_SET) == {"10.244.0.5"}, "api-1 gone from node-1's set")
        api.fail(503)  # the API fails from now on
        failed = errors(root_a / "metrics.prom")
        wait_for(lambda: errors(root_a / "metrics.prom") >= failed + 3, "three failed reads")
        assert members(a, API_SET) == {"10.244.0.5"}, "an API outage empties no set"
        lists = [r for r in api.requests if "watch=" not in r]
        assert lists, "the agents list before they watch"
        assert all("resourceVersion=0" in r for r in lists), "lists come from the watch cache"
        assert any("watch=1" in r for r in api.requests), "the running agents watch"
        for proc in cluster.procs:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
            assert proc.returncode == 0, out
            assert "error: remote: Kubernetes API: GET http://" in out
    finally:
        api.stop()


def test_peer_records_fill_selector_sets_without_kubernetes(
    cluster: Cluster, make_ns: MakeNs, tmp_path: Path
) -> None:
    cnitool()
    (a, root_a), (b, root_b) = cluster.nodes["node-1"], cluster.nodes["node-2"]
    for name, (ns, root) in cluster.nodes.items():
        done = apply(ns, rendered("policies-demo", name), root, tmp_path / "log.json")
        assert done.returncode == 0, done.stderr
    pod_ns = make_ns("api")
    address = cni(b, root_b, "add", pod_ns, "shop", labels={"app": "api"})
    peers = root_a / "var/lib/calicc/peers/node-2/endpoints"
    shutil.copytree(root_b / "var/lib/calicc/endpoints", peers)
    done = apply(a, rendered("policies-demo", "node-1"), root_a, tmp_path / "log.json")
    assert done.returncode == 0, done.stderr
    assert f"ipset {API_SET}: add {address}" in done.stdout
    assert members(a, API_SET) == {address}
    cni(b, root_b, "del", pod_ns, "shop", labels={"app": "api"})
    shutil.rmtree(peers)  # what `rsync -a --delete` of node-2's empty directory does
    shutil.copytree(root_b / "var/lib/calicc/endpoints", peers)
    done = apply(a, rendered("policies-demo", "node-1"), root_a, tmp_path / "log.json")
    assert done.returncode == 0, done.stderr
    assert members(a, API_SET) == set()
