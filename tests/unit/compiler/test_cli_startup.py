"""Start-up: `calicc --help` and `calicc build` import no part they do not run.

Each case runs calicc as `python -m calicc` does, in a fresh process that writes sorted
sys.modules to a file on exit (`-X importtime` would miss what importlib.import_module loads).
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_group

from calicc.agent.cli import app as agent_app
from calicc.cli import COMMANDS, load_command
from calicc.compiler.cli import app as compiler_app
from calicc.trace.cli import app as trace_app
from tests.conftest import EXAMPLES

NEVER_AT_START = ("calicc.agent", "calicc.lab", "pyroute2", "ansible", "ansible_runner")
HEAVY = ("calicc.compiler.model", "calicc.compiler.render", "jinja2", "pydantic", "yaml")


WRAPPER = """
import atexit, os, runpy, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write("\\n".join(sys.modules)))
runpy.run_module("calicc", run_name="__main__")
"""


def run_calicc(args: list[str], cache: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run calicc; return the result and the modules it imported."""
    cache.mkdir(parents=True, exist_ok=True)
    listing = cache / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(cache), "MODULES_OUT": str(listing)},
        check=False,
    )
    return result, set(listing.read_text().split())


def forbidden(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_help_lists_every_command_and_imports_no_part(tmp_path: Path) -> None:
    result, modules = run_calicc(["--help"], tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "calicc.cli" in modules
    assert forbidden(modules, NEVER_AT_START) == []
    assert forbidden(modules, ("calicc.compiler.cli", "calicc.compiler.build")) == []
    for name, entry in COMMANDS.items():
        assert f" {name} " in result.stdout
        assert entry.help.split()[0] in result.stdout


def test_build_imports_only_the_compiler(tmp_path: Path) -> None:
    work = tmp_path / "minikube-ipip"
    shutil.copytree(EXAMPLES / "minikube-ipip", work)
    args = ["build", str(work / "cluster.yaml")]
    full, full_modules = run_calicc(args, tmp_path / "cache")
    assert full.returncode == 0, full.stderr
    assert full.stdout.endswith("up to date, nothing written\n")
    assert "calicc.compiler.render" in full_modules  # no cache entry yet: the full path
    assert forbidden(full_modules, NEVER_AT_START) == []
    noop, noop_modules = run_calicc(args, tmp_path / "cache")
    assert (noop.returncode, noop.stdout, noop.stderr) == (0, full.stdout, full.stderr)
    assert forbidden(noop_modules, NEVER_AT_START + HEAVY) == []


def test_lab_help_and_usage_errors_keep_their_codes(tmp_path: Path) -> None:
    lab, modules = run_calicc(["lab", "--help"], tmp_path)
    assert lab.returncode == 0, lab.stderr
    assert "up" in lab.stdout
    assert "calicc.lab.cli" in modules
    assert forbidden(modules, ("calicc.agent",)) == []
    assert run_calicc(["nonesuch"], tmp_path)[0].returncode == 2
    assert run_calicc(["build", "--no-such-option"], tmp_path)[0].returncode == 2
    missing, _ = run_calicc(["build", str(tmp_path / "missing.yaml")], tmp_path)
    assert missing.returncode == 1
    assert "missing.yaml" in missing.stderr


def first_paragraph(text: str | None) -> str:
    return inspect.cleandoc(text or "").split("\n\n")[0].replace("\n", " ")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_registry_help_is_the_commands_own(name: str) -> None:
    assert COMMANDS[name].help == first_paragraph(load_command(name).help)


def test_registry_names_every_command_of_every_part() -> None:
    declared = {
        *get_group(compiler_app).commands,
        *get_group(agent_app).commands,
        *get_group(trace_app).commands,
        "lab",
    }
    assert set(COMMANDS) == declared
