"""The node's facts as the CNI plugin needs them: from the installed bundle, cached by mtime.

The installed bundle copy is self-contained: node.json beside cluster/ (index.json, cluster.json,
policy.json). They are read with the contract's light reader (contract/node.py: no pydantic,
about 0.1 ms for a small node), so a standalone plugin process imports only what its command
needs, and read again only when one of them changed (size or mtime).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from calicc.agent.cni.errors import INVALID_CONFIG, IO_FAILURE, CniError
from calicc.agent.cni.ipam import IpamStore
from calicc.contract.node import CLUSTER_READS, CniNode, NodeFacts, NodeFileError, read_node

Stamp = tuple[tuple[int, int], ...]
_CACHE: dict[Path, tuple[Stamp, CniNode]] = {}
_LOCK = threading.Lock()


def bundle_files(path: Path) -> tuple[Path, ...]:
    """Return node.json at `path` and the cluster files the CNI reads beside it."""
    return (path, *(path.parent / rel for rel in CLUSTER_READS))


def _stamp(paths: tuple[Path, ...]) -> Stamp:
    """Return (mtime, size) of each file, or raise the CNI error naming the missing one."""
    stamps = []
    for each in paths:
        try:
            st = os.stat(each)
        except OSError as exc:
            raise CniError(
                IO_FAILURE,
                f"cannot read {each} ({exc.strerror}): run `calicc apply --bundle DIR` on this "
                "node first, or point the netconf's `bundle` (or `root`) at the installed bundle",
            ) from exc
        stamps.append((st.st_mtime_ns, st.st_size))
    return tuple(stamps)


def load_manifest(path: Path) -> CniNode:
    """Return the CNI's facts of the bundle whose node.json is `path`, re-read only on a change."""
    paths = bundle_files(path)
    key = _stamp(paths)
    with _LOCK:
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
    try:
        raw = [each.read_bytes() for each in paths]
        manifest = read_node(raw[0], dict(zip(CLUSTER_READS, raw[1:], strict=True)))
    except (OSError, NodeFileError) as exc:
        raise CniError(INVALID_CONFIG, f"{path} is not a valid node bundle: {exc}") from exc
    with _LOCK:
        _CACHE[path] = (key, manifest)
    return manifest


def ipam_store(state_dir: Path, manifest: NodeFacts, nodename: str = "") -> IpamStore:
    """Return the IPAM store of the node: blocks of its pods' pools, tunnels and reservations kept.

    Pods get addresses of the node's blocks of pools that allow Workload (a Tunnel-only pool's
    block holds the tunnel address alone); the tunnel addresses and the cluster's reservations
    are never handed out.

    Raises:
        CniError: INVALID_CONFIG when the netconf names another node than the bundle's.
    """
    if nodename and nodename != manifest.node.name:
        raise CniError(
            INVALID_CONFIG,
            f"netconf nodename {nodename!r} differs from the bundle's node "
            f"{manifest.node.name!r}: drop nodename (the plugin takes the installed bundle's "
            "node) or install this node's bundle",
        )
    serving = {p.name for p in manifest.pools if p.serves_node and p.for_pods}
    blocks = [b.cidr for b in manifest.blocks if b.pool in serving]
    tunnels = (manifest.tunnel_address, manifest.tunnel_address_v6)
    reserved = [address for address in tunnels if address is not None]
    networks = manifest.reservations or ()
    adopted = manifest.adopted or ()
    name = manifest.node.name
    return IpamStore(state_dir / "ipam", name, blocks, reserved, networks, adopted=adopted)
