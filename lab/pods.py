"""Test pods on every lab node, made through the installed CNI plugin as a runtime makes them.

Each node gets two pods: `<node>-a` in Kubernetes namespace `default` and `<node>-b` in
`lab-walkthrough` (the namespace the policy walkthrough isolates). A pod is a network namespace
named after the lab; `lab.runtime` runs the node's installed conflist (<root>/etc/cni/net.d)
with the launchers in <root>/opt/cni/bin inside the node's namespace. Pods are recorded in the
lab state before ADD, so `down` runs DEL for each (then deletes the netns) even after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from calicc.compiler.plan import ClusterPlan
from calicc.contract.names import CNI_BIN_DIR, install_path
from calicc.contract.names import CONFLIST as BUNDLE_CONFLIST
from calicc.lab.agent import node_root
from calicc.lab.names import ns_name, short_hash
from calicc.lab.netns import ns_add, ns_delete, ns_list
from calicc.lab.peers import share_endpoints
from calicc.lab.runtime import SYSTEM_PLUGINS, Attachment, chain_add, chain_del
from calicc.lab.state import LabState, Pod

WALK_NAMESPACE = "lab-walkthrough"
POD_NAMESPACES = (("a", "default"), ("b", WALK_NAMESPACE))
IFNAME = "eth0"
CONFLIST = install_path(BUNDLE_CONFLIST)  # relative to the node root
WORKERS = 8
ALL_NODES_UP_TO = 16  # without --pod-nodes, clusters up to this size get pods on every node
LARGE_POD_NODES = 8  # ... and larger ones on this many, spread over the node list


def default_pod_nodes(plan: ClusterPlan) -> int:
    """Return `pod_nodes` when none was asked: 0 (every node) for a small cluster, else 8.

    Every namespace shares the kernel's neighbour table (gc_thresh3, 1024 by default): a
    200-node lab's BGP peers nearly fill it already, and 400 pods would overflow it.
    """
    return 0 if len(plan.nodes) <= ALL_NODES_UP_TO else LARGE_POD_NODES


def plan_pods(plan: ClusterPlan, lab: str, pod_nodes: int = 0) -> tuple[Pod, ...]:
    """Return the pods lab `lab` makes: two per node, in node order (no I/O).

    `pod_nodes` > 0 limits pods to that many nodes spread evenly over the node list: the
    kernel's neighbour table is shared by all namespaces (gc_thresh3, 1024 by default), so a
    200-node lab cannot give every node pods.
    """
    nodes = list(plan.nodes)
    if 0 < pod_nodes < len(nodes):
        step = len(nodes) / pod_nodes
        nodes = [nodes[int(i * step)] for i in range(pod_nodes)]
    pods = []
    for node in nodes:
        for suffix, namespace in POD_NAMESPACES:
            name = f"{node.name}-{suffix}"
            pods.append(
                Pod(
                    name=name,
                    node=node.name,
                    namespace=namespace,
                    netns=ns_name(lab, "pod", name),
                    container_id=f"{lab}-{short_hash(name, 16)}",
                )
            )
    return tuple(pods)


def pod_labels(pod: Pod) -> dict[str, str]:
    """Return the labels the runtime passes for `pod` (capability args `labels`).

    A pod of the pods file has its own; the lab's pods share `app: calicc-lab`.
    """
    if pod.labels is not None:
        return pod.labels
    return {"app": "calicc-lab", "calicc-lab/pod": short_hash(pod.name, 12)}


def attachment(pod: Pod) -> Attachment:
    """Return the runtime's view of `pod`'s eth0."""
    return Attachment(
        container_id=pod.container_id,
        netns=f"/var/run/netns/{pod.netns}",
        ifname=IFNAME,
        args={"K8S_POD_NAMESPACE": pod.namespace, "K8S_POD_NAME": pod.kube_name or pod.name},
        capability_args={"labels": pod_labels(pod), "namespaceLabels": pod.namespace_labels},
    )


def cni_path(root: Path) -> tuple[Path, ...]:
    """Return the CNI_PATH of a node whose agent root is `root`."""
    return (root / CNI_BIN_DIR.lstrip("/"), SYSTEM_PLUGINS)


def _cache(lab_root: Path, pod: Pod) -> Path:
    return lab_root / "pods" / f"{pod.name}.json"


def add_pod(lab_root: Path, lab: str, pod: Pod) -> Pod:
    """Make `pod`'s netns and run CNI ADD in its node; return it with its address."""
    if pod.netns not in ns_list():
        ns_add(pod.netns)
    root = node_root(lab_root, pod.node)
    conflist = json.loads((root / CONFLIST).read_text(encoding="utf-8"))
    node_ns = ns_name(lab, "node", pod.node)
    result = chain_add(node_ns, conflist, attachment(pod), cni_path(root))
    cache = _cache(lab_root, pod)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    addresses = [str(ip["address"]).split("/")[0] for ip in result["ips"]]
    address_v6 = next((a for a in addresses if ":" in a), "")
    return replace(pod, address=addresses[0], address_v6=address_v6)


def del_pod(lab_root: Path, lab: str, pod: Pod) -> list[str]:
    """Run CNI DEL for `pod` (with its cached result), then delete its netns; return errors."""
    root = node_root(lab_root, pod.node)
    conf_path = root / CONFLIST
    errors: list[str] = []
    node_ns = ns_name(lab, "node", pod.node)
    if conf_path.exists() and node_ns in ns_list():
        conflist = json.loads(conf_path.read_text(encoding="utf-8"))
        cache = _cache(lab_root, pod)
        cached: Any = json.loads(cache.read_text()) if cache.exists() else None
        errors = chain_del(node_ns, conflist, attachment(pod), cni_path(root), cached)
        cache.unlink(missing_ok=True)
    ns_delete(pod.netns)
    return errors


def create_pods(state: LabState, pods: Iterable[Pod]) -> list[Pod]:
    """Record `pods` in the state, ADD them (several at once), record their addresses."""
    todo = list(pods)
    for pod in todo:
        state.pods[pod.name] = pod
    state.save()
    root = Path(state.root)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        made = list(pool.map(lambda p: add_pod(root, state.name, p), todo))
    for pod in made:
        state.pods[pod.name] = pod
    state.save()
    share_endpoints(root)
    return made


def delete_pods(state: LabState, names: Iterable[str] | None = None) -> list[str]:
    """DEL the named pods (all by default) and forget them; return a line per pod."""
    chosen = sorted(state.pods) if names is None else sorted(names)
    root = Path(state.root)

    def one(name: str) -> str:
        errors = del_pod(root, state.name, state.pods[name])
        return f"deleted pod {name}" + (f" ({'; '.join(errors)})" if errors else "")

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        lines = list(pool.map(one, chosen))
    for name in chosen:
        del state.pods[name]
    state.save()
    share_endpoints(root)
    return lines
