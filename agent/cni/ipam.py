"""IPAM from the node's compiled blocks: one JSON state file, flock-serialised, atomically replaced.

Rules (documented in agent/cni/README.md):

* Addresses come only from the node's blocks of pools that serve the node; the node's tunnel
  address is never handed out. Every other address of a block is usable, network and broadcast
  addresses of the block included, because each pod gets a /32 (Calico does the same).
* One allocation per handle (`<network>.<containerID>`): a second ADD for the same handle gets
  the same address back.
* The state file is replaced with write-to-temp + rename while holding an exclusive flock on a
  separate lock file, so a process killed at any point leaves either the old or the new state,
  never a torn or duplicated one. An allocation whose ADD died later is reclaimed by DEL (by
  handle) or GC (by attachment).
* No fsync (it cost 0.5-5 ms of every ADD and DEL). A power loss can then leave the previous
  state (harmless: every pod died with that boot; DEL or GC reclaims its addresses) or, on
  filesystems that do not flush a replaced file on rename, an empty or torn file. A state file
  that does not parse and was last written before the current boot is exactly that: it is kept
  as `allocations.json.torn` and IPAM starts empty, since none of its pods survived the boot.
  One written during this boot is not ours to guess about: ADD fails and says so.
* Candidates are scanned round-robin from just after the last address handed out, so a
  released address is not reused at once (stale conntrack entries), like host-local.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from calicc.agent.cni.errors import IO_FAILURE, POOL_EXHAUSTED, CniError

STATE_FILE = "allocations.json"
LOCK_FILE = "lock"


@dataclass(frozen=True)
class Allocation:
    """An address held by one attachment (container id + interface)."""

    address: IPv4Address
    handle: str
    container_id: str
    ifname: str
    attrs: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """Return the stored form (the address is the key, so it is left out)."""
        return {
            "handle": self.handle,
            "container_id": self.container_id,
            "ifname": self.ifname,
            "attrs": dict(sorted(self.attrs.items())),
        }


def _from_json(address: str, item: dict[str, Any]) -> Allocation:
    return Allocation(
        address=IPv4Address(address),
        handle=str(item["handle"]),
        container_id=str(item["container_id"]),
        ifname=str(item["ifname"]),
        attrs={str(k): str(v) for k, v in dict(item.get("attrs", {})).items()},
    )


@dataclass(frozen=True)
class Claim:
    """What IpamStore.claim did: the allocation, whether it is new, the cursor before it."""

    allocation: Allocation
    new: bool
    cursor: IPv4Address | None


@dataclass
class _State:
    allocations: dict[IPv4Address, Allocation]
    cursor: IPv4Address | None


class IpamStore:
    """The node's address store under `<state_dir>/ipam`."""

    def __init__(
        self,
        directory: Path,
        node: str,
        blocks: Iterable[IPv4Network],
        reserved: Iterable[IPv4Address] = (),
    ) -> None:
        self.directory = directory
        self.node = node
        self.blocks = tuple(sorted(blocks))
        self.reserved = frozenset(reserved)

    def candidates(self) -> list[int]:
        """Return every address this store may hand out, as sorted integers."""
        reserved = {int(a) for a in self.reserved}
        found: set[int] = set()
        for block in self.blocks:
            first = int(block.network_address)
            found.update(a for a in range(first, first + block.num_addresses) if a not in reserved)
        return sorted(found)

    def assign(
        self, handle: str, container_id: str, ifname: str, attrs: dict[str, str]
    ) -> Allocation:
        """Return the handle's address, allocating a free one if it has none.

        Raises:
            CniError: POOL_EXHAUSTED naming the node and its blocks when nothing is free.
        """
        return self.claim(handle, container_id, ifname, attrs).allocation

    def claim(self, handle: str, container_id: str, ifname: str, attrs: dict[str, str]) -> Claim:
        """Like assign, also saying whether the address is new and where the cursor was."""
        with self._locked() as state:
            for alloc in state.allocations.values():
                if alloc.handle == handle:
                    return Claim(alloc, False, state.cursor)
            address = self._next_free(state)
            alloc = Allocation(address, handle, container_id, ifname, attrs)
            claim = Claim(alloc, True, state.cursor)
            state.allocations[address] = alloc
            state.cursor = address
            self._write(state)
            return claim

    def unclaim(self, claim: Claim) -> None:
        """Undo a claim of a failed ADD: the state is as before it (the cursor too).

        Only a new address is released (an ADD repeated for a running pod keeps its address),
        and the cursor goes back only while nothing was allocated since: an address handed out
        and taken back before the pod ever sent a packet leaves no conntrack entries behind.
        """
        alloc = claim.allocation
        if not claim.new:
            return
        with self._locked() as state:
            if state.allocations.get(alloc.address) != alloc:
                return
            del state.allocations[alloc.address]
            if state.cursor == alloc.address:
                state.cursor = claim.cursor
            self._write(state)

    def release(self, handle: str) -> list[IPv4Address]:
        """Release every address held by `handle`; an unknown handle is not an error."""
        return [a.address for a in self.release_held(handle)]

    def release_held(self, handle: str) -> list[Allocation]:
        """Release and return the allocations of `handle` (their attrs name the pod)."""
        return self._release_where(lambda a: a.handle == handle)

    def gc(self, keep: set[tuple[str, str]], network: str = "") -> list[IPv4Address]:
        """Release every allocation whose (container id, ifname) is not in `keep`."""
        return [a.address for a in self.reclaim(keep, network)]

    def reclaim(self, keep: set[tuple[str, str]], network: str = "") -> list[Allocation]:
        """GC: release and return the allocations of `network` (all when "") not in `keep`."""
        prefix = f"{network}." if network else ""
        return self._release_where(
            lambda a: a.handle.startswith(prefix) and (a.container_id, a.ifname) not in keep
        )

    def allocations(self) -> list[Allocation]:
        """Return the current allocations, sorted by address (reads under the lock)."""
        with self._locked() as state:
            return [state.allocations[a] for a in sorted(state.allocations)]

    def _release_where(self, doomed: Callable[[Allocation], bool]) -> list[Allocation]:
        with self._locked() as state:
            gone = sorted(a for a, alloc in state.allocations.items() if doomed(alloc))
            released = [state.allocations.pop(address) for address in gone]
            if gone:
                self._write(state)
            return released

    def _next_free(self, state: _State) -> IPv4Address:
        pool = self.candidates()
        start = bisect.bisect_right(pool, int(state.cursor)) if state.cursor is not None else 0
        for value in pool[start:] + pool[:start]:
            address = IPv4Address(value)
            if address not in state.allocations:
                return address
        blocks = ", ".join(str(b) for b in self.blocks) or "none"
        raise CniError(
            POOL_EXHAUSTED,
            f"node {self.node} has no free pod address: all of its blocks ({blocks}) are in "
            f"use ({len(state.allocations)} allocations); delete unused pods, run CNI GC, or "
            "give the node more blocks (max_pods / block_size in cluster.yaml) and rebuild",
        )

    @contextmanager
    def _locked(self) -> Iterator[_State]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CniError(
                IO_FAILURE, f"cannot open IPAM state in {self.directory}: {exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._read()
        finally:
            os.close(fd)

    def _read(self) -> _State:
        path = self.directory / STATE_FILE
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return _State({}, None)
        except ValueError as exc:
            if written_before_boot(path):
                os.replace(path, path.with_name(f"{path.name}.torn"))
                return _State({}, None)
            raise CniError(IO_FAILURE, f"{path} is not valid JSON ({exc}); restore it") from exc
        allocations = {
            IPv4Address(k): _from_json(k, v) for k, v in data.get("allocations", {}).items()
        }
        cursor = data.get("cursor")
        return _State(allocations, IPv4Address(cursor) if cursor else None)

    def _write(self, state: _State) -> None:
        body = {
            "node": self.node,
            "cursor": str(state.cursor) if state.cursor is not None else None,
            "allocations": {
                str(a): state.allocations[a].to_json() for a in sorted(state.allocations, key=int)
            },
        }
        # compact: json's C encoder only serves calls without indent (5x faster at 200 pods)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        write_atomic(self.directory / STATE_FILE, text, durable=False)


def boot_time() -> float:
    """Return when the machine booted (seconds since the epoch, /proc/stat btime)."""
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise CniError(IO_FAILURE, "/proc/stat has no btime line: is /proc mounted?")


def written_before_boot(path: Path) -> bool:
    """Return whether `path` was last modified before the current boot."""
    return path.stat().st_mtime < boot_time()


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    """Replace `path` with `text`: temp file in the same directory, fsync, rename.

    The caller holds the store's lock, so any other temp file is a leftover of a killed writer.
    `durable=False` skips the fsync (still atomic against a killed process, not a power loss).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for name in os.listdir(path.parent):  # left by a killed writer
        if name.startswith(f".{path.name}.") and name.endswith(".tmp"):
            (path.parent / name).unlink(missing_ok=True)
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CniError(IO_FAILURE, f"cannot write {path}: {exc}") from exc
