"""Adopted addresses (node.json `adopted`, from `calicc import`) in the node's IPAM store.

The store seeds them once, under the handle and attachment calicc's DEL and GC of the old
container use: ADD never hands them out, DEL of the old container releases its address, GC
reclaims those of containers the runtime no longer lists, and a store that seeded an entry
never adds it again (a later apply of the same bundle does not bring back what DEL freed).
The light node.json reader and the pydantic model check entries with the same rules.
"""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from calicc.agent.bundle import load_bundle
from calicc.agent.cni.ipam import STATE_FILE, IpamStore
from calicc.agent.cni.node import ipam_store, load_manifest
from calicc.compiler.build import build, load_cluster
from calicc.contract.adopted import AdoptedFacts
from calicc.contract.manifest import AdoptedPod
from calicc.contract.node import NodeFileError, node_facts
from tests.support.clusters import BASE, write_cluster
from tests.support.cni import example_build, install_bundle

BLOCK = IPv4Network("10.244.0.0/29")  # 8 addresses
TUNNEL = IPv4Address("10.244.0.0")
WEB = AdoptedFacts(IPv4Address("10.244.0.1"), "k8s-pod-network.c-web", "c-web", "eth0",
                   "shop", "web-1")  # fmt: skip
DB = AdoptedFacts(IPv4Address("10.244.0.3"), "k8s-pod-network.c-db", "c-db", "eth0")


def store(tmp_path: Path, *adopted: AdoptedFacts) -> IpamStore:
    """A fresh store object over the same directory, as each CNI call makes one."""
    return IpamStore(tmp_path / "ipam", "n1", (BLOCK,), [TUNNEL], adopted=adopted)


def state(tmp_path: Path) -> dict[str, object]:
    data = json.loads((tmp_path / "ipam" / STATE_FILE).read_text())
    assert isinstance(data, dict)
    return data


def test_add_never_hands_out_an_adopted_address(tmp_path: Path) -> None:
    got = [
        store(tmp_path, WEB, DB).assign(f"n.c{i}", f"c{i}", "eth0", {}).address for i in range(5)
    ]
    assert got == [IPv4Address(f"10.244.0.{i}") for i in (2, 4, 5, 6, 7)]
    with pytest.raises(Exception, match="no free pod address"):
        store(tmp_path, WEB, DB).assign("n.c9", "c9", "eth0", {})
    held = {a.address: a for a in store(tmp_path, WEB, DB).allocations()}
    web = held[WEB.address]
    assert (web.handle, web.container_id, web.ifname) == ("k8s-pod-network.c-web", "c-web", "eth0")
    assert web.attrs == {"identity": "shop.web-1", "namespace": "shop", "pod": "web-1"}
    assert held[DB.address].attrs == {}  # no pod name known: DEL finds the veth by container id


def test_del_of_the_old_container_releases_and_seeding_happens_once(tmp_path: Path) -> None:
    assert store(tmp_path, WEB, DB).release("k8s-pod-network.c-web") == [WEB.address]
    assert state(tmp_path)["adopted"] == [
        "10.244.0.1 k8s-pod-network.c-web",
        "10.244.0.3 k8s-pod-network.c-db",
    ]
    again = store(tmp_path, WEB, DB)  # the same bundle, applied again: nothing comes back
    assert [a.address for a in again.allocations()] == [DB.address]
    assert again.assign("n.new", "new", "eth0", {}).address == IPv4Address("10.244.0.1")


def test_gc_reclaims_adopted_allocations_of_gone_containers(tmp_path: Path) -> None:
    s = store(tmp_path, WEB, DB)
    s.assign("k8s-pod-network.c1", "c1", "eth0", {})
    gone = s.gc({("c-db", "eth0"), ("c1", "eth0")}, "k8s-pod-network")
    assert gone == [WEB.address]
    assert [a.address for a in s.allocations()] == [IPv4Address("10.244.0.2"), DB.address]


def test_an_address_held_already_stays_its_holders(tmp_path: Path) -> None:
    first = store(tmp_path).assign("n.c1", "c1", "eth0", {})  # before the bundle adopted any
    assert first.address == WEB.address
    held = {a.address: a.handle for a in store(tmp_path, WEB).allocations()}
    assert held == {WEB.address: "n.c1"}
    assert state(tmp_path)["adopted"] == ["10.244.0.1 k8s-pod-network.c-web"]


def test_new_adopted_entries_are_seeded_and_an_address_outside_the_blocks_is_not(
    tmp_path: Path,
) -> None:
    store(tmp_path, WEB).allocations()
    stray = AdoptedFacts(IPv4Address("10.9.9.9"), "k8s-pod-network.x", "x", "eth0")
    got = {a.address for a in store(tmp_path, WEB, DB, stray).allocations()}
    assert got == {WEB.address, DB.address}


def test_a_store_without_adopted_writes_the_state_as_before(tmp_path: Path) -> None:
    store(tmp_path).assign("n.c1", "c1", "eth0", {})
    assert "adopted" not in state(tmp_path)


def test_dual_stack_adopted_pair_is_released_together(tmp_path: Path) -> None:
    v6 = AdoptedFacts(IPv6Address("fd00::5"), WEB.handle, WEB.container_id, "eth0")
    blocks = (BLOCK, IPv6Network("fd00::/125"))
    s = IpamStore(tmp_path / "ipam", "n1", blocks, [TUNNEL], adopted=(WEB, v6))
    claim = s.claim(WEB.handle, WEB.container_id, "eth0", {})  # a repeated ADD: the same pair
    assert [a.address for a in claim.allocations] == [WEB.address, v6.address]
    assert not claim.new
    assert s.release(WEB.handle) == [WEB.address, v6.address]


def test_node_json_adopted_reaches_the_store(tmp_path: Path) -> None:
    entry = {"address": "10.244.0.7", "container_id": "c7", "handle": "k8s-pod-network.c7",
             "ifname": "eth0", "namespace": "default", "pod": "busy"}  # fmt: skip
    node_json = install_bundle(tmp_path, example_build(), "minikube", adopted=[entry])
    manifest = load_manifest(node_json)
    s = ipam_store(tmp_path / "state", manifest)
    assert [(a.address, a.handle) for a in s.allocations()] == [
        (IPv4Address("10.244.0.7"), "k8s-pod-network.c7")
    ]


@pytest.mark.parametrize(
    ("change", "message", "pydantic"),
    [
        ({"address": "10.244.0.1/32"}, "address: '10.244.0.1/32' is not an IP", "valid IPv4"),
        ({"handle": "other.c1"}, "handle: 'other.c1' is not <network>.c-1", "<network>.c-1"),
        ({"container_id": "../x"}, "container_id: '../x' is not a container id", "container id"),
        ({"ifname": "a b"}, "ifname: 'a b' is not an interface name", "interface name"),
        ({"pod": None}, "pod: give both namespace and pod, or neither", "give both"),
        ({"namespace": 7}, "namespace: expected a string", "valid string"),
    ],
)
def test_a_wrong_adopted_entry_is_refused_by_both_readers(
    change: dict[str, object], message: str, pydantic: str
) -> None:
    entry = {"address": "10.244.0.1", "container_id": "c-1", "handle": "k8s-pod-network.c-1",
             "ifname": "eth0", "namespace": "shop", "pod": "web"}  # fmt: skip
    node = {"pod_mtu": 1440, "node": {"name": "n1"}, "adopted": [{**entry, **change}]}
    with pytest.raises(NodeFileError) as caught:
        node_facts(node, {"pools": []}, {})
    assert str(caught.value).startswith(f"adopted[0]: {message}")
    with pytest.raises(ValidationError, match=re.escape(pydantic)):
        AdoptedPod.model_validate({**entry, **change})
    assert node_facts({**node, "adopted": [entry]}, {"pools": []}, {}).adopted is not None
    assert AdoptedPod.model_validate(entry).handle == "k8s-pod-network.c-1"


def test_the_agent_assembles_adopted_and_its_status_store_seeds_them(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, BASE)
    build(load_cluster(path), tmp_path / "rendered")
    lock_path = tmp_path / "cluster.lock.yaml"
    lock = yaml.safe_load(lock_path.read_text())
    lock["nodes"]["n2"]["adopted"] = [{"address": "10.244.0.130", "container_id": "c9"}]
    lock_path.write_text(yaml.safe_dump(lock))
    build(load_cluster(path), tmp_path / "rendered")
    manifest = load_bundle(tmp_path / "rendered" / "nodes" / "n2", "n2").manifest
    assert [(str(a.address), a.handle) for a in manifest.adopted or ()] == [
        ("10.244.0.130", "k8s-pod-network.c9")
    ]
    held = ipam_store(tmp_path / "state", manifest).allocations()  # what `calicc status` reads
    assert [(str(a.address), a.container_id) for a in held] == [("10.244.0.130", "c9")]
    assert load_bundle(tmp_path / "rendered" / "nodes" / "n1", "n1").manifest.adopted is None
