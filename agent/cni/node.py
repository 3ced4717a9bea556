"""The node's manifest as the CNI plugin needs it: node.json from the bundle, cached by mtime."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pydantic import ValidationError

from calicc.agent.cni.errors import INVALID_CONFIG, IO_FAILURE, CniError
from calicc.agent.cni.ipam import IpamStore
from calicc.compiler.model.manifest import NodeManifest

_CACHE: dict[Path, tuple[tuple[int, int], NodeManifest]] = {}
_LOCK = threading.Lock()


def load_manifest(path: Path) -> NodeManifest:
    """Return the node.json at `path`, re-read only when its size or mtime changed."""
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
        manifest = NodeManifest.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise CniError(INVALID_CONFIG, f"{path} is not a valid node manifest: {exc}") from exc
    with _LOCK:
        _CACHE[path] = (key, manifest)
    return manifest


def ipam_store(state_dir: Path, manifest: NodeManifest, nodename: str = "") -> IpamStore:
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
