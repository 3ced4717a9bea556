"""Nodes read before, kept in the user's cache so `calicc trace` need not load their bundles.

An entry holds a node's facts (trace/node.py) and its rules text per family and set of pods,
as read through the agent's loader (trace/node_read.py), under a key of this calicc's code and
the bytes of every file of the tree the node's bundle is made of: the node's directory and the
cluster part. Any edit of either misses, and the loader reads (and checks) the node again.
Entries live beside the pods files' (trace/pods_cache.py), in `calicc/trace-nodes/`; the
CACHE_KEEP most recently written stay. A cache that cannot be read or written only costs time.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path
from typing import Any

from calicc.compiler.uptodate import code_fingerprint
from calicc.trace.pods_cache import cache_dir as pods_cache_dir
from calicc.trace.pods_cache import read_entry, write_entry

CACHE_KEEP = 64
CLUSTER_DIR = "cluster"


def cache_dir() -> Path:
    """Return where read nodes are kept."""
    return pods_cache_dir().parent / "trace-nodes"


@cache
def _code() -> bytes:
    return code_fingerprint().encode()


def _files_digest(sha: Any, directory: Path, under: Path) -> None:
    """Feed every file below `directory` (sorted; path and bytes) into `sha`."""
    for path, dirs, names in sorted(os.walk(directory)):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(path, name)
            sha.update(os.path.relpath(full, under).encode() + b"\0")
            with open(full, "rb") as handle:
                sha.update(handle.read() + b"\0")


def cluster_key(root: Path) -> str | None:
    """Return the digest of the tree's cluster part as it is now (None: unreadable)."""
    sha = hashlib.sha256(_code() + b"\0")
    try:
        _files_digest(sha, root / CLUSTER_DIR, root)
    except OSError:
        return None
    return sha.hexdigest()


def node_key(cluster: str, directory: Path) -> str | None:
    """Return the key of the node whose bundle is `directory` (None: unreadable)."""
    sha = hashlib.sha256(cluster.encode() + b"\0")
    try:
        _files_digest(sha, directory, directory)
    except OSError:
        return None
    return sha.hexdigest()


def read_node_entry(key: str) -> dict[str, Any] | None:
    """Return the kept node of `key`, or None."""
    return read_entry(key, cache_dir())


def write_node_entry(key: str, data: dict[str, Any]) -> None:
    """Keep a read node under `key`."""
    write_entry(key, data, cache_dir(), CACHE_KEEP)
