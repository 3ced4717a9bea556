"""Live labels: a running agent gives a pod the chains of its current API labels, within a
second of the event, with no new ADD (issue 12).

One node namespace runs `calicc agent` with a 30 s interval (so only the API watch can wake it
in time) against the stub API (tests/support/kubeapi.py) listening inside the node namespace.
Two pods of namespace shop are added through cnitool and the real plugin, which reads their
labels from the API. Then, each measured from the API event to the kernel's rules:

- the server pod gains `quarantine: "yes"`: its cali-tw- chain jumps to the deny policy's chain;
- it loses the label: the chain allows again;
- namespace shop gains `trusted: "yes"`: the pods join the namespaceSelector set of a policy.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from calicc.agent.cni.naming import host_veth_name
from calicc.contract.endpoint import chain_names
from calicc.lab.netns import ns_run
from tests.conftest import EXAMPLES, need_tool
from tests.support.bundles import stop_bird
from tests.support.cni import cnitool, run_cnitool
from tests.support.kubeapi import KubeApi

pytestmark = [pytest.mark.root, pytest.mark.tools]
CALICC = str(Path(sys.executable).parent / "calicc")
KUBECONFIG = "/etc/calicc/kubeconfig"
PORT = 6443
LIMIT = 1.0  # seconds from the API event to the kernel's rules
POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-quarantined, namespace: shop}
spec:
  podSelector: {matchLabels: {quarantine: "yes"}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-trusted, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
    - from: [{namespaceSelector: {matchLabels: {trusted: "yes"}}}]
"""


def build(tmp_path: Path) -> Path:
    """Build policies-demo with the policies above and the API named; return the output."""
    source = tmp_path / "cluster"
    shutil.copytree(EXAMPLES / "policies-demo", source, ignore=shutil.ignore_patterns("rendered"))
    shutil.rmtree(source / "policies")
    (source / "policies").mkdir()
    (source / "policies/live.yaml").write_text(POLICIES)
    cluster = source / "cluster.yaml"
    kept = [ln for ln in cluster.read_text().splitlines() if not ln.startswith("intents:")]
    # the example's intents are about its own policies, replaced here
    cluster.write_text("\n".join(kept) + f"\nkubernetes:\n  kubeconfig: {KUBECONFIG}\n")
    out = tmp_path / "rendered"
    done = subprocess.run(
        [CALICC, "build", str(cluster), "-o", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def policy_facts(out: Path) -> tuple[str, str]:
    """Return the deny policy's ingress chain and the namespaceSelector set's name."""
    policy = json.loads((out / "cluster/policy.json").read_text())
    chain = next(p["ingress_chain"] for p in policy["policies"] if p["name"] == "deny-quarantined")
    sets = [s["name"] for s in policy["ipsets"] if "namespaceSelector" in (s["selector"] or {})]
    return chain, sets[0]


def elapsed_until(check: Callable[[], bool], what: str, limit: float = 5.0) -> float:
    """Return the seconds until `check` holds (polled every 20 ms); fail after `limit`."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return time.monotonic() - start
        time.sleep(0.02)
    pytest.fail(f"{what}: not within {limit} s")


def tw_chain(ns: str, iface: str) -> list[str]:
    tw = chain_names(iface)[1]
    text = ns_run(ns, ["iptables-save", "-t", "filter"]).stdout
    return [line for line in text.splitlines() if line.startswith(f"-A {tw} ")]


def members(ns: str, name: str) -> set[str]:
    text = ns_run(ns, ["ipset", "list", name], check=False).stdout
    return set(text.split("Members:\n", 1)[1].split()) if "Members:\n" in text else set()


@pytest.fixture
def agent_node(make_ns: Callable[[str], str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    need_tool("ip", "iptables-save", "ipset")
    node = make_ns("node")
    ns_run(node, ["ip", "link", "add", "eth0", "type", "ifb"])
    ns_run(node, ["ip", "link", "set", "eth0", "up"])
    ns_run(node, ["ip", "addr", "add", "10.30.0.11/24", "dev", "eth0"])
    ns_run(node, ["ip", "link", "add", "tunl0", "type", "ifb"])  # no ipip module here
    yield node, tmp_path / "root"
    stop_bird(tmp_path / "root")


def test_relabel_reaches_the_kernel_within_a_second(
    agent_node: tuple[str, Path], make_ns: Callable[[str], str], tmp_path: Path
) -> None:
    cnitool()
    node, root = agent_node
    out = build(tmp_path)
    deny_chain, trusted_set = policy_facts(out)
    api = KubeApi()
    api.put_namespace("shop")
    api.put_pod("shop", "server", {"app": "db"}, node="node-1")
    api.put_pod("shop", "client", {"app": "web"}, node="node-1")
    api.start(node, "127.0.0.1", PORT)
    (root / "etc/calicc").mkdir(parents=True)
    api.kubeconfig(root / KUBECONFIG.lstrip("/"))
    bundle = out / "nodes/node-1"
    args = ["agent", "--bundle", str(bundle), "--root", str(root), "--interval", "30"]
    flags = ["--allow-tunnel-standin", "--no-cni-socket"]
    agent = subprocess.Popen(
        ["ip", "netns", "exec", node, CALICC, *args, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        elapsed_until((root / "etc/calicc/bundle/node.json").exists, "the first apply", 30)
        addresses = {}
        for pod in ("server", "client"):
            pod_ns = make_ns(pod)
            done = run_cnitool(node, root, "add", pod_ns, namespace="shop", pod=pod)
            assert done.returncode == 0, done.stdout + done.stderr
            addresses[pod] = json.loads(done.stdout)["ips"][0]["address"][:-3]
            labels = {"app": "db" if pod == "server" else "web"}
            api.put_pod("shop", pod, labels, addresses[pod], "node-1")  # the kubelet's status
        server = host_veth_name("shop.server")
        assert not any(deny_chain in r for r in tw_chain(node, server))

        api.label_pod("shop", "server", {"app": "db", "quarantine": "yes"})
        into = elapsed_until(
            lambda: any(deny_chain in r for r in tw_chain(node, server)), "relabelled into"
        )
        api.label_pod("shop", "server", {"app": "db"})
        out_of = elapsed_until(
            lambda: not any(deny_chain in r for r in tw_chain(node, server)), "relabelled out"
        )
        assert members(node, trusted_set) == set()
        api.label_namespace("shop", {"trusted": "yes"})
        namespace = elapsed_until(
            lambda: members(node, trusted_set) == set(addresses.values()), "namespace relabelled"
        )
        print(f"relabel to kernel: into {into:.3f} s, out of {out_of:.3f} s, ns {namespace:.3f} s")
        assert max(into, out_of, namespace) < LIMIT
    finally:
        agent.send_signal(signal.SIGTERM)
        log, _ = agent.communicate(timeout=15)
        api.stop()
    assert agent.returncode == 0, log
