"""A node given cluster files of another build than its node.json, against `calicc apply` in a
node namespace that holds vxlan's node-1 already: the mixed bundle is refused before anything
is touched, the message names the file, both digests (or the fact that differs) and says the
two come from different builds; the links, routes, rules, sets, the --root tree and the
installed bundle copy stay the last good ones (exit 1, no traceback).

The builds are the vxlan example's: as it is, with a fourth node (newer), with other cluster
settings (NAT off), with another pod MTU (its node.json names a shared conflist the last build's
cluster part lacks), and without node-1 (older than node-1's joining).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.bundle import file_digest
from calicc.contract.names import CLUSTER_INDEX, CLUSTER_SETTINGS, CONFLIST, NODES_TABLE
from tests.conftest import need_tool
from tests.support.agent_inputs import MANIFEST, copy_bundle, net_state, run_apply
from tests.support.bundles import MakeNs, routed_node
from tests.support.clusters import built_example
from tests.support.hostile import assert_clean_error, assert_unchanged, snapshot

pytestmark = [pytest.mark.root, pytest.mark.tools]
NODE = "node-1"
FOURTH = {"name": "node-4", "address": "10.30.0.14/24", "interface": "eth0"}


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "iptables-restore", "iptables-save", "ipset")


def build(tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], None] | None) -> Path:
    """Return the rendered tree of a build of the vxlan example (changed by `edit`)."""
    (tmp_path / name).mkdir()
    built_example(tmp_path / name, "vxlan", edit)
    return tmp_path / name / "rendered"


def add_fourth(data: dict[str, Any]) -> None:
    data["nodes"].append(FOURTH)


def nat_off(data: dict[str, Any]) -> None:
    data["nat_outgoing"] = False


def smaller_mtu(data: dict[str, Any]) -> None:
    data["mtu"] = 1400


def without_node_1(data: dict[str, Any]) -> None:
    data["nodes"] = [n for n in data["nodes"] if n["name"] != NODE]


@pytest.fixture
def applied(make_ns: MakeNs, tmp_path: Path) -> tuple[str, Path, Path]:
    """A node namespace with node-1 of a fresh build applied; returns (ns, root, its tree)."""
    tree = build(tmp_path, "base", None)
    ns, _ = routed_node(make_ns, tree / "nodes" / NODE)
    root = tmp_path / "root"
    first = run_apply(ns, tree / "nodes" / NODE, root)
    assert first.code == 0, first.stderr
    return ns, root, tree


def refused(ns: str, root: Path, bundle: Path, says: list[str]) -> None:
    """Apply `bundle` expecting its refusal: nothing in the namespace or under --root changes."""
    state, files = net_state(ns), snapshot(root)
    installed = (root / "etc/calicc/bundle" / MANIFEST).read_bytes()
    outcome = run_apply(ns, bundle, root)
    assert_clean_error(outcome, code=1, says=says)
    assert net_state(ns) == state
    assert_unchanged(files, snapshot(root))
    assert (root / "etc/calicc/bundle" / MANIFEST).read_bytes() == installed


def test_node_table_newer_than_the_cluster_index_is_refused(
    applied: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """nodes.tsv of a build with one more node, beside node.json and the index of the last."""
    ns, root, tree = applied
    newer = build(tmp_path, "newer", add_fourth)
    bundle = tmp_path / "bundle"
    copy_bundle(tree / "nodes" / NODE, bundle)
    shutil.copy(newer / NODES_TABLE, bundle / NODES_TABLE)
    old, new = (
        file_digest((tree / NODES_TABLE).read_bytes()),
        file_digest((newer / NODES_TABLE).read_bytes()),
    )
    assert old != new
    says = [str(bundle / NODES_TABLE), new, old, CLUSTER_INDEX, "come from different builds"]
    refused(ns, root, bundle, says)


def test_cluster_part_of_a_build_with_other_settings_is_refused(
    applied: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """A whole, consistent cluster part of a newer build whose cluster.json differs."""
    ns, root, tree = applied
    newer = build(tmp_path, "newer", nat_off)
    bundle = tmp_path / "bundle"
    copy_bundle(tree / "nodes" / NODE, bundle)
    shutil.rmtree(bundle / "cluster")
    shutil.copytree(newer / "cluster", bundle / "cluster")
    old, new = (
        file_digest((tree / CLUSTER_SETTINGS).read_bytes()),
        file_digest((newer / CLUSTER_SETTINGS).read_bytes()),
    )
    assert old != new
    says = [str(bundle / MANIFEST), CLUSTER_SETTINGS, old, new, "come from different builds"]
    refused(ns, root, bundle, says)


def test_node_json_naming_a_shared_file_the_cluster_part_lacks_is_refused(
    applied: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """node.json of a build with another pod MTU beside the cluster part of the last: the same
    cluster settings, but its conflist is a shared file the cluster index does not list."""
    ns, root, tree = applied
    newer = build(tmp_path, "newer", smaller_mtu)
    assert (newer / CLUSTER_SETTINGS).read_bytes() == (tree / CLUSTER_SETTINGS).read_bytes()
    bundle = tmp_path / "bundle"
    copy_bundle(tree / "nodes" / NODE, bundle)
    shutil.copy(newer / "nodes" / NODE / MANIFEST, bundle / MANIFEST)
    shutil.copy(newer / "nodes" / NODE / "bird.conf", bundle / "bird.conf")
    source = json.loads((bundle / MANIFEST).read_text())["files"][CONFLIST]["source"]
    assert source == "cluster/cni/mtu-1400.conflist"
    assert not (bundle / source).exists()
    says = [
        str(bundle / MANIFEST),
        f'files."{CONFLIST}".source: "{source}" is not a file {CLUSTER_INDEX} lists',
        "come from different builds",
    ]
    refused(ns, root, bundle, says)


def test_node_directory_in_a_tree_of_an_older_build_is_refused(
    applied: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """node-1's directory copied into the rendered tree of a build before node-1 joined: the
    cluster settings agree, the node table has no line for node-1."""
    ns, root, tree = applied
    older = build(tmp_path, "older", without_node_1)
    shutil.copytree(tree / "nodes" / NODE, older / "nodes" / NODE)
    says = [str(older / "nodes" / NODE / MANIFEST), f"nodes.tsv has no line for node {NODE}"]
    refused(ns, root, older / "nodes" / NODE, [*says, "different builds"])
