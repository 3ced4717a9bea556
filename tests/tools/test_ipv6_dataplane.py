"""The IPv6 data plane for real, in throwaway namespaces: rendered files and `calicc apply`.

The dual-stack tree is planned and rendered directly (as tests/unit/compiler/
test_ipv6_dataplane.py does; written before the build rendered IPv6) and written out like a
build's: the cluster part under rendered/cluster, the node's files under rendered/nodes/n1.
One node, so no BGP session and no BIRD.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.render import render_cluster, render_node
from calicc.contract.names import CLUSTER_IPSETS
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.bundles import MakeNs, apply, writes
from tests.support.clusters import plan_of

pytestmark = [pytest.mark.root, pytest.mark.tools]
DS: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "ipip_mode": "Never",
    "pools": [{"name": "v6-plain", "cidr": "fd00:246::/56", "nat_outgoing": False}],
    "nodes": [{"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"}],
}
V6_RULES = "cluster/ip6tables/plain.rules"
HOOK = '-m comment --comment "calicc hook" -j'


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "ip6tables-restore", "ip6tables-save", "iptables-restore", "ipset")


def write_tree(tmp_path: Path, data: dict[str, Any] = DS) -> tuple[dict[str, str], Path]:
    """Render cluster `data` into tmp_path/rendered; return its files and n1's bundle."""
    plan = plan_of(tmp_path, data)
    out = tmp_path / "rendered"
    files = dict(render_cluster(plan))
    files |= {f"nodes/n1/{k}": v for k, v in render_node(plan, plan.node("n1")).items()}
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    return files, out / "nodes/n1"


def node_ns(make_ns: MakeNs) -> str:
    """A node namespace holding n1's addresses on eth0 (IPv6 without DAD)."""
    ns = make_ns("v6node")
    ns_run(ns, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"])  # no dummy
    ns_run(ns, ["ip", "link", "set", "peer0", "up"])
    ns_run(ns, ["ip", "link", "set", "eth0", "up"])
    ns_run(ns, ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"])
    ns_run(ns, ["ip", "-6", "addr", "add", "fd00:30::1/64", "dev", "eth0", "nodad"])
    return ns


def test_rendered_ipv6_files_restore(make_ns: MakeNs, tmp_path: Path) -> None:
    files, _ = write_tree(tmp_path)
    ns = make_ns("v6rest")
    for _ in range(2):  # the second run finds every live set in place
        ns_run(ns, ["ipset", "restore"], input_text=files[CLUSTER_IPSETS])
    names = ns_run(ns, ["ipset", "list", "-n"]).stdout.split()
    assert {"cali60all-ipam-pools", "cali60masq-ipam-pools", "cali60all-hosts-net"} <= set(names)
    assert not [n for n in names if n.startswith(("cali4t", "cali6t"))]
    header = ns_run(ns, ["ipset", "list", "-t", "cali60all-ipam-pools"]).stdout
    assert "family inet6" in header
    members = ns_run(ns, ["ipset", "list", "cali60masq-ipam-pools"]).stdout
    assert "fd00:244::/56" in members
    assert "fd00:246::/56" not in members
    ns_run(ns, ["ip6tables-restore", "--test", "--noflush"], input_text=files[V6_RULES])
    ns_run(ns, ["ip6tables-restore", "--noflush"], input_text=files[V6_RULES])
    saved = ns_run(ns, ["ip6tables-save", "-t", "nat"]).stdout
    assert "--match-set cali60masq-ipam-pools src" in saved
    assert "-j MASQUERADE --random-fully" in saved


def test_apply_dual_stack_bundle(make_ns: MakeNs, tmp_path: Path) -> None:
    _, bundle = write_tree(tmp_path)
    ns, root, log = node_ns(make_ns), tmp_path / "root", tmp_path / "log.json"
    done = apply(ns, bundle, root, log)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "route fd00:244::/122: added" in done.stdout
    assert "ip6tables filter/cali-FORWARD: written" in done.stdout
    cmds = [" ".join(c[:2]) for c in writes(log)]
    assert cmds.count("ip6tables-restore --noflush") == 1
    assert cmds.count("iptables-restore --noflush") == 1
    routes = ns_run(ns, ["ip", "-6", "route", "show", "proto", "81"]).stdout
    for block in ("fd00:244::/122", "fd00:246::/122"):
        assert f"blackhole {block}" in routes
    assert "blackhole 10.244.0.0/26" in ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout
    assert "family inet6" in ns_run(ns, ["ipset", "list", "-t", "cali60all-hosts-net"]).stdout
    assert "fd00:30::1" in ns_run(ns, ["ipset", "list", "cali60all-hosts-net"]).stdout
    saved = ns_run(ns, ["ip6tables-save"]).stdout.splitlines()
    assert f"-A FORWARD {HOOK} cali-FORWARD" in saved
    assert f"-A POSTROUTING {HOOK} cali-POSTROUTING" in saved
    assert ":cali-from-wl-dispatch - [0:0]" in saved
    forwarding = ns_run(ns, ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout
    assert forwarding.strip() == "1"
    assert (root / "etc/calicc/iptables/ip6tables.rules").is_file()

    again = apply(ns, bundle, root, log)
    assert again.returncode == 0, again.stderr + again.stdout
    assert writes(log) == []  # no restore command
    assert "nothing changed" in again.stdout  # and no netlink write (routes, links, sysctls)


def test_ipv6_state_removed_with_the_ipv6_part(make_ns: MakeNs, tmp_path: Path) -> None:
    _, bundle = write_tree(tmp_path)
    ns, root, log = node_ns(make_ns), tmp_path / "root", tmp_path / "log.json"
    assert apply(ns, bundle, root, log).returncode == 0
    v4 = {**DS, "pools": [], "nodes": [{"name": "n1", "address": "10.0.0.1/24"}]}
    del v4["network_cidr_v6"]
    (tmp_path / "v4").mkdir()
    _, ipv4_only = write_tree(tmp_path / "v4", v4)
    done = apply(ns, ipv4_only, root, log)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "cali-" not in ns_run(ns, ["ip6tables-save"]).stdout
    assert ns_run(ns, ["ip", "-6", "route", "show", "proto", "81"]).stdout.strip() == ""
    assert "cali60" not in ns_run(ns, ["ipset", "list", "-n"]).stdout


def test_routes_sh_installs_ipv6_blackholes(make_ns: MakeNs, tmp_path: Path) -> None:
    """routes.sh reads the node's IPv6 blocks from the node table's blocks column (stale IPv6
    routes and VXLAN over IPv6: tests/tools/test_vxlan_v6.py)."""
    _, bundle = write_tree(tmp_path)
    ns = make_ns("v6rs")
    cluster = bundle.parent.parent / "cluster"
    command = ["env", f"CALICC_CLUSTER_DIR={cluster}", "bash", str(cluster / "routes.sh"), "n1"]
    for _ in range(2):  # idempotent
        ns_run(ns, command)
    routes = ns_run(ns, ["ip", "-6", "route", "show", "proto", "81"]).stdout.splitlines()
    assert sorted(r.split()[1] for r in routes) == [
        "fd00:244::/122",
        "fd00:244::40/122",
        "fd00:246::/122",
        "fd00:246::40/122",
    ]
    assert all(r.startswith("blackhole ") for r in routes)


def test_vxlan_kind_ipv6_rules_restore(make_ns: MakeNs, tmp_path: Path) -> None:
    files, _ = write_tree(tmp_path, {**DS, "vxlan_mode": "Always"})
    ns = make_ns("v6vx")
    ns_run(ns, ["ipset", "restore"], input_text=files[CLUSTER_IPSETS])
    rules = files["cluster/ip6tables/vxlan.rules"]
    ns_run(ns, ["ip6tables-restore", "--test", "--noflush"], input_text=rules)
    ns_run(ns, ["ip6tables-restore", "--noflush"], input_text=rules)
    saved = ns_run(ns, ["ip6tables-save", "-t", "filter"]).stdout
    assert "--dport 4789 -m set --match-set cali60all-hosts-net src" in saved
