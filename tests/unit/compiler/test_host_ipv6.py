"""Host protection of dual-stack clusters: what goes into ip6tables and what stays in iptables.

Failsafes per family, GlobalNetworkPolicy rules filtered per family as Felix does (nets,
ipVersion, ICMP/ICMPv6), the inet6 twins of the node selector sets, ICMPv6 neighbour discovery
on the IPv6 endpoint chains, and the lockout check over IPv6 (management networks, BGP over
IPv6 sessions, the API server by IPv6 address). Real kernels:
tests/tools/test_host_protection_ipv6.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.build import Compiled, compile_cluster, load_cluster
from calicc.compiler.errors import SpecError
from calicc.compiler.host.model import Rule
from calicc.contract.host import HOST_ICMPV6_ND, HostPolicyRef, NodeHost, with_host

CLUSTER = """name: hp
network_cidr: 10.244.0.0/16
pools: [{{name: v6, cidr: "fd00:244::/56", node_selector: has(v6)}}]
{kubernetes}host_protection:
  interfaces: ["*"]
{failsafes}  management_networks: [192.168.100.0/24, "fd00:100::/64"]
nodes:
  - {{name: master, address: 10.0.0.1/24, address_v6: "fd00:10::1/64",
     labels: {{role: master, v6: y}}}}
  - {{name: worker-1, address: 10.0.0.2/24, address_v6: "fd00:10::2/64",
     labels: {{role: worker, v6: y}}}}
  - {{name: worker-2, address: 10.0.0.3/24, labels: {{role: worker}}}}
policies: [host.yaml]
"""
HEAD = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: {name}}}
spec:
  order: {order}
  selector: all()
  types: [Ingress, Egress]
  ingress:
{ingress}
  egress:
    - {{action: Allow}}
"""
ALLOW_ALL = HEAD.format(name="open", order=100, ingress="    - {action: Allow}")
V6_RULES = "cluster/ip6tables/plain.rules"
V4_RULES = "cluster/iptables/ipip.rules"


def policy(*ingress: str, name: str = "p", order: int = 10) -> str:
    return HEAD.format(name=name, order=order, ingress="\n".join(f"    - {r}" for r in ingress))


def build(
    tmp: Path,
    policies: str,
    inbound: str = "[]",
    outbound: str = "[]",
    kubernetes: str = "",
) -> Compiled:
    (tmp / "host.yaml").write_text(policies)
    failsafes = f"  failsafe_inbound: {inbound}\n  failsafe_outbound: {outbound}\n"
    text = CLUSTER.format(failsafes=failsafes, kubernetes=kubernetes)
    (tmp / "cluster.yaml").write_text(text)
    return compile_cluster(load_cluster(tmp / "cluster.yaml"))


def chain(text: str, name: str) -> list[str]:
    """Return the rules of chain `name` in the filter table of a rules file."""
    table = text[text.index("*filter") :]
    return [ln for ln in table.splitlines() if ln.startswith(f"-A {name} ")]


def policy_chain(text: str) -> list[str]:
    names = [ln.split()[1] for ln in text.splitlines() if ln.startswith("-A cali-hi-")]
    return chain(text, names[0]) if names else []


OPEN_PORTS = "[{protocol: tcp, port: 22}, {protocol: tcp, port: 179}]"
SSH_ANY = "{action: Allow, protocol: TCP, destination: {ports: [22]}}"


def test_failsafes_per_family(tmp_path: Path) -> None:
    inbound = (
        '[{protocol: tcp, port: 22, net: "fd00:100::/64"}, '
        "{protocol: tcp, port: 22, net: 192.168.100.0/24}, {protocol: udp, port: 68}]"
    )
    files = build(tmp_path, ALLOW_ALL, inbound=inbound).files
    v6 = chain(files[V6_RULES], "cali-failsafe-in")
    v4 = chain(files[V4_RULES], "cali-failsafe-in")
    assert [ln.split(" -p ")[0] for ln in v6] == [
        "-A cali-failsafe-in -s fd00:100::/64",
        "-A cali-failsafe-in",
    ]
    assert [ln.split(" -p ")[0] for ln in v4] == [
        "-A cali-failsafe-in -s 192.168.100.0/24",
        "-A cali-failsafe-in",
    ]


def test_rule_of_the_other_family_allows_nothing(tmp_path: Path) -> None:
    rules = (
        SSH_ANY,
        "{action: Allow, source: {nets: [10.9.0.0/16]}}",
        '{action: Allow, source: {nets: [10.8.0.0/16, "fd00:8::/48"]}}',
        '{action: Deny, destination: {nets: ["fd00:9::/48"]}}',
        "{action: Allow, protocol: ICMP}",
        "{action: Allow, protocol: ICMPv6}",
        "{action: Allow, ipVersion: 4, protocol: UDP}",
    )
    files = build(tmp_path, policy(*rules), inbound=OPEN_PORTS).files
    v6 = policy_chain(files[V6_RULES])
    v4 = policy_chain(files[V4_RULES])
    labels6 = [ln.split('"')[1] for ln in v6 if "allowed" not in ln]
    labels4 = [ln.split('"')[1] for ln in v4 if "allowed" not in ln]
    assert labels6 == [
        "p ingress[0] Allow",
        "p ingress[2] Allow",
        "p ingress[3] Deny",
        "p ingress[5] Allow",
    ]
    assert labels4 == [
        "p ingress[0] Allow",
        "p ingress[1] Allow",
        "p ingress[2] Allow",
        "p ingress[4] Allow",
        "p ingress[6] Allow",
    ]
    assert any("-s fd00:8::/48 -m comment" in ln for ln in v6)
    assert not any("10.8.0.0" in ln for ln in v6)
    assert any("-p ipv6-icmp" in ln for ln in v6)
    assert any("-d fd00:9::/48" in ln and ln.endswith("-j DROP") for ln in v6)
    assert not any("fd00" in ln for ln in v4)


def test_selector_sets_have_inet6_twins(tmp_path: Path) -> None:
    allow = "{action: Allow, source: {selector: role == 'worker'}}"
    files = build(tmp_path, policy(allow), inbound=OPEN_PORTS).files
    v4_set = next(w for w in policy_chain(files[V4_RULES])[0].split() if w.startswith("cali40h:"))
    v6_set = next(w for w in policy_chain(files[V6_RULES])[0].split() if w.startswith("cali60h:"))
    assert v6_set == "cali60h:" + v4_set.removeprefix("cali40h:")
    ipsets = files["cluster/ipsets.restore"]
    assert f"create {v6_set} hash:net family inet6" in ipsets
    block = ipsets[ipsets.index(f"# {v6_set}") :].split("destroy")[0]
    assert [ln.split()[-1] for ln in block.splitlines() if ln.startswith("add ")] == [
        "fd00:10::2/128"  # worker-2 has no IPv6 address
    ]


def test_model_refuses_mixed_families() -> None:
    with pytest.raises(ValueError, match="is not IPv4"):
        Rule.model_validate({"action": "Allow", "ipVersion": 4, "source": {"nets": ["fd00::/8"]}})
    with pytest.raises(ValueError, match="protocol ICMP is not IPv6"):
        Rule.model_validate({"action": "Allow", "ipVersion": 6, "protocol": "ICMP"})
    ok = Rule.model_validate({"action": "Allow", "protocol": "ICMPv6"})
    assert (ok.proto, ok.in_family(4), ok.in_family(6)) == ("ipv6-icmp", False, True)


def test_ipv6_endpoint_chains_accept_neighbour_discovery_first() -> None:
    text = "*filter\n:cali-failsafe-in - [0:0]\nCOMMIT\n"
    host = NodeHost(interfaces=("eth0",))
    v6 = with_host(text, host, family=6).splitlines()
    fh = [ln for ln in v6 if ln.startswith("-A cali-fh-eth0 ")]
    kinds = [int(ln.split("--icmpv6-type ")[1].split()[0]) for ln in fh if "icmpv6-type" in ln]
    assert tuple(kinds) == HOST_ICMPV6_ND
    assert "ESTABLISHED" in fh[0]
    assert "failsafe" in fh[2 + len(HOST_ICMPV6_ND)]
    assert "icmpv6" not in with_host(text, host)
    pre = HostPolicyRef(name="pre", ingress_chain="cali-hi-x", pre_dnat=True)
    mangle = "*mangle\n:cali-failsafe-in - [0:0]\nCOMMIT\n"
    text = with_host(mangle, NodeHost(interfaces=("eth0",), policies=(pre,)), family=6)
    fh = [ln for ln in text.splitlines() if ln.startswith("-A cali-fh-eth0 ")]
    assert [("icmpv6-type" in ln) for ln in fh[: len(HOST_ICMPV6_ND) + 1]] == [
        *(True for _ in HOST_ICMPV6_ND),
        False,
    ]


def lockout(tmp: Path, policies: str, **kw: str) -> str:
    with pytest.raises(SpecError) as info:
        build(tmp, policies, **kw)
    return str(info.value)


DENY_SSH = "{action: Deny, protocol: TCP, destination: {ports: [22]}}"


def test_ssh_from_the_ipv6_management_network(tmp_path: Path) -> None:
    v4_only = "[{protocol: tcp, port: 22, net: 192.168.100.0/24}, {protocol: tcp, port: 179}]"
    found = lockout(tmp_path, policy(DENY_SSH) + "---\n" + ALLOW_ALL, inbound=v4_only)
    assert "SSH (tcp 22) from management network fd00:100::/64" in found
    assert "192.168.100.0/24" not in found
    both = v4_only.replace("[", '[{protocol: tcp, port: 22, net: "fd00:100::/64"}, ', 1)
    build(tmp_path, policy(DENY_SSH) + "---\n" + ALLOW_ALL, inbound=both)


def test_an_ipv4_allow_does_not_keep_ipv6_ssh(tmp_path: Path) -> None:
    allow4 = "{action: Allow, protocol: TCP, source: {nets: [192.168.100.0/24]}}"
    found = lockout(tmp_path, policy(allow4, DENY_SSH), inbound="[{protocol: tcp, port: 179}]")
    assert "fd00:100::/64" in found
    allow6 = '{action: Allow, protocol: TCP, source: {nets: ["fd00:100::/64"]}}'
    build(tmp_path, policy(allow4, allow6, DENY_SSH), inbound="[{protocol: tcp, port: 179}]")


def test_bgp_over_ipv6_sessions(tmp_path: Path) -> None:
    deny_bgp6 = (
        '{action: Deny, protocol: TCP, source: {nets: ["fd00:10::/64"]}, '
        "destination: {ports: [179]}}"
    )
    found = lockout(tmp_path, policy(deny_bgp6) + "---\n" + ALLOW_ALL)
    assert "IPv6 BGP (tcp 179) from its peers" in found
    assert "fd00:10::" in found


def test_api_server_by_ipv6_address(tmp_path: Path) -> None:
    kube = (
        "kubernetes:\n  server: https://[fd00:10::1]:6443\n"
        "  certificate_authority: /etc/ca.crt\n  token_file: /etc/token\n"
    )
    egress_udp = ALLOW_ALL.replace(
        "egress:\n    - {action: Allow}", "egress: [{action: Allow, protocol: UDP}]"
    )
    found = lockout(tmp_path, egress_udp, outbound="[{protocol: tcp, port: 179}]", kubernetes=kube)
    assert "the Kubernetes API (tcp 6443) (fd00:10::1/128)" in found
