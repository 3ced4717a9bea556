"""The standalone CNI path (what the launchers exec when no agent runs) imports only what its
command needs: node.json through the contract's light reader, netlink through agent/cni/rtnl.py;
never pydantic, pyroute2, the Kubernetes client's yaml, jinja2, the compiler or the lab.
Checked with `python -X importtime`, which lists every module the process imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cni_inputs import Node, make_node

HEAVY = ("pydantic", "pyroute2", "yaml", "jinja2", "calicc.compiler", "calicc.lab")
IMPORTTIME = [sys.executable, "-I", "-X", "importtime", "-m", "calicc.agent.cni.main", "plugin"]


def imported(stderr: str) -> set[str]:
    """Return the modules an `-X importtime` run lists ("import time: self | total | name")."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_imported_reads_importtime_lines() -> None:
    text = "import time: self [us] | cumulative | imported package\n"
    text += "import time:       120 |        900 |   pydantic.main\n"
    assert imported(text) == {"imported package", "pydantic.main"}
    assert heavy(imported(text)) == ["pydantic.main"]


def test_version_imports_neither_model_nor_pyroute2() -> None:
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": "VERSION"}
    done = subprocess.run(
        IMPORTTIME, env=env, input=b'{"cniVersion": "1.0.0"}', capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "1.0.0" in json.loads(done.stdout)["supportedVersions"]
    modules = imported(done.stderr.decode())
    assert {"calicc.agent.cni.plugin", "calicc.agent.cni.ipam_plugin"} <= modules
    assert heavy(modules) == []


@pytest.mark.root
def test_add_and_del_import_neither_model_nor_pyroute2(
    make_ns: Callable[[str], str], tmp_path: Path
) -> None:
    node: Node = make_node(make_ns, tmp_path)
    conf = json.dumps(node.conf).encode()
    added = node.run(node.env(), conf, args=IMPORTTIME)
    assert added.code == 0, added.stdout + added.stderr
    assert json.loads(added.stdout)["ips"][0]["address"] == "10.244.0.2/32"
    modules = imported(added.stderr)
    assert {"calicc.contract.node", "calicc.agent.cni.rtnl"} <= modules  # node.json, netlink
    assert heavy(modules) == []
    gone = node.run(node.env("DEL"), conf, args=IMPORTTIME)
    assert gone.code == 0, gone.stdout + gone.stderr
    assert heavy(imported(gone.stderr)) == []
