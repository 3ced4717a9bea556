"""Nodes kept in the user's cache (trace/node_cache.py through TreeView(cached=True)): the same
answers as reading the bundles, no bundle (nor pydantic) loaded on a hit, and any changed byte
of the tree read and checked again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calicc.trace import node_read
from calicc.trace.answer import Port, Tracer
from calicc.trace.ends import Cluster
from calicc.trace.errors import TraceError
from calicc.trace.node_cache import cache_dir
from calicc.trace.pods import load_pods
from calicc.trace.report import as_json
from calicc.trace.view import TEXTS_KEPT, TreeView
from tests.conftest import EXAMPLES
from tests.support.trace_demo import DEMO

QUESTIONS = [
    ("policies-demo", "demo/client", "demo/nginx", Port("tcp", 80), None),
    ("policies-demo", "quarantine/suspect", "demo/nginx", Port("tcp", 80), None),
    ("policies-demo", "monitoring/prometheus", "shop/web-1", Port("tcp", 9102), None),
    ("policies-demo", "node-1", "shop/web-2", Port("icmp", None), None),
    ("host-protection", "192.0.2.9", "worker-1", Port("tcp", 22), None),
    ("dual-stack-mesh", "node-1", "node-2", Port("icmp", None), 6),
    ("vxlan-crosssubnet", "rack1-node1", "rack2-node2", Port("icmp", None), None),
]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def answers(example: str, cached: bool) -> list[dict[str, object]]:
    view = TreeView.open(EXAMPLES / example / "rendered", cached=cached)
    pods = DEMO / "pods.yaml" if example == "policies-demo" else None
    cluster = Cluster(view, load_pods(pods, view.by_name) if pods is not None else None)
    tracer = Tracer(cluster)
    found = []
    for name, src, dst, port, family in QUESTIONS:
        if name == example:
            a = cluster.resolve(src, family)
            b = cluster.resolve(dst, family or a.address.version)
            found.append(as_json(tracer.trace(a, b, port)))
    return found


@pytest.mark.parametrize("example", sorted({q[0] for q in QUESTIONS}))
def test_answers_from_the_cache_are_the_bundles_answers(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = answers(example, cached=False)
    assert answers(example, cached=True) == read  # read, then kept
    assert list(cache_dir().glob("*.json"))

    def no_loader(directory: Path, node: str) -> None:
        raise AssertionError(f"loaded {node}'s bundle again")

    monkeypatch.setattr(node_read, "read_bundle", no_loader)
    assert answers(example, cached=True) == read  # from the cache alone


def test_a_changed_byte_is_read_and_checked_again(tmp_path: Path) -> None:
    tree = tmp_path / "rendered"
    shutil.copytree(EXAMPLES / "vxlan-crosssubnet" / "rendered", tree)
    view = TreeView.open(tree, cached=True)
    assert view.node("rack1-node1").name == "rack1-node1"
    bird = tree / "nodes" / "rack1-node1" / "bird.conf"
    bird.write_text(bird.read_text() + "# edited\n")
    again = TreeView.open(tree, cached=True)
    with pytest.raises(TraceError, match=r"bird\.conf"):
        again.node("rack1-node1")


def test_an_entry_this_code_did_not_write_is_read_again(tmp_path: Path) -> None:
    first = answers("policies-demo", cached=True)
    for entry in cache_dir().glob("*.json"):
        entry.write_text(json.dumps({"facts": {"name": 1}, "texts": {"4:x": 5}}))
    assert answers("policies-demo", cached=True) == first


def test_a_cached_cli_trace_imports_neither_pydantic_nor_the_loader(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text(yaml.safe_dump({"pods": [{"name": "a", "node": "node-1"}]}))
    argv = [
        "calicc",
        "trace",
        "default/a",
        "node-2",
        "--tree",
        str(EXAMPLES / "vxlan" / "rendered"),
    ]
    argv += ["--pods", str(pods), "--json"]
    script = (
        "import sys\n"
        f"sys.argv = {argv!r}\n"
        "from calicc.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('LOADED', 'pydantic' in sys.modules, 'calicc.trace.node_read' in sys.modules,"
        " code, file=sys.stderr)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cli-cache")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
        )
        for _ in range(2)
    ]
    first, second = (r.stderr.strip().splitlines()[-1] for r in runs)
    assert first == "LOADED True True 0", runs[0].stderr
    assert second == "LOADED False False 0", runs[1].stderr
    assert json.loads(runs[0].stdout) == json.loads(runs[1].stdout)


def test_a_node_keeps_the_rules_texts_of_its_latest_sets_of_pods(tmp_path: Path) -> None:
    view_tree = EXAMPLES / "vxlan" / "rendered"
    for count in range(TEXTS_KEPT + 2):  # as many pods files, each a new set of pods
        pods = tmp_path / f"pods-{count}.yaml"
        listed = [{"name": f"p{i}", "node": "node-1"} for i in range(count + 1)]
        pods.write_text(yaml.safe_dump({"pods": listed}))
        view = TreeView.open(view_tree, cached=True)
        cluster = Cluster(view, load_pods(pods, view.by_name))
        Tracer(cluster).trace(
            cluster.resolve("default/p0", 4), cluster.resolve("node-2", 4), Port("icmp", None)
        )
    entries = [json.loads(e.read_text()) for e in cache_dir().glob("*.json")]
    texts = [e["texts"] for e in entries if e.get("facts", {}).get("name") == "node-1"]
    assert [len(t) for t in texts] == [TEXTS_KEPT]
