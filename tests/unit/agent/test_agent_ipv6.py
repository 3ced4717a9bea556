"""The agent's IPv6 pieces as pure functions: inet6 set diffs, routes of two families, the
ip6tables family of the iptables runner, and which hooks an ip6tables file keeps."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_network

from calicc.agent.bundle import load_bundle
from calicc.agent.ipsets import SetState, desired_sets, diff_sets, member, summarize
from calicc.agent.iptables import (
    Memo,
    Ruleset,
    family_jumps,
    parse_rules,
    reconcile_iptables,
)
from calicc.agent.routes import RouteState, diff_routes
from calicc.agent.runner import Runner
from calicc.agent.status import node_line
from calicc.contract.manifest import Ipset, JumpRule
from tests.conftest import EXAMPLES

V6_RULES = """*filter
:cali-FORWARD - [0:0]
-A cali-FORWARD -j ACCEPT
COMMIT
"""


def test_inet6_set_created_with_its_family() -> None:
    sets = (Ipset(name="cali60all-ipam-pools", type="hash:net", members=("FD00:244::/56",)),)
    lines, stale = diff_sets(desired_sets(sets, {}), {})
    assert lines == [
        "create cali60all-ipam-pools hash:net family inet6 maxelem 1048576",
        "add cali60all-ipam-pools fd00:244::/56",
    ]
    assert stale == []
    assert summarize(lines) == ["ipset cali60all-ipam-pools: created with 1 members"]


def test_inet6_set_replaced_through_an_inet6_temporary() -> None:
    want = SetState("cali60all-hosts-net", "hash:net", 1048576, frozenset({"fd00::1"}))
    have = SetState("cali60all-hosts-net", "hash:ip", 1048576, frozenset())
    lines, _ = diff_sets({want.name: want}, {have.name: have})
    assert lines[0] == "create cali6t0 hash:net family inet6 maxelem 1048576"
    assert lines[-2:] == ["swap cali60all-hosts-net cali6t0", "destroy cali6t0"]
    assert summarize(lines) == ["ipset cali60all-hosts-net: replaced (type or size)"]


def test_ipv6_host_members_compare_as_ipset_prints_them() -> None:
    assert member("fd00:30::1/128") == "fd00:30::1"
    want = SetState("cali60all-hosts-net", "hash:net", 1048576, frozenset({member("fd00::1/128")}))
    have = SetState("cali60all-hosts-net", "hash:net", 1048576, frozenset({"fd00::1"}))
    assert diff_sets({want.name: want}, {have.name: have}) == ([], [])


def test_routes_of_both_families_diff_in_order() -> None:
    v4 = RouteState(ip_network("10.244.0.0/26"), "blackhole")
    v6 = RouteState(ip_network("fd00:244::/122"), "blackhole")
    stale = RouteState(ip_network("fd00:244::40/122"), "blackhole")
    diff = diff_routes([v6, v4], [stale])
    assert diff.add == (v4, v6)
    assert diff.delete == (stale,)
    lo = RouteState(v6.dst, "blackhole", oif=1)  # the kernel puts IPv6 blackholes on lo
    assert diff_routes([v6], [lo]).empty


def test_ip6tables_keeps_only_hooks_into_declared_chains() -> None:
    jumps = (
        JumpRule(table="filter", chain="FORWARD", rule="-j cali-FORWARD"),
        JumpRule(table="filter", chain="OUTPUT", rule="-j cali-OUTPUT"),  # host protection
        JumpRule(table="nat", chain="POSTROUTING", rule="-j cali-POSTROUTING", position="bottom"),
    )
    assert family_jumps(jumps, parse_rules(V6_RULES)) == jumps[:1]


class FakeRunner(Runner):
    """Answers *-save with an empty ruleset and records every command."""

    def run(self, args: Sequence[str], stdin: str | None = None, write: bool = False) -> str:
        words = tuple(args)
        (self.writes if write else self.reads).append(words)
        return "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n" if words[0].endswith("-save") else ""


def test_family_6_runs_the_ip6tables_tools() -> None:
    runner = FakeRunner()
    jump = (JumpRule(table="filter", chain="FORWARD", rule="-j cali-FORWARD"),)
    changes = reconcile_iptables(runner, V6_RULES, Ruleset(), jump, Memo(), family=6)
    assert runner.writes == [("ip6tables-restore", "--noflush", "--wait")]
    assert runner.reads == [("ip6tables-save",)]
    assert "ip6tables filter/cali-FORWARD: written" in changes


def test_status_names_the_addresses_of_each_family_the_node_has() -> None:
    only_v6 = load_bundle(EXAMPLES / "ipv6-rr" / "rendered" / "nodes" / "rr-1").manifest
    assert node_line(only_v6) == "node rr-1 (fd00:80::11/64), cluster ipv6-rr"
    dual = load_bundle(EXAMPLES / "dual-stack-mesh" / "rendered" / "nodes" / "node-1").manifest
    assert node_line(dual) == "node node-1 (10.70.0.11/24, fd00:70::11/64), cluster dual-stack-mesh"
