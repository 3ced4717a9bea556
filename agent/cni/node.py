"""The node's facts as the CNI plugin needs them: node.json from the bundle, cached by mtime.

node.json is read with the contract's light reader (contract/node.py: no pydantic, about 0.1 ms
for a small node), so a standalone plugin process imports only what its command needs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from calicc.agent.cni.errors import INVALID_CONFIG, IO_FAILURE, CniError
from calicc.agent.cni.ipam import IpamStore
from calicc.contract.node import CniNode, NodeFacts, NodeFileError, read_node

_CACHE: dict[Path, tuple[tuple[int, int], CniNode]] = {}
_LOCK = threading.Lock()


def load_manifest(path: Path) -> CniNode:
    """Return the CNI's facts of the node.json at `path`, re-read only when size or mtime change."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise CniError(
            IO_FAILURE,
            f"cannot read {path} ({exc.strerror}): run `calicc apply --bundle DIR` on this node "
            "first, or point the netconf's `bundle` (or `root`) at the installed bundle",
        ) from exc
    key = (st.st_mtime_ns, st.st_size)
    with _LOCK:
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
    try:
        manifest = read_node(path.read_bytes())
    except (OSError, NodeFileError) as exc:
        raise CniError(INVALID_CONFIG, f"{path} is not a valid node manifest: {exc}") from exc
    with _LOCK:
        _CACHE[path] = (key, manifest)
    return manifest


def ipam_store(state_dir: Path, manifest: NodeFacts, nodename: str = "") -> IpamStore:
    """Return the IPAM store of the node: blocks of the pools serving it, tunnel address reserved.

    Raises:
        CniError: INVALID_CONFIG when the netconf names another node than the bundle's.
    """
    if nodename and nodename != manifest.node.name:
        raise CniError(
            INVALID_CONFIG,
            f"netconf nodename {nodename!r} differs from the bundle's node "
            f"{manifest.node.name!r}: install this node's own conflist",
        )
    serving = {p.name for p in manifest.pools if p.serves_node}
    blocks = [b.cidr for b in manifest.blocks if b.pool in serving]
    reserved = [manifest.tunnel_address] if manifest.tunnel_address is not None else []
    return IpamStore(state_dir / "ipam", manifest.node.name, blocks, reserved)
