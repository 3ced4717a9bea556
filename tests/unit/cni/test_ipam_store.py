"""IPAM from the node's blocks: no duplicates under concurrency or SIGKILL, tunnel address
never handed out, idempotent per handle, clear exhaustion errors, GC and DEL reclaim."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from calicc.agent.cni.errors import POOL_EXHAUSTED, CniError
from calicc.agent.cni.ipam import STATE_FILE, IpamStore, boot_time

BLOCKS = (IPv4Network("10.244.0.0/26"), IPv4Network("10.244.0.64/26"))
TUNNEL = IPv4Address("10.244.0.0")


def store(tmp_path: Path, blocks: tuple[IPv4Network, ...] = BLOCKS) -> IpamStore:
    return IpamStore(tmp_path / "ipam", "minikube", blocks, [TUNNEL])


def test_tunnel_address_is_never_handed_out_but_block_edges_are(tmp_path: Path) -> None:
    pool = [IPv4Address(a) for a in store(tmp_path).candidates()]
    assert TUNNEL not in pool
    assert len(pool) == 127
    assert IPv4Address("10.244.0.63") in pool  # /32 per pod: the block's last address is fine
    assert IPv4Address("10.244.0.64") in pool


def test_same_handle_gets_the_same_address(tmp_path: Path) -> None:
    s = store(tmp_path)
    first = s.assign("net.c1", "c1", "eth0", {})
    again = s.assign("net.c1", "c1", "eth0", {})
    other = s.assign("net.c2", "c2", "eth0", {})
    assert first.address == again.address == IPv4Address("10.244.0.1")
    assert other.address == IPv4Address("10.244.0.2")


def test_released_address_is_not_reused_at_once(tmp_path: Path) -> None:
    s = store(tmp_path)
    a = s.assign("net.c1", "c1", "eth0", {}).address
    assert s.release("net.c1") == [a]
    assert s.release("net.c1") == []
    assert s.assign("net.c2", "c2", "eth0", {}).address != a


def test_exhausted_node_names_node_and_blocks(tmp_path: Path) -> None:
    s = store(tmp_path, (IPv4Network("10.244.0.0/30"),))
    got = {s.assign(f"net.c{i}", f"c{i}", "eth0", {}).address for i in range(3)}
    assert got == {IPv4Address("10.244.0.1"), IPv4Address("10.244.0.2"), IPv4Address("10.244.0.3")}
    with pytest.raises(CniError) as info:
        s.assign("net.c9", "c9", "eth0", {})
    assert info.value.code == POOL_EXHAUSTED
    assert "node minikube" in info.value.msg
    assert "10.244.0.0/30" in info.value.msg


def test_gc_keeps_only_valid_attachments(tmp_path: Path) -> None:
    s = store(tmp_path)
    for i in range(4):
        s.assign(f"net.c{i}", f"c{i}", "eth0", {})
    gone = s.gc({("c1", "eth0"), ("c3", "eth0")})
    assert len(gone) == 2
    assert sorted(a.container_id for a in s.allocations()) == ["c1", "c3"]


def _worker(directory: str, first: int, count: int) -> None:
    s = IpamStore(Path(directory), "minikube", (*BLOCKS, IPv4Network("10.244.1.0/25")), [TUNNEL])
    for i in range(first, first + count):
        s.assign(f"net.c{i}", f"c{i}", "eth0", {"pod": str(i)})


def test_eight_concurrent_processes_over_200_pods_never_share_an_address(tmp_path: Path) -> None:
    procs = [
        multiprocessing.Process(target=_worker, args=(str(tmp_path / "ipam"), n * 25, 25))
        for n in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads((tmp_path / "ipam" / STATE_FILE).read_text())
    handles = [v["handle"] for v in data["allocations"].values()]
    assert len(data["allocations"]) == 200  # keys are addresses: 200 distinct ones
    assert sorted(handles) == sorted(f"net.c{i}" for i in range(200))


def _killed_mid_write(directory: str) -> None:
    def stall(src: object, dst: object) -> None:  # SIGKILL arrives before the rename
        time.sleep(60)

    os.replace = stall  # type: ignore[assignment]
    IpamStore(Path(directory), "minikube", BLOCKS, [TUNNEL]).assign("net.dead", "dead", "eth0", {})


def test_sigkill_mid_add_leaves_state_whole_and_no_duplicate(tmp_path: Path) -> None:
    s = store(tmp_path)
    before = s.assign("net.c1", "c1", "eth0", {}).address
    proc = multiprocessing.Process(target=_killed_mid_write, args=(str(tmp_path / "ipam"),))
    proc.start()
    deadline = time.monotonic() + 10
    while not list((tmp_path / "ipam").glob(".*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert [a.handle for a in s.allocations()] == ["net.c1"]  # lock released by the kernel
    nxt = s.assign("net.c2", "c2", "eth0", {}).address
    assert nxt != before
    assert not list((tmp_path / "ipam").glob(".*.tmp"))  # the killed writer's temp is swept


def _assign_forever(directory: str, base: int) -> None:
    s = IpamStore(Path(directory), "minikube", BLOCKS, [TUNNEL])
    for i in range(base, base + 1000):
        s.assign(f"net.k{i}", f"k{i}", "eth0", {})
        s.release(f"net.k{i - 3}")


def test_random_sigkills_never_corrupt_or_duplicate(tmp_path: Path) -> None:
    directory = str(tmp_path / "ipam")
    for round_ in range(12):
        proc = multiprocessing.Process(target=_assign_forever, args=(directory, round_ * 1000))
        proc.start()
        time.sleep(0.02 + 0.007 * round_)
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        allocs = store(tmp_path).allocations()  # parses: never torn
        assert len({a.address for a in allocs}) == len(allocs)
        assert len({a.handle for a in allocs}) == len(allocs)
    leftovers = store(tmp_path).allocations()
    assert leftovers  # killed processes left allocations behind...
    assert store(tmp_path).gc(set()) == sorted(a.address for a in leftovers)
    assert store(tmp_path).allocations() == []  # ...and GC reclaims every one of them


@pytest.mark.parametrize("text", ["", '{"node": "minikube", "allocations": {"10.2'])
def test_torn_state_from_before_the_boot_starts_empty(tmp_path: Path, text: str) -> None:
    # what a power loss can leave without fsync: every pod it describes died with that boot
    s = store(tmp_path)
    s.assign("net.c1", "c1", "eth0", {})
    path = tmp_path / "ipam" / STATE_FILE
    path.write_text(text)
    with pytest.raises(CniError, match="not valid JSON"):  # written during this boot: no guess
        s.assign("net.c2", "c2", "eth0", {})
    before_boot = boot_time() - 60
    os.utime(path, (before_boot, before_boot))
    assert s.assign("net.c2", "c2", "eth0", {}).handle == "net.c2"
    assert [a.handle for a in s.allocations()] == ["net.c2"]
    assert (tmp_path / "ipam" / f"{STATE_FILE}.torn").read_text() == text


def test_a_state_written_by_another_process_is_read_not_the_one_this_process_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store skips parsing only when the file holds exactly the bytes it last wrote."""
    s = store(tmp_path)
    s.assign("net.c1", "c1", "eth0", {})
    parsed: list[bytes] = []
    real_loads = json.loads

    def loads(raw: bytes) -> object:
        parsed.append(raw)
        return real_loads(raw)

    monkeypatch.setattr(json, "loads", loads)
    assert [a.handle for a in s.allocations()] == ["net.c1"]
    assert parsed == [], "its own last write is not parsed again"
    path = tmp_path / "ipam" / STATE_FILE
    data = real_loads(path.read_text())
    data["allocations"]["10.244.0.9"] = dict(data["allocations"]["10.244.0.1"], handle="net.x")
    path.write_text(json.dumps(data))  # another process's write
    assert [a.handle for a in s.allocations()] == ["net.c1", "net.x"]
    assert len(parsed) == 1
    taken = s.assign("net.c2", "c2", "eth0", {}).address
    assert taken not in (IPv4Address("10.244.0.1"), IPv4Address("10.244.0.9"))
