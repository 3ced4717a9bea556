"""Run a function inside another network namespace, on a fresh thread that joins it.

setns(2) with CLONE_NEWNET changes only the calling thread, so the caller (and, in the agent,
every other request being served) stays in the node's namespace. Netlink sockets opened on that
thread belong to the pod's namespace.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import threading
from collections.abc import Callable
from typing import TypeVar

from calicc.agent.cni.errors import CONTAINER_UNKNOWN, CniError
from calicc.agent.cni.validate import shown

CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3): the CLONE_NEW* type of a namespace file
T = TypeVar("T")
_LIBC = ctypes.CDLL(None, use_errno=True)


def open_netns(path: str) -> int:
    """Open a netns path (e.g. /var/run/netns/x or /proc/PID/ns/net) and return its fd.

    Only a regular file is opened (namespace files are): never a FIFO, which would block, nor a
    device, whose open may act.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise OSError(errno.EINVAL, "not a network namespace file")
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise CniError(
            CONTAINER_UNKNOWN,
            f"network namespace CNI_NETNS={shown(path)} cannot be opened ({reason})",
        ) from exc


def require_netns(path: str) -> None:
    """Fail with CONTAINER_UNKNOWN unless `path` is a network namespace (ADD checks first)."""
    fd = open_netns(path)
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        kind = None  # not a namespace file at all
    finally:
        os.close(fd)
    if kind != CLONE_NEWNET:
        raise CniError(CONTAINER_UNKNOWN, f"CNI_NETNS {shown(path)} is not a network namespace")


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
                    CONTAINER_UNKNOWN,
                    f"cannot enter {shown(path)}: {os.strerror(err)}; is it a netns?",
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
