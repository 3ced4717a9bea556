"""trace/walk.py: one packet through parsed chains, each match and target as netfilter does."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from calicc.compiler.build import compile_cluster
from calicc.contract.endpoint import PodPolicies, endpoint_rules, with_endpoints
from calicc.contract.host import with_host
from calicc.trace.matches import RuleError
from calicc.trace.rules import Table, parse_tables
from calicc.trace.walk import Packet, Step, Verdict, walk
from tests.conftest import EXAMPLES
from tests.support.examples import load_example

Address = IPv4Address | IPv6Address
POD = "cali0123456789a"
WEB_ALLOW = "cali-pi-mG7KSB2SKMxwlcz4tTy8"  # policies-demo: shop/web-allow ingress


class FakeSets:
    """Sets as {name: members}; a member is an address, or (address, proto, port)."""

    def __init__(self, sets: dict[str, set[object]] | None = None) -> None:
        self.sets = sets or {}
        self.asked: list[tuple[str, Address, str | None, int | None]] = []

    def member(self, name: str, address: Address, proto: str | None, port: int | None) -> bool:
        self.asked.append((name, address, proto, port))
        key = address if proto is None else (address, proto, port)
        return key in self.sets.get(name, set())


def packet(**changes: object) -> Packet:
    base = Packet(4, ip_address("10.0.0.1"), ip_address("10.0.0.2"), "tcp", dport=80)
    return replace(base, **changes)


def deciding(verdict: Verdict) -> Step:
    assert verdict.deciding is not None
    return verdict.deciding


def chain_of(*rules: str, table: str = "filter", family: int = 4) -> dict[str, Table]:
    """Tables where built-in FORWARD (policy DROP) holds `rules` and may jump to cali-a..c."""
    head = [f"*{table}", ":FORWARD DROP [0:0]"] if table == "filter" else [f"*{table}"]
    chains = [f":cali-{c} - [0:0]" for c in "abc"]
    return parse_tables("\n".join([*head, *chains, *rules, "COMMIT", ""]), family)


def run(rule: str, p: Packet | None = None, sets: FakeSets | None = None) -> str:
    """Walk FORWARD holding `-A FORWARD <rule> -j ACCEPT`: ACCEPT if it matched, else DROP."""
    tables = chain_of(f"-A FORWARD {rule} -j ACCEPT")
    return walk(tables, "filter", "FORWARD", p or packet(), sets or FakeSets()).verdict


@pytest.mark.parametrize(
    ("rule", "changes", "verdict"),
    [
        ("-p tcp", {}, "ACCEPT"),
        ("-p udp", {}, "DROP"),
        ("! -p tcp", {}, "DROP"),
        ("! -p udp", {}, "ACCEPT"),
        ("-p 6", {}, "ACCEPT"),
        ("-p all", {"proto": "icmp", "dport": None}, "ACCEPT"),
        ("-p ipencap", {"proto": "ipencap", "dport": None}, "ACCEPT"),
        ("-s 10.0.0.0/24", {}, "ACCEPT"),
        ("-s 10.0.1.0/24", {}, "DROP"),
        ("! -s 10.0.1.0/24", {}, "ACCEPT"),
        ("-d 10.0.0.2/32", {}, "ACCEPT"),
        ("-d 10.0.0.3", {}, "DROP"),
        ("! -d 10.0.0.0/8", {}, "DROP"),
        ("-i cali+", {"iif": "cali0123"}, "ACCEPT"),
        ("-i cali+", {"iif": "eth0"}, "DROP"),
        ("-i cali+", {}, "DROP"),
        ("! -i cali+", {}, "ACCEPT"),
        ("-i eth0", {"iif": "eth0"}, "ACCEPT"),
        ("-i eth0", {"iif": "eth01"}, "DROP"),
        ("-o cali+", {"oif": "cali1"}, "ACCEPT"),
        ("! -o cali+", {"oif": "cali1"}, "DROP"),
        ("-o +", {"oif": "eth0"}, "ACCEPT"),
        ("-m mark --mark 0x10000/0x10000", {"mark": 0x30000}, "ACCEPT"),
        ("-m mark --mark 0x10000/0x10000", {"mark": 0x20000}, "DROP"),
        ("-m mark ! --mark 0x0/0x30000", {"mark": 0x20000}, "ACCEPT"),
        ("-m mark ! --mark 0x0/0x30000", {"mark": 0x40000}, "DROP"),
        ("-m mark --mark 0x5", {"mark": 0x5}, "ACCEPT"),
        ("-m mark --mark 0x5", {"mark": 0x10005}, "DROP"),
        ("-m conntrack --ctstate RELATED,ESTABLISHED", {}, "DROP"),
        ("-m conntrack --ctstate RELATED,ESTABLISHED", {"ctstate": "ESTABLISHED"}, "ACCEPT"),
        ("-m conntrack --ctstate INVALID", {"ctstate": "INVALID"}, "ACCEPT"),
        ("-m conntrack ! --ctstate DNAT", {}, "ACCEPT"),
        ("-m conntrack ! --ctstate DNAT", {"ctstate": "NEW,DNAT"}, "DROP"),
        ("-m addrtype --dst-type LOCAL", {"dst_local": True}, "ACCEPT"),
        ("-m addrtype --dst-type LOCAL", {}, "DROP"),
        ("-m addrtype ! --src-type LOCAL", {"src_local": True}, "DROP"),
        ("-m addrtype ! --src-type LOCAL", {}, "ACCEPT"),
        ("-p tcp -m tcp --dport 80", {}, "ACCEPT"),
        ("-p tcp -m tcp --dport 8000:8100", {"dport": 8100}, "ACCEPT"),
        ("-p tcp -m tcp --dport 8000:8100", {"dport": 8101}, "DROP"),
        ("-p tcp -m tcp ! --dport 80", {}, "DROP"),
        ("-p tcp -m tcp --sport 1024:", {"sport": 40000}, "ACCEPT"),
        ("-p tcp -m tcp --sport 1024:", {"sport": 22}, "DROP"),
        ("-p udp -m udp --dport 53", {"proto": "udp", "dport": 53}, "ACCEPT"),
        ("-p udp -m udp --dport 80", {}, "DROP"),
        ("-p sctp -m sctp --dport 9000", {"proto": "sctp", "dport": 9000}, "ACCEPT"),
        ("-p tcp -m multiport --dports 22,6443", {"dport": 6443}, "ACCEPT"),
        ("-p tcp -m multiport --dports 22,6443", {"dport": 6444}, "DROP"),
        ("-p tcp -m multiport --dports 8000:8999 -m multiport ! --dports 8443", {}, "DROP"),
        (
            "-p tcp -m multiport --dports 8000:8999 -m multiport ! --dports 8443",
            {"dport": 8080},
            "ACCEPT",
        ),
        (
            "-p tcp -m multiport --dports 8000:8999 -m multiport ! --dports 8443",
            {"dport": 8443},
            "DROP",
        ),
        ("-p tcp -m multiport --sports 53", {"sport": 53}, "ACCEPT"),
        ("-p icmp -m icmp --icmp-type echo-request", {"proto": "icmp", "icmp_type": 8}, "ACCEPT"),
        ("-p icmp -m icmp --icmp-type 8", {"proto": "icmp", "icmp_type": 0}, "DROP"),
        ("-p icmp -m icmp ! --icmp-type echo-reply", {"proto": "icmp", "icmp_type": 8}, "ACCEPT"),
        ("-p icmp -m icmp --icmp-type any", {"proto": "icmp", "dport": None}, "ACCEPT"),
        ('-m comment --comment "-j DROP"', {}, "ACCEPT"),
    ],
)
def test_each_match_and_its_negation(rule: str, changes: dict[str, object], verdict: str) -> None:
    assert run(rule, packet(**changes)) == verdict


@pytest.mark.parametrize(
    ("icmpv6_type", "kind", "verdict"),
    [
        ("neighbour-solicitation", 135, "ACCEPT"),
        ("router-advertisement", 134, "ACCEPT"),
        ("router-advertisement", 133, "DROP"),
        ("130", 130, "ACCEPT"),
        ("echo-request", 128, "ACCEPT"),
    ],
)
def test_icmpv6_types(icmpv6_type: str, kind: int, verdict: str) -> None:
    rule = f"-A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type {icmpv6_type} -j ACCEPT"
    tables = chain_of(rule, family=6)
    p = Packet(6, ip_address("fd00::1"), ip_address("fd00::2"), "icmpv6", icmp_type=kind)
    assert walk(tables, "filter", "FORWARD", p, FakeSets()).verdict == verdict


def test_set_flags_pick_the_address_and_port() -> None:
    src, dst = ip_address("10.0.0.1"), ip_address("10.0.0.2")
    sets = FakeSets({"s": {src}, "d": {dst}, "n": {(dst, "tcp", 80)}, "p": {(src, "tcp", 5)}})
    assert run("-m set --match-set s src", sets=sets) == "ACCEPT"
    assert run("-m set --match-set s dst", sets=sets) == "DROP"
    assert run("-m set --match-set d dst", sets=sets) == "ACCEPT"
    assert run("-m set ! --match-set d dst", sets=sets) == "DROP"
    assert run("-m set ! --match-set s dst", sets=sets) == "ACCEPT"
    assert run("-m set --match-set n dst,dst", sets=sets) == "ACCEPT"
    assert run("-m set --match-set n dst,dst", packet(dport=81), sets) == "DROP"
    assert run("-m set --match-set p src,src", packet(sport=5), sets) == "ACCEPT"
    assert run("-m set --match-set p src,dst", packet(sport=5), sets) == "DROP"
    assert sets.asked[:6] == [
        ("s", src, None, None),
        ("s", dst, None, None),
        ("d", dst, None, None),
        ("d", dst, None, None),
        ("s", dst, None, None),
        ("n", dst, "tcp", 80),
    ]
    assert sets.asked[-1] == ("p", src, "tcp", 80), "src,dst: source address, destination port"


def test_addrtype_interface_limit_is_asked_of_a_local_address_only() -> None:
    rule = "-o tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL"
    tunnel = packet(oif="tunl0", src_local=True)
    assert run(rule, replace(tunnel, src_on_oif=False)) == "ACCEPT", "host address, not tunl0's"
    assert run(rule, replace(tunnel, src_on_oif=True)) == "DROP", "already the tunnel address"
    assert run(rule, replace(tunnel, src_local=False)) == "DROP", "a pod's: not local at all"
    with pytest.raises(RuleError, match="src_on_oif unsaid, needed by rule: -A FORWARD -o tunl0"):
        run(rule, tunnel)
    inbound = "-m addrtype --dst-type LOCAL --limit-iface-in"
    assert run(inbound, packet(dst_local=True, dst_on_iif=True)) == "ACCEPT"
    assert run(inbound, packet(dst_local=True, dst_on_iif=False)) == "DROP"


def test_a_port_or_icmp_type_the_packet_leaves_unsaid_is_an_error() -> None:
    with pytest.raises(RuleError, match="no sport, needed by rule: -A FORWARD -p tcp"):
        run("-p tcp -m tcp --sport 53", packet())
    with pytest.raises(RuleError, match="no icmp_type"):
        run("-p icmp -m icmp --icmp-type 8", packet(proto="icmp", dport=None))


def test_targets_terminal_and_not() -> None:
    tables = chain_of(
        "-A FORWARD -p udp -j REJECT --reject-with icmp-port-unreachable",
        '-A FORWARD -p tcp -j LOG --log-prefix "calicc-host: "',
        "-A FORWARD -p tcp -m tcp --dport 22 -j DROP",
        "-A FORWARD -p tcp -j ACCEPT",
    )
    ssh = walk(tables, "filter", "FORWARD", packet(dport=22), FakeSets())
    assert ssh.verdict == "DROP"
    assert [(s.number, s.action) for s in ssh.steps] == [
        (2, "LOG --log-prefix calicc-host: "),
        (3, "DROP"),
    ]
    assert ssh.deciding == ssh.steps[-1]
    assert deciding(walk(tables, "filter", "FORWARD", packet(), FakeSets())).number == 4
    udp = walk(tables, "filter", "FORWARD", packet(proto="udp"), FakeSets())
    assert (udp.verdict, deciding(udp).number) == ("REJECT", 1)


def test_built_in_policy_decides_at_the_end_and_on_return() -> None:
    tables = chain_of("-A FORWARD -p udp -j ACCEPT", "-A FORWARD -p icmp -j RETURN")
    verdict = walk(tables, "filter", "FORWARD", packet(), FakeSets())
    assert verdict.verdict == "DROP"
    assert verdict.deciding is not None
    assert (verdict.deciding.chain, verdict.deciding.number) == ("FORWARD", 0)
    assert (verdict.deciding.action, verdict.deciding.text) == ("policy DROP", ":FORWARD DROP")
    icmp = walk(tables, "filter", "FORWARD", packet(proto="icmp", dport=None), FakeSets())
    assert [s.action for s in icmp.steps] == ["RETURN", "policy DROP"]


def test_a_user_chain_walked_alone_returns() -> None:
    tables = chain_of("-A cali-a -p udp -j ACCEPT", "-A cali-b -j RETURN")
    ran_off = walk(tables, "filter", "cali-a", packet(), FakeSets())
    assert (ran_off.verdict, ran_off.deciding, ran_off.steps) == ("RETURN", None, ())
    returned = walk(tables, "filter", "cali-b", packet(), FakeSets())
    assert (returned.verdict, deciding(returned).number) == ("RETURN", 1)


def test_jump_comes_back_after_the_jump_goto_returns_from_the_caller() -> None:
    tables = chain_of(
        "-A FORWARD -j cali-a",
        "-A FORWARD -m mark --mark 0x1/0x1 -j ACCEPT",
        "-A cali-a -p tcp -g cali-b",
        "-A cali-a -j MARK --set-xmark 0x2/0x2",
        "-A cali-a -j ACCEPT",
        "-A cali-b -j MARK --set-xmark 0x1/0x1",
        "-A cali-b -j cali-c",
        "-A cali-b -j MARK --set-xmark 0x4/0x4",
        "-A cali-c -j RETURN",
        "-A cali-c -j DROP",
    )
    verdict = walk(tables, "filter", "FORWARD", packet(), FakeSets())
    assert [(s.chain, s.number, s.action) for s in verdict.steps] == [
        ("FORWARD", 1, "jump cali-a"),
        ("cali-a", 1, "goto cali-b"),
        ("cali-b", 1, "MARK 0x1/0x1"),
        ("cali-b", 2, "jump cali-c"),
        ("cali-c", 1, "RETURN"),
        ("cali-b", 3, "MARK 0x4/0x4"),
        ("FORWARD", 2, "ACCEPT"),
    ], "cali-b's end returns from cali-a (the goto's chain) to FORWARD: cali-a rule 2 never runs"
    assert verdict.mark == 0x5
    udp = walk(tables, "filter", "FORWARD", packet(proto="udp"), FakeSets())
    assert [(s.chain, s.number) for s in udp.steps] == [
        ("FORWARD", 1),
        ("cali-a", 2),
        ("cali-a", 3),
    ]


def test_mark_arithmetic_over_several_rules() -> None:
    tables = chain_of(
        "-A FORWARD -j MARK --set-xmark 0x0/0x30000",
        "-A FORWARD -j MARK --set-xmark 0x10000/0x10000",
        "-A FORWARD -j MARK --set-xmark 0x20000/0x20000",
        "-A FORWARD -j MARK --set-xmark 0x0/0x20000",
        "-A FORWARD -j MARK --set-xmark 0x3/0x0",
        "-A FORWARD -j MARK --set-mark 0x100/0xf00",
        "-A FORWARD -m mark --mark 0x10103/0xffffffff -j ACCEPT",
    )
    verdict = walk(tables, "filter", "FORWARD", packet(mark=0xF0030000 | 0x200), FakeSets())
    # clear both bits, set accept, set pass, clear pass, xor 0x3, bits 0xf00 := 0x1
    assert hex(verdict.mark) == hex(0xF0010103)
    assert verdict.verdict == "DROP", "the last rule wants exactly 0x10103"
    tables = chain_of(
        "-A FORWARD -j MARK --set-xmark 0x3/0x0", "-A FORWARD -j MARK --set-xmark 0x1/0x0"
    )
    assert walk(tables, "filter", "FORWARD", packet(), FakeSets()).mark == 0x2, "xor"


def test_calico_accept_mark_pattern() -> None:
    """A policy chain sets the accept mark and returns; the endpoint chain returns on it."""
    tables = chain_of(
        "-A FORWARD -j MARK --set-xmark 0x0/0x30000",
        "-A FORWARD -j cali-a",
        '-A FORWARD -m mark --mark 0x10000/0x10000 -m comment --comment "accepted" -j ACCEPT',
        "-A cali-a -j MARK --set-xmark 0x0/0x30000",
        "-A cali-a -j cali-b",
        "-A cali-a -m mark --mark 0x10000/0x10000 -j RETURN",
        '-A cali-a -m comment --comment "Drop if no policies passed packet" -j DROP',
        "-A cali-b -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x10000/0x10000",
        "-A cali-b -m mark --mark 0x10000/0x10000 -j RETURN",
    )
    web = walk(tables, "filter", "FORWARD", packet(mark=0x10000), FakeSets())
    assert (web.verdict, deciding(web).number, deciding(web).comment) == ("ACCEPT", 3, "accepted")
    assert web.mark == 0x10000
    ssh = walk(tables, "filter", "FORWARD", packet(dport=22, mark=0x10000), FakeSets())
    assert ssh.deciding is not None
    assert (ssh.verdict, ssh.deciding.chain, ssh.deciding.number) == ("DROP", "cali-a", 4)
    assert ssh.deciding.comment == "Drop if no policies passed packet"
    assert ssh.mark == 0, "the mark the packet came with was cleared"


def test_nat_targets_end_the_nat_walk_and_are_recorded() -> None:
    tables = chain_of(
        "-A POSTROUTING -j cali-a",
        "-A cali-a -o tunl0 -j MASQUERADE",
        "-A cali-a -s 10.0.0.0/8 -j SNAT --to-source 192.0.2.1",
        table="nat",
    )
    masq = walk(tables, "nat", "POSTROUTING", packet(oif="tunl0"), FakeSets())
    assert (masq.verdict, [s.action for s in masq.nat]) == ("ACCEPT", ["MASQUERADE"])
    assert masq.deciding == masq.nat[0]
    snat = walk(tables, "nat", "POSTROUTING", packet(oif="eth0"), FakeSets())
    assert [s.action for s in snat.nat] == ["SNAT --to-source 192.0.2.1"]
    none = walk(tables, "nat", "POSTROUTING", packet(src=ip_address("192.0.2.9")), FakeSets())
    assert (none.verdict, none.nat, deciding(none).action) == ("ACCEPT", (), "policy ACCEPT")


def test_jump_loops_are_refused() -> None:
    loop = chain_of("-A FORWARD -j cali-a", "-A cali-a -j cali-b", "-A cali-b -j cali-a")
    with pytest.raises(RuleError, match="jump loop"):
        walk(loop, "filter", "FORWARD", packet(), FakeSets())
    gotos = chain_of("-A FORWARD -j cali-a", "-A cali-a -g cali-b", "-A cali-b -g cali-a")
    with pytest.raises(RuleError, match="jump loop"):
        walk(gotos, "filter", "FORWARD", packet(), FakeSets())


def test_bad_walks_are_refused() -> None:
    tables = chain_of("-A FORWARD -j ACCEPT")
    with pytest.raises(RuleError, match="no chain 'INPUT'"):
        walk(tables, "filter", "INPUT", packet(), FakeSets())
    with pytest.raises(RuleError, match="no chain 'FORWARD' in table 'nat'"):
        walk(tables, "nat", "FORWARD", packet(), FakeSets())
    v6 = Packet(6, ip_address("fd00::1"), ip_address("fd00::2"), "udp", dport=53)
    with pytest.raises(ValueError, match="IPv6 packet through IPv4 rules"):
        walk(tables, "filter", "FORWARD", v6, FakeSets())
    icmp = packet(proto="icmpv6", dport=None)
    for bad in (packet(family=6), packet(proto="ipx"), packet(dport=None), icmp):
        with pytest.raises(ValueError, match=r"not IPv6|unknown protocol|port|not the ICMP"):
            walk(tables, "filter", "FORWARD", bad, FakeSets())


def policies_demo_node(policies: PodPolicies) -> dict[str, Table]:
    """policies-demo's ipip.rules with one pod's endpoint chains and the FORWARD hook."""
    text = (EXAMPLES / "policies-demo/rendered/cluster/iptables/ipip.rules").read_text()
    text = with_endpoints(text, [endpoint_rules(POD, policies)])
    hook = ':FORWARD DROP [0:0]\n-A FORWARD -m comment --comment "calicc hook" -j cali-FORWARD\n'
    return parse_tables(text.replace("*filter\n", "*filter\n" + hook))


def test_policies_demo_pod_ingress_through_filter_forward() -> None:
    tables = policies_demo_node(PodPolicies(ingress=((WEB_ALLOW, "shop/web-allow"),)))
    to_pod = Packet(
        4, ip_address("172.16.5.5"), ip_address("10.244.1.7"), "tcp", dport=8050,
        sport=40000, iif="tunl0", oif=POD,
    )  # fmt: skip
    sets = FakeSets({"cali40b:AAxgUrkjLBBq60ER4Qh_Me-": {ip_address("172.16.5.5")}})
    allowed = walk(tables, "filter", "FORWARD", to_pod, sets)
    assert allowed.verdict == "ACCEPT"
    assert allowed.deciding is not None
    assert (allowed.deciding.chain, allowed.deciding.number) == ("cali-FORWARD", 4)
    assert allowed.deciding.comment == "Policy explicitly accepted packet."
    walked = [(s.chain, s.number) for s in allowed.steps]
    assert walked == [
        ("FORWARD", 1),
        ("cali-FORWARD", 1),
        ("cali-FORWARD", 3),
        ("cali-to-wl-dispatch", 1),  # -o cali0123456789a -g cali-tw-cali0123456789a
        ("cali-tw-" + POD, 3),
        ("cali-tw-" + POD, 4),
        (WEB_ALLOW, 2),  # TCP/8000:8100 from the ipBlock
        (WEB_ALLOW, 5),
        ("cali-tw-" + POD, 5),  # returns from the goto'd chain: back to cali-FORWARD
        ("cali-FORWARD", 4),
    ]
    assert allowed.mark == 0x10000
    denied = walk(tables, "filter", "FORWARD", replace(to_pod, dport=22), sets)
    assert denied.deciding is not None
    assert (denied.verdict, denied.deciding.chain, denied.deciding.number) == (
        "DROP",
        "cali-tw-" + POD,
        6,
    )
    assert denied.deciding.comment == f"default deny: {POD} has ingress policy"
    other = walk(tables, "filter", "FORWARD", replace(to_pod, oif="cali99"), sets)
    assert other.deciding is not None
    assert (other.verdict, other.deciding.chain, other.deciding.number) == (
        "DROP",
        "cali-to-wl-dispatch",
        2,
    )
    established = walk(tables, "filter", "FORWARD", replace(to_pod, ctstate="ESTABLISHED"), sets)
    assert (established.verdict, deciding(established).number) == ("ACCEPT", 1)


def test_host_protection_failsafe_through_host_endpoint_goto() -> None:
    compiled = compile_cluster(load_example("host-protection"))
    node = compiled.node_manifest(compiled.plan.nodes[0].name)
    text = with_host(compiled.files["cluster/iptables/ipip.rules"], node.host)
    tables = parse_tables(text)
    ssh = Packet(
        4, ip_address("192.168.100.5"), ip_address("192.168.100.10"), "tcp", dport=22,
        iif="eth0", dst_local=True,
    )  # fmt: skip
    verdict = walk(tables, "filter", "cali-INPUT", ssh, FakeSets())
    assert verdict.verdict == "ACCEPT"
    assert (deciding(verdict).chain, deciding(verdict).number) == ("cali-failsafe-in", 1)
    assert "goto cali-fh-@all" in [s.action for s in verdict.steps]
    other = walk(tables, "filter", "cali-INPUT", replace(ssh, dport=2222), FakeSets())
    assert other.verdict == "DROP"
    assert deciding(other).chain == "cali-fh-@all"
    assert deciding(other).comment.startswith("default deny on *")


def test_a_packet_copied_with_changes_equals_dataclasses_replace() -> None:
    packet = Packet(4, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), "tcp", dport=80)
    changed = packet.but(oif="eth0", mark=0x10000, src_local=True)
    assert changed == replace(packet, oif="eth0", mark=0x10000, src_local=True)
    assert hash(changed) == hash(replace(packet, oif="eth0", mark=0x10000, src_local=True))
    assert packet.oif is None  # the original is unchanged
    with pytest.raises(TypeError, match="no field oiff"):
        packet.but(oiff="eth0")
