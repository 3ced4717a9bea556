"""`calicc build` traces the cluster's reachability intents on the new tree before writing it:
a violated intent is a refusal naming it and its trace, with nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import EXAMPLES

HOLDS = {"name": "nginx", "from": "demo/client", "to": "demo/nginx", "port": "80/TCP"}
HOLDS |= {"expect": "allow", "encapsulation": "ipip"}
BROKEN = {"name": "open-nginx", "from": "quarantine/suspect", "to": "demo/nginx", "port": "80/TCP"}
BROKEN |= {"expect": "allow"}


def demo(tmp_path: Path, intents: list[dict[str, str]], fresh: bool = False) -> Path:
    work = tmp_path / "demo"
    ignore = shutil.ignore_patterns("rendered") if fresh else None
    shutil.copytree(EXAMPLES / "policies-demo", work, ignore=ignore)
    (work / "intents.yaml").write_text(yaml.safe_dump({"intents": intents}))
    data = yaml.safe_load((work / "cluster.yaml").read_text())
    data |= {"pods": "pods.yaml", "intents": "intents.yaml"}
    (work / "cluster.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return work


def build_args(work: Path) -> list[str]:
    return [sys.executable, "-m", "calicc", "build", str(work / "cluster.yaml")]


def build(work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(build_args(work), capture_output=True, text=True, check=False)


def snapshot(work: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file()
    }


def test_intents_that_hold_let_the_build_write(tmp_path: Path) -> None:
    work = demo(tmp_path, [HOLDS])
    done = build(work)
    assert done.returncode == 0, done.stderr


def test_a_violated_intent_refuses_the_build_and_writes_nothing(tmp_path: Path) -> None:
    work = demo(tmp_path, [HOLDS, BROKEN])
    (work / "policies" / "web.yaml").write_text(
        (work / "policies" / "web.yaml").read_text().replace("8000", "8001")
    )  # a change the build would write
    before = snapshot(work)
    done = build(work)
    assert done.returncode == 1
    assert "1 reachability intent violated; nothing written" in done.stderr
    assert "open-nginx (" in done.stderr
    assert "intents.yaml:" in done.stderr
    assert "expected allow, the trace says denied" in done.stderr
    assert "cluster-policies.yaml:4" in done.stderr, "the trace names the deciding policy"
    assert snapshot(work) == before
    leftovers = [p.name for p in tmp_path.rglob(".calicc-*")]
    assert leftovers == []


def test_intents_read_the_whole_new_tree_whatever_the_previous_index_listed(
    tmp_path: Path,
) -> None:
    work = demo(tmp_path, [HOLDS])
    index = work / "rendered" / "index.json"
    older = json.loads(index.read_text())
    del older["cluster_files"]  # an index that does not list the cluster part, which stays
    index.write_text(json.dumps(older))
    done = build(work)
    assert done.returncode == 0, done.stderr
    assert "cluster_files" in json.loads(index.read_text())
    assert (work / "rendered" / "cluster" / "nodes.tsv").is_file()


def test_build_check_traces_the_intents_too_and_writes_nothing(tmp_path: Path) -> None:
    work = demo(tmp_path, [HOLDS])
    assert build(work).returncode == 0
    check = [*build_args(work), "--check"]
    done = subprocess.run(check, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    (work / "intents.yaml").write_text(yaml.safe_dump({"intents": [HOLDS, BROKEN]}))
    before = snapshot(tmp_path)
    done = subprocess.run(check, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "1 reachability intent violated; nothing written" in done.stderr
    assert "open-nginx (" in done.stderr
    assert snapshot(tmp_path) == before


def test_a_fresh_tree_violating_an_intent_is_not_written(tmp_path: Path) -> None:
    work = demo(tmp_path, [BROKEN], fresh=True)
    done = build(work)
    assert done.returncode == 1
    assert not (work / "rendered").exists()


def test_intent_and_pods_files_must_be_beside_the_cluster_file(tmp_path: Path) -> None:
    work = demo(tmp_path, [HOLDS])
    data = yaml.safe_load((work / "cluster.yaml").read_text())
    data |= {"intents": "../elsewhere.yaml", "pods": "missing.yaml"}
    (work / "cluster.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    done = build(work)
    assert done.returncode == 1
    assert "intents: '../elsewhere.yaml' is not a file inside the cluster file's directory" in (
        done.stderr
    )
    assert "pods: " in done.stderr
    assert "missing.yaml does not exist" in done.stderr
