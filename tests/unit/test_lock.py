"""Block allocation: lowest free first, stable across changes, freed on removal, --frozen."""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from compiler.build import build, load_cluster
from compiler.errors import LockError
from compiler.lock import Lock, read_lock, vtep_mac
from tests.unit.helpers import BASE, plan_of, with_, write_cluster


def blocks(plan_lock: Lock, node: str) -> list[str]:
    return [str(b) for b in plan_lock.nodes[node].all_blocks()]


def test_lowest_free_first_and_enough_for_max_pods(tmp_path: Path) -> None:
    lock = plan_of(tmp_path, BASE).lock
    assert blocks(lock, "n1") == ["10.244.0.0/26", "10.244.0.64/26"]  # 110 pods + tunnel
    assert blocks(lock, "n2") == ["10.244.0.128/26", "10.244.0.192/26"]
    assert lock.nodes["n1"].tunnel_address == IPv4Address("10.244.0.0")


def test_small_max_pods_gets_one_block(tmp_path: Path) -> None:
    data = with_()
    data["nodes"][0]["max_pods"] = 10
    assert blocks(plan_of(tmp_path, data).lock, "n1") == ["10.244.0.0/26"]


def test_allocations_survive_add_remove_reorder(tmp_path: Path) -> None:
    first = plan_of(tmp_path, BASE).lock
    data = with_()
    data["nodes"] = [data["nodes"][2], {"name": "a0", "address": "10.0.0.9/24"}, data["nodes"][1]]
    random.Random(4).shuffle(data["nodes"])
    second = plan_of(tmp_path, data, first).lock
    assert blocks(second, "n3") == blocks(first, "n3")
    assert blocks(second, "n2") == blocks(first, "n2")
    assert "n1" not in second.nodes
    # the removed node's blocks are free again: the new node (sorted first) takes them
    assert blocks(second, "a0") == blocks(first, "n1")


def test_new_node_does_not_move_existing_even_when_sorting_first(tmp_path: Path) -> None:
    first = plan_of(tmp_path, BASE).lock
    data = with_()
    data["nodes"].append({"name": "a0", "address": "10.0.0.9/24"})
    second = plan_of(tmp_path, data, first).lock
    for name in ("n1", "n2", "n3"):
        assert blocks(second, name) == blocks(first, name)
    assert blocks(second, "a0") == ["10.244.1.128/26", "10.244.1.192/26"]


def test_block_size_change_reallocates_that_pool(tmp_path: Path) -> None:
    first = plan_of(tmp_path, BASE).lock
    second = plan_of(tmp_path, with_(block_size=24), first).lock
    assert blocks(second, "n1") == ["10.244.0.0/24"]


def test_vtep_mac_is_calico_derivation() -> None:
    mac = vtep_mac("node-1")
    assert mac.startswith("66:")
    assert len(mac.split(":")) == 6
    assert vtep_mac("node-1") == mac != vtep_mac("node-2")


def test_lock_round_trip_and_file(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, with_(vxlan_mode="Always", ipip_mode="Never"))
    build(load_cluster(path), tmp_path / "rendered")
    lock_path = tmp_path / "cluster.lock.yaml"
    data = yaml.safe_load(lock_path.read_text())
    assert data["nodes"]["n1"]["vtep_mac"] == vtep_mac("n1")
    assert read_lock(lock_path).to_yaml() == lock_path.read_text()


def test_frozen_fails_when_lock_would_change_and_writes_nothing(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, BASE)
    build(load_cluster(path), tmp_path / "rendered")
    before = (tmp_path / "cluster.lock.yaml").read_text()
    build(load_cluster(path), tmp_path / "rendered", frozen=True)  # unchanged: fine
    data = with_()
    data["nodes"].append({"name": "n4", "address": "10.0.0.4/24"})
    write_cluster(tmp_path, data)
    with pytest.raises(LockError, match="would change"):
        build(load_cluster(path), tmp_path / "rendered", frozen=True)
    assert (tmp_path / "cluster.lock.yaml").read_text() == before
    assert not (tmp_path / "rendered" / "nodes" / "n4").exists()


def test_corrupt_lock_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cluster.lock.yaml").write_text("version: 1\nnodes: {n1: {blocks: {p: [nope]}}}\n")
    with pytest.raises(LockError, match="cannot read lock file"):
        read_lock(tmp_path / "cluster.lock.yaml")
