"""Dual-stack and IPv6-only pods through the real plugin (cnitool and the installed launchers) in
throwaway namespaces: both families per pod, ping and ping6 between two pods through the host,
no wait for duplicate address detection, CHECK, and DEL taking both addresses and routes.

The bundle is an example's with an IPv6 pool and block added (tests/support/bundles.py
dual_stack_bundle), as docs/ipv6.md describes what the compiler will write.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_interface
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.install import install_plugins
from calicc.agent.cni.naming import host_veth_name
from calicc.contract.names import CONFLIST
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import need_root, need_tool
from tests.support.bundles import dual_stack_bundle, rendered, role_text
from tests.support.cni import cnitool, run_cnitool

pytestmark = [pytest.mark.root, pytest.mark.tools]
GATEWAY_V6 = "fe80::ecee:eeff:feee:eeee"
BLOCK_V6 = IPv6Network("fd00:10:244::/122")
ADD_BUDGET = 1.0  # seconds; DAD alone would hold the link-locals tentative for 1-2 s


@dataclass
class Node:
    """A node namespace with a dual-stack bundle, the conflist and launchers under `root`."""

    ns: str
    root: Path
    make_ns: Callable[[str], str]

    def cni(self, verb: str, pod_ns: str, pod: str) -> Any:
        return run_cnitool(self.ns, self.root, verb, pod_ns, pod=pod)

    def add(self, pod: str) -> tuple[str, dict[str, Any], float]:
        pod_ns = self.make_ns(pod)
        start = time.monotonic()
        done = self.cni("add", pod_ns, pod)
        took = time.monotonic() - start
        assert done.returncode == 0, done.stdout + done.stderr
        return pod_ns, json.loads(done.stdout), took


def make_node(make_ns: Callable[[str], str], root: Path, ipv4: bool) -> Node:
    need_root()
    need_tool("ping")
    cnitool()
    ns, router = make_ns("node"), make_ns("rtr")
    veth_between(ns, "eth0", router, "down0")  # proxy ARP needs a default route out of eth0
    ns_run(ns, ["ip", "addr", "add", "192.168.49.2/24", "dev", "eth0"])
    ns_run(router, ["ip", "addr", "add", "192.168.49.1/24", "dev", "down0"])
    ns_run(ns, ["ip", "route", "add", "default", "via", "192.168.49.1"])
    # the node's sysctls (the agent applies node.json's): forwarding for both families
    ns_run(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
    bundle = root / "etc/calicc/bundle"
    dual_stack_bundle(rendered("minikube-ipip", "minikube"), bundle, ipv4=ipv4)
    conflist = json.loads(role_text(bundle, CONFLIST))
    path = root / "etc/cni/net.d/10-calicc.conflist"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**conflist, "plugins": conflist["plugins"][:1]}))
    install_plugins(root, sys.executable, idle=0)  # each call a new interpreter: the plain path
    return Node(ns, root, make_ns)


@pytest.fixture
def node(make_ns: Any, tmp_path: Path) -> Node:
    return make_node(make_ns, tmp_path / "root", ipv4=True)


def ips(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(ip["address"], ip["gateway"]) for ip in result["ips"]]


def addresses(ns: str, dev: str) -> list[dict[str, Any]]:
    shown = json.loads(ns_run(ns, ["ip", "-j", "addr", "show", "dev", dev]).stdout)
    return list(shown[0]["addr_info"])


def routes(ns: str, family: str, dev: str) -> list[str]:
    shown = json.loads(ns_run(ns, ["ip", "-j", family, "route", "show", "dev", dev]).stdout)
    return [f"{r['dst']} via {r['gateway']}" if "gateway" in r else r["dst"] for r in shown]


def destinations(ns: str, family: str) -> list[str]:
    shown = json.loads(ns_run(ns, ["ip", "-j", family, "route", "show"]).stdout)
    return [r["dst"] for r in shown]


def ping(pod_ns: str, address: str) -> None:
    """One echo, no retry: the path works at once or the test fails."""
    family = "-6" if ":" in address else "-4"
    done = ns_run(pod_ns, ["ping", family, "-c", "1", "-W", "2", address], check=False)
    assert done.returncode == 0, f"{pod_ns} -> {address}: {done.stdout}{done.stderr}"


def test_two_dual_stack_pods_ping_and_ping6_through_the_host_and_del_takes_both(
    node: Node,
) -> None:
    a_ns, a, a_took = node.add("web-0")
    b_ns, b, b_took = node.add("web-1")
    (a4, gw4), (a6, gw6) = ips(a)
    assert (gw4, gw6) == ("169.254.1.1", GATEWAY_V6)
    assert a4.endswith("/32")
    assert a6.endswith("/128")
    assert IPv6Address(a6[:-4]) in BLOCK_V6
    assert a["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
        {"dst": "::/0", "gw": GATEWAY_V6},
    ]
    b4, b6 = (address for address, _ in ips(b))
    host_a = host_veth_name("default.web-0")

    # no DAD wait: right after ADD no address of either end is tentative, the host veth has
    # its EUI-64 link-local, and the first ping6 goes through
    host_addrs = addresses(node.ns, host_a)
    assert {(x["local"], x.get("tentative", False)) for x in host_addrs} == {(GATEWAY_V6, False)}
    pod_addrs = addresses(a_ns, "eth0")
    assert not [x for x in pod_addrs if x.get("tentative")], pod_addrs
    assert f"{a6[:-4]}/128" in {f"{x['local']}/{x['prefixlen']}" for x in pod_addrs}
    assert routes(a_ns, "-6", "eth0").count(f"default via {GATEWAY_V6}") == 1
    assert f"{a6[:-4]}" in routes(node.ns, "-6", host_a)
    assert max(a_took, b_took) < ADD_BUDGET, (a_took, b_took)

    for source, target in ((a_ns, b4), (a_ns, b6), (b_ns, a4), (b_ns, a6)):
        ping(source, target[: target.index("/")])

    check = node.cni("check", a_ns, "web-0")
    assert check.returncode == 0, check.stdout + check.stderr
    ns_run(node.ns, ["ip", "-6", "route", "del", f"{a6[:-4]}/128", "dev", host_a])
    broken = node.cni("check", a_ns, "web-0")
    assert broken.returncode != 0
    assert f"host route {a6[:-4]}/128 dev {host_a} is missing" in broken.stdout + broken.stderr

    gone = node.cni("del", a_ns, "web-0")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert ns_run(a_ns, ["ip", "link", "show", "eth0"], check=False).returncode != 0
    assert a4[:-3] not in destinations(node.ns, "-4")
    assert a6[:-4] not in destinations(node.ns, "-6")
    assert b6[:-4] in destinations(node.ns, "-6")
    held = json.loads((node.root / "var/lib/calicc/ipam/allocations.json").read_text())
    assert sorted(held["allocations"]) == sorted([b4[:-3], b6[:-4]])
    ping(b_ns, "192.168.49.2")  # the other pod keeps working: the node's address
    ping(b_ns, f"{GATEWAY_V6}%eth0")  # and its gateway, the host veth's link-local


def test_ipv6_only_node_gives_pods_ipv6_alone_and_they_ping6(make_ns: Any, tmp_path: Path) -> None:
    node = make_node(make_ns, tmp_path / "root", ipv4=False)
    a_ns, a, _ = node.add("web-0")
    b_ns, b, _ = node.add("web-1")
    assert [ip_interface(x).version for x, _ in ips(a)] == [6]
    assert a["routes"] == [{"dst": "::/0", "gw": GATEWAY_V6}]
    assert not [x for x in addresses(a_ns, "eth0") if x["family"] == "inet"]
    ping(a_ns, ips(b)[0][0][:-4])
    ping(b_ns, ips(a)[0][0][:-4])
    record = json.loads(
        (
            node.root / "var/lib/calicc/endpoints" / f"{host_veth_name('default.web-0')}.json"
        ).read_text()
    )
    assert record["address"] == record["address_v6"] == ips(a)[0][0][:-4]
    assert IPv4Address("10.244.0.1") not in {ip_interface(x).ip for x, _ in ips(b)}
