"""Block allocation: lowest free first, stable across changes, freed on removal, --frozen."""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.build import build, load_cluster
from calicc.compiler.errors import LockError
from calicc.compiler.lock import Lock, vtep_mac
from calicc.compiler.lock_read import LockProblems, read_lock
from tests.support.clusters import BASE, plan_of, with_, write_cluster


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
    assert read_lock(lock_path).lock.to_yaml() == lock_path.read_text()


def test_frozen_fails_when_lock_would_change_and_writes_nothing(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, BASE)
    build(load_cluster(path), tmp_path / "rendered")
    before = (tmp_path / "cluster.lock.yaml").read_text()
    build(load_cluster(path), tmp_path / "rendered", frozen=True)  # unchanged: fine
    data = with_()
    data["nodes"].append({"name": "n4", "address": "10.0.0.4/24"})
    write_cluster(tmp_path, data)
    with pytest.raises(LockError, match="would change") as caught:
        build(load_cluster(path), tmp_path / "rendered", frozen=True)
    assert "new nodes: n4" in str(caught.value)
    assert (tmp_path / "cluster.lock.yaml").read_text() == before
    assert not (tmp_path / "rendered" / "nodes" / "n4").exists()


def test_corrupt_lock_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "cluster.lock.yaml").write_text("version: 1\nnodes: {n1: {blocks: {p: [nope]}}}\n")
    with pytest.raises(LockProblems) as caught:
        read_lock(tmp_path / "cluster.lock.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.field) == (2, 27, "nodes.n1.blocks.p[0]")
    assert "expected a block such as 10.244.0.0/26" in problem.message


def test_string_instead_of_list_is_one_shape_error(tmp_path: Path) -> None:
    text = "nodes:\n  n1:\n    blocks:\n      p: 10.244.0.0/26\nversion: 1\n"
    (tmp_path / "cluster.lock.yaml").write_text(text)
    with pytest.raises(LockProblems) as caught:
        read_lock(tmp_path / "cluster.lock.yaml")
    (problem,) = caught.value.problems
    assert problem.field == "nodes.n1.blocks.p"
    assert "expected a list of blocks" in problem.message


def _built(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = write_cluster(tmp_path, data)
    build(load_cluster(path), tmp_path / "rendered")
    return path


def test_block_size_change_is_refused_without_reallocate(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)
    before = (tmp_path / "cluster.lock.yaml").read_text()
    write_cluster(tmp_path, with_(block_size=24))
    with pytest.raises(LockProblems) as caught:
        build(load_cluster(path), tmp_path / "rendered")
    first = caught.value.problems[0]
    assert first.field == "nodes.n1.blocks.default-ipv4-ippool[0]"
    assert "node n1 would lose block 10.244.0.0/26" in first.message
    assert "now has blocks of /24" in first.message
    assert "--reallocate" in first.message
    assert (tmp_path / "cluster.lock.yaml").read_text() == before
    build(load_cluster(path), tmp_path / "rendered", reallocate=True)
    assert "10.244.0.0/24" in (tmp_path / "cluster.lock.yaml").read_text()


def test_renamed_pool_keeps_its_blocks(tmp_path: Path) -> None:
    pool = {"name": "a", "cidr": "10.50.0.0/16"}
    selected = {**BASE, "network_cidr": "10.244.0.0/16", "pools": [pool]}
    path = _built(tmp_path, selected)
    first = read_lock(tmp_path / "cluster.lock.yaml").lock
    write_cluster(tmp_path, {**selected, "pools": [{**pool, "name": "b"}]})
    build(load_cluster(path), tmp_path / "rendered")
    second = read_lock(tmp_path / "cluster.lock.yaml").lock
    assert second.nodes["n1"].blocks["b"] == first.nodes["n1"].blocks["a"]


def test_disabled_pool_is_a_move(tmp_path: Path) -> None:
    pool = {"name": "a", "cidr": "10.50.0.0/16"}
    path = _built(tmp_path, {**BASE, "pools": [pool]})
    write_cluster(tmp_path, {**BASE, "pools": [{**pool, "disabled": True}]})
    with pytest.raises(LockProblems, match="pool a is disabled"):
        build(load_cluster(path), tmp_path / "rendered")


def test_swapped_blocks_fail_frozen_but_not_a_plain_build(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)
    lock_path = tmp_path / "cluster.lock.yaml"
    text = lock_path.read_text()
    swapped = (
        text.replace("10.244.0.", "X").replace("10.244.1.", "10.244.0.").replace("X", "10.244.1.")
    )
    assert swapped != text
    lock_path.write_text(swapped)
    with pytest.raises(LockError, match=r"is not the lock .*index\.json was built from"):
        build(load_cluster(path), tmp_path / "rendered", frozen=True)
    assert lock_path.read_text() == swapped
    build(load_cluster(path), tmp_path / "rendered")  # an edit the operator means
    build(load_cluster(path), tmp_path / "rendered", frozen=True)


def test_duplicate_block_tunnel_and_mac_reported_together(tmp_path: Path) -> None:
    path = _built(tmp_path, with_(vxlan_mode="Always", ipip_mode="Never"))
    lock_path = tmp_path / "cluster.lock.yaml"
    data = yaml.safe_load(lock_path.read_text())
    n1, n2 = data["nodes"]["n1"], data["nodes"]["n2"]
    n2["blocks"] = n1["blocks"]
    n2["tunnel_address"] = n1["tunnel_address"]
    n2["vtep_mac"] = n1["vtep_mac"]
    lock_path.write_text(yaml.safe_dump(data))
    with pytest.raises(LockProblems) as caught:
        build(load_cluster(path), tmp_path / "rendered")
    messages = [f"{p.field}: {p.message}" for p in caught.value.problems]
    assert any(
        "nodes.n2.blocks.default-ipv4-ippool[0]: block 10.244.0.0/26 overlaps" in m
        for m in messages
    )
    assert any(m.startswith("nodes.n2.tunnel_address: 10.244.0.0 is also") for m in messages)
    assert any(
        m.startswith("nodes.n2.vtep_mac:") and "also the VTEP MAC of n1" in m for m in messages
    )


def test_tunnel_outside_own_blocks(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)
    lock_path = tmp_path / "cluster.lock.yaml"
    lock_path.write_text(
        lock_path.read_text().replace("tunnel_address: 10.244.0.0", "tunnel_address: 10.9.9.9")
    )
    with pytest.raises(LockProblems, match=r"10\.9\.9\.9 is in none of n1.s blocks"):
        build(load_cluster(path), tmp_path / "rendered")


def test_removed_node_frees_blocks_without_checks(tmp_path: Path) -> None:
    path = _built(tmp_path, BASE)
    data = with_()
    data["nodes"].pop()
    write_cluster(tmp_path, data)
    with pytest.raises(LockError, match="removed: n3"):
        build(load_cluster(path), tmp_path / "rendered", frozen=True)
    build(load_cluster(path), tmp_path / "rendered")
    assert "n3" not in read_lock(tmp_path / "cluster.lock.yaml").lock.nodes
