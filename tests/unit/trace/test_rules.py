"""trace/rules.py: iptables-restore text, as calicc renders it, parsed into compiled chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.build import plan_cluster
from calicc.compiler.targets.ip6tables import ip6tables_text, node_encaps_v6
from calicc.contract.endpoint import PodPolicies, endpoint_rules, with_endpoints
from calicc.trace.matches import RuleError
from calicc.trace.rules import parse_tables
from tests.conftest import EXAMPLES
from tests.support.examples import load_example

RENDERED = sorted(EXAMPLES.glob("*/rendered/cluster/ip*tables/*.rules"))
IFACE = "cali0123456789a"


def filter_table(*lines: str) -> str:
    return "\n".join(["*filter", *lines, "COMMIT", ""])


def test_chains_policies_numbers_comments_and_targets() -> None:
    text = """# a comment line
*filter
:FORWARD DROP [0:0]
:cali-a - [0:0]
:cali-b - [0:0]
-A FORWARD -m comment --comment "calicc hook" -j cali-a
-A cali-a -i cali+ -m comment --comment "say `hi`: ok" -g cali-b
-A cali-a -j MARK --set-xmark 0x10000/0x10000
-A cali-a -j MARK --set-mark 0x1/0xff
COMMIT
*nat
-A POSTROUTING -j MASQUERADE --random-fully
COMMIT
"""
    tables = parse_tables(text)
    assert set(tables) == {"filter", "nat"}
    chains = tables["filter"].chains
    assert [(c.name, c.policy) for c in chains.values()] == [
        ("FORWARD", "DROP"),
        ("cali-a", "-"),
        ("cali-b", "-"),
    ]
    hook = chains["FORWARD"].rules[0]
    assert (hook.chain, hook.number, hook.comment) == ("FORWARD", 1, "calicc hook")
    assert (hook.target, hook.goto, hook.action) == ("cali-a", False, "jump cali-a")
    goto, xmark, set_mark = chains["cali-a"].rules
    assert (goto.number, goto.target, goto.goto, goto.kind) == (1, "cali-b", True, "goto")
    assert goto.comment == "say `hi`: ok"
    assert goto.text == '-A cali-a -i cali+ -m comment --comment "say `hi`: ok" -g cali-b'
    assert (xmark.number, xmark.xmark, xmark.action) == (
        2,
        (0x10000, 0x10000),
        "MARK 0x10000/0x10000",
    )
    assert xmark.target_args == ("--set-xmark", "0x10000/0x10000")
    assert set_mark.xmark == (0x1, 0xFF), "--set-mark V/M clears M and sets V"
    assert len(hook.matches) == 0, "a comment is no match"
    assert len(goto.matches) == 1
    masq = tables["nat"].chains["POSTROUTING"]
    assert masq.policy == "ACCEPT", "an undeclared built-in chain has the kernel's default"
    assert (masq.rules[0].kind, masq.rules[0].action) == ("nat", "MASQUERADE --random-fully")


@pytest.mark.parametrize("path", RENDERED, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_rendered_rules_file_parses(path: Path) -> None:
    family = 6 if path.parent.name == "ip6tables" else 4
    tables = parse_tables(path.read_text(encoding="utf-8"), family)
    assert set(tables) == {"raw", "mangle", "nat", "filter"}
    assert all(t.family == family for t in tables.values())
    assert "cali-FORWARD" in tables["filter"].chains


def test_rendered_files_cover_both_families() -> None:
    assert {p.parent.name for p in RENDERED} == {"iptables", "ip6tables"}
    assert any(p.parts[-5] == "host-protection" for p in RENDERED)


def test_dual_stack_ip6tables_text_with_ipv6_endpoint_chains_parses() -> None:
    plan = plan_cluster(load_example("dual-stack-mesh"))
    policies = PodPolicies(ingress=(("cali-pi-x", "shop/x"),), egress=(("cali-po-x", "shop/x"),))
    endpoint = endpoint_rules(IFACE, policies, family=6)
    texts = {ip6tables_text(plan, node_encaps_v6(node)) for node in plan.nodes}
    assert texts
    for rendered in texts:
        # the two policy chains the endpoint jumps to, as a cluster with that policy has them
        text = rendered.replace("*filter\n", "*filter\n:cali-pi-x - [0:0]\n:cali-po-x - [0:0]\n")
        tables = parse_tables(with_endpoints(text, [endpoint]), family=6)
        tw = tables["filter"].chains[endpoint.chains[1]]
        nd = [r for r in tw.rules if "icmpv6" in r.text]
        assert [r.number for r in nd] == [3, 4, 5, 6, 7, 8, 9]
        assert all(len(r.matches) == 2 for r in nd), "protocol and ICMPv6 type"
        dispatch = tables["filter"].chains["cali-to-wl-dispatch"].rules[0]
        assert (dispatch.goto, dispatch.target) == (True, endpoint.chains[1])


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("-A cali-a -m tcp --dport 80 --syn -j ACCEPT", "unknown option '--syn' (match tcp)"),
        ("-A cali-a -m limit --limit 5/s -j ACCEPT", "unknown match module 'limit'"),
        ("-A cali-a --dport 80 -j ACCEPT", "unknown option '--dport' (match none)"),
        ("-A cali-a -m comment --comment x -m set --match-set s -j ACCEPT", "unknown option"),
        ("-A cali-a -j NOTRACK", "unknown target 'NOTRACK' (table filter)"),
        ("-A cali-a -j cali-missing", "unknown target 'cali-missing'"),
        ("-A cali-a -g ACCEPT", "unknown target 'ACCEPT'"),
        ("-A cali-a -j FORWARD", "unknown target 'FORWARD'"),
        ("-A cali-a -m comment ! --comment x -j ACCEPT", "! --comment"),
        ("-A cali-a -j MASQUERADE", "unknown target 'MASQUERADE' (table filter)"),
        ("-A cali-a -j MARK --and-mark 0x1", "unknown option '--and-mark' of target MARK"),
        ("-A cali-a -j MARK", "MARK needs one of"),
        ("-A cali-a -j ACCEPT --log-prefix x", "unknown option '--log-prefix' of target ACCEPT"),
        ("-A cali-a -p tcp", "no -j or -g target"),
        ("-A cali-a -p bogus -j ACCEPT", "unknown protocol 'bogus'"),
        ("-A cali-a -s fd00::/64 -j ACCEPT", "an IPv6 address in IPv4 rules"),
        ("-A cali-a -s 10.0.0.300 -j ACCEPT", "bad address"),
        ("-A cali-a -m set --match-set s dst,dst,dst -j ACCEPT", "unsupported set flags"),
        ("-A cali-a -m mark --mark 0xzz -j ACCEPT", "bad mark"),
        ("-A cali-a -m conntrack --ctstate NEWISH -j ACCEPT", "unknown conntrack state"),
        ("-A cali-a -m addrtype --src-type UNICAST -j ACCEPT", "address type 'UNICAST'"),
        ("-A cali-a -m addrtype --dst-type LOCAL --limit-iface-out -j ACCEPT", "--dst-type with"),
        ("-A cali-a -p tcp -m tcp --dport http -j ACCEPT", "bad port 'http'"),
        ("-A cali-a -p icmp -m icmp --icmp-type 3/1 -j ACCEPT", "unsupported ICMP type '3/1'"),
        ("-A cali-a -p icmp -m icmp --icmp-type port-unreachable -j ACCEPT", "ICMP type"),
        ("-A cali-a -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT", "-m icmp6 in IPv4 rules"),
        ("-A cali-a -m udp --dport 80 -j ACCEPT", "-m udp without the protocol it needs (-p)"),
        ("-A cali-a -p tcp -m udp --dport 80 -j ACCEPT", "-m udp without the protocol"),
        ("-A cali-a ! -p udp -m udp --dport 80 -j ACCEPT", "-m udp without the protocol"),
        ("-A cali-a -p icmp -m multiport --dports 80 -j ACCEPT", "-m multiport without"),
        ("-A cali-a -p tcp -m tcp --dport 80,81 -j ACCEPT", "bad port '80,81'"),
        ('-A cali-a -m comment --comment "open -j ACCEPT', "No closing quotation"),
    ],
)
def test_what_it_does_not_understand_is_an_error_naming_the_rule(rule: str, problem: str) -> None:
    with pytest.raises(RuleError, match="in rule: ") as caught:
        parse_tables(filter_table(":FORWARD ACCEPT [0:0]", ":cali-a - [0:0]", rule))
    assert problem in str(caught.value)
    assert str(caught.value).endswith(rule)


def test_icmp_matches_belong_to_their_family() -> None:
    v4 = "-A cali-a -p icmp -m icmp --icmp-type echo-request -j ACCEPT"
    v6 = "-A cali-a -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT"
    assert parse_tables(filter_table(":cali-a - [0:0]", v4))
    assert parse_tables(filter_table(":cali-a - [0:0]", v6), family=6)
    with pytest.raises(RuleError, match="-m icmp in IPv6 rules"):
        parse_tables(filter_table(":cali-a - [0:0]", v4), family=6)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (filter_table("-A cali-x -j ACCEPT"), "unsupported or undeclared"),
        (filter_table(":cali-a ACCEPT [0:0]"), "bad policy"),
        (filter_table(":FORWARD - [0:0]"), "bad policy"),
        (filter_table(":cali-a - [0:0]", ":cali-a - [0:0]"), "unsupported or undeclared"),
        (filter_table("-I FORWARD 1 -j ACCEPT"), "unsupported or undeclared"),
        ("*filter\n", "table filter has no COMMIT"),
        ("-A FORWARD -j ACCEPT\n", "outside a table"),
        ("*filter\n*nat\n", "unexpected table"),
        (filter_table() + filter_table(), "unexpected table"),
        ("*security\nCOMMIT\n", "unexpected table"),
    ],
)
def test_malformed_text_is_refused(text: str, problem: str) -> None:
    with pytest.raises(RuleError, match=problem):
        parse_tables(text)


def test_family_is_4_or_6() -> None:
    with pytest.raises(ValueError, match="family"):
        parse_tables("", family=5)
