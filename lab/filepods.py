"""The cluster's pods file in a lab: its pods made for real, and the lab's pods as a pods file.

A cluster that names a pods file (`pods:` in cluster.yaml) gets those pods in its lab besides
the lab's own two per node: each on its node, in its namespace, with its labels and its
namespace's labels passed by the runtime as a kubelet would (CNI capability args), so the
node's CNI plugin puts it in the policies' sets as it would in the cluster. The addresses are
the ones the node's IPAM hands out in the lab (addresses the file gives are not asked for).

`lab check` then writes every pod of the lab, with the addresses CNI gave, as a pods file
(<lab root>/run/lab-pods.yaml, docs/pods-file.md), which `calicc trace --tree <lab
root>/rendered --pods <lab root>/run/lab-pods.yaml` reads like any other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from calicc.compiler.build import Inputs
from calicc.contract.endpoint import NAMESPACE_NAME_LABEL
from calicc.lab.names import ns_name, short_hash
from calicc.lab.pods import pod_labels
from calicc.lab.state import LabState, Pod
from calicc.trace.pods import PodsFile, load_pods

LAB_PODS = Path("run") / "lab-pods.yaml"  # under the lab root
KEY_MARK = "_"  # in no Kubernetes or node name, so a file pod's key never is a lab pod's name


def read_pods_file(inputs: Inputs, nodes: Collection[str]) -> PodsFile | None:
    """Return the cluster's pods file, checked against `nodes`, or None when it names none."""
    if inputs.spec.pods is None:
        return None
    return load_pods(inputs.base_dir / inputs.spec.pods, nodes)


def file_pods(pods_file: PodsFile, lab: str) -> tuple[Pod, ...]:
    """Return the lab pods for the pods of `pods_file`, in file order (no I/O)."""
    made = []
    for pod in pods_file.pods:
        key = f"{pod.namespace}{KEY_MARK}{pod.name}"
        made.append(
            Pod(
                name=key,
                node=pod.node,
                namespace=pod.namespace,
                netns=ns_name(lab, "pod", key),
                container_id=f"{lab}-{short_hash(key, 16)}",
                kube_name=pod.name,
                labels=dict(pod.labels),
                namespace_labels=_own_labels(pods_file.namespaces.get(pod.namespace, {})),
                ports=tuple((p.name, p.port, p.protocol) for p in pod.ports),
            )
        )
    return tuple(made)


def with_namespace_labels(pods: Iterable[Pod], pods_file: PodsFile | None) -> tuple[Pod, ...]:
    """Return the lab's own pods with the labels the pods file gives their namespaces."""
    if pods_file is None:
        return tuple(pods)
    spaces = pods_file.namespaces
    return tuple(
        replace(p, namespace_labels=_own_labels(spaces[p.namespace]))
        if p.namespace in spaces
        else p
        for p in pods
    )


def _own_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Return a namespace's labels without the name label Kubernetes adds (CNI adds it too)."""
    return {k: v for k, v in labels.items() if k != NAMESPACE_NAME_LABEL}


def write_lab_pods(state: LabState) -> Path:
    """Write every pod of the lab with its addresses as a pods file; return its path."""
    spaces: dict[str, dict[str, str]] = {}
    pods: list[dict[str, Any]] = []
    for pod in sorted(state.pods.values(), key=lambda p: p.key):
        spaces.setdefault(pod.namespace, dict(sorted(pod.namespace_labels.items())))
        entry: dict[str, Any] = {
            "name": pod.kube_name or pod.name,
            "namespace": pod.namespace,
            "node": pod.node,
            "labels": dict(sorted(pod_labels(pod).items())),
        }
        if pod.ports:
            entry["ports"] = [
                {"name": n, "port": p, "protocol": proto} for n, p, proto in pod.ports
            ]
        entry["ips"] = sorted({a for a in (pod.address, pod.address_v6) if a})
        pods.append(entry)
    path = Path(state.root) / LAB_PODS
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f"# The pods of lab {state.name} with the addresses CNI gave them (calicc lab check).\n"
    body = yaml.safe_dump(
        {"namespaces": dict(sorted(spaces.items())), "pods": pods}, sort_keys=False
    )
    path.write_text(head + body, encoding="utf-8")
    return path
