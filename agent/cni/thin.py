"""The thin CNI client: the body of the launchers in <root>/opt/cni/bin (stdlib only).

Runs under Debian's `/usr/bin/python3 -SI` (no site, isolated: ~9 ms to start) and imports only
built-in modules. It forwards the CNI_* environment and stdin to the agent's root-only unix
socket and prints the answer. When no agent listens (no socket, or a stale one) it execs the
full plugin in the project's Python with the same stdin, so a node works without the agent.
A connection that breaks mid-request is not retried (the agent may have acted): the runtime
gets error 11, try again later.

Wire format: request = kind NL, then `KEY=VALUE` NL per CNI_* variable, NL, then stdin bytes;
the client then shuts down its sending side. Answer = exit status NL, then stdout bytes.
Backslashes and newlines in names and values travel as two backslashes and backslash-n, so a
newline in a variable cannot end its line early and smuggle in another variable. At most
MAX_STDIN + 1 bytes of stdin are read and forwarded: enough for the plugin to refuse a larger
one (agent/cni/validate.py).
"""

import _socket
import os
import sys

MAX_STDIN = 1 << 20  # the largest network configuration the plugin accepts (bytes)
TRY_AGAIN = b'{"cniVersion": "1.0.0", "code": 11, "msg": "the calicc agent closed the connection mid-request; try again"}\n'  # noqa: E501


def read_stdin(limit: int = MAX_STDIN + 1) -> bytes:
    """Return stdin, at most `limit` bytes of it."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(0, min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def escape(value: str) -> str:
    """Return `value` with backslashes and newlines escaped for one line of the header."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def encode_request(kind: str, environ: dict[str, str], stdin: bytes) -> bytes:
    """Return the request bytes: kind, the CNI_* variables, a blank line, stdin."""
    pairs = sorted(escape(k) + "=" + escape(v) for k, v in environ.items() if k.startswith("CNI_"))
    head = "\n".join([kind, *pairs]) + "\n\n"
    return head.encode("utf-8", "surrogateescape") + stdin


def ask_agent(sock_path: str, request: bytes) -> bytes | None:
    """Return the agent's answer, or None when no agent listens on `sock_path`."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(sock_path)
    except OSError:
        sock.close()
        return None
    sock.settimeout(120.0)
    try:
        sock.sendall(request)
        sock.shutdown(_socket.SHUT_WR)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return b""
    finally:
        sock.close()
    return b"".join(chunks)


def run_standalone(kind: str, python: str, root: str, stdin: bytes) -> None:
    """Exec the full plugin in the project's Python, with `stdin` as its standard input."""
    fd = os.memfd_create("calicc-cni-stdin")
    os.write(fd, stdin)
    os.lseek(fd, 0, os.SEEK_SET)
    os.dup2(fd, 0)
    os.close(fd)
    env = dict(os.environ)
    env["CALICC_ROOT"] = root
    os.execve(python, [python, "-I", "-m", "calicc.agent.cni.main", kind], env)


def main(kind: str, sock_path: str, python: str, root: str) -> None:
    """Serve one CNI invocation through the agent, else standalone."""
    stdin = read_stdin()
    answer = ask_agent(sock_path, encode_request(kind, dict(os.environ), stdin))
    if answer is None:
        run_standalone(kind, python, root, stdin)
        return
    head, _, out = answer.partition(b"\n")
    if not head.isdigit():
        os.write(1, TRY_AGAIN)
        sys.exit(11)
    os.write(1, out)
    sys.exit(int(head))
