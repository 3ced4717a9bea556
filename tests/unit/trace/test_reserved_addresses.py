"""A pods file's explicit address inside a reservation (cluster.yaml `reservations`) is refused
as the node's IPAM would never hand it out; predicted addresses skip reservations."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from calicc.compiler.build import build, load_cluster
from calicc.compiler.errors import SpecError
from calicc.trace.ends import Cluster
from calicc.trace.pods import load_pods
from calicc.trace.view import TreeView
from tests.support.trace_demo import DEMO


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("reserved") / "demo"
    shutil.copytree(DEMO, work, ignore=shutil.ignore_patterns("rendered"))
    cluster = work / "cluster.yaml"
    data = yaml.safe_load(cluster.read_text())
    data.pop("intents")
    data["reservations"] = [{"cidr": "10.244.0.0/29", "name": "gateways"}]
    cluster.write_text(yaml.safe_dump(data, sort_keys=False))
    build(load_cluster(cluster), work / "rendered")
    return work / "rendered"


def pods_of(tree: Path, tmp_path: Path, pod: dict[str, object]) -> Cluster:
    path = tmp_path / "pods.yaml"
    path.write_text(yaml.safe_dump({"pods": [pod]}))
    view = TreeView.open(tree)
    return Cluster(view, load_pods(path, view.by_name))


def test_an_explicit_reserved_address_is_refused(tree: Path, tmp_path: Path) -> None:
    cluster = pods_of(tree, tmp_path, {"name": "a", "node": "node-1", "ips": ["10.244.0.3"]})
    with pytest.raises(SpecError, match=r"10\.244\.0\.3 is in reservation 10\.244\.0\.0/29"):
        cluster.pods_of("node-1")


def test_a_predicted_address_skips_the_reservation(tree: Path, tmp_path: Path) -> None:
    cluster = pods_of(tree, tmp_path, {"name": "a", "node": "node-1"})
    (pod,) = cluster.pods_of("node-1")
    assert str(pod.addresses[0]) == "10.244.0.8"  # the first after 10.244.0.0/29
