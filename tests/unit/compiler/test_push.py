"""calicc push without a network: rollout order, limits, result parsing, progress, the reasons
given for bad hosts and the checks made before anything runs (stale rendered tree, hosts
missing from the inventory). Runs of the playbook that fail: test_push_runs.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from calicc.compiler.build import Inputs
from calicc.compiler.push import (
    PLAYBOOKS,
    HostResult,
    PushError,
    PushReport,
    PushSettings,
    format_summary,
    host_results,
    inventory_names,
    plan_batches,
    plan_push,
    select_nodes,
)
from calicc.compiler.push_events import Progress, diff_lines, failure_reason, run_error
from tests.support.clusters import built_example


def test_route_reflectors_first_then_batches() -> None:
    nodes = ["w3", "rr2", "w1", "rr1", "w2"]
    assert plan_batches(nodes, ["rr1", "rr2"], 2) == [["rr1", "rr2"], ["w1", "w2"], ["w3"]]
    assert plan_batches(nodes, ["rr1", "rr2"], 0) == [["rr1", "rr2"], ["w1", "w2", "w3"]]
    assert plan_batches(["a", "b"], [], 0) == [["a", "b"]]
    assert plan_batches(["rr1"], ["rr1", "rr9"], 1) == [["rr1"]]


def test_limit_accepts_names_and_globs_and_rejects_unknown() -> None:
    nodes = ["web-1", "web-2", "db-1"]
    assert select_nodes(nodes, None) == ["db-1", "web-1", "web-2"]
    assert select_nodes(nodes, "web-*, db-1") == ["db-1", "web-1", "web-2"]
    with pytest.raises(PushError, match=r"--limit cache-\* matches no node"):
        select_nodes(nodes, "web-1,cache-*")


def test_host_results_from_runner_stats() -> None:
    stats = {
        "ok": {"a": 9, "b": 4},
        "changed": {"a": 2},
        "failures": {},
        "dark": {"b": 1},
        "skipped": {"a": 3, "b": 1},
    }
    results = host_results(stats, ["a", "b", "c"])
    assert results["a"] == HostResult("a", ok=9, changed=2, skipped=3)
    assert results["a"].good
    assert results["b"].unreachable == 1
    assert not results["b"].good
    assert results["c"].failed == 1  # never seen by Ansible: not pushed, so a failure
    assert host_results(None, ["x"])["x"].failed == 1


def test_every_bad_host_has_a_reason() -> None:
    stats = {"ok": {"a": 1}, "failures": {"b": 1}, "dark": {"c": 1}}
    reasons = {"b": "Run calicc apply: non-zero return code", "a": "ignored"}
    results = host_results(stats, ["a", "b", "c", "d"], reasons, "not reached: no match")
    assert results["a"].reason == ""  # a good host has none, whatever was recorded
    assert results["b"].reason == "Run calicc apply: non-zero return code"
    assert results["c"].reason == "Ansible gave no message"
    assert results["d"].reason == "not reached: no match"
    text = format_summary(PushReport(batches=[["a", "b", "c", "d"]], results=results))
    rows = {ln.split()[0]: ln for ln in text.splitlines()[1:]}
    assert rows["a"].split() == ["a", "1", "0", "0", "0", "0"]
    assert rows["b"].endswith("  Run calicc apply: non-zero return code")
    assert rows["b"].split()[:6] == ["b", "0", "0", "1", "0", "0"]
    assert rows["d"].endswith("  not reached: no match")


def test_failure_reason_prefers_msg_then_apply_report_then_stderr() -> None:
    report = '{"failed": {"routes": "RTNETLINK answers: No such device"}, "changed": false}'
    res = {"msg": "non-zero return code", "stdout": report, "stderr": "error: shadowed"}
    assert failure_reason(res) == "non-zero return code; routes: RTNETLINK answers: No such device"
    assert failure_reason({"msg": "x", "stdout": "{not json", "stderr": "boom\n"}) == "x; boom"
    assert failure_reason({"module_stderr": "Traceback: ..."}) == "Traceback: ..."
    assert failure_reason({}) == "Ansible gave no message"
    long = failure_reason({"msg": "y" * 1000})
    assert len(long) == 300
    assert long.endswith("...")


def test_run_error_picks_errors_then_warnings() -> None:
    said = run_error(
        ["PLAY", "[WARNING]: a", "[ERROR]: the playbook: x could not be found"], "failed", 1
    )
    assert (
        said == "[ERROR]: the playbook: x could not be found (ansible-runner: status failed, rc 1)"
    )
    warnings = [f"[WARNING]: w{i}" for i in range(5)]
    assert run_error(warnings, "successful", 0).startswith(
        "[WARNING]: w0 | [WARNING]: w2 | [WARNING]: w3 | [WARNING]: w4 ("
    )
    assert run_error(["command not found"], "failed", 127).startswith("command not found (")
    assert run_error([], "failed", None) == (
        "ansible-playbook said nothing (ansible-runner: status failed, rc None)"
    )


def test_summary_and_stopped_rollout() -> None:
    report = PushReport(
        batches=[["a"], ["b"]],
        results={"a": HostResult("a", ok=3, unreachable=1)},
        not_pushed=["b"],
    )
    assert not report.ok
    text = format_summary(report)
    assert text.splitlines()[1].split() == ["a", "3", "0", "0", "1", "0"]
    assert text.endswith("rollout stopped: not pushed: b")
    assert PushReport(batches=[["a"]], results={"a": HostResult("a", ok=1)}).ok


def test_progress_lines_for_results_and_failures() -> None:
    lines: list[str] = []
    progress = Progress(lines.append, 2)
    events = [
        {"event": "playbook_on_task_start", "event_data": {"task": "x"}},
        {"event": "runner_on_ok", "event_data": {"host": "a", "task": "T1", "res": {}}},
        {
            "event": "runner_on_ok",
            "event_data": {"host": "a", "task": "T2", "res": {"changed": True}},
        },
        {
            "event": "runner_on_failed",
            "event_data": {
                "host": "b",
                "task": "T3",
                "res": {"results": [{"failed": False}, {"failed": True, "msg": "no\n space"}]},
            },
        },
        {
            "event": "runner_on_unreachable",
            "event_data": {"host": "c", "task": "T1", "res": {"msg": "gone"}},
        },
        {
            "event": "runner_on_failed",
            "event_data": {"host": "a", "task": "T4", "ignore_errors": True, "res": {"msg": "m"}},
        },
        {"event": "verbose", "stdout": "[WARNING]: one\r\n\r\nmore", "event_data": {}},
        {
            "event": "runner_on_failed",
            "event_data": {"host": "b", "task": "T5", "res": {"msg": "second"}},
        },
    ]
    assert all(progress(e) for e in events)
    assert lines == [
        "[2] a: ok: T1",
        "[2] a: changed: T2",
        "[2] b: FAILED: T3 (no space)",
        "[2] c: UNREACHABLE: T1 (gone)",
        "[2] a: FAILED: T4 (m) [ignored]",
        "[2] b: FAILED: T5 (second)",
    ]
    assert progress.reasons == {"b": "T3: no space", "c": "T1: gone"}  # first failures only
    assert progress.output == ["[WARNING]: one", "more"]


def test_diff_mode_prints_unified_diffs() -> None:
    lines: list[str] = []
    diff = {"before": "a\nb\n", "after": "a\nc\n", "before_header": "f", "after_header": "f"}
    event = {"event": "runner_item_on_ok", "event_data": {"res": {"changed": True, "diff": diff}}}
    Progress(lines.append, 1, show_diff=True)(event)
    assert lines == ["--- f", "+++ f", "@@ -1,2 +1,2 @@", " a", "-b", "+c"]
    assert diff_lines([{"before": {"state": "absent"}, "after": {"state": "file"}}]) == []


@pytest.fixture
def example(tmp_path: Path) -> Inputs:
    return built_example(tmp_path)


def test_a_stale_rendered_tree_is_refused(example: Inputs, tmp_path: Path) -> None:
    conf = tmp_path / "rendered/nodes/minikube/bird.conf"
    conf.write_text(conf.read_text() + "# hand edit\n")
    settings = PushSettings(rendered=tmp_path / "rendered", inventory=tmp_path / "none.yaml")
    with pytest.raises(PushError, match=r"nodes/minikube/bird.conf.*run `calicc build`"):
        plan_push(example, settings, None)


def test_a_stale_shared_file_is_refused(example: Inputs, tmp_path: Path) -> None:
    rules = tmp_path / "rendered/cluster/iptables/ipip.rules"
    rules.write_text(rules.read_text() + "# hand edit\n")
    settings = PushSettings(rendered=tmp_path / "rendered", inventory=tmp_path / "none.yaml")
    with pytest.raises(PushError, match=r"cluster/iptables/ipip.rules.*run `calicc build`"):
        plan_push(example, settings, None)


def test_hosts_missing_from_the_inventory_are_refused(example: Inputs, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[calicc_nodes]\nminikube ansible_host=192.168.49.2\n")
    assert inventory_names(inventory) == {"minikube"}
    settings = PushSettings(rendered=tmp_path / "rendered", inventory=inventory)
    with pytest.raises(PushError, match="has no host named minikube-m02, minikube-m03"):
        plan_push(example, settings, None)
    assert plan_push(example, settings, "minikube") == [["minikube"]]


def test_playbooks_pass_ansible_syntax_check() -> None:
    bindir = Path(sys.executable).parent
    for playbook in ("site.yml", "node.yml"):
        result = subprocess.run(
            [str(bindir / "ansible-playbook"), "--syntax-check", "-i", "localhost,", playbook],
            cwd=PLAYBOOKS,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_site_playbook_runs_route_reflectors_first(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  children:\n    calicc_nodes:\n      hosts: {a: , rr: }\n"
        "    calicc_route_reflectors:\n      hosts: {rr: }\n"
    )
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "--list-hosts",
            "-i",
            str(inventory),
            "site.yml",
        ],
        cwd=PLAYBOOKS,
        capture_output=True,
        text=True,
        check=True,
    )
    plays = [ln.split() for ln in result.stdout.splitlines() if ln.strip() in {"a", "rr"}]
    assert plays == [["rr"], ["a"]]
