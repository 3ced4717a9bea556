"""CNI test helpers: an installed node bundle, cnitool, the agent's CNI socket server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.install import install_plugins
from calicc.agent.cni.server import socket_path
from calicc.compiler.build import compile_cluster, load_cluster
from calicc.contract.names import CLUSTER_DIR, CONFLIST
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import EXAMPLES, ROOT
from tests.support.bundles import role_text


def example_build() -> dict[str, str]:
    """Return the files of examples/minikube-ipip, compiled (nothing written)."""
    return compile_cluster(load_cluster(EXAMPLES / "minikube-ipip" / "cluster.yaml")).files


def install_bundle(root: Path, files: dict[str, str], node: str, **changes: Any) -> Path:
    """Install node `node` of compiled `files` under `root` as `calicc apply` leaves it for the
    CNI plugin: node.json (with `changes`) beside the cluster part; return node.json's path."""
    bundle = root / "etc/calicc/bundle"
    for rel, text in files.items():
        if rel.startswith(f"{CLUSTER_DIR}/"):
            (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
            (bundle / rel).write_text(text, encoding="utf-8")
    data = {**json.loads(files[f"nodes/{node}/node.json"]), **changes}
    (bundle / "node.json").write_text(json.dumps(data), encoding="utf-8")
    return bundle / "node.json"


def write_bundle(root: Path, **changes: Any) -> Path:
    """Install node minikube's bundle under `root` where the compiled conflist points."""
    return install_bundle(root, example_build(), "minikube", **changes)


CNITOOL = Path(os.environ.get("CALICC_CACHE", Path.home() / ".cache/calicc")) / "bin/cnitool"


NETWORK = "k8s-pod-network"


def cnitool() -> Path:
    if not CNITOOL.exists():
        built = subprocess.run(
            [str(ROOT / "scripts/build-cnitool")], capture_output=True, text=True, check=False
        )
        if built.returncode != 0:
            pytest.skip(f"cnitool could not be built: {built.stderr[-300:]}")
    return CNITOOL


def run_cnitool(
    ns: str,
    root: Path,
    verb: str,
    pod_ns: str,
    *,
    namespace: str = "default",
    pod: str | None = None,
    caps: dict[str, Any] | None = None,
    conf_dir: str = "net.d",
) -> Any:
    """Run cnitool in node namespace `ns` against the conflist installed under `root`."""
    env = {
        "NETCONFPATH": str(root / "etc/cni" / conf_dir),
        "CNI_PATH": f"{root}/opt/cni/bin:/usr/lib/cni",
        "CNI_CACHE_DIR": str(root / "var/lib/cni"),
        "CNI_ARGS": f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod or pod_ns}",
        "CAP_ARGS": json.dumps(caps or {}),
    }
    args = ["env", *(f"{k}={v}" for k, v in env.items()), str(cnitool())]
    return ns_run(ns, [*args, verb, NETWORK, f"/var/run/netns/{pod_ns}"], check=False)


def labelled_pod(
    ns: str, root: Path, verb: str, pod_ns: str, *, namespace: str, labels: dict[str, str]
) -> Any:
    """ADD or DEL a pod with labels (the labels capability); return the ADD result."""
    caps = {"labels": labels, "namespaceLabels": {}}
    done = run_cnitool(ns, root, verb, pod_ns, namespace=namespace, caps=caps)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout) if verb == "add" else None


def cni(node: str, root: Path, verb: str, pod_ns: str, namespace: str, *, labels: Any) -> Any:
    """ADD or DEL a labelled pod; return its address on ADD."""
    result = labelled_pod(node, root, verb, pod_ns, namespace=namespace, labels=labels)
    return result["ips"][0]["address"][:-3] if verb == "add" else None


def compiled(tmp_path: Path) -> Any:
    copy = tmp_path / "demo"
    shutil.copytree(EXAMPLES / "policies-demo", copy, ignore=shutil.ignore_patterns("rendered"))
    seed = copy / "policies" / "seed.yaml"
    seed.write_text(seed.read_text().split("---")[0])  # default-deny-ingress only
    return compile_cluster(load_cluster(copy / "cluster.yaml"))


@contextmanager
def cni_server(node: str, root: Path) -> Iterator[None]:
    """The agent's CNI socket server for `root`, running in `node` (stopped by PID)."""
    args = [
        sys.executable,
        "-I",
        "-m",
        "calicc.agent.cni.server",
        "--root",
        str(root),
    ]
    server = subprocess.Popen(["ip", "netns", "exec", node, *args], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while not socket_path(root).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket_path(root).exists()
        yield
    finally:
        server.terminate()
        server.wait(10)


def standalone_node(make_ns: Any, root: Path, node_json: Path) -> str:
    """Make a node namespace for the bundle installed under `root`: calicc's plugin alone in its
    conflist, launchers that run it without a server, an uplink to a router namespace (the
    default route a pod's proxy ARP needs). Return the node namespace's name."""
    conflist = json.loads(role_text(node_json.parent, CONFLIST))
    path = root / "etc/cni/net.d/10-calicc.conflist"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**conflist, "plugins": conflist["plugins"][:1]}))
    install_plugins(root, sys.executable, idle=0)
    ns: str = make_ns("node")
    router: str = make_ns("rtr")
    veth_between(ns, "eth0", router, "down0")
    ns_run(ns, ["ip", "addr", "add", "192.168.49.2/24", "dev", "eth0"])
    ns_run(ns, ["ip", "route", "add", "default", "via", "192.168.49.1"])
    return ns
