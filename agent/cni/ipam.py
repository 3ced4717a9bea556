"""IPAM from the node's compiled blocks: one JSON state file, flock-serialised, atomically replaced.

Rules (documented in agent/cni/README.md):

* Addresses come only from the node's blocks of pools that serve the node and allow Workload;
  the node's tunnel addresses and the reserved networks (cluster.yaml `reservations`, Calico's
  IPReservation) are never handed out. Every other address of a block is usable, network and
  broadcast addresses of the block included, because each pod gets a /32 or /128 (Calico does
  the same).
* Per family: a pod gets one address of each family the node has blocks of (IPv4 and IPv6 on a
  dual-stack node, one of them on a single-stack node), all taken in one locked step (either
  family exhausted: none is taken) and recorded under the pod's handle, so DEL releases them
  together and GC reclaims each allocation of a gone attachment.
* One allocation per handle and family (`<network>.<containerID>`): a second ADD for the same
  handle gets the same addresses back.
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
* Candidates are scanned round-robin from just after the last address handed out (a cursor per
  family), so a released address is not reused at once (stale conntrack entries), like
  host-local. The IPv4 cursor is stored as `cursor`, the IPv6 one as `cursor_v6` (only once
  set: an IPv4-only node's state reads as before).
* Adopted addresses (node.json `adopted`, from `calicc import`: addresses Calico's IPAM had
  given to pods still running) are seeded into the store once, in the first locked step that
  finds one not seeded yet, under the handle and attachment calicc's DEL and GC of that
  container use, so ADD never hands them out, the old pod's DEL releases its address and GC
  reclaims those of gone containers. The store records which were seeded (`adopted`: address
  and handle, only once set), so a later apply of the same bundle never re-adds an address a
  DEL released; one the store already holds for another handle is left to its holder.
"""

from __future__ import annotations

import bisect
import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import Any

from calicc.agent.cni.errors import IO_FAILURE, POOL_EXHAUSTED, CniError
from calicc.contract.adopted import AdoptedEntry, pod_attrs
from calicc.contract.names import V4

STATE_FILE = "allocations.json"
LOCK_FILE = "lock"
Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
CURSOR_KEYS = {4: "cursor", 6: "cursor_v6"}
SEEDED_KEY = "adopted"


@lru_cache(maxsize=8192)
def parse_address(text: str) -> Address:
    """Return the address written as `text`.

    Cached: the agent's CNI server reads the same state file's addresses on every call, and
    parsing an IPv6 address costs about 10 us.
    """
    return ip_address(text)


@lru_cache(maxsize=8192)
def address_text(address: Address) -> str:
    """Return the stored form of `address` (cached, as `parse_address`)."""
    return str(address)


def address_order(address: Address) -> tuple[int, int]:
    """Sort key of addresses of both families: IPv4 first, then by value."""
    return address.version, int(address)


@dataclass(frozen=True)
class Allocation:
    """An address held by one attachment (container id + interface)."""

    address: Address
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


def _from_json(address: Address, item: dict[str, Any]) -> Allocation:
    return Allocation(
        address=address,
        handle=str(item["handle"]),
        container_id=str(item["container_id"]),
        ifname=str(item["ifname"]),
        attrs={str(k): str(v) for k, v in dict(item.get("attrs", {})).items()},
    )


@dataclass(frozen=True)
class Claim:
    """What IpamStore.claim did: the handle's allocations, the ones it took, the cursors before.

    `allocations` holds one per family, IPv4 first; `fresh` the ones this claim took.
    """

    allocations: tuple[Allocation, ...]
    fresh: tuple[Allocation, ...]
    cursors: dict[int, Address | None]

    @property
    def allocation(self) -> Allocation:
        """The first allocation (the IPv4 one on a node with IPv4 blocks)."""
        return self.allocations[0]

    @property
    def new(self) -> bool:
        """Whether the claim took any address (False: an ADD repeated for a running pod)."""
        return bool(self.fresh)


@dataclass
class _State:
    allocations: dict[Address, Allocation]
    cursors: dict[int, Address | None]
    seeded: frozenset[str] = frozenset()  # adopted entries seeded once: "address handle"

    def copy(self) -> _State:
        """Return a state whose dicts can change without changing this one's."""
        return _State(dict(self.allocations), dict(self.cursors), self.seeded)


def seeded_key(entry: AdoptedEntry) -> str:
    """Return how the store records that an adopted entry was seeded."""
    return f"{entry.address} {entry.handle}"


# The last adopted tuple keyed, and its keys: a node's manifest is cached (agent/cni/node.py),
# so the CNI server's calls hand the same tuple each time (100 entries: ~200 us a call saved).
_LAST_KEYS: list[tuple[object, dict[str, AdoptedEntry]]] = []


def seed_keys(adopted: Iterable[AdoptedEntry]) -> dict[str, AdoptedEntry]:
    """Return the adopted entries by their seeded key (read-only: it may be shared)."""
    last = _LAST_KEYS[0] if _LAST_KEYS else None
    if last is not None and last[0] is adopted:
        return last[1]
    keys = {seeded_key(entry): entry for entry in adopted}
    if isinstance(adopted, tuple):
        _LAST_KEYS[:] = [(adopted, keys)]
    return keys


# The bytes this process last wrote to each state file and the state they hold: a read finding
# exactly those bytes needs no parsing (the agent's CNI server reads its own last write on most
# calls; equal bytes are the same state, whoever wrote them). Used under the store's flock.
_WRITTEN: dict[Path, tuple[bytes, _State]] = {}


class IpamStore:
    """The node's address store under `<state_dir>/ipam`."""

    def __init__(
        self,
        directory: Path,
        node: str,
        blocks: Iterable[Network],
        reserved: Iterable[Address] = (),
        reserved_networks: Iterable[Network] = (),
        *,
        adopted: Iterable[AdoptedEntry] = (),
    ) -> None:
        self.directory = directory
        self.node = node
        self.blocks = tuple(sorted(blocks, key=lambda b: (b.version, b)))
        self.reserved = frozenset(reserved)
        self.reserved_networks = tuple(reserved_networks)
        self.adopted = seed_keys(adopted)

    @property
    def families(self) -> tuple[int, ...]:
        """The IP versions a pod gets an address of: those of the blocks (4 without blocks)."""
        return tuple(sorted({b.version for b in self.blocks})) or (4,)

    def candidates(self, version: int = 4) -> list[int]:
        """Return every address of family `version` this store may hand out, sorted integers."""
        reserved = {int(a) for a in self.reserved if a.version == version}
        found: set[int] = set()
        for block in self.blocks:
            if block.version != version:
                continue
            first = int(block.network_address)
            found.update(a for a in range(first, first + block.num_addresses) if a not in reserved)
        if self.reserved_networks:
            found.difference_update(self._reserved_in(found, version))
        return sorted(found)

    def _reserved_in(self, found: set[int], version: int) -> Iterator[int]:
        """Yield the addresses of `found` the reserved networks of `version` hold."""
        for net in self.reserved_networks:
            if net.version != version:
                continue
            first, last = int(net.network_address), int(net.broadcast_address)
            if last - first < len(found):
                yield from (a for a in range(first, last + 1) if a in found)
            else:
                yield from (a for a in found if first <= a <= last)

    def has_candidates(self) -> bool:
        """Return whether the store has any address of any family to hand out."""
        return any(self.candidates(version) for version in self.families)

    def assign(
        self, handle: str, container_id: str, ifname: str, attrs: dict[str, str]
    ) -> Allocation:
        """Return the handle's first address (IPv4 when the node has IPv4 blocks), allocating.

        Raises:
            CniError: POOL_EXHAUSTED naming the node and its blocks when nothing is free.
        """
        return self.claim(handle, container_id, ifname, attrs).allocation

    def claim(self, handle: str, container_id: str, ifname: str, attrs: dict[str, str]) -> Claim:
        """Return the handle's address of every family, taking the missing ones in one step.

        Raises:
            CniError: POOL_EXHAUSTED when a family has no free address (nothing is taken).
        """
        with self._locked() as state:
            mine = (a for a in state.allocations.values() if a.handle == handle)
            held: dict[int, Allocation] = {a.address.version: a for a in mine}
            before = dict(state.cursors)
            fresh = []
            for version in self.families:
                if version in held:
                    continue
                address = self._next_free(state, version)
                held[version] = Allocation(address, handle, container_id, ifname, attrs)
                state.allocations[address] = held[version]
                state.cursors[version] = address
                fresh.append(held[version])
            if fresh:
                self._write(state)
            return Claim(tuple(held[v] for v in sorted(held)), tuple(fresh), before)

    def unclaim(self, claim: Claim) -> None:
        """Undo a claim of a failed ADD: the state is as before it (the cursors too).

        Only the addresses the claim took are released (an ADD repeated for a running pod keeps
        its addresses), and a family's cursor goes back only while nothing was allocated since:
        an address handed out and taken back before the pod ever sent a packet leaves no
        conntrack entries behind.
        """
        if not claim.new:
            return
        with self._locked() as state:
            changed = False
            for alloc in claim.fresh:
                if state.allocations.get(alloc.address) != alloc:
                    continue
                del state.allocations[alloc.address]
                version = alloc.address.version
                if state.cursors.get(version) == alloc.address:
                    state.cursors[version] = claim.cursors.get(version)
                changed = True
            if changed:
                self._write(state)

    def release(self, handle: str) -> list[Address]:
        """Release every address held by `handle`; an unknown handle is not an error."""
        return [a.address for a in self.release_held(handle)]

    def release_held(self, handle: str) -> list[Allocation]:
        """Release and return the allocations of `handle` (their attrs name the pod)."""
        return self._release_where(lambda a: a.handle == handle)

    def gc(self, keep: set[tuple[str, str]], network: str = "") -> list[Address]:
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
            return [state.allocations[a] for a in sorted(state.allocations, key=address_order)]

    def _release_where(self, doomed: Callable[[Allocation], bool]) -> list[Allocation]:
        with self._locked() as state:
            doomed_ones = (a for a, alloc in state.allocations.items() if doomed(alloc))
            gone = sorted(doomed_ones, key=address_order)
            released = [state.allocations.pop(address) for address in gone]
            if gone:
                self._write(state)
            return released

    def _next_free(self, state: _State, version: int) -> Address:
        pool = self.candidates(version)
        cursor = state.cursors.get(version)
        start = bisect.bisect_right(pool, int(cursor)) if cursor is not None else 0
        make = IPv4Address if version == V4 else IPv6Address
        for value in pool[start:] + pool[:start]:
            address = make(value)
            if address not in state.allocations:
                return address
        blocks = ", ".join(str(b) for b in self.blocks if b.version == version) or "none"
        used = sum(1 for a in state.allocations if a.version == version)
        size = "block_size" if version == V4 else "block_size_v6"
        raise CniError(
            POOL_EXHAUSTED,
            f"node {self.node} has no free pod address (IPv{version}): all of its IPv{version} "
            f"blocks ({blocks}) are in use ({used} allocations); delete unused pods, run CNI GC, "
            f"or give the node more blocks (max_pods / {size} in cluster.yaml) and rebuild",
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
            state = self._read()
            if self.adopted and not self.adopted.keys() <= state.seeded:
                self._seed(state)
                self._write(state)
            yield state
        finally:
            os.close(fd)

    def _seed(self, state: _State) -> None:
        """Add the adopted addresses not seeded before (one held already stays its holder's)."""
        for key in sorted(self.adopted.keys() - state.seeded):
            entry = self.adopted[key]
            address = entry.address
            if address in state.allocations or not any(address in b for b in self.blocks):
                continue
            state.allocations[address] = Allocation(
                address, entry.handle, entry.container_id, entry.ifname, pod_attrs(entry)
            )
        state.seeded = state.seeded | self.adopted.keys()

    def _read(self) -> _State:
        path = self.directory / STATE_FILE
        try:
            raw = path.read_bytes()
            last = _WRITTEN.get(path)
            if last is not None and last[0] == raw:  # what this process wrote: no parsing
                return last[1].copy()
            data = json.loads(raw)
        except FileNotFoundError:
            return _State({}, {})
        except ValueError as exc:
            if written_before_boot(path):
                os.replace(path, path.with_name(f"{path.name}.torn"))
                return _State({}, {})
            raise CniError(IO_FAILURE, f"{path} is not valid JSON ({exc}); restore it") from exc
        allocations = {}
        for text, item in data.get("allocations", {}).items():
            address = parse_address(text)
            allocations[address] = _from_json(address, item)
        cursors: dict[int, Address | None] = {}
        for version, key in CURSOR_KEYS.items():
            cursor = data.get(key)
            cursors[version] = parse_address(cursor) if cursor else None
        return _State(allocations, cursors, frozenset(map(str, data.get(SEEDED_KEY, ()))))

    def _write(self, state: _State) -> None:
        cursor, cursor_v6 = state.cursors.get(4), state.cursors.get(6)
        body: dict[str, Any] = {
            "node": self.node,
            "cursor": str(cursor) if cursor is not None else None,
            "allocations": {
                address_text(a): state.allocations[a].to_json()
                for a in sorted(state.allocations, key=address_order)
            },
        }
        if cursor_v6 is not None:
            body[CURSOR_KEYS[6]] = str(cursor_v6)
        if state.seeded:
            body[SEEDED_KEY] = sorted(state.seeded)
        # compact: json's C encoder only serves calls without indent (5x faster at 200 pods)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        path = self.directory / STATE_FILE
        _WRITTEN.pop(path, None)
        write_atomic(path, text, durable=False)
        _WRITTEN[path] = ((text + "\n").encode(), state.copy())


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
