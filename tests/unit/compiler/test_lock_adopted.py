"""The lock's `adopted:` entries: written, read, checked against the cluster, carried by builds.

A build keeps each node's adopted addresses while their block stays the node's (a removed node
or a reallocated block drops them), writes them into node.json's `adopted` under the handle
calicc's DEL computes, and refuses an entry outside the node's pod blocks, adopted twice, on a
tunnel address or reserved, naming cluster.lock.yaml's line and field.
"""

from __future__ import annotations

import hashlib
import json
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.build import build, load_cluster
from calicc.compiler.errors import LockError
from calicc.compiler.lock import Adopted, Lock, NodeAllocation
from calicc.compiler.lock_check import lock_changes
from calicc.compiler.lock_read import (
    MAX_LOCK_BYTES,
    MAX_WRITTEN_BYTES,
    LockProblems,
    _written_data,
    read_lock,
)
from calicc.contract.manifest import NodeFile
from tests.support.clusters import BASE, with_, write_cluster

POD = {"address": "10.244.0.5", "container_id": "c0ffee01", "ifname": "eth0", "pod": "shop/web-1"}


def _built(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = write_cluster(tmp_path, data)
    build(load_cluster(path), tmp_path / "rendered")
    return path


def _adopt(tmp_path: Path, **per_node: list[dict[str, str]]) -> Path:
    """Add `adopted:` lists to the built lock (as calicc import writes them); return its path."""
    lock_path = tmp_path / "cluster.lock.yaml"
    data = yaml.safe_load(lock_path.read_text())
    for node, entries in per_node.items():
        data["nodes"][node]["adopted"] = entries
    lock_path.write_text(yaml.safe_dump(data))
    return lock_path


def _problems(tmp_path: Path, path: Path) -> list[str]:
    with pytest.raises(LockProblems) as caught:
        build(load_cluster(path), tmp_path / "rendered")
    return [f"{p.line}:{p.field}: {p.message}" for p in caught.value.problems]


def _node_json(tmp_path: Path, node: str) -> dict[str, Any]:
    data = json.loads((tmp_path / "rendered" / "nodes" / node / "node.json").read_text())
    assert isinstance(data, dict)
    return data


def test_adopted_entries_round_trip_as_yaml_dump_writes_them(tmp_path: Path) -> None:
    v6 = Adopted(ip_address("fd00:244::7"), "c2", "eth1", None)
    alloc = NodeAllocation(blocks={}, adopted=(Adopted(IPv4Address("10.244.0.5"), "c1"), v6))
    lock = Lock(nodes={"n1": alloc, "n2": NodeAllocation()})
    text = lock.to_yaml()
    assert text.endswith(yaml.dump(lock.as_data(), sort_keys=True, default_flow_style=False))
    assert "    adopted:\n    - address: 10.244.0.5\n      container_id: c1\n" in text
    assert "    - address: fd00:244::7\n      container_id: c2\n      ifname: eth1\n" in text
    assert _written_data(text) is not None  # read back by the line parser, not composed
    (tmp_path / "cluster.lock.yaml").write_text(text)
    assert read_lock(tmp_path / "cluster.lock.yaml").lock == lock


def _big_lock(pods: int) -> Lock:
    """A lock of one node per 100 pods, each pod with a 64-character container id."""
    nodes = {}
    for n in range(pods // 100):
        first = IPv4Address("10.0.0.0") + n * 128
        blocks = (ip_network(f"{first}/26"), ip_network(f"{first + 64}/26"))
        adopted = tuple(
            Adopted(first + 1 + i, hashlib.sha256(f"{n}.{i}".encode()).hexdigest(), "eth0",
                    f"default/app-{n}-{i}")
            for i in range(100)
        )  # fmt: skip
        nodes[f"node-{n:04d}"] = NodeAllocation(
            {"default-ipv4-ippool": blocks}, first, None, None, None, adopted
        )
    return Lock(nodes=nodes)


def test_a_lock_of_many_adopted_pods_is_read_in_the_written_form_only(tmp_path: Path) -> None:
    lock = _big_lock(16_000)
    text = lock.to_yaml()
    assert MAX_LOCK_BYTES < len(text) < MAX_WRITTEN_BYTES  # beyond what YAML composing is given
    path = tmp_path / "cluster.lock.yaml"
    path.write_text(text)
    assert read_lock(path).lock == lock
    path.write_text(text.replace("nodes:\n", "nodes:  # edited\n", 1))  # no longer calicc's form
    with pytest.raises(LockProblems, match=r"larger than 2 MiB.*up to 8 MiB is read in the form"):
        read_lock(path)


def test_build_keeps_adopted_and_writes_them_into_node_json(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)
    assert "adopted" not in _node_json(tmp_path, "n1")  # none: node.json as before
    lock_path = _adopt(tmp_path, n1=[POD, {"address": "10.244.0.9", "container_id": "c2"}])
    build(load_cluster(path), tmp_path / "rendered")
    build(load_cluster(path), tmp_path / "rendered", frozen=True)  # the lock stays as it is
    assert yaml.safe_load(lock_path.read_text())["nodes"]["n1"]["adopted"] == [
        POD,
        {"address": "10.244.0.9", "container_id": "c2", "ifname": "eth0"},
    ]
    adopted = _node_json(tmp_path, "n1")["adopted"]
    assert adopted == [
        {
            "address": "10.244.0.5",
            "container_id": "c0ffee01",
            "handle": "k8s-pod-network.c0ffee01",
            "ifname": "eth0",
            "namespace": "shop",
            "pod": "web-1",
        },
        {
            "address": "10.244.0.9",
            "container_id": "c2",
            "handle": "k8s-pod-network.c2",
            "ifname": "eth0",
        },
    ]
    NodeFile.model_validate(_node_json(tmp_path, "n1"))
    assert "adopted" not in _node_json(tmp_path, "n2")


def test_new_tunnel_address_skips_adopted_addresses(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)  # IPIP: n1's tunnel address is its block's first, 10.244.0.0
    lock_path = tmp_path / "cluster.lock.yaml"
    data = yaml.safe_load(lock_path.read_text())
    del data["nodes"]["n1"]["tunnel_address"]  # as an import leaves a node Calico gave none
    data["nodes"]["n1"]["adopted"] = [{"address": "10.244.0.0", "container_id": "c1"}]
    lock_path.write_text(yaml.safe_dump(data))
    build(load_cluster(path), tmp_path / "rendered")
    node = yaml.safe_load(lock_path.read_text())["nodes"]["n1"]
    assert node["tunnel_address"] == "10.244.0.1"


def test_adopted_go_with_their_node_and_with_a_reallocated_block(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)
    lock_path = _adopt(tmp_path, n1=[POD], n3=[{"address": "10.244.1.5", "container_id": "c3"}])
    old = read_lock(lock_path).lock
    write_cluster(tmp_path, with_(network_cidr="10.245.0.0/16"))
    build(load_cluster(path), tmp_path / "rendered", reallocate=True)  # every block moves
    new = read_lock(lock_path).lock
    assert new.nodes["n1"].adopted == new.nodes["n3"].adopted == ()
    assert "adopted" not in lock_path.read_text()
    assert "changed: n1, n2, n3" in lock_changes(old, new)
    lock_path.unlink()  # start again from BASE's blocks
    _built(tmp_path, BASE)
    _adopt(tmp_path, n3=[{"address": "10.244.1.5", "container_id": "c3"}])
    data = with_()
    data["nodes"].pop()  # n3 leaves: its adopted entries go with it, unchecked
    write_cluster(tmp_path, data)
    build(load_cluster(path), tmp_path / "rendered")
    assert "adopted" not in lock_path.read_text()


def test_adopted_are_written_sorted_and_a_changed_list_is_a_lock_change(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)
    lock_path = _adopt(tmp_path, n1=[{**POD, "address": "10.244.0.9"}, POD])
    build(load_cluster(path), tmp_path / "rendered")
    written = yaml.safe_load(lock_path.read_text())["nodes"]["n1"]["adopted"]
    assert [e["address"] for e in written] == ["10.244.0.5", "10.244.0.9"]
    old = read_lock(lock_path).lock
    _adopt(tmp_path, n1=[POD])
    with pytest.raises(LockError, match="would change"):
        build(load_cluster(path), tmp_path / "rendered", frozen=True)
    assert lock_changes(old, read_lock(lock_path).lock) == "changed: n1"


def test_adopted_outside_blocks_twice_tunnel_and_reserved_are_located(tmp_path: Path) -> None:
    data = with_(reservations=[{"cidr": "10.244.0.8/30", "name": "gateways"}])
    path = _built(tmp_path, data)
    _adopt(
        tmp_path,
        n1=[
            {"address": "10.244.1.5", "container_id": "c1"},  # n3's block
            {"address": "10.244.0.0", "container_id": "c2"},  # n1's tunnel address
            {"address": "10.244.0.9", "container_id": "c3"},  # reserved
            {"address": "10.244.0.5", "container_id": "c4"},
        ],
        n2=[{"address": "10.244.0.5", "container_id": "c5"}],  # n1's block, and n1's already
    )
    found = _problems(tmp_path, path)
    assert any(
        ":nodes.n1.adopted[1].address: 10.244.0.0 is n1's tunnel address, not a pod's" in m
        for m in found
    )
    assert any(
        ":nodes.n1.adopted[0].address: 10.244.1.5 is in none of n1's blocks" in m for m in found
    )
    assert any(":nodes.n1.adopted[2].address: 10.244.0.9 is reserved" in m for m in found)
    assert any(
        ":nodes.n2.adopted[0].address: 10.244.0.5 is adopted twice (also for container c4 on n1)"
        in m
        for m in found
    )
    assert any(
        ":nodes.n2.adopted[0].address: 10.244.0.5 is in none of n2's blocks" in m for m in found
    )
    assert all(m.split(":")[0] not in ("None", "0") for m in found)  # every one has its line


def test_adopted_in_a_tunnel_only_pools_block_is_refused(tmp_path: Path) -> None:
    tunnels = {"name": "tunnels", "cidr": "10.250.0.0/24", "block_size": 30}
    path = _built(tmp_path, with_(pools=[{**tunnels, "allowed_uses": ["Tunnel"]}]))
    _adopt(tmp_path, n1=[{"address": "10.250.0.1", "container_id": "c1"}])
    (found,) = _problems(tmp_path, path)
    assert "nodes.n1.adopted[0].address: 10.250.0.1 is in none of n1's blocks of a pool" in found


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ({"address": "10.244.0.5"}, "nodes.n1.adopted[0].container_id", "expected a string"),
        ({**POD, "container_id": "-bad"}, "nodes.n1.adopted[0].container_id", "not a container id"),
        ({**POD, "address": "10.244.0.5/32"}, "nodes.n1.adopted[0].address", "is not an address"),
        ({**POD, "address": "fd00:0::5"}, "nodes.n1.adopted[0].address", "write 'fd00:0::5' as"),
        ({**POD, "pod": "shop"}, "nodes.n1.adopted[0].pod", "not a Kubernetes pod name"),
        ({**POD, "pod": "Shop/web"}, "nodes.n1.adopted[0].pod", "not a Kubernetes namespace"),
        ({**POD, "ifname": "eth0; rm"}, "nodes.n1.adopted[0].ifname", "not an interface name"),
        ({**POD, "handle": "x.c1"}, "nodes.n1.adopted[0].handle", "unknown key"),
        ("10.244.0.5", "nodes.n1.adopted[0]", "expected a mapping"),
    ],
)
def test_misshapen_adopted_entry_is_a_located_error(
    tmp_path: Path, entry: Any, field: str, message: str
) -> None:
    _built(tmp_path, BASE)
    lock_path = _adopt(tmp_path, n1=[entry])
    with pytest.raises(LockProblems) as caught:
        read_lock(lock_path)
    (problem,) = caught.value.problems
    assert problem.field == field
    assert problem.line is not None
    assert message in problem.message


def test_adopted_not_a_list_is_one_error(tmp_path: Path) -> None:
    _built(tmp_path, BASE)
    lock_path = tmp_path / "cluster.lock.yaml"
    data = yaml.safe_load(lock_path.read_text())
    data["nodes"]["n1"]["adopted"] = "10.244.0.5"
    lock_path.write_text(yaml.safe_dump(data))
    with pytest.raises(LockProblems) as caught:
        read_lock(lock_path)
    (problem,) = caught.value.problems
    assert problem.field == "nodes.n1.adopted"
    assert "expected a list of running pods' addresses" in problem.message
