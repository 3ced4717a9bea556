"""The agent side of the fast CNI path: a root-only unix socket serving plugin invocations.

The agent starts it once (`CniServer(root).start()` from its loop, `.stop()` on exit), so each
ADD costs a ~1 ms launcher plus the work itself, with the plugin's modules and node.json already
loaded. Requests run concurrently on threads; IPAM serialises through its flock exactly as
separate processes do, so launchers that run the plugin directly can run alongside.

Without an agent, the launchers start the same server on demand (`--idle SECONDS`): the first
ADD of a burst pays for the interpreter and imports once, later ones only the work. An
on-demand server serves until it has been idle that long, or until someone else owns the socket
path (an agent that started takes it over), then removes its socket (only its own) and exits
after answering every connection already queued. Binding and removing the socket happen under
an flock (BIND_LOCK) beside it, so an agent and on-demand servers never remove each other's
socket. The launcher that starts one hands it the flock on START_LOCK as descriptor 3, which it
holds for life, so of several launchers racing only one starts a server.
`python -I -m calicc.agent.cni.server --root DIR [--idle S]` runs it in the foreground.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BufferedIOBase
from pathlib import Path
from typing import Any

from calicc.agent.cni.endpoint_policy import cache_filter_table, write_queued
from calicc.agent.cni.errors import INVALID_ENV, CniError
from calicc.agent.cni.main import run
from calicc.agent.cni.thin import MAX_STDIN

SOCKET = "var/run/calicc/cni.sock"
BIND_LOCK = "cni.sock.lock"  # beside the socket: held while a server binds or removes it
START_LOCK = "cni-server.lock"  # beside the socket: an on-demand server holds it for life
MAX_HEADER = 1 << 20  # the CNI_* variables of one request (bytes)
MAX_REQUEST = MAX_HEADER + MAX_STDIN + 1  # the launchers forward at most MAX_STDIN + 1 of stdin
POLL = 0.1  # seconds between an on-demand server's checks (idle time, socket ownership)
ANOTHER_SERVES = 0  # exit status of an on-demand server that found the socket already served
TOO_LARGE = CniError(
    INVALID_ENV, f"the CNI_* variables of this request exceed {MAX_HEADER} bytes; refused unread"
)
_Request = socket.socket | tuple[bytes, socket.socket]  # socketserver's request type
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def socket_path(root: Path) -> Path:
    """Return the agent's CNI socket under `root`."""
    return root / SOCKET


def start_lock_path(root: Path) -> Path:
    """Return the lock an on-demand server under `root` holds while it starts and serves."""
    return socket_path(root).with_name(START_LOCK)


def unescape(text: str) -> str:
    """Undo thin.escape: backslash-n is a newline, a backslash before anything else is dropped."""
    return _ESCAPED.sub(lambda m: "\n" if m[1] == "n" else m[1], text)


def decode_request(data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Split a request into (kind, CNI_* environment, stdin); see agent/cni/thin.py.

    The variables decode like os.environ does (UTF-8, other bytes as surrogates), so the
    plugin validates exactly what it would see when run standalone.
    """
    head, _, stdin = data.partition(b"\n\n")
    kind, *lines = head.decode("utf-8", "surrogateescape").split("\n")
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    env = {unescape(k): unescape(v) for k, v in pairs}
    return kind, {k: v for k, v in env.items() if k.startswith("CNI_")}, stdin


def read_request(stream: BufferedIOBase) -> bytes | None:
    """Return the request, or None when it exceeds MAX_REQUEST (the rest is read and dropped)."""
    data = stream.read(MAX_REQUEST + 1)
    if len(data) <= MAX_REQUEST:
        return data
    while stream.read(65536):
        pass
    return None


def peer_uid(sock: socket.socket) -> int:
    """Return the uid of the process at the other end of a unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def answers(path: Path) -> bool:
    """Return whether a server accepts connections on `path` now."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@contextmanager
def socket_lock(path: Path) -> Iterator[None]:
    """Hold the flock that serialises binding and removing the socket at `path`."""
    fd = os.open(path.with_name(BIND_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        if peer_uid(self.connection) not in (0, os.geteuid()):
            return
        data = read_request(self.rfile)
        if data is None:
            code, out = TOO_LARGE.exit_code(), TOO_LARGE.to_json("1.0.0")
        else:
            kind, env, stdin = decode_request(data)
            if kind not in ("plugin", "ipam"):
                return
            code, out = run(kind, env, stdin, root=str(server.root))
        self.wfile.write(f"{code}\n{out}".encode())


class _Server(socketserver.ThreadingUnixStreamServer):
    """Counts requests in flight and when the last one ended (for the idle check)."""

    daemon_threads = True
    root: Path

    def __init__(self, path: str) -> None:
        super().__init__(path, _Handler)
        self.busy = 0
        self.last = time.monotonic()
        self.counter = threading.Lock()

    def process_request(self, request: _Request, client_address: Any) -> None:
        with self.counter:
            self.busy += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        super().shutdown_request(request)
        write_queued()  # a dual-stack pod's ip6tables chains, now that its answer is out
        with self.counter:
            self.busy -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        """Return how long no request has been in flight (0 while one is)."""
        with self.counter:
            return 0.0 if self.busy else time.monotonic() - self.last

    def drain(self) -> None:
        """Answer every connection already queued on the listening socket (no new ones come)."""
        self.socket.setblocking(False)
        while True:
            try:
                request, address = self.socket.accept()
            except OSError:
                return
            request.setblocking(True)
            self.process_request(request, address)


class CniServer:
    """The socket server of one node root; start() runs it on a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = socket_path(root)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._identity: tuple[int, int] | None = None

    def bind(self) -> None:
        """Create the socket (0600, in a 0700 directory), replacing a stale or foreign one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        with socket_lock(self.path):
            self._bind_locked()

    def _bind_locked(self) -> None:
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)
        try:
            self._server = _Server(str(self.path))
        finally:
            os.umask(old)
        self._server.root = self.root
        self._identity = _identity(self.path)
        cache_filter_table()

    def owns_socket(self) -> bool:
        """Return whether the socket path is still the one this server bound."""
        return self._identity is not None and _identity(self.path) == self._identity

    def release(self) -> None:
        """Remove the socket when it is still ours (under the lock; never another's)."""
        if self._identity is None:
            return
        with socket_lock(self.path):
            if self.owns_socket():
                self.path.unlink()
        self._identity = None

    def start(self) -> None:
        """Bind and serve on a daemon thread."""
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="calicc-cni", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the socket (launchers then start a server on demand)."""
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.drain()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()

    def serve_on_demand(self, idle: float) -> int:
        """Serve until idle for `idle` seconds or replaced; return the exit status.

        Returns ANOTHER_SERVES at once when a server already answers on the socket.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        with socket_lock(self.path):
            if answers(self.path):
                return ANOTHER_SERVES
            self._bind_locked()
        server = self._server
        assert server is not None
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        thread = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
        thread.start()
        while not stop.wait(POLL):
            if not self.owns_socket() or server.idle_for() >= idle:
                break
        self.release()
        server.shutdown()
        thread.join()
        server.drain()
        while server.idle_for() == 0.0:  # answers to the drained connections are still going
            time.sleep(0.01)
        server.server_close()
        return 0


def server_running(root: Path) -> bool:
    """Return whether an on-demand server under `root` is starting or serving (holds its lock)."""
    try:
        fd = os.open(start_lock_path(root), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def stop_on_demand(root: Path, timeout: float = 10.0) -> bool:
    """Remove the socket under `root` and wait for its on-demand server to exit.

    Returns whether it exited within `timeout`: it notices within POLL seconds, then answers
    what was queued.
    """
    path = socket_path(root)
    if path.parent.is_dir():
        with socket_lock(path):
            path.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    while server_running(root):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def serve(root: Path) -> None:
    """Serve in the foreground until interrupted (SIGINT/SIGTERM end it)."""
    server = CniServer(root)
    server.bind()
    assert server._server is not None
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop).start())
    try:
        server._server.serve_forever()
    finally:
        server.release()


def main() -> None:
    """Serve the CNI socket under --root: for good, or on demand with --idle."""
    parser = argparse.ArgumentParser(description="calicc CNI socket server")
    parser.add_argument("--root", type=Path, default=Path("/"))
    parser.add_argument(
        "--idle", type=float, help="serve on demand: exit after this many idle seconds"
    )
    options = parser.parse_args()
    if options.idle is None:
        serve(options.root)
    else:
        sys.exit(CniServer(options.root).serve_on_demand(options.idle))


if __name__ == "__main__":
    main()
