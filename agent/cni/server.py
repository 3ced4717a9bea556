"""The agent side of the fast CNI path: a root-only unix socket serving plugin invocations.

The agent starts it once (`CniServer(root).start()` from its loop, `.stop()` on exit), so each
ADD costs a ~9 ms stdlib launcher plus the work itself, with pyroute2, pydantic and node.json
already loaded. Requests run concurrently on threads; IPAM serialises through its flock exactly
as separate processes do, so launchers that fall back to standalone mode can run alongside.
`python -I -m calicc.agent.cni.server --root DIR` runs it in the foreground (lab, bench).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import socketserver
import struct
import threading
from io import BufferedIOBase
from pathlib import Path

from calicc.agent.cni.endpoint_policy import cache_filter_table
from calicc.agent.cni.errors import INVALID_ENV, CniError
from calicc.agent.cni.main import run
from calicc.agent.cni.thin import MAX_STDIN

SOCKET = "var/run/calicc/cni.sock"
MAX_HEADER = 1 << 20  # the CNI_* variables of one request (bytes)
MAX_REQUEST = MAX_HEADER + MAX_STDIN + 1  # the launchers forward at most MAX_STDIN + 1 of stdin
TOO_LARGE = CniError(
    INVALID_ENV, f"the CNI_* variables of this request exceed {MAX_HEADER} bytes; refused unread"
)
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def socket_path(root: Path) -> Path:
    """Return the agent's CNI socket under `root`."""
    return root / SOCKET


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
    daemon_threads = True
    root: Path


class CniServer:
    """The socket server of one node root; start() runs it on a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = socket_path(root)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> None:
        """Create the socket (0600, in a 0700 directory), replacing a stale one."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        self.path.unlink(missing_ok=True)
        old = os.umask(0o177)
        try:
            self._server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old)
        self._server.root = self.root
        cache_filter_table()

    def start(self) -> None:
        """Bind and serve on a daemon thread."""
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="calicc-cni", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and remove the socket (launchers fall back to standalone)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)


def serve(root: Path) -> None:
    """Serve in the foreground until interrupted (SIGINT/SIGTERM end it)."""
    server = CniServer(root)
    server.bind()
    assert server._server is not None
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop).start())
    try:
        server._server.serve_forever()
    finally:
        server.path.unlink(missing_ok=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="calicc CNI socket server")
    parser.add_argument("--root", type=Path, default=Path("/"))
    serve(parser.parse_args().root)
