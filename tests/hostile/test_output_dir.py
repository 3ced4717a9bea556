"""The output directory: calicc prunes only what it wrote, never follows a link, and a failed
write (disk full) is one located line with nothing half-written: no staging left, no lock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.build import build, load_cluster
from tests.support.hostile import (
    Outcome,
    assert_clean_error,
    assert_unchanged,
    run_calicc,
    snapshot,
)

CLUSTER = """\
name: out
network_cidr: 10.244.0.0/16
nodes:
  - {name: n1, address: 10.0.0.1/24}
  - {name: n2, address: 10.0.0.2/24}
"""
FILE_LIMIT = 1024  # bytes per file: every bird.conf and index.json is larger


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A built cluster under tmp_path/repo, with tmp_path/outside beside it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "cluster.yaml").write_text(CLUSTER)
    build(load_cluster(repo / "cluster.yaml"), repo / "rendered")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep\n")
    return repo


def refused(root: Path, *args: str, **expect: object) -> Outcome:
    """Build in `root`: a clean error, and nothing changed anywhere under its parent."""
    before = snapshot(root.parent)
    outcome = run_calicc(["build", "cluster.yaml", *args], root)
    assert_clean_error(outcome, **expect)  # type: ignore[arg-type]
    assert_unchanged(before, snapshot(root.parent))
    return outcome


def drop_node(root: Path, name: str) -> None:
    cluster = root / "cluster.yaml"
    lines = cluster.read_text().splitlines(keepends=True)
    cluster.write_text("".join(line for line in lines if f"name: {name}," not in line))


def test_unlisted_readme_survives_rebuilds(root: Path) -> None:
    (root / "rendered" / "README.md").write_text("# review notes\n")
    drop_node(root, "n2")
    outcome = run_calicc(["build", "cluster.yaml"], root)
    assert outcome.code == 0, outcome.stderr
    assert "removed: nodes/n2/node.json" in outcome.stdout
    assert (root / "rendered" / "README.md").read_text() == "# review notes\n"
    assert not (root / "rendered" / "nodes" / "n2").exists()


def test_local_override_in_a_removed_node_survives(root: Path) -> None:
    override = root / "rendered" / "nodes" / "n2" / "local" / "bird.conf"
    override.parent.mkdir()
    override.write_text("# local\n")
    drop_node(root, "n2")
    assert run_calicc(["build", "cluster.yaml"], root).code == 0
    assert override.read_text() == "# local\n"
    assert sorted(p.name for p in (root / "rendered" / "nodes" / "n2").rglob("*")) == [
        "bird.conf",
        "local",
    ]


def test_output_that_is_a_symlink(root: Path) -> None:
    (root / "elsewhere").symlink_to(root.parent / "outside")
    refused(root, "-o", "elsewhere", where="elsewhere is a symbolic link", says=["-o"])


def test_node_directory_linked_out_of_the_tree(root: Path) -> None:
    node = root / "rendered" / "nodes" / "n1"
    for path in sorted(node.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    node.rmdir()
    node.symlink_to(root.parent / "outside")
    refused(root, where="rendered/nodes/n1 is a symbolic link", says=["never writes through"])
    refused(root, "--check", where="rendered/nodes/n1 is a symbolic link")


def test_file_linked_out_of_the_tree(root: Path) -> None:
    drop_node(root, "n2")  # so the build has something to write
    conf = root / "rendered" / "nodes" / "n1" / "bird.conf"
    conf.unlink()
    conf.symlink_to(root.parent / "outside" / "precious")
    refused(root, where="rendered/nodes/n1/bird.conf is a symbolic link")


def test_shared_file_linked_out_of_the_tree(root: Path) -> None:
    with (root / "cluster.yaml").open("a") as cluster:
        cluster.write("nat_outgoing: false\n")  # so the build rewrites the shared rules
    rules = root / "rendered" / "cluster" / "iptables" / "ipip.rules"
    rules.unlink()
    rules.symlink_to(root.parent / "outside" / "precious")
    refused(root, where="rendered/cluster/iptables/ipip.rules is a symbolic link")


def test_stale_file_linked_out_of_the_tree_is_not_removed_through(root: Path) -> None:
    stale = root / "rendered" / "nodes" / "n2" / "node.json"
    stale.unlink()
    stale.symlink_to(root.parent / "outside" / "precious")
    drop_node(root, "n2")
    refused(root, where="rendered/nodes/n2/node.json is a symbolic link")


def test_directory_where_a_file_goes(root: Path) -> None:
    conf = root / "rendered" / "nodes" / "n1" / "bird.conf"
    conf.unlink()
    conf.mkdir()
    (conf / "mine").write_text("x\n")
    refused(root, where="rendered/nodes/n1/bird.conf is a directory where calicc writes")


def test_file_where_a_directory_goes(root: Path) -> None:
    drop_node(root, "n2")
    with (root / "cluster.yaml").open("a") as cluster:
        cluster.write("  - {name: n3, address: 10.0.0.3/24}\n")
    (root / "rendered" / "nodes" / "n3").write_text("a file\n")
    refused(root, where="rendered/nodes/n3 is a file where calicc needs a directory")


def test_file_where_a_shared_directory_goes(root: Path) -> None:
    with (root / "cluster.yaml").open("a") as cluster:
        cluster.write("mtu: 1400\n")  # a new pod MTU: a new conflist in cluster/cni
    cni = root / "rendered" / "cluster" / "cni"
    for path in cni.iterdir():
        path.unlink()
    cni.rmdir()
    cni.write_text("a file\n")
    refused(root, where="rendered/cluster/cni is a file where calicc needs a directory")


def test_index_listing_a_path_outside_the_tree(root: Path) -> None:
    index = root / "rendered" / "index.json"
    index.write_text(index.read_text().replace('"n2": {', '"../../outside": {"precious": "x",'))
    refused(root, where="rendered/index.json: lists a path outside the tree")


def test_corrupt_index(root: Path) -> None:
    index = root / "rendered" / "index.json"
    index.write_text(index.read_text()[:100])
    refused(root, where="rendered/index.json: not a calicc index", says=["restore it from git"])


def test_output_that_is_a_file(root: Path) -> None:
    (root / "out.txt").write_text("not a directory\n")
    refused(root, "-o", "out.txt", where="out.txt is not a directory")


def test_output_below_a_file(root: Path) -> None:
    (root / "out.txt").write_text("not a directory\n")
    refused(root, "-o", "out.txt/rendered", where="out.txt is not a directory")


def test_foreign_directory(root: Path) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "notes.md").write_text("mine\n")
    refused(root, "-o", "docs", where="docs exists and is not a calicc rendered tree")


def run_disk_full(cwd: Path, *args: str) -> Outcome:
    """Run calicc where no file can grow past FILE_LIMIT bytes (a full disk, without root)."""
    return run_calicc(args, cwd=cwd, file_limit=FILE_LIMIT)


def _assert_one_line(outcome: Outcome) -> None:
    assert_clean_error(outcome, says=["cannot write: File too large", "rendered/"])
    assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr


def test_disk_full_on_a_fresh_build(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(CLUSTER)
    before = snapshot(tmp_path)
    _assert_one_line(run_disk_full(tmp_path, "build", "cluster.yaml"))
    assert_unchanged(before, snapshot(tmp_path))  # no lock, no rendered/, no staging


def test_disk_full_on_a_rebuild(root: Path) -> None:
    drop_node(root, "n2")
    with (root / "cluster.yaml").open("a") as cluster:
        cluster.write("  - {name: n3, address: 10.0.0.3/24}\n")
    before = snapshot(root.parent)
    _assert_one_line(run_disk_full(root, "build", "cluster.yaml"))
    assert_unchanged(before, snapshot(root.parent))
