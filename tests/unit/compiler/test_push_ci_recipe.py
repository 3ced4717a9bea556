"""examples/ci-recipe: the check script and the git hook fail on stale rendered trees, in a
throwaway git repository holding a rendered example."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES

RECIPE = EXAMPLES / "ci-recipe"
CALICC = str(Path(sys.executable).parent / "calicc")


def env(repo: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(repo),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=repo, env=env(repo), capture_output=True, text=True, check=False
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    run(tmp_path, "git", "init", "-q", "-b", "main")
    (tmp_path / "ci").mkdir()
    shutil.copy(RECIPE / "check-rendered.sh", tmp_path / "ci" / "check-rendered.sh")
    net = tmp_path / "net"
    net.mkdir()
    for name in ("cluster.yaml", "cluster.lock.yaml"):
        shutil.copy(EXAMPLES / "minikube-ipip" / name, net / name)
    assert run(tmp_path, CALICC, "build", "net/cluster.yaml").returncode == 0
    run(tmp_path, "git", "add", "-A")
    assert run(tmp_path, "git", "commit", "-q", "-m", "init").returncode == 0
    return tmp_path


def edit_cluster(repo: Path, **changes: object) -> None:
    path = repo / "net" / "cluster.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_current_tree_passes(repo: Path) -> None:
    result = run(repo, "ci/check-rendered.sh")
    assert result.returncode == 0, result.stderr
    assert "ok: net/cluster.yaml: rendered tree is current" in result.stdout


def test_cluster_change_without_build_fails(repo: Path) -> None:
    edit_cluster(repo, mtu=1400)
    result = run(repo, "ci/check-rendered.sh", "net/cluster.yaml")
    assert result.returncode == 1
    assert "FAIL: net/cluster.yaml" in result.stderr
    assert "node.json" in result.stderr
    assert run(repo, CALICC, "build", "net/cluster.yaml").returncode == 0
    assert run(repo, "ci/check-rendered.sh").returncode == 0


def test_hand_edited_rendered_file_fails(repo: Path) -> None:
    conf = repo / "net/rendered/nodes/minikube/bird.conf"
    conf.write_text(conf.read_text().replace("scan time 10", "scan time 20", 1))
    result = run(repo, "ci/check-rendered.sh")
    assert result.returncode == 1
    assert "nodes/minikube/bird.conf" in result.stderr


def test_lock_change_fails_frozen(repo: Path) -> None:
    nodes = yaml.safe_load((repo / "net/cluster.yaml").read_text())["nodes"]
    edit_cluster(repo, nodes=[*nodes, {"name": "minikube-m04", "address": "192.168.49.5/24"}])
    result = run(repo, "ci/check-rendered.sh")
    assert result.returncode == 1
    assert "--frozen" in result.stderr


def test_git_hook_refuses_a_stale_commit(repo: Path) -> None:
    hook = repo / ".git/hooks/pre-commit"
    shutil.copy(RECIPE / "git-hooks" / "pre-commit", hook)
    edit_cluster(repo, nat_outgoing=False)
    run(repo, "git", "add", "net/cluster.yaml")
    refused = run(repo, "git", "commit", "-q", "-m", "stale")
    assert refused.returncode != 0
    assert "FAIL: net/cluster.yaml" in refused.stderr
    assert run(repo, CALICC, "build", "net/cluster.yaml").returncode == 0
    run(repo, "git", "add", "-A")
    accepted = run(repo, "git", "commit", "-q", "-m", "built")
    assert accepted.returncode == 0, accepted.stderr


def test_ci_definitions_run_the_check() -> None:
    workflow = yaml.safe_load((RECIPE / "github-workflow.yml").read_text())
    steps = [s.get("run", "") for s in workflow["jobs"]["rendered"]["steps"]]
    assert "ci/check-rendered.sh" in steps
    assert any("calicc diff --from" in s for s in steps)
    gitlab = yaml.safe_load((RECIPE / "gitlab-ci.yml").read_text())
    assert gitlab["calicc-rendered"]["script"][0] == "ci/check-rendered.sh"
    hooks = yaml.safe_load((RECIPE / "pre-commit-config.yaml").read_text())
    assert hooks["repos"][0]["hooks"][0]["entry"] == "ci/check-rendered.sh"
