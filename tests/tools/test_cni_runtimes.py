"""Pod identity as each real runtime passes it (agent/cni/naming.py, docs/cni-netconf.md).

The CNI_* environments below are the ones measured on this machine kind (LAB-NOTES "Real
container runtimes as CNI clients"): the kubelet passes K8S_POD_NAMESPACE and K8S_POD_NAME;
podman 4.3 passes only K8S_POD_NAME, the container name (upper case and '_' allowed);
containerd's `ctr run --cni` passes no K8S_* argument, a CNI_CONTAINERID of
`<containerd namespace>-<id>`, and an empty CNI_NETNS at DEL. Each runs the real plugin in a
node namespace with a real pod namespace: ADD must succeed, the host veth must be named from the
documented identity, IPAM and the endpoint record must carry the documented namespace and name,
and DEL (with what that runtime passes at DEL) must take back the veth, address and record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.naming import host_veth_name
from calicc.agent.cni.node import ipam_store, load_manifest
from calicc.contract.names import BUNDLE_MANIFEST
from calicc.lab.netns import ns_run
from tests.support.cni_inputs import Node, make_node, merged

pytestmark = [pytest.mark.root]
PODMAN_ID = "3f4e" * 16  # podman's container ids are 64 hex characters
UNREACHABLE_API = "/nonexistent/kubeconfig"  # a lookup would fail the ADD


@pytest.fixture
def node(make_ns: Callable[[str], str], tmp_path: Path) -> Node:
    return make_node(make_ns, tmp_path)


def links(ns: str) -> set[str]:
    out = ns_run(ns, ["ip", "-o", "link", "show"]).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def record(node: Node, iface: str) -> dict[str, Any] | None:
    path = node.root / "var/lib/calicc/endpoints" / f"{iface}.json"
    return json.loads(path.read_text()) if path.exists() else None


def allocation(node: Node, container_id: str) -> dict[str, str] | None:
    manifest = load_manifest(node.root / BUNDLE_MANIFEST.lstrip("/"))
    store = ipam_store(node.root / "var/lib/calicc", manifest)
    found = [a for a in store.allocations() if a.container_id == container_id]
    return dict(found[0].attrs) if found else None


def add_then_del(
    node: Node, add_env: dict[str, str | bytes], del_env: dict[str, str | bytes], conf: Any
) -> tuple[dict[str, Any] | None, dict[str, str] | None, str]:
    """ADD, read what it recorded, DEL; return (endpoint record, IPAM attrs, veth)."""
    stdin = json.dumps(conf).encode()
    added = node.run(add_env, stdin)
    assert added.code == 0, added.stdout + added.stderr
    container = str(add_env["CNI_CONTAINERID"])
    attrs = allocation(node, container)
    assert attrs is not None
    veth = host_veth_name(attrs["identity"])
    assert veth in links(node.ns)
    seen = record(node, veth)
    gone = node.run(del_env, stdin)
    assert gone.code == 0, gone.stdout + gone.stderr
    assert veth not in links(node.ns)
    assert allocation(node, container) is None
    assert record(node, veth) is None
    return seen, attrs, veth


def test_kubelet_pod_is_namespace_and_name(node: Node) -> None:
    env = node.env(CNI_ARGS="K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0")
    seen, attrs, veth = add_then_del(
        node, env, node.env("DEL", CNI_ARGS=env["CNI_ARGS"]), node.conf
    )
    assert attrs == {"identity": "shop.web-0", "namespace": "shop", "pod": "web-0"}
    assert veth == host_veth_name("shop.web-0")
    assert seen is not None
    assert seen["namespace"] == "shop"


def test_podman_container_name_without_namespace(node: Node) -> None:
    """Upper case and '_' are valid container names; the pod lives in `default` with the
    runtimeConfig labels, and is never looked up in the API (a lookup would fail here)."""
    args = "IgnoreUnknown=1;K8S_POD_NAME=Web_1"
    env = node.env(CNI_CONTAINERID=PODMAN_ID, CNI_ARGS=args)
    conf = merged(
        node.conf,
        {
            "kubernetes": {"kubeconfig": UNREACHABLE_API},
            "runtimeConfig": {"labels": {"app": "web"}},
        },
    )
    del_env = node.env("DEL", CNI_CONTAINERID=PODMAN_ID, CNI_ARGS=args)
    seen, attrs, veth = add_then_del(node, env, del_env, conf)
    assert attrs == {"identity": PODMAN_ID, "namespace": "default", "pod": "Web_1"}
    assert veth == host_veth_name(PODMAN_ID)
    assert seen is not None
    assert (seen["namespace"], seen["labels"]) == ("default", {"app": "web"})


def test_containerd_ctr_passes_no_kubernetes_args_and_no_netns_at_del(node: Node) -> None:
    env = node.env(CNI_CONTAINERID="default-box1", CNI_ARGS=None)
    del_env = node.env("DEL", CNI_CONTAINERID="default-box1", CNI_ARGS=None, CNI_NETNS="")
    seen, attrs, veth = add_then_del(node, env, del_env, node.conf)
    assert attrs == {"identity": "default-box1", "namespace": "default", "pod": "default-box1"}
    assert veth == host_veth_name("default-box1")
    assert seen is not None
    assert seen["namespace"] == "default"


def test_a_pod_name_beside_a_namespace_must_still_be_a_kubernetes_name(node: Node) -> None:
    """The podman rule is for a name alone: a Kubernetes pod name stays DNS-1123."""
    env = node.env(CNI_ARGS="K8S_POD_NAMESPACE=shop;K8S_POD_NAME=Web_1")
    refused = node.run(env, json.dumps(node.conf).encode())
    assert refused.code == 4, refused.stdout
    assert "K8S_POD_NAME" in json.loads(refused.stdout)["msg"]
