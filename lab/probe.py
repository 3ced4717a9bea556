"""Probes run inside lab namespaces: ping, and a UDP listener that reports each sender's address.

Both take either family: `ping` (iputils) pings an IPv6 target as ping6 does, and the listener
and sender open an IPv6 socket for an IPv6 address.

The listener lives in the external namespace for the duration of one check; it is this
process's child, stopped by its PID. Each datagram's payload names the probe, so the address
the external side saw can be matched to the pod that sent it (NAT or not).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calicc.lab.netns import ns_run
from calicc.lab.procs import stop_pid
from calicc.lab.wait import WaitTimeout, poll

LISTEN_PORT = 50053
WAIT_S = 5.0

LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
out = open(sys.argv[3], "a")
print("ready", file=out, flush=True)
while True:
    data, peer = s.recvfrom(256)
    print(data.decode(errors="replace"), peer[0], file=out, flush=True)
"""

SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
"""


def ping(ns: str, target: str, size: int | None = None, dont_fragment: bool = False) -> bool:
    """Return whether one ping from namespace `ns` to `target` is answered within 2 s."""
    args = ["ping", "-n", "-q", "-c", "1", "-W", "2"]
    if size is not None:
        args += ["-s", str(size)]
    if dont_fragment:
        args += ["-M", "do"]
    return ns_run(ns, [*args, target], check=False).returncode == 0


def ping_retry(ns: str, target: str, tries: int = 3) -> bool:
    """Return whether any of `tries` pings is answered (the first may wait for ARP)."""
    return any(ping(ns, target) for _ in range(tries))


class UdpListener:
    """A running listener: where it writes what it heard."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def heard(self) -> dict[str, str]:
        """Return {probe tag: sender address} of every datagram received so far."""
        seen = {}
        for line in self.log.read_text().splitlines()[1:]:
            tag, _, sender = line.rpartition(" ")
            seen[tag] = sender
        return seen

    def wait_for(self, tag: str, timeout: float = WAIT_S) -> str | None:
        """Return the sender address of probe `tag`, or None if it never arrived."""
        try:
            return poll(lambda: self.heard().get(tag), timeout, f"datagram {tag}")
        except WaitTimeout:
            return None


@contextmanager
def udp_listener(ns: str, address: str, log: Path) -> Iterator[UdpListener]:
    """Run a UDP listener on `address` in namespace `ns` while the block runs."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    args = [sys.executable, "-c", LISTENER, address, str(LISTEN_PORT), str(log)]
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], start_new_session=True)
    try:
        poll(lambda: log.read_text().startswith("ready") or proc.poll() is not None, WAIT_S, "ear")
        if proc.poll() is not None:
            raise RuntimeError(f"the UDP listener in {ns} exited ({proc.returncode})")
        yield UdpListener(log)
    finally:
        stop_pid(proc.pid, must_contain=str(log))
        proc.wait()


def send_udp(ns: str, address: str, tag: str) -> None:
    """Send three datagrams carrying `tag` from namespace `ns` to the listener at `address`."""
    ns_run(ns, [sys.executable, "-c", SENDER, address, str(LISTEN_PORT), tag], check=False)
