"""VXLAN over IPv6 and IPv6-only nodes for real, in throwaway namespaces.

Two node namespaces joined by one veth that carries IPv6 only (no IPv4 address anywhere): an
IPv6-only cluster whose pool uses VXLAN, so each node gets vxlan-v6.calico and reaches the
other's blocks through it. A packet between two addresses of the nodes' blocks (each on the
node's lo, standing in for a pod) must cross the tunnel: encapsulated in UDP between the nodes'
IPv6 addresses. Programmed once by the cluster part's routes.sh (`routes.sh NODE`), once by
`calicc apply` (the agent) from the built tree.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import Compiled, build, compile_cluster
from calicc.contract.names import VXLAN_DEVICE, VXLAN_V6_DEVICE
from calicc.lab.netns import ns_run, veth_between
from tests.conftest import need_tool
from tests.support.bundles import apply
from tests.support.clusters import load
from tests.tools.routeskit import (
    kernel_form,
    owned_routes,
    run_routes,
    state,
    write_cluster_part,
)

pytestmark = [pytest.mark.root, pytest.mark.tools]

MakeNs = Callable[[str], str]
V6_ONLY: dict[str, Any] = {
    "name": "t6",
    "network_cidr_v6": "fd00:244::/56",
    "vxlan_mode": "Always",
    "nodes": [
        {"name": "n1", "address_v6": "fd00:30::1/64"},
        {"name": "n2", "address_v6": "fd00:30::2/64"},
    ],
}
STALE = "fd00:999::/64"  # an owned IPv6 route no bundle lists


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "bridge", "bash", "ping")


def node_pair(make_ns: MakeNs) -> dict[str, str]:
    """n1 and n2: eth0 in each, one veth between them, IPv6 addresses only, no DAD."""
    ns = {"n1": make_ns("v6n1"), "n2": make_ns("v6n2")}
    for each in ns.values():  # no duplicate address detection: no address is ever tentative
        for scope in ("all", "default"):
            ns_run(each, ["sysctl", "-qw", f"net.ipv6.conf.{scope}.accept_dad=0"])
    veth_between(ns["n1"], "eth0", ns["n2"], "v6peer")
    ns_run(ns["n2"], ["ip", "link", "set", "v6peer", "down", "name", "eth0"])
    ns_run(ns["n2"], ["ip", "link", "set", "eth0", "up"])
    for name, address in (("n1", "fd00:30::1/64"), ("n2", "fd00:30::2/64")):
        ns_run(ns[name], ["ip", "-6", "addr", "add", address, "dev", "eth0", "nodad"])
        ns_run(ns[name], ["ip", "link", "set", "lo", "up"])
    return ns


def pod_address(compiled: Compiled, node: str) -> str:
    """Put an address of the node's first block on its lo (a pod's stand-in); return it."""
    block: IPv6Network = compiled.plan.node(node).blocks_v6[0].cidr
    return str(block.network_address + 5)


def place(ns: str, address: str) -> None:
    ns_run(ns, ["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"])


def ping6(ns: str, src: str, dst: str) -> bool:
    args = ["ping", "-6", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", "-I", src, dst]
    return ns_run(ns, args, check=False).returncode == 0


def tx(ns: str, device: str = VXLAN_V6_DEVICE) -> int:
    """Return the packets `device` has sent."""
    return int(ns_run(ns, ["cat", f"/sys/class/net/{device}/statistics/tx_packets"]).stdout)


def owned_v6(ns: str) -> set[str]:
    return owned_routes(ns, "-6")


def assert_pods_talk_over_vxlan_v6(ns: dict[str, str], compiled: Compiled) -> None:
    pods = {name: pod_address(compiled, name) for name in ns}
    for name, address in pods.items():
        place(ns[name], address)
    for src, dst in (("n1", "n2"), ("n2", "n1")):
        before = tx(ns[src])
        assert ping6(ns[src], pods[src], pods[dst]), f"{src} -> {dst}"
        assert tx(ns[src]) > before  # through vxlan-v6.calico, not around it


def assert_vxlan_v6_state(ns: str, compiled: Compiled, node: str) -> None:
    """The device, routes, neighbour and FDB entry the node's manifest lists, exactly."""
    manifest = compiled.node_manifest(node)
    link = next(link for link in manifest.links if link.name == VXLAN_V6_DEVICE)
    details = ns_run(ns, ["ip", "-d", "link", "show", "dev", VXLAN_V6_DEVICE]).stdout
    assert f"vxlan id 4096 local {link.local} dev eth0 " in details
    assert " dstport 4789 nolearning " in details
    assert f"link/ether {link.mac} " in details
    assert f"mtu {link.mtu} " in details
    addresses = ns_run(ns, ["ip", "-6", "-o", "addr", "show", "dev", VXLAN_V6_DEVICE]).stdout
    assert f"inet6 {link.address} scope global" in addresses
    assert "scope link" in addresses  # the kernel's link-local address stays
    v6 = [r for r in manifest.routes if r.dst.version == 6]
    assert owned_v6(ns) == {kernel_form(r, "eth0") for r in v6}
    assert any(r.dev == VXLAN_V6_DEVICE and r.onlink for r in v6)
    neigh = ns_run(ns, ["ip", "-6", "neigh", "show", "dev", VXLAN_V6_DEVICE, "nud", "permanent"])
    assert {line.strip() for line in neigh.stdout.splitlines()} == {
        f"{n.address} lladdr {n.lladdr} PERMANENT" for n in manifest.neighbors
    }
    fdb = ns_run(ns, ["bridge", "fdb", "show", "dev", VXLAN_V6_DEVICE]).stdout
    assert {line.strip() for line in fdb.splitlines() if " dst " in line} == {
        f"{f.lladdr} dst {f.dst} self permanent" for f in manifest.fdb
    }
    assert [str(f.dst) for f in manifest.fdb] == ["fd00:30::2" if node == "n1" else "fd00:30::1"]


def test_routes_sh_programs_vxlan_v6_between_ipv6_only_nodes(
    make_ns: MakeNs, tmp_path: Path
) -> None:
    compiled = compile_cluster(load(tmp_path, V6_ONLY))
    ns = node_pair(make_ns)
    for name in ns:
        # stale state of an earlier bundle: an owned IPv6 route (any device)
        ns_run(ns[name], ["ip", "-6", "route", "add", "blackhole", STALE, "proto", "81"])
        cluster = write_cluster_part(compiled, tmp_path / name)
        run_routes(ns[name], cluster, name)
        first = state(ns[name])
        run_routes(ns[name], cluster, name)
        second = state(ns[name])
        assert second == first, "\n".join(difflib.unified_diff(first, second))  # idempotent
        assert_vxlan_v6_state(ns[name], compiled, name)
        assert not [r for r in owned_v6(ns[name]) if STALE in r]  # removed as stale
    assert_pods_talk_over_vxlan_v6(ns, compiled)


def test_routes_sh_removes_stale_ipv6_vteps(make_ns: MakeNs, tmp_path: Path) -> None:
    """A neighbour and FDB entry on vxlan-v6.calico that no node has any more go."""
    compiled = compile_cluster(load(tmp_path, V6_ONLY))
    ns = node_pair(make_ns)["n1"]
    cluster = write_cluster_part(compiled, tmp_path / "n1")
    run_routes(ns, cluster, "n1")
    mac = "66:00:00:00:00:99"
    dev = ["dev", VXLAN_V6_DEVICE]
    ns_run(
        ns, ["ip", "-6", "neigh", "add", "fd00:244::999", "lladdr", mac, *dev, "nud", "permanent"]
    )
    ns_run(ns, ["bridge", "fdb", "add", mac, *dev, "dst", "fd00:30::99", "self", "permanent"])
    run_routes(ns, cluster, "n1")
    assert_vxlan_v6_state(ns, compiled, "n1")


def test_agent_applies_ipv6_only_nodes_with_vxlan_v6(make_ns: MakeNs, tmp_path: Path) -> None:
    need_tool("ip6tables-restore", "ip6tables-save", "iptables-restore", "ipset")
    inputs = load(tmp_path, V6_ONLY)
    build(inputs, tmp_path / "rendered")
    compiled = compile_cluster(inputs)
    ns = node_pair(make_ns)
    for name in ns:
        bundle = tmp_path / "rendered" / "nodes" / name
        root, log = tmp_path / f"root-{name}", tmp_path / f"log-{name}.json"
        done = apply(ns[name], bundle, root, log)
        assert done.returncode == 0, done.stderr + done.stdout
        assert f"{VXLAN_V6_DEVICE}: created" in done.stdout
        assert_vxlan_v6_state(ns[name], compiled, name)
        again = apply(ns[name], bundle, root, log)
        assert again.returncode == 0, again.stderr + again.stdout
        assert "nothing changed" in again.stdout
        hosts = ns_run(ns[name], ["ipset", "list", "cali60all-hosts-net"]).stdout
        assert "fd00:30::1" in hosts
        assert "fd00:30::2" in hosts  # from the node table's address_v6 column
    assert_pods_talk_over_vxlan_v6(ns, compiled)


DUAL_CROSS: dict[str, Any] = {
    "name": "t46",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "ipip_mode": "Never",
    "vxlan_mode": "CrossSubnet",
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"},
        {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:31::2/64"},
    ],
}


@pytest.mark.parametrize("programmer", ["routes.sh", "agent"])
def test_crosssubnet_per_family_on_one_link(
    make_ns: MakeNs, tmp_path: Path, programmer: str
) -> None:
    """One link, one IPv4 subnet, two IPv6 subnets: CrossSubnet sends IPv4 pod traffic direct
    and IPv6 pod traffic through vxlan-v6.calico (programmed by routes.sh, or by the agent)."""
    if programmer == "agent":
        need_tool("ip6tables-restore", "ip6tables-save", "iptables-restore", "ipset")
    inputs = load(tmp_path, DUAL_CROSS)
    build(inputs, tmp_path / "rendered")
    compiled = compile_cluster(inputs)
    ns = node_pair(make_ns)  # IPv6 fd00:30::1/64 and fd00:30::2/64: give n2 its own subnet
    ns_run(ns["n2"], ["ip", "-6", "addr", "del", "fd00:30::2/64", "dev", "eth0"])
    ns_run(ns["n2"], ["ip", "-6", "addr", "add", "fd00:31::2/64", "dev", "eth0", "nodad"])
    ns_run(ns["n1"], ["ip", "-6", "route", "add", "fd00:31::/64", "dev", "eth0"])
    ns_run(ns["n2"], ["ip", "-6", "route", "add", "fd00:30::/64", "dev", "eth0"])
    for name, address in (("n1", "10.0.0.1/24"), ("n2", "10.0.0.2/24")):
        ns_run(ns[name], ["ip", "addr", "add", address, "dev", "eth0"])
        if programmer == "routes.sh":
            run_routes(ns[name], write_cluster_part(compiled, tmp_path / name), name)
            continue
        bundle, root = tmp_path / "rendered" / "nodes" / name, tmp_path / f"root-{name}"
        done = apply(ns[name], bundle, root, tmp_path / f"log-{name}.json")
        assert done.returncode == 0, done.stderr + done.stdout
    pods = {}
    for name in ns:
        plan = compiled.plan.node(name)
        pods[name] = (str(plan.blocks[0].cidr[5]), str(plan.blocks_v6[0].cidr[5]))
        ns_run(ns[name], ["ip", "addr", "add", f"{pods[name][0]}/32", "dev", "lo"])
        place(ns[name], pods[name][1])
    before = {name: (tx(ns[name], VXLAN_DEVICE), tx(ns[name], VXLAN_V6_DEVICE)) for name in ns}
    for src, dst in (("n1", "n2"), ("n2", "n1")):
        ping4 = ["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", "-I", pods[src][0]]
        assert ns_run(ns[src], [*ping4, pods[dst][0]], check=False).returncode == 0
        assert ping6(ns[src], pods[src][1], pods[dst][1]), f"{src} -> {dst}"
    for name in ns:
        assert tx(ns[name], VXLAN_DEVICE) == before[name][0]  # same IPv4 subnet: direct
        assert tx(ns[name], VXLAN_V6_DEVICE) > before[name][1]  # other IPv6 subnet: tunnelled
