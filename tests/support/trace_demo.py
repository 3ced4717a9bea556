"""examples/policies-demo for trace tests: as it is (no Kubernetes API: named ports match
nothing), and built again with the API named (pods' container ports fill the named-port sets)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from calicc.compiler.build import build, load_cluster
from calicc.trace.ends import Cluster
from calicc.trace.pods import load_pods
from calicc.trace.view import TreeView
from tests.conftest import EXAMPLES

DEMO = EXAMPLES / "policies-demo"
KUBECONFIG = "/etc/cni/net.d/calicc-kubeconfig"


def demo_cluster(tree: Path = DEMO / "rendered", pods: Path = DEMO / "pods.yaml") -> Cluster:
    view = TreeView.open(tree)
    return Cluster(view, load_pods(pods, view.by_name))


def demo_with_api(work: Path) -> Path:
    """Copy policies-demo to `work` with `kubernetes:` named, build it; return the directory."""
    shutil.copytree(DEMO, work, ignore=shutil.ignore_patterns("rendered"))
    data = yaml.safe_load((work / "cluster.yaml").read_text())
    data["kubernetes"] = {"kubeconfig": KUBECONFIG}
    (work / "cluster.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    build(load_cluster(work / "cluster.yaml"), work / "rendered")
    return work
