"""Pure diff functions of the agent: desired vs current for routes, ipsets, chains, sysctls."""

from __future__ import annotations

from ipaddress import IPv4Network

from calicc.agent import iptables
from calicc.agent.ipsets import SetState, diff_sets, parse_save
from calicc.agent.iptables import Memo, parse_rules, plan_ruleset
from calicc.agent.routes import RouteState, diff_routes
from calicc.agent.sysctl import diff_sysctls, sysctl_path
from calicc.contract.manifest import JumpRule

BH = RouteState(IPv4Network("10.244.0.0/26"), "blackhole")
VIA = RouteState(IPv4Network("10.244.1.0/26"), "unicast", "192.168.49.3", 4, True)


def test_routes_add_replace_delete() -> None:
    moved = RouteState(VIA.dst, "unicast", "192.168.49.9", 4, True)
    stale = RouteState(IPv4Network("10.244.9.0/26"), "blackhole")
    diff = diff_routes([BH, moved], [VIA, stale])
    assert diff.add == (BH,)
    assert diff.replace == (moved,)
    assert diff.delete == (stale,)


def test_routes_equal_is_empty_and_kernel_device_ignored_when_unnamed() -> None:
    assert diff_routes([BH, VIA], [VIA, BH]).empty
    unnamed = RouteState(VIA.dst, "unicast", "192.168.49.3", None, True)
    assert diff_routes([unnamed], [VIA]).empty


SAVE = """create KUBE-X hash:ip family inet hashsize 1024 maxelem 65536
add KUBE-X 10.0.0.1
create cali40all-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12
add cali40all-ipam-pools 10.244.0.0/16
add cali40all-ipam-pools 10.9.0.1
create cali40old hash:net family inet hashsize 1024 maxelem 1048576
"""


def test_ipset_parse_keeps_only_owned_sets() -> None:
    sets = parse_save(SAVE)
    assert set(sets) == {"cali40all-ipam-pools", "cali40old"}
    assert sets["cali40all-ipam-pools"].members == {"10.244.0.0/16", "10.9.0.1"}


def test_ipset_deltas_create_and_stale() -> None:
    want = {
        "cali40all-ipam-pools": SetState(
            "cali40all-ipam-pools", "hash:net", members=frozenset({"10.244.0.0/16", "10.8.0.0/16"})
        ),
        "cali40new": SetState("cali40new", "hash:ip", members=frozenset({"10.1.1.1"})),
    }
    lines, stale = diff_sets(want, parse_save(SAVE))
    assert lines == [
        "add cali40all-ipam-pools 10.8.0.0/16 -exist",
        "del cali40all-ipam-pools 10.9.0.1 -exist",
        "create cali40new hash:ip family inet maxelem 1048576",
        "add cali40new 10.1.1.1",
    ]
    assert stale == ["cali40old"]


def test_ipset_type_change_swaps_through_a_temporary_set() -> None:
    want = {"cali40old": SetState("cali40old", "hash:ip", members=frozenset({"10.1.1.1"}))}
    lines, _ = diff_sets(want, parse_save(SAVE))
    assert lines == [
        "create cali4t0 hash:ip family inet maxelem 1048576",
        "add cali4t0 10.1.1.1",
        "swap cali40old cali4t0",
        "destroy cali4t0",
    ]


def test_ipset_selector_set_membership_left_alone() -> None:
    current = {"cali40s:x": SetState("cali40s:x", "hash:ip", members=frozenset({"10.2.2.2"}))}
    want = {"cali40s:x": SetState("cali40s:x", "hash:ip", members=None)}
    assert diff_sets(want, current) == ([], [])


RENDERED = """*filter
:cali-INPUT - [0:0]
:cali-pi-web - [0:0]
-A cali-INPUT -j cali-pi-web
-A cali-pi-web -p tcp --dport 80 -j ACCEPT
COMMIT
"""
JUMPS = (JumpRule(table="filter", chain="INPUT", rule="-j cali-INPUT"),)


def kernel(input_rules: list[str], extra: str = "") -> iptables.Ruleset:
    text = "\n".join(
        [
            "*filter",
            ":INPUT ACCEPT [0:0]",
            ":cali-INPUT - [0:0]",
            ":cali-pi-web - [0:0]",
            ":KUBE-FIREWALL - [0:0]",
            *(f"-A INPUT {r}" for r in input_rules),
            "-A cali-INPUT -j cali-pi-web",
            "-A cali-pi-web -p tcp -m tcp --dport 80 -j ACCEPT",
            extra,
            "COMMIT",
        ]
    )
    return parse_rules(text)


def test_chain_written_until_memo_knows_the_kernel_form() -> None:
    memo = Memo()
    current = kernel(["-j cali-INPUT", "-j KUBE-FIREWALL"])
    lines = plan_ruleset(parse_rules(RENDERED), current, JUMPS, memo)
    assert lines == [
        "*filter",
        ":cali-pi-web - [0:0]",
        "-A cali-pi-web -p tcp --dport 80 -j ACCEPT",
        "COMMIT",
    ]
    iptables.learn(memo, parse_rules(RENDERED), current, JUMPS)
    assert plan_ruleset(parse_rules(RENDERED), current, JUMPS, memo) == []


def test_jump_rule_duplicates_and_misplacement_fixed_foreign_kept() -> None:
    memo = Memo()
    current = kernel(["-j KUBE-FIREWALL", "-j cali-INPUT", "-j cali-INPUT"])
    iptables.learn(memo, parse_rules(RENDERED), current, ())
    lines = plan_ruleset(parse_rules(RENDERED), current, JUMPS, memo)
    assert lines == ["*filter", "-D INPUT 3", "-D INPUT 2", "-I INPUT 1 -j cali-INPUT", "COMMIT"]


def test_stale_owned_chain_removed_and_its_jump_deleted() -> None:
    memo = Memo()
    current = kernel(["-j cali-INPUT", "-j cali-old"], extra=":cali-old - [0:0]")
    iptables.learn(memo, parse_rules(RENDERED), current, ())
    lines = plan_ruleset(parse_rules(RENDERED), current, JUMPS, memo)
    assert lines == [
        "*filter",
        ":cali-old - [0:0]",
        "-D INPUT 2",
        "-D INPUT 1",
        "-I INPUT 1 -j cali-INPUT",
        "-X cali-old",
        "COMMIT",
    ]


def test_bottom_jump_rule_is_last() -> None:
    jumps = (
        *JUMPS,
        JumpRule(table="filter", chain="INPUT", rule="-j cali-last", position="bottom"),
    )
    current = kernel(["-j cali-INPUT", "-j cali-last", "-j KUBE-FIREWALL"])
    layout = iptables.jump_layouts("filter", current.tables["filter"], {"INPUT"}, jumps)["INPUT"]
    assert not layout.ok(Memo())
    assert layout.fix("INPUT", Memo()) == [
        "-D INPUT 2",
        "-D INPUT 1",
        "-I INPUT 1 -j cali-INPUT",
        "-A INPUT -j cali-last",
    ]


def test_sysctl_paths_and_diff() -> None:
    assert str(sysctl_path("net.ipv4.conf.all.rp_filter")).endswith("net/ipv4/conf/all/rp_filter")
    assert diff_sysctls({"a": "1", "b": "2"}, {"a": "1", "b": None}) == ["b"]
