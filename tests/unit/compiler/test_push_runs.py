"""calicc push runs that go wrong, through the real ansible-runner and ansible-playbook, without
root or a network: each bad host says why, and a run that reaches no host is one named error.

The inventory's hosts are lab hosts (the calicc_netns connection) whose namespaces do not exist,
so no command can run anywhere: a task that needs the host fails to connect.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from calicc.compiler import push as push_module
from calicc.compiler.build import Inputs
from calicc.compiler.inventory import LabHost, build_inventory, dump_inventory
from calicc.compiler.push import PushSettings, RunnerError, format_summary, push
from tests.support.clusters import built_example

ABSENT_NS = f"calicc-t-absent-{uuid.uuid4().hex[:8]}"  # never created: every host unreachable


@pytest.fixture
def example(tmp_path: Path) -> Inputs:
    return built_example(tmp_path)


def absent_inventory(inputs: Inputs, path: Path, extra_host: str = "") -> Path:
    """Write an inventory of lab hosts in a namespace that does not exist (+ `extra_host`)."""
    lab = {
        n.name: LabHost(ABSENT_NS, str(path.parent / "roots" / n.name), "/nonexistent/calicc")
        for n in inputs.spec.nodes
    }
    inventory = build_inventory(inputs.spec, lab)
    if extra_host:
        nodes = inventory["all"]["children"]["calicc_nodes"]["hosts"]  # type: ignore[index]
        nodes[extra_host] = next(iter(nodes.values()))
    path.write_text(dump_inventory(inventory))
    return path


def settings_for(inputs: Inputs, inventory: Path, **options: object) -> PushSettings:
    return PushSettings(rendered=inputs.base_dir / "rendered", inventory=inventory, **options)  # type: ignore[arg-type]


def test_failed_unreachable_and_unreached_hosts_each_say_why(
    example: Inputs, tmp_path: Path
) -> None:
    inventory = absent_inventory(example, tmp_path / "inventory.yaml", extra_host="ghost")
    lines: list[str] = []
    batch = ["ghost", "minikube", "not-in-inventory"]
    report = push(settings_for(example, inventory), [batch], lines.append)
    ghost, node, unreached = (report.results[h] for h in batch)
    assert ghost.failed == 1
    assert ghost.reason.startswith("Check that this host is a node of the rendered cluster: ")
    assert "ghost is not a node of" in ghost.reason
    assert node.unreachable == 1
    assert f"network namespace '{ABSENT_NS}' does not exist" in node.reason
    assert unreached.failed == 1
    assert unreached.reason.startswith(
        f"the run never reached it: no play matched it in {inventory}"
    )
    summary = format_summary(report)
    for host, result in zip(batch, (ghost, node, unreached), strict=True):
        row = next(ln for ln in summary.splitlines() if ln.startswith(f"{host} "))
        assert row.endswith(f"  {result.reason}")
    assert any(ln.startswith("[1] minikube: UNREACHABLE: ") for ln in lines)


def test_a_missing_playbook_is_ansible_runners_error(example: Inputs, tmp_path: Path) -> None:
    inventory = absent_inventory(example, tmp_path / "inventory.yaml")
    (tmp_path / "playbooks").mkdir()
    settings = settings_for(example, inventory, playbooks=tmp_path / "playbooks")
    with pytest.raises(RunnerError) as caught:
        push(settings, [["minikube"], ["minikube-m02"]], lambda _line: None)
    assert str(caught.value) == (
        "batch 1/2: ansible-runner reached no host: [ERROR]: the playbook: node.yml could not "
        "be found (ansible-runner: status failed, rc 1)"
    )


def test_an_unreadable_inventory_is_ansible_runners_error(example: Inputs, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all: [\n")
    with pytest.raises(RunnerError, match=r"reached no host: .*parse inventory") as caught:
        push(settings_for(example, inventory), [["minikube"]], lambda _line: None)
    assert f"Unable to parse {inventory} as an inventory source" in str(caught.value)
    assert "(ansible-runner: status successful, rc 0)" in str(caught.value)


def test_ansible_playbook_not_on_path(
    example: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = absent_inventory(example, tmp_path / "inventory.yaml")
    (tmp_path / "bin").mkdir()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin/python3"))  # no ansible beside it
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(RunnerError) as caught:
        push(settings_for(example, inventory), [["minikube"]], lambda _line: None)
    assert str(caught.value) == (
        "batch 1/1: ansible-runner reached no host: The command was not found or was not "
        "executable: ansible-playbook. (ansible-runner: status failed, rc 127)"
    )


@contextmanager
def spoilt_private_dir(tmp_path: Path) -> Iterator[Path]:
    """A private data dir where ansible-runner cannot make its artifacts directory."""
    private = tmp_path / "private"
    private.mkdir()
    (private / "artifacts").write_text("a file where ansible-runner wants a directory\n")
    yield private


def test_a_broken_private_data_dir_fails_the_command_with_one_line(
    example: Inputs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from calicc.cli import main  # the entry point that turns a CaliccError into one line

    inventory = absent_inventory(example, tmp_path / "inventory.yaml")
    monkeypatch.setattr(push_module, "private_data_dir", lambda: spoilt_private_dir(tmp_path))
    argv = ["calicc", "push", str(example.source.path), "-i", str(inventory)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "error: batch 1/1: ansible-runner could not run node.yml (NotADirectoryError): "
    )
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
