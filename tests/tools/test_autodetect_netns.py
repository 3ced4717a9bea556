"""Address autodetection and the address check on real kernels, in throwaway namespaces.

The agent's detection (agent/autodetect.py) runs inside a namespace holding veth
links with addresses of both families (IPv6 without DAD, so none is tentative): first-found
skips link-local and loopback addresses and Calico's excluded interfaces, can-reach follows
the namespace's IPv6 routes (a UDP connect: no packet is sent), and `calicc apply` of a
dual-stack bundle whose IPv6 address is not on the node fails with a clear error and applies
nothing. Unit tests of the same logic: tests/unit/agent/test_autodetect.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.bundles import MakeNs, apply
from tests.tools.test_ipv6_dataplane import DS as DATAPLANE_DS
from tests.tools.test_ipv6_dataplane import write_tree as render_tree

pytestmark = [pytest.mark.root, pytest.mark.tools]

DETECT = """
import json, sys
from pyroute2 import IPRoute
from calicc.agent import AgentError
from calicc.agent.autodetect import detect
out = {}
with IPRoute() as ipr:
    for method, version in json.loads(sys.argv[1]):
        try:
            found = detect(ipr, method, version)
            out[f"{version} {method}"] = f"{found.ifname} {found.address}"
        except AgentError as exc:
            out[f"{version} {method}"] = f"error: {exc}"
print(json.dumps(out))
"""


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip")


def run_detect(ns: str, methods: list[tuple[str, int]]) -> dict[str, str]:
    """Run the agent's detection inside `ns`; return 'version method' -> 'ifname address'."""
    done = ns_run(ns, [sys.executable, "-c", DETECT, json.dumps(methods)])
    return dict(json.loads(done.stdout))


def add(ns: str, name: str, *addresses: str) -> None:
    """Add veth `name` (up, its peer up: both get link-local addresses) with `addresses`
    (IPv6 with nodad). Veths everywhere: this kernel has no dummy module."""
    peer = f"peer{len(ns_run(ns, ['ip', '-o', 'link']).stdout.splitlines())}"
    ns_run(ns, ["ip", "link", "add", name, "type", "veth", "peer", "name", peer])
    ns_run(ns, ["ip", "link", "set", peer, "up"])
    ns_run(ns, ["sysctl", "-qw", f"net/ipv6/conf/{name}/disable_ipv6=0"])
    ns_run(ns, ["ip", "link", "set", name, "up"])
    for address in addresses:
        extra = ["nodad"] if ":" in address else []
        ns_run(ns, ["ip", "addr", "add", address, "dev", name, *extra])


@pytest.fixture
def node(make_ns: MakeNs) -> str:
    """A namespace: eth0 with both families, docker0 and vxlan-v6.calico stand-ins with
    global IPv6, eth1 (and the peers, of higher index) with link-local addresses only."""
    ns = make_ns("ad")
    add(ns, "eth0", "10.30.0.11/24", "fd00:30::11/64")
    add(ns, "docker0", "172.17.0.1/16", "fd00:d0c::1/64")
    add(ns, "vxlan-v6.calico", "fd00:7e::1/64")
    add(ns, "eth1")
    ns_run(ns, ["ip", "-6", "route", "add", "fd00:99::/64", "via", "fd00:30::1", "dev", "eth0"])
    return ns


def test_first_found_v6_skips_link_local_loopback_and_excluded(node: str) -> None:
    links = ns_run(node, ["ip", "-6", "-o", "addr", "show", "dev", "eth1"]).stdout
    assert "fe80::" in links  # eth1 (the highest index) has a link-local address only
    found = run_detect(node, [("first-found", 6), ("first-found", 4)])
    assert found == {"6 first-found": "eth0 fd00:30::11/64", "4 first-found": "eth0 10.30.0.11/24"}


def test_methods_v6_on_a_real_kernel(node: str) -> None:
    methods = [
        ("interface=docker.*", 6),
        ("skip-interface=eth0", 6),
        ("cidr=fd00:7e::/64", 6),
        ("cidr=10.0.0.0/8", 6),
        ("can-reach=fd00:99::5", 6),
        ("can-reach=fd00:30::99", 6),
        ("can-reach=fd00:55::1", 6),
    ]
    found = run_detect(node, methods)
    assert found["6 interface=docker.*"] == "docker0 fd00:d0c::1/64"
    assert found["6 skip-interface=eth0"].startswith("error: ip6_autodetection_method")
    assert found["6 cidr=fd00:7e::/64"] == "vxlan-v6.calico fd00:7e::1/64"
    assert "no IPv6 interface address matches" in found["6 cidr=10.0.0.0/8"]
    assert found["6 can-reach=fd00:99::5"] == "eth0 fd00:30::11/64"  # via its route
    assert found["6 can-reach=fd00:30::99"] == "eth0 fd00:30::11/64"  # on-link
    assert found["6 can-reach=fd00:55::1"].startswith("error: can-reach=fd00:55::1: no IPv6 route")


def test_can_reach_takes_the_route_source(node: str) -> None:
    add(node, "mgmt0", "fd00:31::5/64", "fd00:31::6/64")
    route = ["fd00:98::/64", "dev", "mgmt0", "src", "fd00:31::6"]
    ns_run(node, ["ip", "-6", "route", "add", *route])
    found = run_detect(node, [("can-reach=fd00:98::1", 6), ("first-found", 6)])
    assert found["6 can-reach=fd00:98::1"] == "mgmt0 fd00:31::6/64"
    assert found["6 first-found"] == "mgmt0 fd00:31::6/64"  # newest address of the link first


def test_deprecated_address_is_a_candidate_as_in_calico(node: str) -> None:
    add(node, "eth2", "fd00:32::7/64")
    ns_run(node, ["ip", "addr", "change", "fd00:32::7/64", "dev", "eth2", "preferred_lft", "0"])
    assert "deprecated" in ns_run(node, ["ip", "-6", "addr", "show", "dev", "eth2"]).stdout
    assert run_detect(node, [("first-found", 6)]) == {"6 first-found": "eth2 fd00:32::7/64"}


DS = {**DATAPLANE_DS, "ip6_autodetection_method": "interface=eth0"}  # n1: fd00:30::1/64


def test_apply_refuses_a_node_without_its_ipv6_address(make_ns: MakeNs, tmp_path: Path) -> None:
    need_tool("ip6tables-save", "iptables-save", "ipset")
    _, bundle = render_tree(tmp_path, DS)  # n1's bundle, rendered as a build would
    node = json.loads((bundle / "node.json").read_text())["node"]
    assert node["autodetection_method_v6"] == "interface=eth0"
    ns = make_ns("adap")
    add(ns, "eth0", "10.0.0.1/24", "fd00:30::9/64")
    root, log = tmp_path / "root", tmp_path / "log.json"
    done = apply(ns, bundle, root, log, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["applied"] == []
    assert set(report["failed"]) == {"address"}
    message = report["failed"]["address"]
    assert "detected IPv6 address fd00:30::9/64 (on eth0, method interface=eth0)" in message
    assert "not the address_v6 fd00:30::1/64 the bundle was compiled for" in message
    assert "ip6_autodetection_method" in message
    assert report["skipped"]["routes"] == "because address failed"
    assert "cali" not in ns_run(ns, ["ip6tables-save"]).stdout
    assert "cali" not in ns_run(ns, ["iptables-save"]).stdout
    assert ns_run(ns, ["ipset", "list", "-n"]).stdout.strip() == ""
    assert ns_run(ns, ["ip", "-6", "route", "show", "proto", "81"]).stdout.strip() == ""
    assert not (root / "etc/calicc/bundle").exists()

    ns_run(ns, ["ip", "addr", "add", "fd00:30::1/64", "dev", "eth0", "nodad"])
    again = apply(ns, bundle, root, log, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["applied"][0] == "address"
