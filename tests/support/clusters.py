"""Helpers for compiler unit tests: build a cluster from a dict or YAML text in tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.build import Inputs, build, load_cluster
from calicc.compiler.errors import SpecError
from calicc.compiler.lock import Lock
from calicc.compiler.plan import ClusterPlan, build_plan
from calicc.compiler.render import render_cluster, render_node
from calicc.compiler.targets.shared import shared_plan
from tests.conftest import EXAMPLES

BASE: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24"},
        {"name": "n2", "address": "10.0.0.2/24"},
        {"name": "n3", "address": "10.0.0.3/24"},
    ],
}


def write_cluster(tmp_path: Path, data: dict[str, Any] | str) -> Path:
    path = tmp_path / "cluster.yaml"
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, data: dict[str, Any] | str) -> Inputs:
    return load_cluster(write_cluster(tmp_path, data))


def plan_of(tmp_path: Path, data: dict[str, Any] | str, lock: Lock | None = None) -> ClusterPlan:
    return build_plan(load(tmp_path, data).spec, lock or Lock())


def node_file(plan: ClusterPlan, node: str, role: str) -> str:
    """Return the text node `node` installs as `role` (bird.conf, iptables/iptables.rules...).

    Its own file, or else the cluster part's shared file that its node.json names for the role.
    """
    own = render_node(plan, plan.node(node))
    if role in own:
        return own[role]
    return render_cluster(plan)[shared_plan(plan).sources[node][role]]


def problems(tmp_path: Path, data: dict[str, Any] | str) -> list[str]:
    try:
        load(tmp_path, data)
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    raise AssertionError("expected a SpecError")


def with_(**changes: Any) -> dict[str, Any]:
    data = {**BASE, "nodes": [dict(n) for n in BASE["nodes"]]}
    data.update(changes)
    return data


def built_example(
    tmp_path: Path,
    name: str = "minikube-ipip",
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Inputs:
    """Copy example `name`'s cluster and lock into `tmp_path` and build it there.

    `edit` changes the cluster's data first (a node added, a setting changed): the build is
    then the next build of the example, its lock kept where it still fits.
    """
    for each in ("cluster.yaml", "cluster.lock.yaml"):
        shutil.copy(EXAMPLES / name / each, tmp_path / each)
    if edit is not None:
        data = yaml.safe_load((tmp_path / "cluster.yaml").read_text())
        edit(data)
        write_cluster(tmp_path, data)
    inputs = load_cluster(tmp_path / "cluster.yaml")
    build(inputs, tmp_path / "rendered")
    return inputs
