"""lab/reach_probe.py with real packets between two test namespaces: what each probe word
means (connected, no answer, refused), and ports that cannot be served."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from calicc.lab.netns import ns_run, veth_between
from calicc.lab.reach_probe import CONNECTED, NO_ANSWER, REFUSED, Shot, fire, servers
from tests.conftest import need_tool

pytestmark = [pytest.mark.root, pytest.mark.tools]
MakeNs = Callable[[str], str]
SERVER_IP, CLIENT_IP = "10.99.0.2", "10.99.0.1"


@pytest.fixture
def pair(make_ns: MakeNs) -> tuple[str, str]:
    need_tool("ip", "iptables", "ping")
    client, server = make_ns("rpc"), make_ns("rps")
    veth_between(client, "rp0", server, "rp1")
    ns_run(client, ["ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "rp0"])
    ns_run(server, ["ip", "addr", "add", f"{SERVER_IP}/24", "dev", "rp1"])
    return client, server


def test_each_word_says_what_the_packets_did(pair: tuple[str, str], tmp_path: Path) -> None:
    client, server = pair
    wanted = {server: {("tcp", 8080), ("udp", 5353), ("tcp", 8443)}}
    shots = [
        Shot(client, SERVER_IP, "tcp", 8080),
        Shot(client, SERVER_IP, "udp", 5353),
        Shot(client, SERVER_IP, "icmp", None),
        Shot(client, SERVER_IP, "tcp", 9999),  # nothing listens: the kernel resets
        Shot(client, SERVER_IP, "tcp", 8443),
    ]
    with servers(wanted, tmp_path) as unserved:
        assert unserved == {}
        assert fire(shots) == [CONNECTED, CONNECTED, CONNECTED, REFUSED, CONNECTED]
        drop = ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP"]
        ns_run(server, drop)
        ns_run(server, ["iptables", "-I", "INPUT", "-p", "udp", "--dport", "5353", "-j", "DROP"])
        ns_run(server, ["iptables", "-I", "INPUT", "-p", "icmp", "-j", "DROP"])
        reject = ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "8443", "-j", "REJECT"]
        ns_run(server, reject)
        assert fire(shots) == [NO_ANSWER, NO_ANSWER, NO_ANSWER, REFUSED, REFUSED]


def test_a_port_another_process_holds_is_reported_not_served(
    pair: tuple[str, str], tmp_path: Path
) -> None:
    _, server = pair
    holder = "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 7000))\n"
    holder += "s.listen()\nt = socket.socket(socket.AF_INET6)\n"
    holder += "t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\nt.bind(('::', 7000))\n"
    holder += "t.listen()\nprint('held', flush=True)\ntime.sleep(60)\n"
    args = ["ip", "netns", "exec", server, sys.executable, "-c", holder]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "held"
            with servers({server: {("tcp", 7000), ("udp", 7000)}}, tmp_path) as unserved:
                assert list(unserved) == [(server, "tcp", 7000)]
                assert "in use" in unserved[(server, "tcp", 7000)]
        finally:
            proc.kill()
