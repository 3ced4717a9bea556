"""The thin CNI client: the body of the launchers in <root>/opt/cni/bin (stdlib only).

Runs under Debian's `/usr/bin/python3 -SI` (no site, isolated: ~9 ms to start) and imports only
built-in modules. It forwards the CNI_* environment and stdin to the agent's root-only unix
socket and prints the answer. When no agent listens (no socket, or a stale one) it starts the
CNI server on demand (agent/cni/server.py `--idle`) and sends the request there once it answers;
only the launcher that takes the flock on the start lock starts one, and the server inherits
that lock as descriptor 3 and holds it for life, so concurrent launchers wait for its socket.
With idle 0, or when no server comes up, it execs the full plugin in the project's Python with
the same stdin, so a node works without the agent.
A connection that breaks mid-request is not retried (the agent may have acted): the runtime
gets error 11, try again later.

Wire format: request = kind NL, then `KEY=VALUE` NL per CNI_* variable, NL, then stdin bytes;
the client then shuts down its sending side. Answer = exit status NL, then stdout bytes.
Backslashes and newlines in names and values travel as two backslashes and backslash-n, so a
newline in a variable cannot end its line early and smuggle in another variable. At most
MAX_STDIN + 1 bytes of stdin are read and forwarded: enough for the plugin to refuse a larger
one (agent/cni/validate.py).
"""

import _signal  # type: ignore[import-not-found]  # built in; no stub
import _socket
import contextlib
import fcntl
import os
import sys
import time

MAX_STDIN = 1 << 20  # the largest network configuration the plugin accepts (bytes)
SERVER_WAIT = 10.0  # seconds a launcher waits for a server started on demand
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


def spawn_server(lock: int, python: str, root: str, idle: str) -> int:
    """Fork the on-demand server holding `lock` (as descriptor 3), detached; return its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        null = os.open("/dev/null", os.O_RDWR)
        os.setsid()
        os.chdir("/")
        os.dup2(lock, 3)
        os.set_inheritable(3, True)  # dup2 onto itself (lock == 3) keeps close-on-exec
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(4, 1 << 20)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        args = [python, "-I", "-m", "calicc.agent.cni.server", "--root", root, "--idle", idle]
        os.execve(python, args, env)
    finally:
        os._exit(127)


def connect_on_demand(sock_path: str, lock_path: str, python: str, root: str, idle: str) -> bool:
    """Wait until a server answers on `sock_path`, starting one unless another launcher does.

    Returns False when none answers within SERVER_WAIT or the one this launcher started failed.
    """
    below = sock_path[len(root.rstrip("/")) + 1 :].split("/")[:-1]
    for depth in range(1, len(below) + 1):  # mkdir -p below the root; the server fixes the mode
        with contextlib.suppress(OSError):
            os.mkdir(root.rstrip("/") + "/" + "/".join(below[:depth]), 0o700)
    child = 0
    deadline = time.monotonic() + SERVER_WAIT
    while time.monotonic() < deadline:
        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            probe.connect(sock_path)
            return True
        except OSError:
            pass
        finally:
            probe.close()
        if not child:
            try:
                lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return False
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                child = spawn_server(lock, python, root, idle)
            except OSError:
                pass  # another launcher's server holds it: wait for its socket
            finally:
                os.close(lock)
        else:
            done, status = os.waitpid(child, os.WNOHANG)
            if done == child:
                if os.waitstatus_to_exitcode(status) != 0:
                    return False
                child = 0  # it found another server answering: connect to that one
        time.sleep(0.002)
    return False


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


def main(  # noqa: PLR0917 (the generated call passes the launcher's constants in order)
    kind: str, sock_path: str, lock_path: str, python: str, root: str, idle: str
) -> None:
    """Serve one CNI invocation through the agent or an on-demand server, else standalone."""
    stdin = read_stdin()
    request = encode_request(kind, dict(os.environ), stdin)
    answer = ask_agent(sock_path, request)
    if answer is None and idle != "0":
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # an inherited SIG_IGN would reap it
        if connect_on_demand(sock_path, lock_path, python, root, idle):
            answer = ask_agent(sock_path, request)
    if answer is None:
        run_standalone(kind, python, root, stdin)
        return
    head, _, out = answer.partition(b"\n")
    if not head.isdigit():
        os.write(1, TRY_AGAIN)
        sys.exit(11)
    os.write(1, out)
    sys.exit(int(head))
