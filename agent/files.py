"""Files the agent writes under --root: written only when their content changed, atomically."""

from __future__ import annotations

import os
from pathlib import Path


def under(root: Path, rel: str) -> Path:
    """Return `rel` (an absolute-looking or relative node path) below `root`."""
    return root / rel.lstrip("/")


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write `data` to `path` through a temporary file and rename; return whether it changed.

    The temporary file is created with `mode` from the start, so a secret is never readable
    by others, not even for a moment.
    """
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.calicc-tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(temp, path)
    return True
