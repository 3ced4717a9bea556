"""Real packets for `lab check`'s reachability rows: servers at destinations, clients at sources.

A server is one process per destination namespace that listens on every port a probe asks of
it, TCP, UDP and SCTP, on all its addresses of both families: a TCP or SCTP connection is
accepted and closed, a UDP datagram echoed. A client is one process per source namespace that
runs all its probes at once (a thread each) and prints one word per probe:

- `connected`: the TCP or SCTP handshake completed, the UDP datagram came back, the ping was
  answered: the packet went through both ways.
- `no answer`: nothing came back within the timeout (policy drops silently).
- `refused`: a reset or ICMP unreachable came back, so the packet reached something that
  turned it away (a REJECT rule, or no server on the port).

Servers and clients are children of this process started with `ip netns exec`; servers are
stopped by PID with their marker checked (lab/procs.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from calicc.lab.netns import ns_run
from calicc.lab.procs import stop_pid
from calicc.lab.wait import WaitTimeout, poll

TIMEOUT_S = 1.5  # a probe without an answer by then is `no answer`
READY_S = 10.0
CLIENTS = 8  # sources probing at once
CONNECTED, NO_ANSWER, REFUSED = "connected", "no answer", "refused"

SERVER = r"""
import json, selectors, socket, sys
ports, out = json.loads(sys.argv[1]), sys.argv[2]
kinds = {"tcp": (socket.SOCK_STREAM, 0), "udp": (socket.SOCK_DGRAM, 0),
         "sctp": (socket.SOCK_STREAM, getattr(socket, "IPPROTO_SCTP", 132))}
sel, failed = selectors.DefaultSelector(), []
for proto, port in ports:
    kind, number = kinds[proto]
    bound = 0
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            s = socket.socket(family, kind, number)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            if kind == socket.SOCK_STREAM:
                s.listen(64)
            sel.register(s, selectors.EVENT_READ, kind)
            bound += 1
        except OSError as exc:
            error = exc.strerror or str(exc)
    if not bound:
        failed.append([proto, port, error])
with open(out, "w") as f:
    f.write("ready " + json.dumps(failed) + "\n")
while True:
    for key, _ in sel.select():
        s = key.fileobj
        try:
            if key.data == socket.SOCK_STREAM:
                s.accept()[0].close()
            else:
                data, peer = s.recvfrom(512)
                s.sendto(data, peer)
        except OSError:
            pass
"""

CLIENT = r"""
import json, socket, subprocess, sys, threading
probes, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
found = [None] * len(probes)
def one(i, target, proto, port):
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    try:
        if proto == "icmp":
            ok = subprocess.run(["ping", "-n", "-q", "-c", "1", "-W", str(max(1, int(timeout))),
                                 target], capture_output=True).returncode == 0
            found[i] = "connected" if ok else "no answer"
        elif proto == "udp":
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout / 3)
                s.connect((target, port))
                for _ in range(3):
                    s.send(b"calicc-lab")
                    try:
                        s.recv(512)
                        found[i] = "connected"
                        return
                    except socket.timeout:
                        continue
                found[i] = "no answer"
        else:
            number = getattr(socket, "IPPROTO_SCTP", 132) if proto == "sctp" else 0
            with socket.socket(family, socket.SOCK_STREAM, number) as s:
                s.settimeout(timeout)
                s.connect((target, port))
                found[i] = "connected"
    except socket.timeout:
        found[i] = "no answer"
    except ConnectionRefusedError:
        found[i] = "refused"
    except OSError as exc:
        found[i] = "refused" if exc.errno in (111, 113) else f"error: {exc.strerror or exc}"
threads = [threading.Thread(target=one, args=(i, *p)) for i, p in enumerate(probes)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Shot:
    """One probe from namespace `src_ns` to `target`.

    `proto` is "tcp", "udp", "sctp" or "icmp"; `port` is None for icmp.
    """

    src_ns: str
    target: str
    proto: str
    port: int | None


Unserved = dict[tuple[str, str, int], str]  # (namespace, proto, port) -> why it is not served


@contextmanager
def servers(wanted: Mapping[str, set[tuple[str, int]]], run_dir: Path) -> Iterator[Unserved]:
    """Serve `wanted` ({namespace: {(proto, port)}}) while the block runs.

    Yields why each port that could not be bound is not served (SCTP without kernel support,
    a port a daemon of the node holds): a probe to it proves nothing and is reported as
    skipped.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    failed: Unserved = {}
    with ExitStack() as stack:
        ready = []
        for index, (ns, ports) in enumerate(sorted(wanted.items())):
            if not ports:
                continue
            out = run_dir / f"reach-server-{index}.ready"
            out.unlink(missing_ok=True)
            args = [sys.executable, "-c", SERVER, json.dumps(sorted(ports)), str(out)]
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], start_new_session=True)
            stack.callback(_stop, proc, str(out))
            ready.append((ns, proc, out))
        for ns, proc, out in ready:
            failed.update(_wait_ready(ns, proc, out))
        yield failed


def _wait_ready(ns: str, proc: subprocess.Popen[bytes], out: Path) -> Unserved:
    def done() -> bool:
        return (out.exists() and out.read_text().endswith("\n")) or proc.poll() is not None

    try:
        poll(done, READY_S, f"the probe server in {ns}")
    except WaitTimeout as exc:
        raise RuntimeError(f"the probe server in {ns} did not start: {exc}") from None
    if proc.poll() is not None:
        raise RuntimeError(f"the probe server in {ns} exited ({proc.returncode})")
    problems = json.loads(out.read_text().removeprefix("ready "))
    return {(ns, proto, port): why for proto, port, why in problems}


def _stop(proc: subprocess.Popen[bytes], marker: str) -> None:
    stop_pid(proc.pid, must_contain=marker)
    proc.wait()


def fire(shots: Sequence[Shot]) -> list[str]:
    """Run `shots` (each source's at once, one client per source); return a word for each."""
    by_source: dict[str, list[int]] = {}
    for index, shot in enumerate(shots):
        by_source.setdefault(shot.src_ns, []).append(index)
    found = [""] * len(shots)

    def client(ns: str, indexes: list[int]) -> None:
        probes = [[shots[i].target, shots[i].proto, shots[i].port] for i in indexes]
        done = ns_run(ns, [sys.executable, "-c", CLIENT, json.dumps(probes), str(TIMEOUT_S)])
        for i, word in zip(indexes, json.loads(done.stdout), strict=True):
            found[i] = word

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(lambda item: client(*item), by_source.items()))
    return found
