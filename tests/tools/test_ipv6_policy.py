"""IPv6 NetworkPolicy for real (issue 13): a dual-stack node namespace applied by `calicc apply`,
three dual-stack pods wired by the real CNI plugin (cnitool), ping6 and TCP over IPv6 between
them as each policy says, IPv4 as its own; pod selectors filling the cali60s: twins, IPv6
ipBlocks, and neighbour discovery under a policy that denies all ingress and all egress but
the node. Every change is a new rendered tree applied by the agent, which reconciles both
families' endpoint chains and sets from the CNI plugin's records.

The build still refuses some IPv6 trees (compiler/build.py), so the tree is planned and rendered
directly, as tests/tools/test_ipv6_dataplane.py does. One node, no BGP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.install import install_plugins
from calicc.agent.cni.naming import host_veth_name
from calicc.compiler.render import render_cluster, render_node
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.bundles import MakeNs, apply, stop_bird
from tests.support.cni import cni_server, cnitool, labelled_pod
from tests.support.poll import wait_for
from tests.unit.compiler.test_ipv6_policy import DS
from tests.unit.compiler.test_ipv6_policy import netpol as policy_of
from tests.unit.compiler.test_ipv6_policy import plan as plan_of

pytestmark = [pytest.mark.root, pytest.mark.tools]
CLUSTER = DS  # n1: 10.0.0.1/24 and fd00:30::1/64, policies from policies.yaml
NODE_V6 = "fd00:30::1"
PORT = 8080


def netpol(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return policy_of(name, app, "default", **spec)


@dataclass
class Pod:
    name: str
    ns: str
    v4: str
    v6: str

    @property
    def iface(self) -> str:
        return host_veth_name(f"default.{self.name}")


@dataclass
class Node:
    ns: str
    root: Path
    work: Path
    applies: int = 0

    def apply(self, *policies: dict[str, Any]) -> None:
        """Render the cluster with `policies` and apply n1's bundle with the agent."""
        self.applies += 1
        tree = self.work / f"tree{self.applies}"
        tree.mkdir()
        cluster = CLUSTER if policies else {k: v for k, v in CLUSTER.items() if k != "policies"}
        plan = plan_of(tree, cluster, *policies)
        files = dict(render_cluster(plan))
        files |= {f"nodes/n1/{k}": v for k, v in render_node(plan, plan.node("n1")).items()}
        for rel, text in files.items():
            (tree / "rendered" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / "rendered" / rel).write_text(text, encoding="utf-8")
        done = apply(self.ns, tree / "rendered/nodes/n1", self.root, self.work / "log.json")
        assert done.returncode == 0, done.stderr + done.stdout
        conflist = self.root / "etc/cni/net.d/10-calicc.conflist"
        data = json.loads(conflist.read_text())
        conflist.write_text(json.dumps({**data, "plugins": data["plugins"][:1]}))
        self.standalone()

    def standalone(self) -> None:
        """Put back the launchers that run the plugin on its own (no CNI server).

        The agent's apply installs launchers that start an on-demand server, which writes
        ip6tables after answering; these tests read ip6tables right after each ADD and DEL.
        """
        install_plugins(self.root, sys.executable, idle=0)

    def add(self, pod_ns: str, app: str) -> Pod:
        """ADD a pod (named as its namespace, as labelled_pod does) labelled app=`app`."""
        result = labelled_pod(
            self.ns, self.root, "add", pod_ns, namespace="default", labels={"app": app}
        )
        by_family = {":" in ip["address"]: ip["address"].split("/")[0] for ip in result["ips"]}
        return Pod(pod_ns, pod_ns, by_family[False], by_family[True])


def reaches(source: Pod, address: str) -> bool:
    """One echo, two seconds: a dropped packet gets no reply."""
    family = "-6" if ":" in address else "-4"
    args = ["ping", family, "-n", "-q", "-c", "1", "-W", "2", address]
    return ns_run(source.ns, args, check=False).returncode == 0


@pytest.fixture
def node(make_ns: MakeNs, tmp_path: Path) -> Iterator[Node]:
    need_tool("ip", "ping", "ipset", "ip6tables-restore", "iptables-restore")
    cnitool()
    ns = make_ns("v6pol")
    ns_run(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"])
    for cmd in (
        ["ip", "link", "set", "peer0", "up"],
        ["ip", "link", "set", "eth0", "up"],
        ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"],
        ["ip", "-6", "addr", "add", f"{NODE_V6}/64", "dev", "eth0", "nodad"],
        ["ip", "route", "add", "default", "via", "10.0.0.254"],  # proxy ARP needs one
    ):
        ns_run(ns, cmd)
    root = tmp_path / "root"
    found = Node(ns, root, tmp_path)
    found.apply()
    yield found
    stop_bird(root)


@pytest.fixture
def pods(node: Node, make_ns: MakeNs) -> dict[str, Pod]:
    return {app: node.add(make_ns(f"p{app}"), app) for app in ("a", "b", "c")}


def members(node: Node, name: str) -> list[str]:
    listed = ns_run(node.ns, ["ipset", "list", name]).stdout
    return listed.split("Members:\n", 1)[1].split()


def set_named(node: Node, prefix: str) -> list[str]:
    names = ns_run(node.ns, ["ipset", "list", "-n"]).stdout.split()
    return [n for n in names if n.startswith(prefix)]


@pytest.fixture
def listener(pods: dict[str, Pod]) -> Iterator[None]:
    """A TCP listener on pod a's IPv6 address (our process, stopped by PID)."""
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET6)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('{pods['a'].v6}', {PORT})); s.listen(16)\n"
        "while True:\n"
        "    c, _ = s.accept(); c.sendall(b'ok'); c.close()\n"
    )
    args = ["ip", "netns", "exec", pods["a"].ns, sys.executable, "-c", code]
    proc = subprocess.Popen(args)
    time.sleep(0.5)
    yield
    proc.terminate()
    proc.wait(10)


def tcp(source: Pod, address: str) -> bool:
    code = (
        "import socket, sys\n"
        "try:\n"
        f"    c = socket.create_connection(('{address}', {PORT}), timeout=2)\n"
        "    sys.exit(0 if c.recv(2) == b'ok' else 1)\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    return ns_run(source.ns, [sys.executable, "-c", code], check=False).returncode == 0


def test_ipv6_policy_end_to_end(node: Node, pods: dict[str, Pod], listener: None) -> None:
    a, b, c = pods["a"], pods["b"], pods["c"]
    saved = ns_run(node.ns, ["ip6tables-save", "-t", "filter"]).stdout
    assert f"-A cali-to-wl-dispatch -o {a.iface} -g cali-tw-{a.iface}" in saved
    # no policy: both families open
    for source, target in ((b, a.v6), (b, a.v4), (a, b.v6), (c, a.v6)):
        assert reaches(source, target), f"{source.name} -> {target}: no policy selects it"
    assert tcp(b, a.v6)

    # ingress of a only from an IPv4 ipBlock: IPv4 as it says, IPv6 all denied
    node.apply(netpol("v4-only", "a", ingress=[{"from": [{"ipBlock": {"cidr": "10.244.0.0/16"}}]}]))
    assert reaches(b, a.v4), "the IPv4 block allows b's IPv4 address"
    assert not reaches(b, a.v6), "an IPv4-only rule allows no IPv6 source"
    assert not tcp(b, a.v6)
    assert reaches(a, b.v6), "a's egress is not selected: open"

    # ingress of a from pods app=b: b's IPv6 address is in the cali60s: twin
    node.apply(
        netpol(
            "from-b",
            "a",
            ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}]}],
        )
    )
    (twin,) = set_named(node, "cali60s:")
    held = members(node, twin)
    assert b.v6 in held
    assert a.v6 not in held
    assert c.v6 not in held
    assert "family inet6" in ns_run(node.ns, ["ipset", "list", "-t", twin]).stdout
    assert reaches(b, a.v6)
    assert tcp(b, a.v6)
    assert not reaches(c, a.v6), "c is not app=b"
    assert not tcp(c, a.v6)
    assert reaches(b, a.v4)
    assert not reaches(c, a.v4)

    # ingress of a from the IPv6 pool except b: c in, b out
    block = {"cidr": "fd00:244::/56", "except": [f"{b.v6}/128"]}
    node.apply(netpol("v6-block", "a", ingress=[{"from": [{"ipBlock": block}]}]))
    assert reaches(c, a.v6)
    assert tcp(c, a.v6)
    assert not reaches(b, a.v6), "the except carves b out"
    assert not reaches(c, a.v4), "an IPv6 block allows no IPv4 source"


def test_neighbour_discovery_under_deny_all(node: Node, pods: dict[str, Pod]) -> None:
    """All ingress denied and egress only to the node's subnet: the pod still resolves its
    gateway (neighbour solicitation to fe80::ecee:eeff:feee:eeee) and answers the host's, with
    both neighbour caches flushed first, so the ping needs neighbour discovery to work."""
    a, b = pods["a"], pods["b"]
    node.apply(
        netpol(
            "locked",
            "a",
            policyTypes=["Ingress", "Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "fd00:30::/64"}}]}],
        )
    )
    for ns, dev in ((a.ns, "eth0"), (node.ns, a.iface)):
        ns_run(ns, ["ip", "-6", "neigh", "flush", "dev", dev])
    assert reaches(a, NODE_V6), "egress to the node is allowed: ND must get the gateway"
    neighbours = ns_run(a.ns, ["ip", "-6", "neigh", "show", "dev", "eth0"]).stdout
    assert "fe80::ecee:eeff:feee:eeee" in neighbours
    assert "FAILED" not in neighbours
    assert not reaches(a, b.v6), "egress to another pod is denied"
    assert not reaches(b, a.v6), "ingress is denied"
    assert not reaches(a, b.v4), "IPv4 egress: no IPv4 peer is allowed"
    saved = ns_run(node.ns, ["ip6tables-save", "-t", "filter"]).stdout
    assert f"-A cali-fw-{a.iface} -p ipv6-icmp -m icmp6 --icmpv6-type 135" in saved
    assert "icmp6" not in ns_run(node.ns, ["iptables-save", "-t", "filter"]).stdout


def test_del_removes_ipv6_chains_and_memberships(
    node: Node, pods: dict[str, Pod], make_ns: MakeNs
) -> None:
    a, b = pods["a"], pods["b"]
    node.apply(
        netpol("from-b", "a", ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}]}])
    )
    (twin,) = set_named(node, "cali60s:")
    assert b.v6 in members(node, twin)
    labelled_pod(node.ns, node.root, "del", b.ns, namespace="default", labels={"app": "b"})
    assert b.v6 not in members(node, twin)
    saved6 = ns_run(node.ns, ["ip6tables-save", "-t", "filter"]).stdout
    assert b.iface not in saved6
    assert a.iface in saved6
    again = apply(node.ns, node.work / "tree2/rendered/nodes/n1", node.root, node.work / "l2")
    assert again.returncode == 0, again.stderr + again.stdout
    assert "ip6tables" not in again.stdout, "nothing to change: the DEL left the desired state"
    node.standalone()
    late = node.add(make_ns("pb2"), "b")  # ADD under the policy: the plugin fills the twin
    assert late.v6 in members(node, twin)
    assert reaches(late, a.v6)
    assert not reaches(pods["c"], a.v6)


def test_agent_server_writes_ipv6_chains_right_after_the_answer(
    node: Node, make_ns: MakeNs
) -> None:
    """Through the agent's CNI server the ip6tables write follows the answer (in order, on a
    writer thread); the pod's IPv6 set memberships are in place at once."""
    node.apply(
        netpol("from-b", "a", ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}]}])
    )
    with cni_server(node.ns, node.root):
        a, b = node.add(make_ns("sa"), "a"), node.add(make_ns("sb"), "b")
        (twin,) = set_named(node, "cali60s:")
        assert b.v6 in members(node, twin)

        def saved6() -> str:
            return ns_run(node.ns, ["ip6tables-save", "-t", "filter"]).stdout

        wait_for(lambda: f"-g cali-tw-{a.iface}" in saved6(), "a's ip6tables chains", 5)
        wait_for(lambda: f"-g cali-tw-{b.iface}" in saved6(), "b's ip6tables chains", 5)
        assert reaches(b, a.v6)
        assert reaches(a, b.v6), "b has no policy: open"
        labelled_pod(node.ns, node.root, "del", a.ns, namespace="default", labels={"app": "a"})
        wait_for(lambda: a.iface not in saved6(), "a's ip6tables chains gone", 5)
        assert f"-g cali-tw-{b.iface}" in saved6()
