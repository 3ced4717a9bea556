"""The calicc CNI plugin driven by a real client (cnitool, built from Debian's source package)
in throwaway namespaces, chained with the reference portmap and bandwidth plugins, both
standalone (no agent) and through the agent's socket server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.install import install_plugins
from calicc.agent.cni.naming import host_veth_name
from calicc.agent.cni.server import socket_path
from calicc.compiler.build import compile_cluster, load_cluster
from calicc.contract.names import CONFLIST
from calicc.lab.netns import ns_delete, ns_run, veth_between
from tests.conftest import EXAMPLES, ROOT, need_root, need_tool
from tests.support.cni import cnitool, run_cnitool, write_bundle
from tests.tools.treekit import role_text

pytestmark = [pytest.mark.root, pytest.mark.tools]
BLOCKS = (IPv4Network("10.244.0.0/26"), IPv4Network("10.244.0.64/26"))
CAPS = {
    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
    "bandwidth": {
        "ingressRate": 1000000,
        "ingressBurst": 100000,
        "egressRate": 1000000,
        "egressBurst": 100000,
    },
}


@dataclass
class Node:
    """A node namespace with an installed bundle, conflist and launchers under `root`."""

    ns: str
    root: Path
    make_ns: Callable[[str], str]

    def cni(self, verb: str, pod_ns: str, pod: str, conf_dir: str = "net.d") -> Any:
        return run_cnitool(self.ns, self.root, verb, pod_ns, pod=pod, caps=CAPS, conf_dir=conf_dir)

    def add(self, pod: str) -> tuple[str, dict[str, Any]]:
        pod_ns = self.make_ns(pod)
        done = self.cni("add", pod_ns, pod)
        assert done.returncode == 0, done.stdout + done.stderr
        return pod_ns, json.loads(done.stdout)


def install(root: Path, ns: str, python: str, idle: int) -> None:
    compiled = compile_cluster(load_cluster(EXAMPLES / "minikube-ipip" / "cluster.yaml"))
    conflist = json.loads(role_text(compiled.files, "minikube", CONFLIST))
    write_bundle(root)
    for conf_dir, plugins in (
        ("net.d", conflist["plugins"]),
        ("single.d", conflist["plugins"][:1]),
    ):
        path = root / "etc/cni" / conf_dir / "10-calicc.conflist"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**conflist, "plugins": plugins}))
    install_plugins(root, python, idle=idle)
    ns_run(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])


# standalone: each call runs the plugin in a new interpreter (launchers installed with idle 0);
# on-demand: the first call starts the CNI server that the later ones reach (no agent)
@pytest.fixture(params=["standalone", "on-demand", "agent"])
def node(request: pytest.FixtureRequest, make_ns: Any, tmp_path: Path) -> Iterator[Node]:
    need_root()
    need_tool("ping", "iptables", "tc")
    cnitool()
    ns, router = make_ns("node"), make_ns("rtr")
    veth_between(ns, "eth0", router, "down0")  # proxy ARP needs a default route out of eth0
    ns_run(ns, ["ip", "addr", "add", "192.168.49.2/24", "dev", "eth0"])
    ns_run(router, ["ip", "addr", "add", "192.168.49.1/24", "dev", "down0"])
    ns_run(ns, ["ip", "route", "add", "default", "via", "192.168.49.1"])
    root = tmp_path / "root"
    # with the agent, the launchers' standalone fallback points nowhere: the agent must answer
    agent = request.param == "agent"
    install(root, ns, "/nonexistent/python" if agent else sys.executable, IDLE[request.param])
    server = None
    if request.param == "agent":
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "calicc.agent.cni.server",
                "--root",
                str(root),
            ],
            cwd=ROOT,
        )
        deadline = time.monotonic() + 20
        while not socket_path(root).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket_path(root).exists()
    try:
        yield Node(ns, root, make_ns)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        ns_delete(ns)  # pods' cali veths go with it


IDLE = {"standalone": 0, "on-demand": 60, "agent": 60}


def allocations(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "var/lib/calicc/ipam/allocations.json").read_text())
    return data["allocations"]


def test_add_wires_pod_like_calico(node: Node) -> None:
    pod_ns, result = node.add("web-0")
    host = host_veth_name("default.web-0")
    assert result["cniVersion"] == "1.0.0"
    assert result["interfaces"][0] == {"name": host, "mac": "ee:ee:ee:ee:ee:ee"}
    assert result["interfaces"][1]["sandbox"] == f"/var/run/netns/{pod_ns}"
    address = IPv4Address(result["ips"][0]["address"].removesuffix("/32"))
    assert any(address in b for b in BLOCKS)
    assert address != IPv4Address("10.244.0.0")  # the tunnel address
    link = json.loads(ns_run(node.ns, ["ip", "-j", "-d", "link", "show", host]).stdout)[0]
    assert (link["address"], link["mtu"], link["operstate"]) == ("ee:ee:ee:ee:ee:ee", 1480, "UP")
    for key in ("conf/{}/proxy_arp", "conf/{}/forwarding", "conf/{}/route_localnet"):
        assert ns_run(node.ns, ["cat", f"/proc/sys/net/ipv4/{key.format(host)}"]).stdout == "1\n"
    delay = ns_run(node.ns, ["cat", f"/proc/sys/net/ipv4/neigh/{host}/proxy_delay"]).stdout
    assert delay == "0\n"
    assert f"{address} dev {host} " in ns_run(node.ns, ["ip", "route"]).stdout
    pod_routes = ns_run(pod_ns, ["ip", "route"]).stdout
    assert "default via 169.254.1.1 dev eth0" in pod_routes
    assert "169.254.1.1 dev eth0" in pod_routes
    assert f"inet {address}/32" in ns_run(pod_ns, ["ip", "addr", "show", "eth0"]).stdout
    # the chained reference plugins worked from our prevResult
    assert "CNI-HOSTPORT-DNAT" in ns_run(node.ns, ["iptables", "-t", "nat", "-S"]).stdout
    assert "tbf" in ns_run(node.ns, ["tc", "qdisc", "show", "dev", host]).stdout


def test_two_pods_reach_each_other_through_proxy_arp(node: Node) -> None:
    pod_a, _ = node.add("web-0")
    _, result_b = node.add("web-1")
    address_b = result_b["ips"][0]["address"].removesuffix("/32")
    ping = ns_run(pod_a, ["ping", "-c", "1", "-W", "2", address_b], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    neigh = ns_run(pod_a, ["ip", "neigh", "show", "169.254.1.1"]).stdout
    assert "ee:ee:ee:ee:ee:ee" in neigh


def test_add_twice_returns_the_same_address(node: Node) -> None:
    # calicc alone: the reference bandwidth plugin itself fails a second ADD (its ifb exists)
    pod_ns = node.make_ns("web-0")
    first = json.loads(node.cni("add", pod_ns, "web-0", "single.d").stdout)
    again = node.cni("add", pod_ns, "web-0", "single.d")
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["ips"] == first["ips"]
    assert len(allocations(node.root)) == 1


def test_check_reports_drift(node: Node) -> None:
    # calicc alone: reference portmap 1.1.1 CHECK fails for IPv4-only pods when ip6tables works,
    # and bandwidth 1.1.1 CHECK panics without bandwidth runtimeConfig
    pod_ns = node.make_ns("web-0")
    assert node.cni("add", pod_ns, "web-0", "single.d").returncode == 0
    assert node.cni("check", pod_ns, "web-0", "single.d").returncode == 0
    ns_run(pod_ns, ["ip", "route", "del", "default"])
    failed = node.cni("check", pod_ns, "web-0", "single.d")
    assert failed.returncode != 0
    assert "route 0.0.0.0/0 via 169.254.1.1 on eth0 is missing" in failed.stderr + failed.stdout


def test_del_releases_and_is_idempotent_even_without_netns(node: Node) -> None:
    pod_ns, _ = node.add("web-0")
    host = host_veth_name("default.web-0")
    done = node.cni("del", pod_ns, "web-0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert allocations(node.root) == {}
    assert ns_run(node.ns, ["ip", "link", "show", host], check=False).returncode != 0
    assert node.cni("del", pod_ns, "web-0").returncode == 0
    ns_delete(pod_ns)
    gone = node.cni("del", pod_ns, "web-0")
    assert gone.returncode == 0, gone.stdout + gone.stderr


def test_exhaustion_is_a_cni_error_naming_the_node(node: Node) -> None:
    data = json.loads((node.root / "etc/calicc/bundle/node.json").read_text())
    data["blocks"] = [{"cidr": "10.244.0.0/31", "pool": data["blocks"][0]["pool"]}]
    (node.root / "etc/calicc/bundle/node.json").write_text(json.dumps(data))
    node.add("web-0")  # 10.244.0.1; 10.244.0.0 is the tunnel address
    pod_ns = node.make_ns("web-1")
    failed = node.cni("add", pod_ns, "web-1")
    assert failed.returncode != 0
    assert "node minikube has no free pod address" in failed.stdout + failed.stderr
    assert "10.244.0.0/31" in failed.stdout + failed.stderr
