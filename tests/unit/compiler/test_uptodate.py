"""A no-op `calicc build` is recognised from its cache entry, and only when nothing changed.

Every case builds a copy of an example twice through the CLI; `plan_locked` counts how often
the full path (load, plan, render) ran.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from calicc.compiler import build as build_module
from calicc.compiler import uptodate
from calicc.compiler.cli import app, noop_build
from calicc.compiler.uptodate import Command, cache_file, find_noop, record
from tests.conftest import EXAMPLES

UP_TO_DATE = "up to date, nothing written"


@pytest.fixture
def full_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Point the cache into tmp_path; return the list of full builds run (one per entry)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls: list[Path] = []
    real = build_module.plan_locked

    def counting(inputs: Any, reallocate: bool = False) -> Any:
        calls.append(inputs.source.path)
        return real(inputs, reallocate)

    monkeypatch.setattr(build_module, "plan_locked", counting)
    return calls


def copy_example(tmp_path: Path, name: str = "minikube-ipip") -> Path:
    shutil.copytree(EXAMPLES / name, tmp_path / name)
    return tmp_path / name / "cluster.yaml"


def build(cluster: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["build", str(cluster), *extra])
    return result.exit_code, result.output


def test_second_build_skips_the_models_and_says_up_to_date(
    tmp_path: Path, full_builds: list[Path]
) -> None:
    cluster = copy_example(tmp_path)
    assert build(cluster) == (0, f"{cluster.parent / 'rendered'}: {UP_TO_DATE}\n")
    assert build(cluster) == (0, f"{cluster.parent / 'rendered'}: {UP_TO_DATE}\n")
    assert build(cluster, "--check", "--frozen") == (
        0,
        f"{cluster.parent / 'rendered'}: {UP_TO_DATE}\n",
    )
    assert len(full_builds) == 1


def test_noop_build_answers_a_plain_build_before_click_runs(
    tmp_path: Path, full_builds: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = copy_example(tmp_path)
    out = tmp_path / "out"
    build(cluster)
    build(cluster, "-o", str(out))
    capsys.readouterr()
    assert noop_build([str(cluster), "--check", "--frozen", "--no-reallocate"])
    assert noop_build([f"--out={out}", str(cluster)])
    expected = f"{cluster.parent / 'rendered'}: {UP_TO_DATE}\n{out}: {UP_TO_DATE}\n"
    assert capsys.readouterr() == (expected, "")
    assert len(full_builds) == 2
    assert not noop_build([str(cluster), "-o", str(tmp_path / "other")])  # never built there


@pytest.mark.parametrize(
    "args",
    [
        [],  # no cluster file: the command's usage error
        ["--check"],
        ["CLUSTER", "--help"],
        ["CLUSTER", "extra"],
        ["CLUSTER", "--bogus"],
        ["CLUSTER", "--check=1"],
        ["CLUSTER", "--icp", "config.yaml"],
        ["CLUSTER", "-o"],
    ],
)
def test_noop_build_leaves_anything_else_to_the_command(
    tmp_path: Path, full_builds: list[Path], args: list[str]
) -> None:
    cluster = copy_example(tmp_path)
    build(cluster)
    assert not noop_build([str(cluster) if arg == "CLUSTER" else arg for arg in args])


def edit_cluster(cluster: Path) -> None:
    with cluster.open("a") as handle:
        handle.write("# edited\n")


def edit_lock(cluster: Path) -> None:
    lock = cluster.parent / "cluster.lock.yaml"
    lock.write_text(lock.read_text() + "\n")


def edit_rendered(cluster: Path) -> None:
    bird = cluster.parent / "rendered" / "nodes" / "minikube" / "bird.conf"
    bird.write_text(bird.read_text() + "# local edit\n")


def drop_rendered(cluster: Path) -> None:
    (cluster.parent / "rendered" / "nodes" / "minikube-m02" / "node.json").unlink()


def drop_shared(cluster: Path) -> None:
    (cluster.parent / "rendered" / "cluster" / "iptables" / "ipip.rules").unlink()


def other_code(cluster: Path) -> None:
    entries = orjson.loads(cache_file().read_bytes())
    for entry in entries.values():
        entry["code"] = "another calicc"
    cache_file().write_bytes(orjson.dumps(entries))


@pytest.mark.parametrize(
    "change",
    [edit_cluster, edit_lock, edit_rendered, drop_rendered, drop_shared, other_code],
)
def test_any_change_means_a_full_build(
    tmp_path: Path, full_builds: list[Path], change: Callable[[Path], None]
) -> None:
    cluster = copy_example(tmp_path)
    build(cluster)
    change(cluster)
    code, output = build(cluster)
    assert code == 0, output
    assert len(full_builds) == 2
    assert build(cluster) == (0, f"{cluster.parent / 'rendered'}: {UP_TO_DATE}\n")
    assert len(full_builds) == 2  # current again: the new entry holds


def test_a_link_over_calicc_s_files_means_a_full_build(
    tmp_path: Path, full_builds: list[Path]
) -> None:
    cluster = copy_example(tmp_path)
    build(cluster)
    rendered = cluster.parent / "rendered"
    (rendered / "elsewhere").symlink_to("/etc")  # not calicc's: allowed, changes nothing
    assert build(cluster) == (0, f"{rendered}: {UP_TO_DATE}\n")
    assert len(full_builds) == 1
    rules = rendered / "cluster" / "iptables"
    rules.rename(tmp_path / "iptables-copy")
    rules.symlink_to(tmp_path / "iptables-copy")  # same bytes, but reached through a link
    result = CliRunner().invoke(app, ["build", str(cluster)])
    assert len(full_builds) == 2
    assert result.exit_code != 0
    assert "symbolic link" in str(result.exception) + result.output


def test_repairs_are_written_by_the_full_build(tmp_path: Path, full_builds: list[Path]) -> None:
    cluster = copy_example(tmp_path)
    build(cluster)
    edit_rendered(cluster)
    assert build(cluster, "--check")[0] == 1  # --check records nothing while a file differs
    assert build(cluster) == (0, "changed: nodes/minikube/bird.conf\n")
    assert len(full_builds) == 3


def test_a_new_policy_file_matching_a_glob_is_read(tmp_path: Path, full_builds: list[Path]) -> None:
    cluster = copy_example(tmp_path, "policies-demo")
    build(cluster)
    policies = cluster.parent / "policies"
    (policies / "z-copy.yaml").write_text(
        (policies / "web.yaml").read_text().replace("name: ", "name: z-", 1)
    )
    code, output = build(cluster)
    assert code == 0, output
    assert "changed: index.json" in output
    assert len(full_builds) == 2


def test_the_recorded_warnings_are_printed_again(tmp_path: Path, full_builds: list[Path]) -> None:
    cluster = copy_example(tmp_path)
    build(cluster)
    command = Command(cluster, None)
    record(command, (cluster,), (), cluster.parent / "cluster.lock.yaml", ("a big mesh",))
    result = CliRunner().invoke(app, ["build", str(cluster)])
    assert result.exit_code == 0
    assert "warning: a big mesh" in result.stderr
    assert len(full_builds) == 1


def test_bird_snippets_are_never_skipped(tmp_path: Path, full_builds: list[Path]) -> None:
    cluster = copy_example(tmp_path)
    cluster.write_text(cluster.read_text() + "bird_snippets:\n  top: '# ours'\n")
    build(cluster)
    assert find_noop(Command(cluster, None)) is None
    build(cluster)
    assert len(full_builds) == 2


def test_an_unusable_cache_only_costs_time(
    tmp_path: Path, full_builds: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("not a directory\n")
    cluster = copy_example(tmp_path)
    assert build(cluster)[0] == 0
    assert build(cluster) == (0, f"{cluster.parent / 'rendered'}: {UP_TO_DATE}\n")
    assert len(full_builds) == 2


def test_the_cache_keeps_the_latest_entries(tmp_path: Path, full_builds: list[Path]) -> None:
    cluster = copy_example(tmp_path)
    build(cluster)
    lock = cluster.parent / "cluster.lock.yaml"
    (cluster.parent / "x").mkdir()
    outs = [  # one tree, spelled differently: a command each
        cluster.parent.joinpath(*["x", ".."] * index, "rendered")
        for index in range(uptodate.CACHE_ENTRIES + 5)
    ]
    for out in outs:
        record(Command(cluster, out), (cluster,), (), lock, ())
    kept = orjson.loads(cache_file().read_bytes())
    assert len(kept) == uptodate.CACHE_ENTRIES
    assert Command(cluster, outs[-1]).key() in kept
    assert Command(cluster, outs[5]).key() in kept
    assert Command(cluster, outs[4]).key() not in kept
