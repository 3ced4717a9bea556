"""calicc push onto a running `calicc lab`: the playbook reaches each lab node through its
namespace with the node's agent root and repairs a drifted route; afterwards the lab check
reports exactly what it reported right after `lab up` (nothing, once the lab's own checks all
pass) and a second push changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from calicc.compiler.build import load_cluster
from calicc.compiler.inventory import LabHost, build_inventory, dump_inventory
from calicc.compiler.push import PushSettings, run_push
from calicc.lab.agent import node_root
from calicc.lab.check import lab_check, lab_context
from calicc.lab.netns import ns_run
from calicc.lab.state import LabState
from calicc.lab.verify import FAIL
from tests.conftest import EXAMPLES, need_root, need_tool
from tests.support.labkit import running_lab

pytestmark = [pytest.mark.root, pytest.mark.tools]
CALICC = str(Path(sys.executable).parent / "calicc")
CLUSTER = EXAMPLES / "minikube-ipip" / "cluster.yaml"


def lab_inventory(state: LabState, path: Path) -> Path:
    """Write an inventory reaching every node of a running lab (namespace + agent root)."""
    plan, topo = lab_context(state)
    standin = ("--allow-tunnel-standin",) if state.tunnel == "ifb" else ()
    hosts = {
        node.name: LabHost(
            netns=topo.node(node.name).ns,
            root=str(node_root(Path(state.root), node.name)),
            calicc_bin=CALICC,
            apply_args=standin,
        )
        for node in plan.nodes
    }
    path.write_text(dump_inventory(build_inventory(plan.spec, hosts)))
    return path


def failing(state: LabState) -> list[str]:
    return sorted(f"{r.check} {r.subject}" for r in lab_check(state) if r.status == FAIL)


def test_push_onto_a_running_lab_then_the_lab_check_passes(tmp_path: Path) -> None:
    need_root()
    need_tool("bird", "birdc", "ping", "iptables-restore", "ipset")
    inputs = load_cluster(CLUSTER)
    with running_lab(CLUSTER) as state:
        settings = PushSettings(
            rendered=Path(state.root) / "rendered",
            inventory=lab_inventory(state, tmp_path / "inventory.yaml"),
        )
        baseline = failing(state)  # what the lab's own check reports before any push
        plan, topo = lab_context(state)
        node = plan.nodes[0]
        ns, block = topo.node(node.name).ns, str(node.blocks[0].cidr)
        ns_run(ns, ["ip", "route", "del", "blackhole", block])  # drift the push must repair
        lines: list[str] = []
        report = run_push(inputs, settings, None, lines.append)
        assert report.ok, "\n".join(lines)
        assert f"[1] {node.name}: changed: Run calicc apply" in lines
        assert f"blackhole {block}" in ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout
        assert sorted(report.results) == sorted(n.name for n in inputs.spec.nodes)
        assert failing(state) == baseline
        again = run_push(inputs, settings, None, lines.append)
        assert again.ok, "\n".join(lines)
        assert all(r.changed == 0 for r in again.results.values())
        assert failing(state) == baseline
