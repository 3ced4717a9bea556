"""calicc push for real: the playbook runs through ansible-runner against lab nodes (network
namespaces reached by the calicc_netns connection plugin, each with its own --root) and the
real `calicc apply`. tunl0 is an ifb stand-in (this kernel has no ipip module)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calicc.compiler.build import Inputs, build, compile_cluster, load_cluster
from calicc.compiler.cli import app
from calicc.compiler.inventory import LabHost
from calicc.compiler.push import (
    PLAYBOOKS,
    PushReport,
    PushSettings,
    RunnerError,
    format_summary,
    run_push,
)
from calicc.contract.names import BIRD_CONFIG, MANIFEST
from calicc.lab.netns import ns_delete, ns_run
from tests.conftest import EXAMPLES, need_tool
from tests.support.clusters import built_example
from tests.support.pushlab import MakeNs, blackholes, lab_hosts, stop_birds, write_inventory

pytestmark = [pytest.mark.root, pytest.mark.tools]
CALICC = str(Path(sys.executable).parent / "calicc")
FOURTH = {"name": "node-4", "address": "10.30.0.14/24", "interface": "eth0"}
OLD_NODE_PATHS = (  # a node's own files before bundle v3 (now: node.json, bird.conf)
    "bird/bird.conf",
    "routes/routes.sh",
    "sysctl/99-calicc.conf",
    "cni/10-calicc.conflist",
    "iptables/iptables.rules",
)


@dataclass
class Lab:
    inputs: Inputs
    inventory: Path
    ns: dict[str, str]
    roots: dict[str, Path]
    hosts: dict[str, LabHost]

    def push(self, **options: object) -> tuple[PushReport, list[str]]:
        lines: list[str] = []
        settings = PushSettings(
            rendered=self.inputs.base_dir / "rendered", inventory=self.inventory, **options
        )  # type: ignore[arg-type]
        return run_push(self.inputs, settings, None, lines.append), lines

    def blackholes(self, node: str) -> str:
        return blackholes(self.ns[node])


@pytest.fixture
def lab(make_ns: MakeNs, tmp_path: Path) -> Iterator[Lab]:
    need_tool("ip", "iptables-restore", "iptables-save", "ipset", "bird", "birdc")
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    for name in ("cluster.yaml", "cluster.lock.yaml"):
        shutil.copy(EXAMPLES / "minikube-ipip" / name, cluster / name)
    inputs = load_cluster(cluster / "cluster.yaml")
    build(inputs, cluster / "rendered")
    hosts = lab_hosts(inputs, make_ns, tmp_path / "roots", CALICC)
    inventory = write_inventory(inputs, hosts, tmp_path / "inventory.yaml")
    ns = {name: host.netns for name, host in hosts.items()}
    roots = {name: Path(host.root) for name, host in hosts.items()}
    try:
        yield Lab(inputs, inventory, ns, roots, hosts)
    finally:
        stop_birds(list(roots.values()))


def blocks(lab: Lab, node: str) -> list[str]:
    return [str(b.cidr) for b in compile_cluster(lab.inputs).plan.node(node).blocks]


def assert_applied(lab: Lab, node: str) -> None:
    routes = lab.blackholes(node)
    for block in blocks(lab, node):
        assert f"blackhole {block}" in routes, routes
    root = lab.roots[node]
    assert (root / "etc/cni/net.d/10-calicc.conflist").is_file()
    assert (root / "var/lib/calicc/bundle/node.json").is_file()


def test_push_applies_every_node_and_a_second_push_changes_nothing(lab: Lab) -> None:
    report, lines = lab.push()
    assert report.ok, "\n".join(lines)
    assert [sorted(b) for b in report.batches] == [["minikube", "minikube-m02", "minikube-m03"]]
    for node in lab.ns:
        assert_applied(lab, node)
        assert report.results[node].changed > 0
    assert any(": changed: Run calicc apply" in line for line in lines)
    again, lines = lab.push()
    assert again.ok, "\n".join(lines)
    assert {n: r.changed for n, r in again.results.items()} == dict.fromkeys(lab.ns, 0)


def bundle_tree(bundle: Path) -> tuple[set[str], set[str]]:
    """Return the files and the directories under `bundle`, relative to it."""
    found = list(bundle.rglob("*"))
    files = {p.relative_to(bundle).as_posix() for p in found if p.is_file()}
    return files, {p.relative_to(bundle).as_posix() for p in found if p.is_dir()}


def test_push_onto_an_earlier_layout_leaves_exactly_the_v3_bundle(lab: Lab) -> None:
    """A node holding an earlier bundle layout (its own routes script, conflist, rules and
    kernel settings in subdirectories) is left with the node's two files and the cluster part:
    the old files and their directories are removed."""
    bundle = lab.roots["minikube"] / "var/lib/calicc/bundle"
    for rel in (*OLD_NODE_PATHS, "cluster/old/stale.txt"):
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle / rel).write_text("# an earlier bundle\n")
    report, lines = lab.push()
    assert report.ok, "\n".join(lines)
    index = json.loads((lab.inputs.base_dir / "rendered/index.json").read_text())
    files, directories = bundle_tree(bundle)
    assert files == set(index["nodes"]["minikube"]) | set(index["cluster_files"])
    assert set(index["nodes"]["minikube"]) == {BIRD_CONFIG, MANIFEST}
    assert directories == {str(Path(f).parent) for f in files} - {"."}
    assert_applied(lab, "minikube")


def test_the_playbooks_name_no_per_node_path_of_the_earlier_layout() -> None:
    """The bundle's files come from rendered/index.json; no task names a role's old path."""
    texts = {p: p.read_text() for p in sorted(PLAYBOOKS.rglob("*")) if p.suffix in {".yml", ".md"}}
    assert texts
    for path, text in texts.items():
        assert [old for old in OLD_NODE_PATHS if old in text] == [], path


def test_check_mode_changes_nothing_and_reports_changes(lab: Lab) -> None:
    report, lines = lab.push(check=True, diff=True)
    assert report.ok, "\n".join(lines)
    assert all(r.changed > 0 for r in report.results.values())
    for node in lab.ns:
        assert "blackhole" not in lab.blackholes(node)
        assert not lab.roots[node].exists()


def test_unreachable_node_is_reported_and_the_others_are_applied(lab: Lab) -> None:
    ns_delete(lab.ns["minikube-m03"])
    result = CliRunner().invoke(
        app,
        ["push", str(lab.inputs.source.path), "-i", str(lab.inventory)],
    )
    assert result.exit_code == 1, result.output
    row = next(ln for ln in result.output.splitlines() if ln.startswith("minikube-m03 "))
    assert row.split()[4] == "1"  # the unreachable column
    assert f"network namespace '{lab.ns['minikube-m03']}' does not exist" in row
    assert "UNREACHABLE" in result.output
    for node in ("minikube", "minikube-m02"):
        assert_applied(lab, node)


def test_a_failed_batch_stops_the_rollout(lab: Lab) -> None:
    ns_delete(lab.ns["minikube"])
    report, lines = lab.push(batch_size=1)
    assert not report.ok
    assert report.results["minikube"].unreachable == 1
    assert report.not_pushed == ["minikube-m02", "minikube-m03"]
    assert set(report.results) == {"minikube"}
    for node in ("minikube-m02", "minikube-m03"):
        assert not lab.roots[node].exists()
    assert "batch 2/3" not in "\n".join(lines)


def test_a_failed_apply_says_why_in_its_summary_row(lab: Lab) -> None:
    """Without --allow-tunnel-standin, `calicc apply` refuses minikube's ifb tunl0: its links
    part fails, and the host's row quotes that failure, not only 'non-zero return code'."""
    hosts = dict(lab.hosts, minikube=replace(lab.hosts["minikube"], apply_args=()))
    write_inventory(lab.inputs, hosts, lab.inventory)
    report, _ = lab.push()
    bad = [r for r in report.results.values() if not r.good]
    assert [r.host for r in bad] == ["minikube"]
    assert bad[0].reason.startswith("Run calicc apply: non-zero return code; links: ")
    assert "--allow-tunnel-standin" in bad[0].reason
    row = next(ln for ln in format_summary(report).splitlines() if ln.startswith("minikube "))
    assert row.endswith(f"  {bad[0].reason}")


def test_a_later_batch_that_reaches_no_host_names_what_was_pushed(lab: Lab, tmp_path: Path) -> None:
    """The playbook vanishes once batch 1 is done: the push stops with ansible-playbook's
    error, naming the batch and the host already pushed."""
    playbooks = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, playbooks)

    def echo(line: str) -> None:
        if line.startswith("batch 2/"):
            (playbooks / "node.yml").unlink()

    settings = PushSettings(
        rendered=lab.inputs.base_dir / "rendered",
        inventory=lab.inventory,
        playbooks=playbooks,
        batch_size=1,
    )
    with pytest.raises(RunnerError) as caught:
        run_push(lab.inputs, settings, None, echo)
    assert str(caught.value) == (
        "batch 2/3: ansible-runner reached no host: [ERROR]: the playbook: node.yml could not "
        "be found (ansible-runner: status failed, rc 1) (pushed before it: minikube)"
    )
    assert_applied(lab, "minikube")
    assert not lab.roots["minikube-m02"].exists()


def test_a_joining_node_pushes_only_cluster_files_to_the_others(
    make_ns: MakeNs, tmp_path: Path
) -> None:
    """Each node's bundle is self-contained (its cluster part under cluster/); when a node joins
    a VXLAN cluster, the others are sent only the changed cluster files, apply them (the new
    node's route appears), and a push after that changes nothing."""
    need_tool("ip", "bridge", "iptables-restore", "iptables-save", "ipset")
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    inputs = built_example(cluster, "vxlan")
    hosts = lab_hosts(inputs, make_ns, tmp_path / "roots", CALICC)
    inventory = write_inventory(inputs, hosts, tmp_path / "inventory.yaml")
    settings = PushSettings(rendered=cluster / "rendered", inventory=inventory)
    lines: list[str] = []
    assert run_push(inputs, settings, None, lines.append).ok, "\n".join(lines)
    for name, host in hosts.items():
        copy = Path(host.root) / "var/lib/calicc/bundle"
        assert (copy / "cluster/nodes.tsv").read_bytes() == (
            cluster / "rendered/cluster/nodes.tsv"
        ).read_bytes(), name
    grown = built_example(cluster, "vxlan", lambda d: d["nodes"].append(FOURTH))
    lines.clear()
    report = run_push(grown, settings, ",".join(hosts), lines.append)
    assert report.ok, "\n".join(lines)
    for name, host in hosts.items():
        assert f"[1] {name}: changed: Copy the cluster files that differ" in lines
        assert f"[1] {name}: changed: Run calicc apply" in lines
        assert f"[1] {name}: changed: Copy the node files that differ" not in lines
        routes = ns_run(host.netns, ["ip", "route", "show", "proto", "81"]).stdout
        assert "10.244.1.128/26 via 10.244.1.128 dev vxlan.calico onlink" in routes, name
    again = run_push(grown, settings, ",".join(hosts), lines.append)
    assert again.ok
    assert {n: r.changed for n, r in again.results.items()} == dict.fromkeys(hosts, 0)
