"""Applying many nodes through lab.applyserver: every failed node is named with its output."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.lab.agent import AgentFailed, ApplyJob, apply_nodes
from calicc.lab.progress import Progress


def _job(tmp_path: Path, node: str) -> ApplyJob:
    root = tmp_path / "nodes" / node / "root"
    return ApplyJob(node, f"calicc-absent-{node}", tmp_path / "bundle", root, standin=False)


def test_every_failing_node_is_named_with_its_output(tmp_path: Path) -> None:
    jobs = [_job(tmp_path, "n1"), _job(tmp_path, "n2")]
    lines: list[str] = []
    with pytest.raises(AgentFailed) as caught:
        apply_nodes(jobs, Progress("nodes", 2, "applied", lines.append), workers=2)
    text = str(caught.value)
    assert text.splitlines()[0] == "calicc apply failed on 2 of 2 nodes:"
    for node in ("n1", "n2"):
        assert f"{node} (calicc-absent-{node}): exit 1" in text
        # the child could not enter the namespace: its log says so, and the message quotes it
        assert f"calicc-absent-{node}" in (tmp_path / "nodes" / node / "apply.log").read_text()
    assert "No such file or directory" in text
    assert lines[-1].startswith("nodes: 2/2 applied")


def test_job_arguments_are_those_of_the_console_script(tmp_path: Path) -> None:
    job = ApplyJob("n1", "ns", Path("/b"), Path("/r"), standin=True)
    assert job.argv() == ["apply", "--bundle", "/b", "--root", "/r", "--allow-tunnel-standin"]
    plain = _job(tmp_path, "n1")
    assert "--allow-tunnel-standin" not in plain.argv()
    assert plain.log == tmp_path / "nodes" / "n1" / "apply.log"  # beside the node's root
