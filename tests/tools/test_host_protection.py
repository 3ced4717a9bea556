"""Behaviour: host protection's rendered rules, merged as the agent merges them, in real iptables.

Namespaces: a client (10.99.0.2), the node (10.99.0.1, forwarding, node-1's bundle applied
with `calicc apply`: the agent merges the host endpoint chains of contract/host.py `with_host`
into the rules) and a backend behind the node (10.98.0.2). The node's interfaces are
all host endpoints ("*"); failsafes are narrowed to SSH's port 22 only.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import need_tool
from tests.support.bundles import apply, stop_bird, write_tree

pytestmark = [pytest.mark.root, pytest.mark.tools]
NODE, CLIENT, BACKEND = "10.99.0.1", "10.99.0.2", "10.98.0.2"

CLUSTER = """
name: hp
network_cidr: 10.244.0.0/16
ipip_mode: Never
nodes:
  - {name: node-1, address: 10.99.0.1/24, labels: {role: worker}}
host_protection:
  interfaces: ["*"]
  failsafe_inbound: [{protocol: tcp, port: 22}]
  failsafe_outbound: []
policies: [host.yaml]
"""
POLICIES = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: deny-8080}
spec:
  order: 10
  selector: role == 'worker'
  types: [Ingress, Egress]
  ingress:
    - {action: Deny, protocol: TCP, destination: {ports: [8080, 22]}}
    - {action: Allow}
  egress:
    - {action: Allow}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: close-nodeport}
spec:
  selector: all()
  preDNAT: true
  applyOnForward: true
  ingress:
    - {action: Deny, protocol: TCP, destination: {ports: [30080]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: forward-guard}
spec:
  order: 20
  selector: all()
  applyOnForward: true
  ingress:
    - {action: Deny, protocol: TCP, destination: {ports: [9090]}}
    - {action: Allow}
"""
SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port))); s.listen(8); sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept(); conn.close()
"""


def wire(make_ns: Callable[[str], str]) -> tuple[str, str, str]:
    client, node, backend = make_ns("cl"), make_ns("nd"), make_ns("be")
    veth_between(node, "ext0", client, "up0")
    veth_between(node, "int0", backend, "eth0")
    for ns, cmd in [
        (client, f"ip addr add {CLIENT}/24 dev up0"),
        (client, f"ip route add 10.98.0.0/24 via {NODE}"),
        (node, f"ip addr add {NODE}/24 dev ext0"),
        (node, "ip addr add 10.98.0.1/24 dev int0"),
        (node, "sysctl -qw net.ipv4.ip_forward=1"),
        (backend, f"ip addr add {BACKEND}/24 dev eth0"),
        (backend, "ip route add default via 10.98.0.1"),
        # a NodePort as kube-proxy would DNAT it: 30080 and 30081 on the node to the backend
        (node, f"iptables -t nat -A PREROUTING -p tcp --dport 30080 -j DNAT --to {BACKEND}:8080"),
        (node, f"iptables -t nat -A PREROUTING -p tcp --dport 30081 -j DNAT --to {BACKEND}:8081"),
    ]:
        ns_run(ns, shlex.split(cmd))
    return client, node, backend


@pytest.fixture
def servers() -> Iterator[Callable[[str, Path, tuple[int, ...]], None]]:
    """Start TCP listeners inside namespaces; stop exactly those processes afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(ns: str, script: Path, ports: tuple[int, ...]) -> None:
        cmd = ["ip", "netns", "exec", ns, sys.executable, str(script), *map(str, ports)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def connects(client: str, address: str, port: int) -> bool:
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1.5)"
    return ns_run(client, [sys.executable, "-c", code], check=False).returncode == 0


def install(node: str, tmp_path: Path) -> None:
    """Compile the cluster and apply node-1's bundle with `calicc apply`, as a node does."""
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "host.yaml").write_text(POLICIES)
    compiled = compile_cluster(load_cluster(tmp_path / "cluster.yaml"))
    assert compiled.node_manifest("node-1").host is not None
    write_tree(tmp_path / "rendered", compiled.files)
    root = tmp_path / "root"
    try:
        done = apply(
            node,
            tmp_path / "rendered/nodes/node-1",
            root,
            tmp_path / "log.json",
            "--skip-address-check",
        )
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        stop_bird(root)


def test_host_policy_failsafe_prednat_and_forward(
    make_ns: Callable[[str], str],
    tmp_path: Path,
    servers: Callable[[str, Path, tuple[int, ...]], None],
) -> None:
    need_tool("ipset", "iptables-restore", "iptables")
    client, node, backend = wire(make_ns)
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    servers(node, script, (22, 8080, 8081))
    servers(backend, script, (8080, 8081, 9090))
    before = {p: connects(client, NODE, p) for p in (22, 8080, 8081, 30080, 30081)}
    assert all(before.values()), f"everything is open before host protection: {before}"
    assert connects(client, BACKEND, 9090)
    install(node, tmp_path)
    assert not connects(client, NODE, 8080), "the host policy denies tcp 8080 to the node"
    assert connects(client, NODE, 8081), "what the host policy allows stays open"
    assert connects(client, NODE, 22), "tcp 22 passes through the failsafe before the deny"
    assert not connects(client, NODE, 30080), "pre-DNAT deny closes the NodePort"
    assert connects(client, NODE, 30081), "another NodePort DNAT still reaches the backend"
    assert not connects(client, BACKEND, 9090), "applyOnForward policy polices forwarded traffic"
    assert connects(client, BACKEND, 8080), "deny-8080 is not applyOnForward: forwarding passes"
    assert connects(client, BACKEND, 8081)
