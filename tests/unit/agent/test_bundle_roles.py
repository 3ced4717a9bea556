"""Roles of a v3 bundle: node.json names the shared cluster file playing each (its `source`).

The agent reads a role's bytes from its source (verified against cluster/index.json), installs
them at the role's place, keeps the bundle copy self-contained without writing a role twice, and
refuses a source that is not a listed cluster file, an entry that names both or neither of
digest and source, and a bundle of an older calicc, each naming node.json's field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calicc.agent import AgentError
from calicc.agent.apply import Options, Reconciler
from calicc.agent.bundle import Bundle, file_digest, load_bundle
from calicc.contract.names import (
    CLUSTER_INDEX,
    CLUSTER_SETTINGS,
    CONFLIST,
    IP6TABLES_FILE,
    IPTABLES_FILE,
    MANIFEST,
    ROUTES_FILE,
    SYSCTL_FILE,
)
from tests.conftest import EXAMPLES
from tests.support.bundles import bundle_files, write_tree

NODE_DIRS = sorted(p.parent for p in EXAMPLES.glob("*/rendered/nodes/*/node.json"))
CROSSSUBNET = EXAMPLES / "crosssubnet/rendered/nodes/rack1-node1"
ROLES = (CONFLIST, IPTABLES_FILE, ROUTES_FILE, SYSCTL_FILE)  # and IP6TABLES_FILE with IPv6


def sources(bundle: Bundle) -> dict[str, str]:
    """Return role -> source of a bundle's node.json."""
    files = json.loads(bundle.raw)["files"]
    return {rel: entry["source"] for rel, entry in files.items() if "source" in entry}


@pytest.mark.parametrize("node_dir", NODE_DIRS, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_a_roles_bytes_are_its_sources(node_dir: Path) -> None:
    bundle = load_bundle(node_dir)
    named = sources(bundle)
    ipv6 = bundle.manifest.node.address_v6 is not None
    assert set(named) == set(ROLES) | ({IP6TABLES_FILE} if ipv6 else set())
    tree = node_dir.parents[1]
    for role, source in named.items():
        assert bundle.has(role)
        assert bundle.data(role) == (tree / source).read_bytes() == bundle.data(source)
        assert bundle.text(role) == (tree / source).read_text()


def test_the_shared_files_are_the_kind_of_node() -> None:
    assert sources(load_bundle(CROSSSUBNET)) == {
        CONFLIST: "cluster/cni/mtu-1480.conflist",
        IPTABLES_FILE: "cluster/iptables/ipip.rules",
        ROUTES_FILE: "cluster/routes.sh",
        SYSCTL_FILE: "cluster/sysctl/ipip.conf",
    }


def test_tree_holds_each_file_once_and_loads_by_itself(tmp_path: Path) -> None:
    bundle = load_bundle(CROSSSUBNET)
    tree = bundle.tree()
    index = json.loads((CROSSSUBNET.parents[1] / CLUSTER_INDEX).read_text())["files"]
    assert set(tree) == {MANIFEST, "bird.conf", CLUSTER_INDEX, *index}
    assert not set(ROLES) & set(tree), "a role is not written beside its source"
    for rel, data in tree.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    copy = load_bundle(tmp_path)
    assert (copy.digest, copy.manifest) == (bundle.digest, bundle.manifest)
    assert copy.data(CONFLIST) == bundle.data(CONFLIST)


def test_roles_are_installed_from_their_shared_files(tmp_path: Path) -> None:
    bundle = load_bundle(CROSSSUBNET)
    reconciler = Reconciler(Options(root=tmp_path))
    done = reconciler.files(bundle)
    installed = {
        CONFLIST: "etc/cni/net.d/10-calicc.conflist",
        IPTABLES_FILE: "etc/calicc/iptables/iptables.rules",
        ROUTES_FILE: "etc/calicc/routes/routes.sh",
        SYSCTL_FILE: "etc/sysctl.d/99-calicc.conf",
    }
    tree = CROSSSUBNET.parents[1]
    for role, place in installed.items():
        assert f"{place}: installed" in done
        assert (tmp_path / place).read_bytes() == (tree / sources(bundle)[role]).read_bytes()
    assert not (tmp_path / "etc/calicc/bird/bird.conf").exists(), "bird.conf is the bird part's"
    assert reconciler.files(bundle) == []


def copy(tmp_path: Path, edit: Any = None, index_edit: Any = None) -> Path:
    """Return a self-contained copy of CROSSSUBNET's bundle, node.json and index edited."""
    files = bundle_files(CROSSSUBNET)
    node, index = json.loads(files[MANIFEST]), json.loads(files[CLUSTER_INDEX])
    if edit is not None:
        edit(node)
    if index_edit is not None:
        index_edit(index)
    files[MANIFEST], files[CLUSTER_INDEX] = json.dumps(node), json.dumps(index)
    write_tree(tmp_path / "b", files)
    return tmp_path / "b"


def refusal(bundle: Path) -> str:
    with pytest.raises(AgentError) as caught:
        load_bundle(bundle)
    return str(caught.value)


def test_a_source_the_cluster_index_does_not_list_is_refused(tmp_path: Path) -> None:
    def mtu_1400(node: dict[str, Any]) -> None:
        node["files"][CONFLIST]["source"] = "cluster/cni/mtu-1400.conflist"

    said = refusal(copy(tmp_path, mtu_1400))
    assert said.startswith(f"{tmp_path / 'b' / MANIFEST}: ")
    field = 'files."cni/10-calicc.conflist".source: "cluster/cni/mtu-1400.conflist"'
    assert f"{field} is not a file {CLUSTER_INDEX} lists" in said
    assert "different builds" in said


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("bird.conf", "is not a file of the cluster part (cluster/...)"),
        ("nodes/rack1-node2/bird.conf", "is not a file of the cluster part (cluster/...)"),
        ("cluster/../../etc/passwd", 'must not hold ".."'),
        ("/etc/passwd", "must be relative, not absolute"),
    ],
)
def test_a_source_outside_the_cluster_part_is_refused(
    tmp_path: Path, source: str, why: str
) -> None:
    said = refusal(copy(tmp_path, lambda n: n["files"][IPTABLES_FILE].update(source=source)))
    assert f'files."iptables/iptables.rules".source: {json.dumps(source)} {why}' in said


def test_an_entry_with_both_or_neither_of_digest_and_source_is_refused(tmp_path: Path) -> None:
    digest = file_digest(b"")
    both = refusal(copy(tmp_path, lambda n: n["files"][SYSCTL_FILE].update(digest=digest)))
    assert 'files."sysctl/99-calicc.conf": Value error, give exactly one of digest or source' in (
        both
    )
    neither = refusal(copy(tmp_path / "2", lambda n: n["files"]["bird.conf"].pop("digest")))
    assert 'files."bird.conf": Value error, give exactly one of digest or source' in neither


def test_cluster_files_carry_digests_not_sources(tmp_path: Path) -> None:
    by_source = {CLUSTER_SETTINGS: {"source": CLUSTER_INDEX}}
    said = refusal(copy(tmp_path, lambda n: n["files"].update(by_source)))
    assert 'files."cluster/cluster.json".source: "cluster/index.json" is not allowed' in said
    shared = "cluster/iptables/ipip.rules"
    by_source = {shared: {"source": "cluster/routes.sh"}}
    said = refusal(copy(tmp_path / "2", index_edit=lambda i: i["files"].update(by_source)))
    assert said.startswith(f"{tmp_path / '2/b' / CLUSTER_INDEX}: ")
    assert f'files."{shared}".source: "cluster/routes.sh" is not allowed' in said


def test_a_bundle_of_an_older_calicc_is_refused_asking_for_a_rebuild(tmp_path: Path) -> None:
    said = refusal(copy(tmp_path, lambda n: n.update(bundle_version=2)))
    assert said.startswith(f"{tmp_path / 'b' / MANIFEST}: bundle_version: 2 is from an older")
    assert "rebuild the tree with this calicc" in said
