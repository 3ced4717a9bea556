"""`calicc trace` answered before typer converts its values (trace/cli.py quick_trace): the
same output and exit code as the typer command, and typer's own handling of --help and of
usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calicc.trace.cli import app, quick_trace
from tests.support.trace_demo import DEMO

TREE = str(DEMO / "rendered")
PODS = str(DEMO / "pods.yaml")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "args",
    [
        ["quarantine/suspect", "demo/nginx", "-p", "80/TCP", "--tree", TREE, "--pods", PODS],
        ["demo/client", "demo/nginx", "--port", "80", "--tree", TREE, "--pods", PODS, "--json"],
        ["node-1", "node-2", "--tree", TREE, "--family", "4"],
        ["nobody/x", "demo/nginx", "--tree", TREE, "--pods", PODS],  # exit 2: unknown pod
        ["node-1", "node-2", "--tree", TREE, "--family", "5"],  # exit 2: not a family
    ],
)
def test_the_quick_path_answers_as_the_typer_command(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    typer_run = CliRunner().invoke(app, args)
    code = quick_trace(args)
    out = capsys.readouterr()
    assert code == typer_run.exit_code
    assert out.out + out.err == typer_run.output


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["node-1"],
        ["node-1", "node-2", "--family", "x"],
        ["node-1", "node-2", "--family", "²"],  # a unicode digit, which int() refuses
        ["a", "b", "--bogus"],
    ],
)
def test_help_and_usage_errors_are_left_to_typer(args: list[str]) -> None:
    assert quick_trace(args) is None
    done = subprocess.run(
        [sys.executable, "-m", "calicc", "trace", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if args == ["--help"]:
        assert done.returncode == 0
        assert "--kubeconfig" in done.stdout
    else:
        assert done.returncode == 2  # click's usage error
        assert "Usage:" in done.stderr
