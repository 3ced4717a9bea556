"""Helpers for the lab end-to-end tests: a lab per test, always taken down."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calicc.lab.down import lab_down
from calicc.lab.network import lab_namespaces
from calicc.lab.state import LabState
from calicc.lab.up import lab_up


@contextmanager
def short_base() -> Iterator[Path]:
    """A short temporary base directory: BIRD's control socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="cce-", dir="/run"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_lab(cluster: Path, pod_nodes: int = 0) -> Iterator[LabState]:
    """Bring a uniquely named lab up from `cluster`; take it down (and check it is gone) after."""
    name = f"e{uuid.uuid4().hex[:7]}"
    with short_base() as base:
        root = base / name
        try:
            yield lab_up(cluster, name, root, lambda _line: None, pod_nodes)
        finally:
            lab_down(name, root)
            assert lab_namespaces(name) == []
