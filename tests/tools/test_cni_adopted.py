"""Adopted addresses through the real plugin (cnitool and the installed launchers) in throwaway
namespaces: the lock's `adopted:` entries (what `calicc import` writes for Calico's running
pods) reach node.json, no ADD is handed one of them, a DEL with the old pod's container id
(cnitool derives it from the namespace path) frees its address for the next pod, and a GC that
no longer lists a Calico pod reclaims its address and removes the veth and route Calico made."""

from __future__ import annotations

import hashlib
import json
from ipaddress import IPv4Address, IPv4Network, ip_interface
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.agent.cni.naming import host_veth_name
from calicc.compiler.build import build, compile_cluster, load_cluster
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import need_root
from tests.support.clusters import write_cluster
from tests.support.cni import cnitool, install_bundle, run_cnitool, standalone_node, write_bundle
from tests.support.cni_inputs import Node

pytestmark = [pytest.mark.root, pytest.mark.tools]
CLUSTER: dict[str, Any] = {
    "name": "adopt",
    "network_cidr": "10.244.0.0/16",
    "block_size": 29,  # 8 addresses: the tunnel's, 2 adopted, 5 for new pods
    "nodes": [{"name": "n1", "address": "192.168.49.2/24", "max_pods": 5}],
}
BLOCK = IPv4Network("10.244.0.0/29")


def cnitool_container_id(pod_ns: str) -> str:
    """Return the container id cnitool passes for a namespace (sha512 of its path, 10 bytes)."""
    digest = hashlib.sha512(f"/var/run/netns/{pod_ns}".encode()).hexdigest()
    return f"cnitool-{digest[:20]}"


def test_adds_skip_adopted_addresses_and_del_of_the_old_container_frees_one(
    make_ns: Any, tmp_path: Path
) -> None:
    need_root()
    cnitool()
    path = write_cluster(tmp_path, CLUSTER)
    build(load_cluster(path), tmp_path / "rendered")  # the lock, then the import's entries
    old_ns = make_ns("old")
    lock_path = tmp_path / "cluster.lock.yaml"
    lock = yaml.safe_load(lock_path.read_text())
    lock["nodes"]["n1"]["adopted"] = [
        {"address": "10.244.0.1", "container_id": cnitool_container_id(old_ns), "pod": "shop/old"},
        {"address": "10.244.0.2", "container_id": "f00dcafe", "ifname": "eth0"},
    ]
    lock_path.write_text(yaml.safe_dump(lock))
    files = compile_cluster(load_cluster(path)).files
    root = tmp_path / "root"
    node_json = install_bundle(root, files, "n1")
    tunnel = IPv4Address(json.loads(node_json.read_text())["tunnel_address"])
    assert [a["address"] for a in json.loads(node_json.read_text())["adopted"]] == [
        "10.244.0.1",
        "10.244.0.2",
    ]
    ns = standalone_node(make_ns, root, node_json)

    got = []
    for i in range(6):  # 5 free addresses: the 6th ADD finds none
        done = run_cnitool(ns, root, "add", make_ns(f"p{i}"), pod=f"p{i}")
        if i == 5:
            assert done.returncode != 0
            assert "no free pod address" in done.stdout + done.stderr
            break
        assert done.returncode == 0, done.stdout + done.stderr
        got.append(ip_interface(json.loads(done.stdout)["ips"][0]["address"]).ip)
    adopted = {IPv4Address("10.244.0.1"), IPv4Address("10.244.0.2")}
    assert set(got) == set(BLOCK) - adopted - {tunnel}
    state = json.loads((root / "var/lib/calicc/ipam/allocations.json").read_text())
    assert state["allocations"]["10.244.0.1"]["attrs"]["identity"] == "shop.old"

    done = run_cnitool(ns, root, "del", old_ns, namespace="shop", pod="old")
    assert done.returncode == 0, done.stdout + done.stderr
    state = json.loads((root / "var/lib/calicc/ipam/allocations.json").read_text())
    assert "10.244.0.1" not in state["allocations"]
    assert state["allocations"]["10.244.0.2"]["container_id"] == "f00dcafe"  # still running
    done = run_cnitool(ns, root, "add", make_ns("new"), pod="new")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ip_interface(json.loads(done.stdout)["ips"][0]["address"]).ip == IPv4Address(
        "10.244.0.1"
    )


def test_gc_reclaims_an_adopted_pod_that_is_gone_and_removes_calicos_veth_and_route(
    make_ns: Any, tmp_path: Path
) -> None:
    """The Calico pod's sandbox is gone (no DEL came): the runtime's GC lists only the live
    attachments, so calicc's plugin reclaims the adopted address and removes the host veth and
    /32 route Calico made for it (named from the pod's namespace and name, as calicc names it)."""
    need_root()
    node = Node(make_ns("node"), make_ns("pod"), tmp_path / "root")
    entry = {"address": "10.244.0.7", "container_id": "calico01", "ifname": "eth0",
             "handle": "k8s-pod-network.calico01", "namespace": "shop", "pod": "old"}  # fmt: skip
    write_bundle(node.root, adopted=[entry])
    (node.root / "var/lib/calicc/endpoints").mkdir(parents=True, mode=0o700)
    calico_pod, veth = make_ns("calico"), host_veth_name("shop.old")
    veth_between(node.ns, veth, calico_pod, "eth0")  # what Calico's CNI left on the node
    ns_run(node.ns, ["ip", "route", "add", "10.244.0.7/32", "dev", veth, "scope", "link"])
    live = node.run(node.env(CNI_CONTAINERID="c1"), json.dumps(node.conf).encode())
    assert live.code == 0, live.stdout + live.stderr
    assert json.loads(live.stdout)["ips"][0]["address"] != "10.244.0.7/32"
    state = json.loads((node.root / "var/lib/calicc/ipam/allocations.json").read_text())
    assert state["allocations"]["10.244.0.7"]["handle"] == "k8s-pod-network.calico01"

    conf = {**node.conf, "cniVersion": "1.1.0",
            "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}  # fmt: skip
    env = node.env("GC", CNI_CONTAINERID=None, CNI_IFNAME=None, CNI_NETNS=None)
    done = node.run(env, json.dumps(conf).encode())
    assert done.code == 0, done.stdout + done.stderr
    state = json.loads((node.root / "var/lib/calicc/ipam/allocations.json").read_text())
    assert "10.244.0.7" not in state["allocations"]
    assert [a["container_id"] for a in state["allocations"].values()] == ["c1"]
    assert veth not in ns_run(node.ns, ["ip", "-o", "link"]).stdout
    assert "10.244.0.7" not in ns_run(node.ns, ["ip", "route"]).stdout
