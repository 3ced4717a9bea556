"""Checked pods files kept in the user's cache, so a trace need not parse their YAML again.

An entry is the plain data of a pods file that trace/pods.py read and checked, stored under a
key of this calicc's code and the file's bytes (`entry_key`): any edit of either misses.
Entries live beside `calicc build`'s cache, `$XDG_CACHE_HOME/calicc/pods/` (else
~/.cache/calicc/pods/); the CACHE_KEEP most recently written stay. A cache that cannot be read
or written only costs the next read.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from calicc.compiler.uptodate import code_fingerprint

CACHE_KEEP = 8


def cache_dir() -> Path:
    """Return where checked pods files are kept (beside `calicc build`'s cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "calicc" / "pods"


def entry_key(path: Path) -> str | None:
    """Return the key of the file at `path` as it is now (None: unreadable)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(code_fingerprint().encode() + b"\0" + raw).hexdigest()


def read_entry(key: str, directory: Path | None = None) -> dict[str, Any] | None:
    """Return the kept data of `key` (in `directory`, by default the pods'), or None."""
    try:
        data = orjson.loads(((directory or cache_dir()) / f"{key}.json").read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_entry(
    key: str, data: dict[str, Any], directory: Path | None = None, keep: int = CACHE_KEEP
) -> None:
    """Keep `data` under `key` (in `directory`, by default the pods'); the `keep` newest stay."""
    directory = directory or cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as handle:
            handle.write(orjson.dumps(data))
        os.replace(handle.name, directory / f"{key}.json")
        kept = sorted(directory.glob("*.json"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in kept[keep:]:
            old.unlink(missing_ok=True)
    except OSError:
        return
