"""Host protection of a dual-stack node in real iptables and ip6tables (issue 13).

Namespaces: a client (10.99.0.2, fd00:99::2) and the node (10.99.0.1, fd00:99::1), whose
bundle is applied with `calicc apply` (address check on, both families): the agent merges the
host endpoint chains into both rules files (contract/host.py `with_host`). The failsafe opens
SSH from the IPv6 management network only; the host policy denies 8080 and 22, allows 8081
from an IPv4 net only (so not in IPv6: no allow-all there) and 8082 from the IPv6 net.
Every IPv6 connection needs neighbour discovery through the protected interface.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import need_tool
from tests.support.bundles import apply, stop_bird, write_tree, writes
from tests.tools.test_host_protection import (
    connects,
    servers,  # noqa: F401 (the fixture)
)

pytestmark = [pytest.mark.root, pytest.mark.tools]
NODE, CLIENT = "10.99.0.1", "10.99.0.2"
NODE6, CLIENT6 = "fd00:99::1", "fd00:99::2"
HOOK = '-m comment --comment "calicc hook" -j'

CLUSTER = """
name: hp6
network_cidr: 10.244.0.0/16
network_cidr_v6: fd00:244::/56
ipip_mode: Never
nodes:
  - {name: node-1, address: 10.99.0.1/24, address_v6: "fd00:99::1/64", labels: {role: worker}}
host_protection:
  interfaces: ["*"]
  failsafe_inbound: [{protocol: tcp, port: 22, net: "fd00:99::/64"}]
  failsafe_outbound: []
  management_networks: ["fd00:99::/64"]
policies: [host.yaml]
"""
POLICIES = """
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: worker-in}
spec:
  order: 10
  selector: role == 'worker'
  types: [Ingress, Egress]
  ingress:
    - {action: Deny, protocol: TCP, destination: {ports: [8080, 22]}}
    - {action: Allow, protocol: TCP, source: {nets: [10.99.0.0/24]}, destination: {ports: [8081]}}
    - {action: Allow, protocol: TCP, source: {nets: ["fd00:99::/64"]}, destination: {ports: [8082]}}
  egress:
    - {action: Allow}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-icmpv6}
spec:
  selector: all()
  preDNAT: true
  applyOnForward: true
  ingress:
    - {action: Deny, protocol: ICMPv6}
"""
# test_host_protection.py's listener, on both families
SERVER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(port))); s.listen(8); sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept(); conn.close()
"""
PORTS = (22, 8080, 8081, 8082)


def wire(make_ns: Callable[[str], str]) -> tuple[str, str]:
    client, node = make_ns("cl6"), make_ns("nd6")
    veth_between(node, "ext0", client, "up0")
    for ns, cmd in [
        (client, f"ip addr add {CLIENT}/24 dev up0"),
        (client, f"ip addr add {CLIENT6}/64 dev up0 nodad"),
        (node, f"ip addr add {NODE}/24 dev ext0"),
        (node, f"ip addr add {NODE6}/64 dev ext0 nodad"),
    ]:
        ns_run(ns, shlex.split(cmd))
    return client, node


def compile_into(tmp_path: Path) -> Path:
    """Compile the cluster; return node-1's bundle in tmp_path/rendered."""
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    (tmp_path / "host.yaml").write_text(POLICIES)
    compiled = compile_cluster(load_cluster(tmp_path / "cluster.yaml"))
    assert compiled.node_manifest("node-1").host is not None
    write_tree(tmp_path / "rendered", compiled.files)
    return tmp_path / "rendered/nodes/node-1"


def test_ipv6_failsafe_passes_denied_port_dropped(
    make_ns: Callable[[str], str],
    tmp_path: Path,
    servers: Callable[[str, Path, tuple[int, ...]], None],  # noqa: F811 (the fixture)
) -> None:
    need_tool("ipset", "iptables-restore", "ip6tables-restore", "ip6tables-save", "ping")
    client, node = wire(make_ns)
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    servers(node, script, PORTS)
    assert all(connects(client, a, p) for a in (NODE, NODE6) for p in PORTS), "open before"
    bundle, root, log = compile_into(tmp_path), tmp_path / "root", tmp_path / "log.json"
    try:
        done = apply(node, bundle, root, log)
        assert done.returncode == 0, done.stdout + done.stderr
        for ns in (client, node):  # neighbours found again through the protected interface
            ns_run(ns, ["ip", "-6", "neigh", "flush", "all"])
        assert connects(client, NODE6, 22), "IPv6 SSH passes the failsafe before the deny"
        assert not connects(client, NODE6, 8080), "the host policy drops tcp 8080 over IPv6"
        assert not connects(client, NODE6, 8081), "an IPv4-only allow allows nothing in IPv6"
        assert connects(client, NODE6, 8082), "the IPv6 allow"
        ping = ns_run(client, ["ping", "-6", "-c", "1", "-W", "1", NODE6], check=False)
        assert ping.returncode != 0, "the pre-DNAT policy denies ICMPv6 echo"
        assert connects(client, NODE, 8081), "the IPv4 allow"
        assert not connects(client, NODE, 22), "the IPv6 failsafe does not open IPv4 SSH"
        assert not connects(client, NODE, 8082), "an IPv6-only allow allows nothing in IPv4"
        saved = ns_run(node, ["ip6tables-save"]).stdout
        assert "-A cali-failsafe-in -s fd00:99::/64 -p tcp" in saved
        assert "--icmpv6-type 135" in saved
        assert f"-A OUTPUT {HOOK} cali-OUTPUT" in saved.splitlines()
        again = apply(node, bundle, root, log, "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads(again.stdout)["changed"] is False
        assert writes(log) == []
    finally:
        stop_bird(root)
