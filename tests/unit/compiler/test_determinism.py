"""Same input, same bytes: any node order, any PYTHONHASHSEED; a no-op rebuild writes nothing."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calicc.compiler.build import build, load_cluster
from calicc.compiler.errors import CaliccError
from tests.conftest import EXAMPLES, ROOT

DUMP = """
import json, sys
from pathlib import Path
from calicc.compiler.build import compile_cluster, load_cluster
files = compile_cluster(load_cluster(Path(sys.argv[1]))).files
print(json.dumps(files, sort_keys=True))
"""


def compile_in_subprocess(cluster: Path, seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", DUMP, str(cluster)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    ).stdout
    files: dict[str, str] = json.loads(out)
    files.pop("index.json")  # carries the input digest, which the reordered file changes
    return files


def test_shuffled_nodes_and_hash_seeds_give_same_bytes(tmp_path: Path) -> None:
    source = EXAMPLES / "crosssubnet"
    data = yaml.safe_load((source / "cluster.yaml").read_text())
    data["nodes"].reverse()
    random.Random(7).shuffle(data["nodes"])
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "cluster.lock.yaml").write_text((source / "cluster.lock.yaml").read_text())
    first = compile_in_subprocess(source / "cluster.yaml", "1")
    second = compile_in_subprocess(tmp_path / "cluster.yaml", "2")
    third = compile_in_subprocess(tmp_path / "cluster.yaml", "random")
    assert first == second == third


def test_noop_rebuild_writes_nothing(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "minikube-ipip" / "cluster.yaml").read_text())
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(data))
    out = tmp_path / "rendered"
    first = build(load_cluster(tmp_path / "cluster.yaml"), out)
    assert first.written
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    second = build(load_cluster(tmp_path / "cluster.yaml"), out)
    assert not second.changed
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}


def test_rebuild_after_change_rewrites_only_changed_files(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "minikube-ipip" / "cluster.yaml").read_text())
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(data))
    build(load_cluster(tmp_path / "cluster.yaml"), tmp_path / "rendered")
    data["nodes"][0]["bird_snippets"] = {"bottom": "# marker"}
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(data))
    report = build(load_cluster(tmp_path / "cluster.yaml"), tmp_path / "rendered")
    # bird.conf, and node.json because it lists bird.conf's digest; no other node is touched
    assert report.written == [
        "index.json",
        "nodes/minikube/bird.conf",
        "nodes/minikube/node.json",
    ]


def test_removed_node_directory_is_pruned(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "minikube-ipip" / "cluster.yaml").read_text())
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(data))
    build(load_cluster(tmp_path / "cluster.yaml"), tmp_path / "rendered")
    data["nodes"].pop()
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(data))
    report = build(load_cluster(tmp_path / "cluster.yaml"), tmp_path / "rendered")
    assert any(r.startswith("nodes/minikube-m03/") for r in report.removed)
    assert not (tmp_path / "rendered" / "nodes" / "minikube-m03").exists()


def test_refuses_to_overwrite_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(
        (EXAMPLES / "minikube-ipip" / "cluster.yaml").read_text()
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "important.txt").write_text("keep")
    with pytest.raises(CaliccError, match="is not a calicc rendered tree"):
        build(load_cluster(tmp_path / "cluster.yaml"), tmp_path / "out")
    assert (tmp_path / "out" / "important.txt").read_text() == "keep"
    assert not (tmp_path / "cluster.lock.yaml").exists()


def test_parallel_build_equals_in_memory_compile(tmp_path: Path) -> None:
    """The forked, staged writer (a `calicc build` process) writes the in-memory compile's files.

    The build runs in its own process: this test process may hold other threads, and then
    stage_nodes renders without forking (see the next test).
    """
    from calicc.compiler import stage
    from calicc.compiler.build import compile_cluster
    from tests.support.examples import tree

    source = EXAMPLES / "large-rr"
    (tmp_path / "cluster.yaml").write_text((source / "cluster.yaml").read_text())
    (tmp_path / "cluster.lock.yaml").write_text((source / "cluster.lock.yaml").read_text())
    inputs = load_cluster(tmp_path / "cluster.yaml")
    assert len(inputs.spec.nodes) >= stage.PARALLEL_MIN_NODES  # the forked path runs
    probe = (
        "import sys, calicc.compiler.stage as s; from calicc.cli import main;"
        "real = s.multiprocessing.get_context;"
        "s.multiprocessing.get_context = lambda m: (print('forked', file=sys.stderr), real(m))[1];"
        "sys.argv = ['calicc', 'build', sys.argv[1]]; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "cluster.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "forked" in proc.stderr
    assert tree(tmp_path / "rendered") == compile_cluster(inputs).files
    assert not list(tmp_path.glob(".calicc-stage-*"))  # staging removed


def test_no_fork_beside_other_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process with a second thread renders in place: a forked child could hang on its locks."""
    import threading

    from calicc.compiler import stage
    from calicc.compiler.build import compile_cluster
    from tests.support.examples import tree

    def no_fork(method: str) -> None:
        raise AssertionError(f"forked ({method}) beside another thread")

    monkeypatch.setattr(stage.multiprocessing, "get_context", no_fork)
    source = EXAMPLES / "large-rr"
    (tmp_path / "cluster.yaml").write_text((source / "cluster.yaml").read_text())
    (tmp_path / "cluster.lock.yaml").write_text((source / "cluster.lock.yaml").read_text())
    inputs = load_cluster(tmp_path / "cluster.yaml")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not stage.can_fork()
        build(inputs, tmp_path / "rendered")
    finally:
        stop.set()
        other.join()
    assert tree(tmp_path / "rendered") == compile_cluster(inputs).files


def test_failed_render_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from calicc.compiler import stage
    from calicc.compiler.errors import RenderError

    (tmp_path / "cluster.yaml").write_text(
        (EXAMPLES / "minikube-ipip" / "cluster.yaml").read_text()
    )
    calls = {"n": 0}
    real = stage.render_node

    def flaky(plan, node):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RenderError("boom")
        return real(plan, node)

    monkeypatch.setattr(stage, "render_node", flaky)
    with pytest.raises(RenderError):
        build(load_cluster(tmp_path / "cluster.yaml"), tmp_path / "rendered")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.yaml"]
