"""Host protection compiled: shared chains once, node profiles in policy.json, the agent's merge."""

from __future__ import annotations

import json
from pathlib import Path

from calicc.contract.host import host_rules, with_host
from calicc.contract.names import IPTABLES_FILE
from tests.tools.treekit import role_text
from tests.unit.compiler.host_cases import OPEN, build

POLICIES = (
    OPEN
    + """---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: workers-no-8080}
spec:
  order: 1
  selector: role == 'worker'
  applyOnForward: true
  ingress:
    - action: Deny
      protocol: TCP
      source: {selector: role == 'master'}
      destination: {ports: [8080]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: nodeports}
spec:
  selector: all()
  preDNAT: true
  applyOnForward: true
  ingress: [{action: Deny, protocol: TCP, destination: {ports: ["30000:32767"]}}]
"""
)


def test_chains_hooks_and_profiles(tmp_path: Path) -> None:
    compiled = build(tmp_path, POLICIES, inbound="[{protocol: tcp, port: 22}]")
    rules = role_text(compiled.files, "worker-1", IPTABLES_FILE)
    assert "-A cali-failsafe-in -p tcp -m tcp --dport 22" in rules
    assert '-A cali-INPUT -m comment --comment "host endpoint ingress policy"' in rules
    assert "-j cali-from-hep-forward" in rules
    assert "-j cali-to-hep-forward" in rules
    mangle = rules.split("*mangle")[1].split("COMMIT")[0]
    assert "-j cali-from-host-endpoint" in mangle
    assert "--dports 30000:32767" in mangle
    assert "10.0.0." not in rules, "the shared rules name no node (selector sets instead)"
    ipsets = compiled.files["cluster/ipsets.restore"]
    assert "add cali4t" in ipsets
    assert "10.0.0.1/32" in ipsets
    settings = json.loads(compiled.files["cluster/cluster.json"])
    assert {"table": "filter", "chain": "OUTPUT"}.items() <= {
        k: v
        for j in settings["jump_rules"]
        if j["chain"] == "OUTPUT" and j["table"] == "filter"
        for k, v in j.items()
    }.items()
    host = json.loads(compiled.files["cluster/policy.json"])["host"]
    assert set(host["nodes"]) == {"master", "worker-1", "worker-2"}
    assert host["nodes"]["master"] != host["nodes"]["worker-1"]
    order = [p["name"] for p in host["profiles"][host["nodes"]["worker-1"]]["policies"]]
    assert order == ["workers-no-8080", "open", "nodeports"], "by order, unset last"
    assert host["profiles"][host["nodes"]["worker-2"]]["interfaces"] == ["eth0"]


def test_a_policy_change_rewrites_cluster_files_only(tmp_path: Path) -> None:
    one = build(tmp_path / "a" if (tmp_path / "a").mkdir() is None else tmp_path, POLICIES)
    two = build(
        tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path,
        POLICIES.replace("ports: [8080]", "ports: [8081]").replace("role == 'worker'", "all()"),
    )
    changed = {rel for rel in one.files if one.files[rel] != two.files.get(rel)}
    assert changed
    assert all(rel.startswith("cluster/") or rel == "index.json" for rel in changed)


def test_agent_merge_dispatches_each_interface(tmp_path: Path) -> None:
    compiled = build(tmp_path, POLICIES)
    host = compiled.node_manifest("worker-2").host
    assert host is not None
    assert host.interfaces == ("eth0",)
    merged = with_host(role_text(compiled.files, "worker-2", IPTABLES_FILE), host)
    assert "-A cali-from-host-endpoint -i eth0 -g cali-fh-eth0" in merged
    assert "-A cali-from-hep-forward -i eth0 -g cali-fhfw-eth0" in merged
    assert ":cali-fh-eth0 - [0:0]" in merged.split("*mangle")[1].split("COMMIT")[0]
    star = compiled.node_manifest("master").host
    assert star is not None
    lines = host_rules(star).rules["filter"]
    assert "-A cali-from-host-endpoint -g cali-fh-@all" in lines
    assert not any("fhfw" in line for line in lines), "no applyOnForward policy selects master"
    assert lines[-1].endswith("-j DROP"), "a protected interface denies what no policy allows"


def test_no_host_protection_changes_nothing(tmp_path: Path) -> None:
    compiled = build(tmp_path, OPEN)
    assert with_host("x\n", None) == "x\n"
    assert compiled.node_manifest("worker-1").host is not None
