"""Real ipset/iptables-restore of every example's rendered files, in scratch namespaces."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.contract.names import CLUSTER_IPSETS, IPTABLES_FILE
from calicc.lab.netns import ns_run
from tests.conftest import EXAMPLES, need_tool
from tests.tools.treekit import shared_files

pytestmark = [pytest.mark.root, pytest.mark.tools]
CLUSTERS = sorted(EXAMPLES.glob("*/cluster.yaml"))
FOREIGN = """*filter
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
"""


def cluster_rules(cluster: Path) -> tuple[str, dict[str, str]]:
    """Return the cluster's ipsets.restore and its iptables rules of each kind of node."""
    files = compile_cluster(load_cluster(cluster)).files
    rules = shared_files(files, IPTABLES_FILE)
    assert rules, f"{cluster}: no iptables rules in the cluster part"
    return files[CLUSTER_IPSETS], rules


def save(ns: str) -> str:
    """iptables-save without counters and comment lines, for comparisons."""
    out = ns_run(ns, ["iptables-save"]).stdout
    lines = [re.sub(r"\[\d+:\d+\]", "[0:0]", x) for x in out.splitlines() if not x.startswith("#")]
    return "\n".join(lines)


def foreign_part(saved: str) -> dict[str, list[str]]:
    """Per table, the lines of a save that are not calicc's (no cali- chain, no jump into one)."""
    tables: dict[str, list[str]] = {}
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = []
        elif "cali-" not in line:
            tables[table].append(line)
    return tables


@pytest.mark.parametrize("cluster", CLUSTERS, ids=[c.parent.name for c in CLUSTERS])
def test_example_restores_and_keeps_foreign_rules(
    make_ns: Callable[[str], str], cluster: Path
) -> None:
    need_tool("ipset", "iptables-restore", "iptables-save")
    ipsets, kinds = cluster_rules(cluster)
    for number, rules in enumerate(kinds.values()):  # each kind of node in its own namespace
        restores_and_keeps_foreign_rules(make_ns(f"ipt{number}"), ipsets, rules)


def restores_and_keeps_foreign_rules(ns: str, ipsets: str, rules: str) -> None:
    for _ in range(2):  # the second run finds every live set in place
        ns_run(ns, ["ipset", "restore"], input_text=ipsets)
    assert "cali4t" not in ns_run(ns, ["ipset", "list", "-n"]).stdout
    ns_run(ns, ["iptables-restore", "--noflush"], input_text=FOREIGN)
    before = save(ns)
    ns_run(ns, ["iptables-restore", "--test", "--noflush"], input_text=rules)
    for _ in range(2):
        ns_run(ns, ["iptables-restore", "--noflush"], input_text=rules)
    after = save(ns)
    foreign_after = foreign_part(after)
    for table, lines in foreign_part(before).items():
        assert foreign_after.pop(table) == lines, f"table {table} changed"
    for table, lines in foreign_after.items():  # tables calicc's file created: built-ins only
        assert all(re.fullmatch(r":[A-Z]+ ACCEPT \[0:0\]|COMMIT", x) for x in lines), table
    saved_rules = sorted(x for x in after.splitlines() if x.startswith("-A cali-"))
    assert saved_rules == sorted(x for x in rules.splitlines() if x.startswith("-A "))


def test_static_set_is_replaced_while_in_use(make_ns: Callable[[str], str]) -> None:
    need_tool("ipset", "iptables-restore")
    ns = make_ns("swap")
    ipsets, kinds = cluster_rules(EXAMPLES / "policies-demo" / "cluster.yaml")
    (rules,) = kinds.values()
    ns_run(ns, ["ipset", "restore"], input_text=ipsets)
    ns_run(ns, ["iptables-restore", "--noflush"], input_text=rules)
    ns_run(ns, ["ipset", "add", "cali40all-ipam-pools", "10.99.0.0/16"])
    stale_temp = "create cali4tleftover hash:net family inet maxelem 1048576 -exist\n"
    ns_run(ns, ["ipset", "restore"], input_text=stale_temp)
    ns_run(ns, ["ipset", "restore"], input_text=ipsets)
    members = ns_run(ns, ["ipset", "list", "cali40all-ipam-pools"]).stdout
    assert "10.99.0.0/16" not in members
    assert "10.244.0.0/16" in members
    runtime = next(
        shlex.split(x)[1] for x in ipsets.splitlines() if x.startswith("create cali40s:")
    )
    ns_run(ns, ["ipset", "add", runtime, "10.244.0.9"])
    ns_run(ns, ["ipset", "restore"], input_text=ipsets)
    assert "10.244.0.9" in ns_run(ns, ["ipset", "list", runtime]).stdout
