"""IPv6 NetworkPolicy and ClusterNetworkPolicy (issue 13): the policy chains in ip6tables under
the IPv4 names, their rules naming the `family inet6` twins of the selector and named-port sets
(cali60s:, cali60n:, the same hash), an ipBlock (or CNP networks) matching only in its own
family, and IPv4-only clusters without any IPv6 set or rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.errors import SpecError
from calicc.compiler.lock import Lock
from calicc.compiler.plan import ClusterPlan, build_plan
from calicc.compiler.policy.cnp import compile_cluster_policies
from calicc.compiler.policy.rules import compile_policies
from calicc.compiler.render import render_cluster
from calicc.contract.names import CLUSTER_IPSETS, CLUSTER_POLICY, v6_twin
from calicc.contract.syntax import SET_ACCEPT
from tests.support.clusters import load

DS: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "ipip_mode": "Never",
    "nodes": [{"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64"}],
    "policies": ["policies.yaml"],
}
V4_ONLY: dict[str, Any] = {
    "name": "t",
    "network_cidr": "10.244.0.0/16",
    "ipip_mode": "Never",
    "nodes": [{"name": "n1", "address": "10.0.0.1/24"}],
    "policies": ["policies.yaml"],
}
V4_RULES, V6_RULES = "cluster/iptables/plain.rules", "cluster/ip6tables/plain.rules"


def netpol(name: str, app: str = "db", namespace: str = "demo", **spec: Any) -> dict[str, Any]:
    """A NetworkPolicy of `namespace` selecting the pods labelled app=`app`."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, **spec},
    }


def cnp(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"tier": "Admin", "priority": 10, "subject": {"namespaces": {}}, **spec},
    }


def plan(tmp_path: Path, cluster: dict[str, Any], *docs: dict[str, Any]) -> ClusterPlan:
    """Plan `cluster` with policy documents `docs` (its policies.yaml) in tmp_path."""
    (tmp_path / "policies.yaml").write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    inputs = load(tmp_path, cluster)
    compiled = compile_policies(inputs.policies), compile_cluster_policies(inputs.policies)
    return build_plan(inputs.spec, Lock(), *compiled)


def chains(text: str, table: str = "filter") -> dict[str, list[str]]:
    """Return {chain: rule lines} of one table of restore input."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith(":"):
            found[line[1:].split()[0]] = []
        elif current == table and line.startswith("-A "):
            found[line.split()[1]].append(line)
    return found


def rendered(tmp_path: Path, cluster: dict[str, Any], *docs: dict[str, Any]) -> dict[str, str]:
    return dict(render_cluster(plan(tmp_path, cluster, *docs)))


def policy_chain(files: dict[str, str], role: str, prefix: str = "cali-pi-") -> list[str]:
    found = [rules for name, rules in chains(files[role]).items() if name.startswith(prefix)]
    assert len(found) == 1, found
    return found[0]


def allows(rules: list[str]) -> list[str]:
    return [r for r in rules if r.endswith(SET_ACCEPT)]


def creates(files: dict[str, str]) -> dict[str, str]:
    lines = files[CLUSTER_IPSETS].splitlines()
    return {ln.split()[1]: ln for ln in lines if ln.startswith("create ") and "cali4t" not in ln}


V6_BLOCK = {"ipBlock": {"cidr": "fd00:99::/64", "except": ["fd00:99::/80"]}}
V4_BLOCK = {"ipBlock": {"cidr": "10.99.0.0/16"}}


def test_ipv6_ip_block_allows_only_in_ip6tables(tmp_path: Path) -> None:
    files = rendered(tmp_path, DS, netpol("v6", ingress=[{"from": [V6_BLOCK]}]))
    v6 = allows(policy_chain(files, V6_RULES))
    assert len(v6) == 1
    assert "-m set --match-set cali60b:" in v6[0]
    assert allows(policy_chain(files, V4_RULES)) == [], "an IPv6 block allows no IPv4 source"
    name = v6[0].split("--match-set ")[1].split()[0]
    assert creates(files)[name].startswith(f"create {name} hash:net family inet6 ")
    members = [ln for ln in files[CLUSTER_IPSETS].splitlines() if ln.startswith("add cali6t")]
    assert "fd00:99:0:0:1::/80" in " ".join(members)  # the except carved out
    assert not [m for m in members if m.endswith(" fd00:99::/64")]


def test_ipv4_only_peers_allow_nothing_in_ip6tables_and_the_reverse(tmp_path: Path) -> None:
    files = rendered(
        tmp_path,
        DS,
        netpol("v4", ingress=[{"from": [V4_BLOCK]}], egress=[{"to": [V6_BLOCK]}]),
    )
    v4_in, v6_in = policy_chain(files, V4_RULES), policy_chain(files, V6_RULES)
    assert len(allows(v4_in)) == 1
    assert allows(v6_in) == [], "an IPv4-only rule must not allow any IPv6 source"
    assert v6_in  # the rule is there, allowing nothing
    assert all("RETURN" in r for r in v6_in)
    v4_out = policy_chain(files, V4_RULES, "cali-po-")
    v6_out = policy_chain(files, V6_RULES, "cali-po-")
    assert allows(v4_out) == [], "an IPv6-only rule must not allow any IPv4 destination"
    assert len(allows(v6_out)) == 1
    assert "cali40" not in files[V6_RULES]  # an IPv4 set in ip6tables fails the restore
    assert "cali60" not in files[V4_RULES]


def test_mixed_peers_allow_each_family_its_own(tmp_path: Path) -> None:
    mixed = netpol("mix", ingress=[{"from": [V4_BLOCK, V6_BLOCK], "ports": [{"port": 443}]}])
    files = rendered(tmp_path, DS, mixed)
    (v4,) = allows(policy_chain(files, V4_RULES))
    (v6,) = allows(policy_chain(files, V6_RULES))
    assert "cali40b:" in v4
    assert "cali60b:" in v6
    assert "--dport 443" in v4
    assert "--dport 443" in v6


def test_rules_without_peers_allow_in_both_families(tmp_path: Path) -> None:
    files = rendered(tmp_path, DS, netpol("any", ingress=[{"ports": [{"port": 80}]}]))
    for role in (V4_RULES, V6_RULES):
        (allow,) = allows(policy_chain(files, role))
        assert "--match-set" not in allow
        assert "-p tcp -m tcp --dport 80" in allow


def test_selector_and_named_port_sets_have_inet6_twins(tmp_path: Path) -> None:
    peer = {"podSelector": {"matchLabels": {"app": "web"}}}
    doc = netpol("sel", ingress=[{"from": [peer], "ports": [{"port": "http"}]}])
    files = rendered(tmp_path, DS, doc)
    (v4,) = allows(policy_chain(files, V4_RULES))
    (v6,) = allows(policy_chain(files, V6_RULES))
    sets4 = [w for w in v4.split() if w.startswith("cali40")]
    sets6 = [w for w in v6.split() if w.startswith("cali60")]
    assert [s[:8] for s in sets4] == ["cali40n:", "cali40s:"]
    assert sets6 == [v6_twin(s) for s in sets4]
    made = creates(files)
    for name in sets6:
        assert " family inet6 " in made[name]
    ipsets = {s["name"]: s for s in json.loads(files[CLUSTER_POLICY])["ipsets"]}
    for v4_name, v6_name in zip(sets4, sets6, strict=True):
        assert ipsets[v6_name]["selector"] == ipsets[v4_name]["selector"]
        assert ipsets[v6_name]["type"] == ipsets[v4_name]["type"]


def test_ipv4_only_cluster_has_no_ipv6_set_or_allow(tmp_path: Path) -> None:
    doc = netpol(
        "v4",
        ingress=[{"from": [V6_BLOCK]}, {"from": [{"podSelector": {}}], "ports": [{"port": "dns"}]}],
    )
    files = rendered(tmp_path, V4_ONLY, doc)
    assert not [rel for rel in files if "ip6tables" in rel]
    assert "cali6" not in files[CLUSTER_IPSETS]
    assert "cali6" not in files[CLUSTER_POLICY]
    assert "cali6" not in files[V4_RULES]
    rules = policy_chain(files, V4_RULES)
    assert len(allows(rules)) == 1, "only the selector rule: the IPv6 block allows nothing"


def test_cnp_networks_of_both_families_and_tier_chains_in_ip6tables(tmp_path: Path) -> None:
    deny = {"action": "Deny", "to": [{"networks": ["10.9.0.0/16", "fd00:9::/48"]}]}
    only4 = {"action": "Deny", "to": [{"networks": ["10.8.0.0/16"]}]}
    accept = {"action": "Accept", "to": [{"pods": {"namespaceSelector": {}, "podSelector": {}}}]}
    files = rendered(tmp_path, DS, cnp("c", egress=[deny, only4, accept]))
    v4, v6 = (policy_chain(files, role, "cali-ao-") for role in (V4_RULES, V6_RULES))
    drops4 = [r for r in v4 if r.endswith("-j DROP")]
    drops6 = [r for r in v6 if r.endswith("-j DROP")]
    assert len(drops4) == 2
    assert len(drops6) == 1, "the IPv4-only Deny drops nothing in IPv6"
    assert "cali60b:" in drops6[0]
    name4, name6 = drops4[0].split("--match-set ")[1].split()[0], drops6[0].split()[5]
    assert name6 == v6_twin(name4)
    assert creates(files)[name6].startswith(f"create {name6} hash:net family inet6")
    assert "10.9.0.0/16" not in files[CLUSTER_IPSETS].split(f"create {name6}")[1].split("create")[0]
    admin6 = chains(files[V6_RULES])["cali-admin-out"]
    subject4 = chains(files[V4_RULES])["cali-admin-out"][0].split("--match-set ")[1].split()[0]
    assert f"--match-set {v6_twin(subject4)} src" in admin6[0]
    assert " family inet6 " in creates(files)[v6_twin(subject4)]


def test_endpoint_policy_chain_names_match_across_families(tmp_path: Path) -> None:
    files = rendered(tmp_path, DS, netpol("p", ingress=[{"from": [V4_BLOCK]}]), cnp("c"))
    v4 = {n for n in chains(files[V4_RULES]) if n.startswith(("cali-p", "cali-a", "cali-c"))}
    v6 = {n for n in chains(files[V6_RULES]) if n.startswith(("cali-p", "cali-a", "cali-c"))}
    assert v4 == v6
    assert v4


def test_except_of_the_other_family_is_refused(tmp_path: Path) -> None:
    block = {"ipBlock": {"cidr": "fd00:99::/64", "except": ["10.0.0.0/8"]}}
    with pytest.raises(SpecError) as raised:
        plan(tmp_path, DS, netpol("bad", ingress=[{"from": [block]}]))
    assert "10.0.0.0/8 is IPv4 but cidr fd00:99::/64 is IPv6" in str(raised.value)
