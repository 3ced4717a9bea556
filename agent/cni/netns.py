"""Run a function inside another network namespace, on a fresh thread that joins it.

setns(2) with CLONE_NEWNET changes only the calling thread, so the caller (and, in the agent,
every other request being served) stays in the node's namespace. Netlink sockets opened on that
thread belong to the pod's namespace.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from agent.cni.errors import CONTAINER_UNKNOWN, CniError

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_LIBC = ctypes.CDLL(None, use_errno=True)


def open_netns(path: str) -> int:
    """Open a netns path (e.g. /var/run/netns/x or /proc/PID/ns/net) and return its fd."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CniError(
            CONTAINER_UNKNOWN, f"network namespace {path} cannot be opened ({exc.strerror})"
        ) from exc


def netns_exists(path: str) -> bool:
    """Return whether `path` names an existing network namespace file."""
    return bool(path) and os.path.exists(path)


def in_netns(path: str, func: Callable[[], T]) -> T:
    """Return func() run on a new thread inside the network namespace at `path`."""
    fd = open_netns(path)
    box: dict[str, object] = {}

    def target() -> None:
        try:
            if _LIBC.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise CniError(
                    CONTAINER_UNKNOWN, f"cannot enter {path}: {os.strerror(err)}; is it a netns?"
                )
            box["value"] = func()
        except BaseException as exc:  # re-raised on the caller thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="calicc-netns")
    try:
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
