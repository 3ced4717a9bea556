"""CNI GC (spec 1.1) in throwaway namespaces: reclaimed attachments lose their address, policy
record, host /32 route and host veth; live ones, a re-created pod sharing its host veth name
with a reclaimed sandbox, and other networks' addresses stay."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.naming import host_veth_name
from calicc.agent.cni.node import ipam_store, load_manifest
from calicc.lab.netns import ns_run
from tests.support.cni_inputs import SEED, Node, make_node

pytestmark = [pytest.mark.root]


def add(node: Node, container: str, pod: str, pod_ns: str) -> str:
    """ADD pod `pod` (namespace default) as `container`; return its address."""
    env = node.env(
        CNI_CONTAINERID=container,
        CNI_NETNS=f"/var/run/netns/{pod_ns}",
        CNI_ARGS=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
    )
    done = node.run(env, json.dumps(node.conf).encode())
    assert done.code == 0, done.stdout + done.stderr
    return str(json.loads(done.stdout)["ips"][0]["address"]).removesuffix("/32")


def gc(node: Node, *valid: str) -> None:
    conf = {
        **node.conf,
        "cniVersion": "1.1.0",
        "cni.dev/valid-attachments": [{"containerID": c, "ifname": "eth0"} for c in valid],
    }
    env = node.env("GC", CNI_CONTAINERID=None, CNI_IFNAME=None, CNI_NETNS=None)
    done = node.run(env, json.dumps(conf).encode())
    assert done.code == 0, done.stdout + done.stderr


def handles(node: Node) -> list[str]:
    data: dict[str, Any] = json.loads(
        (node.root / "var/lib/calicc/ipam/allocations.json").read_text()
    )
    return sorted(a["handle"] for a in data["allocations"].values())


def links(ns: str) -> str:
    return ns_run(ns, ["ip", "-o", "link"]).stdout


def routes(ns: str) -> str:
    return ns_run(ns, ["ip", "route"]).stdout


def records(node: Node) -> list[str]:
    return sorted(p.name for p in (node.root / "var/lib/calicc/endpoints").iterdir())


@pytest.fixture
def node(make_ns: Callable[[str], str], tmp_path: Path) -> Node:
    return make_node(make_ns, tmp_path)


def test_gc_removes_the_host_veth_and_route_of_what_it_reclaims(
    node: Node, make_ns: Callable[[str], str]
) -> None:
    web0, web1 = host_veth_name("default.web-0"), host_veth_name("default.web-1")
    pod1, pod2 = make_ns("p1"), make_ns("p2")
    address1, address2 = add(node, "c1", "web-0", pod1), add(node, "c2", "web-1", pod2)
    store = ipam_store(
        node.root / "var/lib/calicc", load_manifest(node.root / "etc/calicc/bundle/node.json")
    )
    store.assign("other-net.x9", "x9", "eth0", {})
    assert f"{address2} dev {web1} " in routes(node.ns)
    gc(node, "c1")
    assert web1 not in links(node.ns)
    assert address2 not in routes(node.ns)
    assert "eth0" not in links(pod2)  # the pod end went with its host end
    assert web0 in links(node.ns)
    assert f"{address1} dev {web0} " in routes(node.ns)
    assert handles(node) == ["k8s-pod-network.c1", "other-net.x9"]  # SEED reclaimed too
    assert records(node) == [f"{web0}.json"]
    assert SEED[1] not in routes(node.ns)


def test_gc_keeps_a_veth_a_live_attachment_shares(
    node: Node, make_ns: Callable[[str], str]
) -> None:
    """web-0 re-created as c3 has the host veth name of its reclaimed sandbox c1."""
    web0 = host_veth_name("default.web-0")
    old = add(node, "c1", "web-0", make_ns("p1"))
    new = add(node, "c3", "web-0", make_ns("p3"))
    assert old != new
    gc(node, "c3")
    assert web0 in links(node.ns)
    assert f"{new} dev {web0} " in routes(node.ns)
    assert old not in routes(node.ns)
    assert handles(node) == ["k8s-pod-network.c3"]
    assert records(node) == [f"{web0}.json"]
