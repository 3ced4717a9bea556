"""IPv6 blocks in the lock: allocated and kept like IPv4, never by enumerating a pool."""

from __future__ import annotations

import time
from ipaddress import IPv6Address, IPv6Network
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calicc.compiler.build import plan_locked
from calicc.compiler.errors import LockError
from calicc.compiler.lock import Lock, _Allocator, allocate, vtep_mac
from calicc.compiler.lock_check import check_lock
from calicc.compiler.lock_read import LockProblems, _written_data, read_lock
from calicc.compiler.model.spec import ClusterSpec
from calicc.compiler.pools import PoolPlan, resolve_pools
from tests.support.clusters import load, plan_of, write_cluster
from tests.unit.compiler.test_ipv6_checks import DS, V6, ds, v6

V6_POOL = "default-ipv6-ippool"


def v6_blocks(lock: Lock, node: str) -> list[str]:
    return [str(b) for b in lock.nodes[node].blocks.get(V6_POOL, ())]


def test_ipv6_lowest_free_first(tmp_path: Path) -> None:
    lock = plan_of(tmp_path, DS).lock
    assert v6_blocks(lock, "n1") == ["fd00:244::/122", "fd00:244::40/122"]
    assert v6_blocks(lock, "n2") == ["fd00:244::80/122", "fd00:244::c0/122"]
    assert [str(b) for b in lock.nodes["n1"].blocks["default-ipv4-ippool"]] == [
        "10.244.0.0/26",
        "10.244.0.64/26",
    ]


def test_ipv6_blocks_survive_add_remove_reorder_and_freed_ones_are_reused(
    tmp_path: Path,
) -> None:
    first = plan_of(tmp_path, DS).lock
    data = ds()
    newcomer = {"name": "a0", "address": "10.0.0.9/24", "address_v6": "fd00:30::9/64"}
    data["nodes"] = [data["nodes"][2], newcomer, data["nodes"][1]]  # n1 removed
    second = plan_of(tmp_path, data, first).lock
    for name in ("n2", "n3"):
        assert v6_blocks(second, name) == v6_blocks(first, name)
    assert v6_blocks(second, "a0") == v6_blocks(first, "n1")  # the lowest free: n1's


def test_a_48_is_never_enumerated() -> None:
    spec = ClusterSpec.model_validate(
        {
            "name": "t",
            "network_cidr_v6": "fd00:244::/48",
            "nodes": [
                {"name": f"n{i:04}", "address_v6": f"fd00:30::{i + 1:x}/64"} for i in range(1000)
            ],
        }
    )
    pools = resolve_pools(spec)
    far = IPv6Network("fd00:244:0:ffff:ffff:ffff:ffff:ffc0/122")  # the pool's last block
    old = Lock(nodes={"n0500": _held(far)})
    start = time.perf_counter()
    lock = allocate(spec, pools, old)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, elapsed  # enumerating 2^74 blocks would never end
    assert v6_blocks(lock, "n0500") == ["fd00:244::fa00/122", str(far)]  # block 1000, kept one
    assert v6_blocks(lock, "n0999")[-1] == "fd00:244::1:f380/122"  # block 1998


def _held(*blocks: IPv6Network) -> Any:
    from calicc.compiler.lock import NodeAllocation

    return NodeAllocation(blocks={V6_POOL: blocks})


def _pool(cidr: str, block_size: int) -> PoolPlan:
    from calicc.compiler.model.spec import EncapMode

    never = EncapMode.NEVER
    return PoolPlan(0, V6_POOL, IPv6Network(cidr), block_size, never, never, True, None, False, 6)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 63), max_size=64), st.integers(0, 64))
def test_the_allocator_takes_what_enumeration_would(taken: set[int], takes: int) -> None:
    """Arithmetic lowest-free equals walking every block of the pool (a /116: 64 blocks)."""
    pool = _pool("fd00:1::/116", 122)
    blocks = list(IPv6Network("fd00:1::/116").subnets(new_prefix=122))
    allocator = _Allocator(pool, [blocks[i] for i in taken])
    expected = [b for i, b in enumerate(blocks) if i not in taken]
    got = []
    for _ in range(takes):
        try:
            got.append(allocator.take())
        except LockError:  # exhausted: compared below
            break
    assert got == expected[:takes]


NAMES = [f"n{i}" for i in range(8)]


@st.composite
def dual_stack_specs(draw: st.DrawFn) -> ClusterSpec:
    chosen = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=8, unique=True))
    nodes = []
    for name in chosen:
        i = NAMES.index(name) + 1
        family = draw(st.sampled_from(["both", "v6"]))
        node: dict[str, Any] = {"name": name, "address_v6": f"fd00:30::{i}/64"}
        if family == "both":
            node["address"] = f"10.0.0.{i}/24"
        node["max_pods"] = draw(st.integers(1, 300))
        nodes.append(node)
    data: dict[str, Any] = {"name": "t", "network_cidr_v6": "fd00:244::/48", "nodes": nodes}
    data["block_size_v6"] = draw(st.sampled_from([120, 122, 124]))
    if any("address" in n for n in nodes):
        data["pools"] = [
            {"name": "v4", "cidr": "10.244.0.0/16", "node_selector": "has(v4)"},
        ]
        for n in nodes:
            n["labels"] = {"v4": "y"} if "address" in n else {}
    return ClusterSpec.model_validate(data)


@settings(max_examples=60, deadline=None)
@given(dual_stack_specs(), dual_stack_specs())
def test_dual_stack_allocations_are_stable_and_disjoint(
    first: ClusterSpec, second: ClusterSpec
) -> None:
    old = allocate(first, resolve_pools(first), Lock())
    new = allocate(second, resolve_pools(second), old)
    pools = {p.name: p for p in resolve_pools(second)}
    for node in second.nodes:
        before = old.nodes.get(node.name)
        if before is None:
            continue
        for pool, blocks in new.nodes[node.name].blocks.items():
            same_size = pool != V6_POOL or second.block_size_v6 == first.block_size_v6
            if same_size:  # a node keeps every block its pool still serves it with
                assert set(before.blocks.get(pool, ())) <= set(blocks)
    seen: dict[int, list[Any]] = {4: [], 6: []}
    for alloc in new.nodes.values():
        for pool, blocks in alloc.blocks.items():
            for block in blocks:
                assert block.prefixlen == pools[pool].block_size
                assert block.subnet_of(pools[pool].cidr)  # type: ignore[arg-type]
                seen[block.version].append(block)
    for family in seen.values():
        assert len(family) == len(set(family))
        ordered = sorted(family)
        assert all(not a.overlaps(b) for a, b in pairwise(ordered))


def test_vxlan_over_ipv6_gets_a_tunnel_address_and_calico_mac(tmp_path: Path) -> None:
    lock = plan_of(tmp_path, ds(vxlan_mode="Always", ipip_mode="Never")).lock
    n1 = lock.nodes["n1"]
    assert n1.tunnel_address_v6 == IPv6Address("fd00:244::")
    assert n1.vtep_mac_v6 == vtep_mac("n1-v6") != n1.vtep_mac
    assert n1.tunnel_address is not None
    plain = plan_of(tmp_path, DS).lock.nodes["n1"]
    assert plain.tunnel_address_v6 is None
    assert plain.vtep_mac_v6 is None
    only = plan_of(tmp_path, v6(vxlan_mode="Always")).lock.nodes["n1"]
    assert (only.tunnel_address, only.vtep_mac) == (None, None)
    assert only.vtep_mac_v6 == vtep_mac("n1-v6")


def test_the_plan_carries_the_ipv6_facts(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, ds(vxlan_mode="Always", ipip_mode="Never"))
    n1 = plan.node("n1")
    assert str(n1.address_v6) == "fd00:30::1/64"
    assert [str(b.cidr) for b in n1.blocks_v6] == ["fd00:244::/122", "fd00:244::40/122"]
    assert [str(b.cidr) for b in n1.blocks] == ["10.244.0.0/26", "10.244.0.64/26"]
    assert str(n1.tunnel_address_v6) == "fd00:244::"
    assert [str(s) for s in plan.node_subnets_v6] == ["fd00:30::/64"]
    assert [p.name for p in plan.pools_v6] == [V6_POOL]
    mesh = plan_of(tmp_path, DS).node("n1")
    assert [s.name for s in mesh.sessions_v6] == ["Mesh_fd00_30__2", "Mesh_fd00_30__3"]
    assert [str(s.peer_ip) for s in mesh.sessions] == ["10.0.0.2", "10.0.0.3"]
    only = plan_of(tmp_path, V6).node("n1")
    assert only.address is None
    assert only.sessions == ()
    assert len(only.sessions_v6) == 2


def _locked(tmp_path: Path, data: dict[str, Any], lock: Lock) -> None:
    write_cluster(tmp_path, data)
    (tmp_path / "cluster.lock.yaml").write_text(lock.to_yaml(), encoding="utf-8")


def test_an_ipv6_lock_reads_back_through_the_line_reader(tmp_path: Path) -> None:
    lock = plan_of(tmp_path, ds(vxlan_mode="Always", ipip_mode="Never")).lock
    text = lock.to_yaml()
    assert "    tunnel_address_v6: 'fd00:244::'\n" in text
    assert _written_data(text) is not None
    _locked(tmp_path, DS, lock)
    read = read_lock(tmp_path / "cluster.lock.yaml")
    assert read.lock == lock
    assert check_lock(read, load(tmp_path, DS).spec) == []


def test_shared_ipv6_blocks_tunnels_and_macs_are_refused(tmp_path: Path) -> None:
    lock = plan_of(tmp_path, ds(vxlan_mode="Always", ipip_mode="Never")).lock
    text = lock.to_yaml().replace("fd00:244::80/122", "fd00:244::/122")
    text = text.replace("tunnel_address_v6: fd00:244::80", "tunnel_address_v6: fd00:244::ff00")
    text = text.replace(lock.nodes["n2"].vtep_mac_v6 or "", lock.nodes["n1"].vtep_mac_v6 or "")
    write_cluster(tmp_path, DS)
    (tmp_path / "cluster.lock.yaml").write_text(text, encoding="utf-8")
    found = [
        str(p)
        for p in check_lock(read_lock(tmp_path / "cluster.lock.yaml"), load(tmp_path, DS).spec)
    ]
    joined = "\n".join(found)
    assert "nodes.n2.blocks.default-ipv6-ippool[0]: block fd00:244::/122 overlaps" in joined
    assert "nodes.n2.tunnel_address_v6: fd00:244::ff00 is in none of n2's blocks" in joined
    assert "nodes.n2.vtep_mac_v6:" in joined


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("fd00:244::/122", "FD00:244::/122"),
            "write the string 'FD00:244::/122' as fd00:244::/122",
        ),
        (("fd00:244::/122", "fd00:244::1/122"), "is not aligned to /122"),
        (("fd00:244::80\n", "10.244.0.0\n"), "expected an IPv6 address such as fd00:244::"),
    ],
)
def test_ipv6_lock_shape_errors(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    lock = plan_of(tmp_path, ds(vxlan_mode="Always", ipip_mode="Never")).lock
    (tmp_path / "cluster.lock.yaml").write_text(lock.to_yaml().replace(*edit, 1), encoding="utf-8")
    with pytest.raises(LockProblems) as caught:
        read_lock(tmp_path / "cluster.lock.yaml")
    assert expected in str(caught.value)


def test_a_moved_ipv6_pool_is_refused_unless_reallocated(tmp_path: Path) -> None:
    vxlan = ds(vxlan_mode="Always", ipip_mode="Never")  # VXLAN over IPv6: tunnel address too
    _locked(tmp_path, vxlan, plan_of(tmp_path, vxlan).lock)
    moved = {**vxlan, "network_cidr_v6": "fd00:999::/56"}
    write_cluster(tmp_path, moved)
    with pytest.raises(LockProblems) as caught:
        plan_locked(load(tmp_path, moved))
    assert "node n1 would lose block fd00:244::/122: it is outside pool default-ipv6" in str(
        caught.value
    )
    plan, _ = plan_locked(load(tmp_path, moved), reallocate=True)
    node = plan.node("n1")
    assert all(b.cidr.subnet_of(IPv6Network("fd00:999::/56")) for b in node.blocks_v6)
    assert node.tunnel_address_v6 == node.blocks_v6[0].cidr.network_address
