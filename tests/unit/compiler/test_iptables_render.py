"""The shared iptables rules (cluster/iptables/<kind>.rules, each node's iptables.rules) and
ipsets.restore as text: ownership, NAT, naming, one policy one chain."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.targets.iptables import HOOKS, jump_rules, policy_bindings
from calicc.contract.names import CLUSTER_SETTINGS, IPTABLES_FILE
from tests.conftest import EXAMPLES

DEMO = EXAMPLES / "policies-demo"
BUILTIN = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def render(cluster: Path) -> dict[str, str]:
    return compile_cluster(load_cluster(cluster)).files


@pytest.fixture(scope="module")
def demo() -> dict[str, str]:
    return render(DEMO / "cluster.yaml")


def rules_of(files: dict[str, str], node: str) -> str:
    """Return the rules `node` installs: the shared file its node.json names for the role."""
    manifest = json.loads(files[f"nodes/{node}/node.json"])
    return files[manifest["files"][IPTABLES_FILE]["source"]]


def chains_of(text: str) -> dict[str, list[str]]:
    """Map each chain to its rules, from iptables-restore text."""
    chains: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith(":"):
            chains.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            chains[line.split()[1]].append(line)
    return chains


def test_only_owned_chains_and_no_builtin_rules(demo: dict[str, str]) -> None:
    text = rules_of(demo, "node-1")
    assert list(re.findall(r"^\*(\w+)$", text, re.M)) == ["raw", "mangle", "nat", "filter"]
    for line in text.splitlines():
        if line.startswith((":", "-")):
            chain = line[1:].split()[0] if line[0] == ":" else line.split()[1]
            assert chain.startswith("cali-"), line
            assert len(chain) <= 28, line
            assert chain not in BUILTIN
            assert not line.startswith(("-F", "-X", "-D", "-I", "-P", "-Z")), line
    assert "COMMIT" in text
    assert not re.search(r"^-A (INPUT|FORWARD|OUTPUT)", text, re.M)


def test_jump_rules_cover_every_hook_and_target_declared_chains(demo: dict[str, str]) -> None:
    jumps = jump_rules()
    assert [(j.table, j.chain, j.position) for j in jumps] == list(HOOKS)
    settings = json.loads(demo[CLUSTER_SETTINGS])  # the agent keeps them, for every node
    assert settings["jump_rules"] == [j.model_dump(mode="json") for j in jumps]
    nat = next(j for j in jumps if j.table == "nat")
    assert nat.position == "bottom"
    text = rules_of(demo, "node-1")
    tables = {
        t: chains_of(body) for t, body in re.findall(r"^\*(\w+)\n(.*?)^COMMIT", text, re.M | re.S)
    }
    for jump in jumps:
        target = jump.rule.split("-j ")[-1]
        assert target in tables[jump.table], (jump, sorted(tables[jump.table]))


def test_nat_outgoing_excludes_pools_and_nodes(demo: dict[str, str]) -> None:
    rules = rules_of(demo, "node-1")
    (masq,) = [r for r in rules.splitlines() if r.startswith("-A cali-nat-outgoing")]
    assert "--match-set cali40masq-ipam-pools src" in masq
    assert "! --match-set cali40all-ipam-pools dst" in masq
    assert "! --match-set cali40all-hosts-net dst" in masq
    assert masq.endswith("-j MASQUERADE --random-fully")
    sets = demo["cluster/ipsets.restore"]
    masq_block = sets.split("# cali40masq-ipam-pools")[1].split("\n# ")[0]
    assert "10.244.0.0/16" in masq_block
    assert "10.250.0.0/16" not in masq_block
    all_block = sets.split("# cali40all-ipam-pools")[1].split("\n# ")[0]
    assert "10.244.0.0/16" in all_block
    assert "10.250.0.0/16" in all_block


def test_no_nat_pool_only_means_empty_nat_chain(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        "name: t\nnetwork_cidr: 10.244.0.0/16\nnat_outgoing: false\n"
        "nodes:\n  - {name: n1, address: 10.0.0.1/24}\n"
    )
    rules = rules_of(render(cluster), "n1")
    assert chains_of(rules)["cali-nat-outgoing"] == []


def test_static_sets_swap_and_runtime_sets_keep_members(demo: dict[str, str]) -> None:
    text = demo["cluster/ipsets.restore"]
    lines = text.splitlines()
    creates = [line.split()[1] for line in lines if line.startswith("create ")]
    live = [n for n in creates if not n.startswith("cali4t")]
    for name in live:
        assert f"create {name} " in text
        assert all(len(n) <= 31 for n in creates)
        assert f"flush {name}" not in text, "a live set must never be flushed"
        if name.startswith(("cali40s:", "cali40n:")):
            assert not any(name in line for line in lines if line.startswith(("add", "swap")))
        else:
            (swap,) = [line for line in lines if line.startswith("swap ") and line.endswith(name)]
            temp = swap.split()[1]
            order = [lines.index(x) for x in (f"flush {temp}", swap, f"destroy {temp}")]
            assert order == sorted(order)
    assert {"cali40all-ipam-pools", "cali40masq-ipam-pools", "cali40all-hosts-net"} <= set(live)
    assert any(n.startswith("cali40b:") for n in live)


def test_one_policy_change_changes_only_its_chain(tmp_path: Path, demo: dict[str, str]) -> None:
    copy = tmp_path / "demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns("rendered"))
    web = copy / "policies" / "web.yaml"
    web.write_text(web.read_text().replace("port: 5353", "port: 5354"))
    before = chains_of(rules_of(demo, "node-1"))
    after = chains_of(rules_of(render(copy / "cluster.yaml"), "node-1"))
    assert before.keys() == after.keys()
    changed = [c for c in before if before[c] != after[c]]
    bindings = policy_bindings(compile_cluster(load_cluster(DEMO / "cluster.yaml")).plan)
    web_allow = next(b for b in bindings if b.name == "web-allow")
    assert changed == [web_allow.ingress_chain]


def test_policy_bindings_and_seed_policies(demo: dict[str, str]) -> None:
    plan = compile_cluster(load_cluster(DEMO / "cluster.yaml")).plan
    bindings = {b.name: b for b in policy_bindings(plan)}
    deny = bindings["default-deny-ingress"]
    assert deny.namespace == "demo"
    assert deny.egress_chain is None
    rules = chains_of(rules_of(demo, "node-1"))
    assert rules[deny.ingress_chain or ""] == []
    allow = rules[bindings["allow-all-ingress"].ingress_chain or ""]
    assert allow[0].endswith("-j MARK --set-xmark 0x10000/0x10000")
    assert "--match-set" not in allow[0]


def test_rendering_is_deterministic(demo: dict[str, str]) -> None:
    again = render(DEMO / "cluster.yaml")
    assert rules_of(again, "node-2") == rules_of(demo, "node-2")
    assert again["cluster/ipsets.restore"] == demo["cluster/ipsets.restore"]
