"""The IPv6 data plane of a dual-stack cluster: ip6tables rules, inet6 ipsets, sysctls, routes.

These tests plan the cluster and render its cluster part and nodes directly (written before
the build rendered IPv6; `calicc build` renders the same).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from calicc.compiler.plan import ClusterPlan
from calicc.compiler.render import render_cluster, render_node
from calicc.compiler.targets.ip6tables import ip6tables_tables
from calicc.compiler.targets.routes import dataplane
from calicc.compiler.targets.shared import shared_plan
from calicc.contract.names import (
    CLUSTER_IPSETS,
    CLUSTER_POLICY,
    IP6TABLES_FILE,
    IPTABLES_FILE,
    NODES_TABLE,
    SYSCTL_FILE,
)
from calicc.contract.nodes_table import parse_table
from tests.support.clusters import plan_of

DS: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "ipip_mode": "Never",
    "pools": [
        {"name": "v6-nat", "cidr": "fd00:245::/56", "nat_outgoing": True},
        {"name": "v6-plain", "cidr": "fd00:246::/56", "nat_outgoing": False},
    ],
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"},
        {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:30::2/64"},
    ],
}


def dual_stack(tmp_path: Path) -> ClusterPlan:
    return plan_of(tmp_path, DS)


def chains(text: str) -> dict[str, dict[str, list[str]]]:
    """Return {table: {chain: rule lines}} of restore input."""
    tables: dict[str, dict[str, list[str]]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = {}
        elif line.startswith(":"):
            tables[table][line[1:].split()[0]] = []
        elif line.startswith("-A "):
            tables[table][line.split()[1]].append(line)
    return tables


def test_node_json_names_the_ip6tables_file(tmp_path: Path) -> None:
    plan = dual_stack(tmp_path)
    manifest = json.loads(render_node(plan, plan.node("n1"))["node.json"])
    entry = manifest["files"][IP6TABLES_FILE]
    assert entry == {
        "install": "etc/calicc/iptables/ip6tables.rules",
        "source": "cluster/ip6tables/plain.rules",
    }
    assert entry["source"] in render_cluster(plan)
    assert shared_plan(plan).sources["n2"][IP6TABLES_FILE] == entry["source"]
    assert manifest["files"][IPTABLES_FILE]["source"] == "cluster/iptables/plain.rules"


def test_ip6tables_rules_owned_chains_and_nat66(tmp_path: Path) -> None:
    plan = dual_stack(tmp_path)
    text = render_cluster(plan)["cluster/ip6tables/plain.rules"]
    tables = chains(text)
    assert sorted(tables) == ["filter", "mangle", "nat", "raw"]
    for table in tables.values():
        assert all(name.startswith("cali-") and len(name) <= 28 for name in table)
    assert "cali-PREROUTING" in tables["raw"]
    assert "cali-PREROUTING" in tables["mangle"]
    nat = tables["nat"]["cali-nat-outgoing"]
    assert len(nat) == 1
    assert "--match-set cali60masq-ipam-pools src" in nat[0]
    assert "! --match-set cali60all-ipam-pools dst" in nat[0]
    assert "! --match-set cali60all-hosts-net dst" in nat[0]
    assert nat[0].endswith("-j MASQUERADE --random-fully")
    assert "cali40" not in text  # an IPv4 set in ip6tables fails the restore
    flt = tables["filter"]
    assert flt["cali-FORWARD"][1].endswith(
        "-i cali+ -m comment --comment "
        '"from a workload: its egress policy" '
        "-j cali-from-wl-dispatch"
    )
    assert any("-o cali+" in r and "cali-to-wl-dispatch" in r for r in flt["cali-FORWARD"])
    assert any("-i cali+" in r and "cali-wl-to-host" in r for r in flt["cali-INPUT"])
    assert flt["cali-to-wl-dispatch"][-1].endswith("-j DROP")
    assert not any("ipencap" in r for r in flt["cali-INPUT"])  # IPIP has no IPv6


def test_no_nat66_without_nat_outgoing(tmp_path: Path) -> None:
    data = {**DS, "pools": [{"name": "v6", "cidr": "fd00:245::/56", "nat_outgoing": False}]}
    data = {**data, "network_cidr_v6": None}
    plan = plan_of(tmp_path, {k: v for k, v in data.items() if v is not None})
    nat = {t.name: t for t in ip6tables_tables(plan, frozenset())}["nat"]
    outgoing = {c.name: c.rules for c in nat.chains}["cali-nat-outgoing"]
    assert outgoing == ()
    v4 = chains(render_cluster(plan)["cluster/iptables/plain.rules"])
    assert "v6" not in " ".join(v4["nat"]["cali-nat-outgoing"])


def test_inet6_sets_beside_the_ipv4_ones(tmp_path: Path) -> None:
    plan = dual_stack(tmp_path)
    text = render_cluster(plan)[CLUSTER_IPSETS]
    creates = {line.split()[1]: line for line in text.splitlines() if line.startswith("create")}
    for name in ("cali60all-ipam-pools", "cali60masq-ipam-pools", "cali60all-hosts-net"):
        assert "family inet6" in creates[name]
    for name, line in creates.items():
        assert ("family inet6" in line) == name.startswith("cali6"), line
    members: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.startswith("add "):
            members.setdefault(line.split()[1], set()).add(line.split()[2])
    swaps = dict(line.split()[1:3][::-1] for line in text.splitlines() if line.startswith("swap"))
    assert members[swaps["cali60all-ipam-pools"]] == {
        "fd00:244::/56",
        "fd00:245::/56",
        "fd00:246::/56",
    }
    assert members[swaps["cali60masq-ipam-pools"]] == {"fd00:244::/56", "fd00:245::/56"}
    assert members[swaps["cali60all-hosts-net"]] == {"fd00:30::1/128", "fd00:30::2/128"}
    assert members[swaps["cali40all-ipam-pools"]] == {"10.244.0.0/16"}  # no IPv6 in inet
    policy = json.loads(render_cluster(plan)[CLUSTER_POLICY])
    hosts = {s["name"]: s["members"] for s in policy["ipsets"]}
    assert hosts["cali40all-hosts-net"] == []  # from the node table
    assert hosts["cali60all-hosts-net"] == []  # from the node table's address_v6 column


def test_ipv6_sysctls_and_blackholes(tmp_path: Path) -> None:
    plan = dual_stack(tmp_path)
    node = plan.node("n1")
    manifest = json.loads(render_node(plan, node)["node.json"])
    assert manifest["sysctls"]["net.ipv6.conf.all.forwarding"] == "1"
    source = manifest["files"][SYSCTL_FILE]["source"]
    assert source == "cluster/sysctl/plain-ipv6.conf"
    assert "\nnet.ipv6.conf.all.forwarding = 1\n" in render_cluster(plan)[source]
    holes = {r["dst"] for r in manifest["routes"] if r["type"] == "blackhole"}
    v6 = {str(b.cidr) for b in node.blocks_v6}
    assert v6
    assert v6 <= holes
    assert {str(b.cidr) for b in node.blocks} <= holes
    assert {b["cidr"] for b in manifest["blocks"]} == holes
    assert manifest["node"]["address_v6"] == "fd00:30::1/64"
    row = next(r for r in parse_table(render_cluster(plan)[NODES_TABLE]) if r.name == "n1")
    assert {str(cidr) for _, cidr in row.blocks} == holes  # node.json and the table agree


def test_ipv4_only_cluster_has_no_ipv6_part(tmp_path: Path) -> None:
    data = {k: v for k, v in DS.items() if k not in ("network_cidr_v6", "pools")}
    data["nodes"] = [{"name": "n1", "address": "10.0.0.1/24"}]
    plan = plan_of(tmp_path, data)
    files = render_cluster(plan)
    assert not [p for p in files if "ip6tables" in p or p.endswith("-ipv6.conf")]
    assert "cali6" not in files[CLUSTER_IPSETS]
    assert (
        IP6TABLES_FILE not in json.loads(render_node(plan, plan.node("n1"))["node.json"])["files"]
    )


def test_dual_stack_vxlan_routes_and_rules(tmp_path: Path) -> None:
    """VXLAN pools of both families: IPv4 blocks over vxlan.calico, IPv6 blocks over
    vxlan-v6.calico (tests/unit/compiler/test_vxlan_v6.py has the rest), and the IPv6 rules
    accept VXLAN from IPv6 nodes."""
    plan = plan_of(tmp_path, {**DS, "pools": [], "vxlan_mode": "Always"})
    plane = dataplane(plan, plan.node("n1"))
    v6 = [r for r in plane.routes if r.dst.version == 6 and r.type == "unicast"]
    assert v6
    assert {r.dev for r in v6} == {"vxlan-v6.calico"}
    assert {r.dev for r in plane.routes if r.type == "unicast" and r.dst.version == 4} == {
        "vxlan.calico"
    }
    assert [link.name for link in plane.links] == ["vxlan-v6.calico", "vxlan.calico"]
    sources = shared_plan(plan).sources["n1"]
    assert sources[IP6TABLES_FILE] == "cluster/ip6tables/vxlan.rules"
    assert sources[IPTABLES_FILE] == "cluster/iptables/vxlan.rules"
    rules = chains(render_cluster(plan)[sources[IP6TABLES_FILE]])["filter"]["cali-INPUT"]
    assert "--dport 4789 -m set --match-set cali60all-hosts-net src" in rules[0]
    assert rules[0].endswith("-j ACCEPT")
    assert rules[1].endswith("-j DROP")
    post = chains(render_cluster(plan)[sources[IP6TABLES_FILE]])["nat"]["cali-POSTROUTING"]
    assert post[1].startswith(
        "-A cali-POSTROUTING -o vxlan-v6.calico -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL"
    )
    assert post[1].endswith("-j MASQUERADE")
    plain = chains(render_cluster(plan_of(tmp_path, DS))["cluster/ip6tables/plain.rules"])
    assert not any("-o vxlan" in r for r in plain["nat"]["cali-POSTROUTING"])
