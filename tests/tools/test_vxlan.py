"""Pod packets really crossing between node namespaces over the rendered VXLAN state.

Topology, all in scratch namespaces: a switch namespace with one bridge that also routes
between two node subnets (10.30.1.0/24 and 10.30.2.0/24); three node namespaces (eth0 on the
bridge, default route via the switch, as a pod's proxy ARP needs); a pod namespace per node,
wired as the CNI plugin will (veth, /32, default via 169.254.1.1, host side proxy_arp with
MAC ee:ee:ee:ee:ee:ee and a /32 route). Each node runs the cluster part's routes.sh with its
name (`routes.sh NODE`, the node table in CALICC_CLUSTER_DIR) and applies the shared sysctl file
its node.json names; nothing else programs routes, neighbours or FDB entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from calicc.compiler.build import Compiled, compile_cluster
from calicc.contract.names import SYSCTL_FILE
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import need_tool
from tests.support.clusters import load, with_
from tests.tools.routeskit import run_routes, shared_text, write_cluster_part

pytestmark = [pytest.mark.root, pytest.mark.tools]

MakeNs = Callable[[str], str]
NODES = [
    {"name": "a1", "address": "10.30.1.11/24"},
    {"name": "a2", "address": "10.30.1.12/24"},
    {"name": "b1", "address": "10.30.2.11/24"},
]
GATEWAYS = ("10.30.1.1/24", "10.30.2.1/24")


@dataclass(frozen=True)
class LabNode:
    """A node namespace and its one pod."""

    ns: str
    pod_ns: str
    pod_ip: IPv4Address


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "bridge", "bash", "ping", "sysctl")


def _switch(make_ns: MakeNs) -> str:
    sw = make_ns("sw")
    ns_run(sw, ["ip", "link", "add", "br0", "type", "bridge"])
    ns_run(sw, ["ip", "link", "set", "br0", "up"])
    for gateway in GATEWAYS:
        ns_run(sw, ["ip", "addr", "add", gateway, "dev", "br0"])
    ns_run(sw, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    return sw


def _pod(make_ns: MakeNs, ns: str, name: str, ip: IPv4Address, mtu: int) -> str:
    pod = make_ns(f"{name}-pod")
    veth_between(ns, "calipod0", pod, "podeth0")  # the node already has an eth0
    ns_run(pod, ["ip", "link", "set", "podeth0", "down", "name", "eth0"])
    ns_run(pod, ["ip", "link", "set", "eth0", "up"])
    ns_run(pod, ["ip", "link", "set", "eth0", "mtu", str(mtu)])
    ns_run(pod, ["ip", "addr", "add", f"{ip}/32", "dev", "eth0"])
    ns_run(pod, ["ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"])
    ns_run(pod, ["ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"])
    ns_run(ns, ["ip", "link", "set", "calipod0", "address", "ee:ee:ee:ee:ee:ee", "mtu", str(mtu)])
    ns_run(ns, ["sysctl", "-qw", "net/ipv4/conf/calipod0/proxy_arp=1"])
    ns_run(ns, ["sysctl", "-qw", "net/ipv4/neigh/calipod0/proxy_delay=0"])
    ns_run(ns, ["ip", "route", "add", f"{ip}/32", "dev", "calipod0", "scope", "link"])
    return pod


def _node(make_ns: MakeNs, sw: str, compiled: Compiled, name: str, tmp_path: Path) -> LabNode:
    node = compiled.plan.node(name)
    ns = make_ns(name)
    veth_between(sw, f"p-{name}", ns, "eth0")
    ns_run(sw, ["ip", "link", "set", f"p-{name}", "master", "br0"])
    ns_run(ns, ["ip", "addr", "add", str(node.address), "dev", "eth0"])
    gateway = next(IPv4Interface(g).ip for g in GATEWAYS if IPv4Interface(g).network == node.subnet)
    ns_run(ns, ["ip", "route", "add", "default", "via", str(gateway)])
    run_routes(ns, write_cluster_part(compiled, tmp_path / name), name)
    sysctl = tmp_path / name / "99-calicc.conf"
    sysctl.write_text(shared_text(compiled, name, SYSCTL_FILE))
    result = ns_run(ns, ["sysctl", "-p", str(sysctl)], False)
    assert result.returncode == 0, result.stderr
    pod_ip = node.blocks[0].cidr.network_address + 5
    return LabNode(ns, _pod(make_ns, ns, name, pod_ip, node.pod_mtu), pod_ip)


def build_lab(make_ns: MakeNs, compiled: Compiled, tmp_path: Path) -> dict[str, LabNode]:
    sw = _switch(make_ns)
    return {n.name: _node(make_ns, sw, compiled, n.name, tmp_path) for n in compiled.plan.nodes}


def compiled_with(tmp_path: Path, mode: str) -> Compiled:
    """Compile the three-node cluster with VXLAN in `mode` (and no IPIP)."""
    return compile_cluster(load(tmp_path, with_(ipip_mode="Never", vxlan_mode=mode, nodes=NODES)))


def ping(src: LabNode, dst: LabNode, *extra: str) -> bool:
    args = ["ping", "-c", "2", "-i", "0.2", "-W", "2", *extra, str(dst.pod_ip)]
    return ns_run(src.pod_ns, args, check=False).returncode == 0


def vxlan_tx(node: LabNode) -> int:
    path = "/sys/class/net/vxlan.calico/statistics/tx_packets"
    return int(ns_run(node.ns, ["cat", path]).stdout)


def test_vxlan_always_pods_reach_each_other_through_vxlan(tmp_path: Path, make_ns: MakeNs) -> None:
    compiled = compiled_with(tmp_path, "Always")
    lab = build_lab(make_ns, compiled, tmp_path)
    for src in lab.values():
        for dst in lab.values():
            if src is dst:
                continue
            before = vxlan_tx(src)
            assert ping(src, dst), f"{src.pod_ns} -> {dst.pod_ip}"
            assert vxlan_tx(src) > before


def test_vxlan_full_size_packet_fits_the_pod_mtu(tmp_path: Path, make_ns: MakeNs) -> None:
    compiled = compiled_with(tmp_path, "Always")
    lab = build_lab(make_ns, compiled, tmp_path)
    payload = compiled.plan.node("a1").pod_mtu - 28  # IPv4 + ICMP headers
    assert payload == 1422
    assert ping(lab["a1"], lab["b1"], "-M", "do", "-s", str(payload))


def test_crosssubnet_is_direct_in_subnet_and_vxlan_across(tmp_path: Path, make_ns: MakeNs) -> None:
    lab = build_lab(make_ns, compiled_with(tmp_path, "CrossSubnet"), tmp_path)
    a1 = lab["a1"]
    before = vxlan_tx(a1)
    assert ping(a1, lab["a2"])
    assert vxlan_tx(a1) == before  # same subnet: no encapsulation
    assert ping(a1, lab["b1"])
    assert vxlan_tx(a1) > before
    assert ping(lab["b1"], lab["a2"])


def test_without_the_routes_script_pods_cannot_reach_each_other(
    tmp_path: Path, make_ns: MakeNs
) -> None:
    compiled = compiled_with(tmp_path, "Always")
    lab = build_lab(make_ns, compiled, tmp_path)
    ns_run(lab["b1"].ns, ["ip", "link", "delete", "vxlan.calico"])
    assert not ping(lab["a1"], lab["b1"])
