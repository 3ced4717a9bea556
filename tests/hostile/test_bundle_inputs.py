"""Hostile and sloppy node bundles against `calicc apply`, run in throwaway namespaces.

Refused bundles: exit 1, a message naming node.json (or the listed file) and the field, no
traceback, under the corpus's memory limit, and nothing changed: the bundle, the --root tree and
the namespace's links, routes, rules and sets are the same before and after.

The node's own file is bird.conf (BIRD); the rules (RULES) are a role, played by the shared
cluster file node.json names as its `source` (SHARED_RULES, listed in cluster/index.json).

Bundles with a part the tools reject are in test_bundle_parts.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.bundle import file_digest
from calicc.contract.names import (
    CLUSTER_INDEX,
    CLUSTER_POLICY,
    CLUSTER_SETTINGS,
    CONFLIST,
    NODES_TABLE,
)
from tests.conftest import need_tool
from tests.support.agent_inputs import (
    MANIFEST,
    copy_bundle,
    net_state,
    run_apply,
    set_file,
    snapshot_all,
    write_manifest,
)
from tests.support.bundles import MakeNs, rendered
from tests.support.hostile import assert_clean_error, assert_unchanged

pytestmark = [pytest.mark.root, pytest.mark.tools]
VXLAN = rendered("vxlan", "node-1")
RULES = "iptables/iptables.rules"
RULES_FIELD = 'files."iptables/iptables.rules"'
SHARED_RULES = "cluster/iptables/vxlan.rules"  # the rules role's source in vxlan's node-1
BIRD = "bird.conf"
BIRD_FIELD = 'files."bird.conf"'
GiB = 2**30
Case = Callable[[Path, dict[str, Any]], tuple[str | None, list[str]]]


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "iptables-restore", "iptables-save", "ipset")


def _raw(bundle: Path, data: bytes) -> None:
    (bundle / MANIFEST).write_bytes(data)


def truncated(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    text = (bundle / MANIFEST).read_text()
    cut = text[: len(text) // 2]
    _raw(bundle, cut.encode())
    try:
        json.loads(cut)
    except json.JSONDecodeError as exc:
        return None, [f"{MANIFEST}:{exc.lineno}:{exc.colno}: not valid JSON"]
    raise AssertionError("half a manifest parsed")


def not_json(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _raw(bundle, b"<html><body>502 Bad Gateway</body></html>\n")
    return None, [f"{MANIFEST}:1:1: not valid JSON"]


def not_utf8(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _raw(bundle, (bundle / MANIFEST).read_bytes().replace(b'"node-1"', b'"node-\xff"', 1))
    return None, ["not UTF-8 text (byte 0xff"]


def not_an_object(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _raw(bundle, b"[1, 2, 3]\n")
    return None, ["must be a JSON object, not list"]


def nested_too_deep(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _raw(bundle, b"[" * 200_000 + b"]" * 200_000)
    return None, ["nested too deeply"]


def duplicate_key(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    text = (bundle / MANIFEST).read_text()
    _raw(bundle, text.replace('"files": {', '"files": {}, "files": {', 1).encode())
    return "files", ["appears twice"]


def unknown_version(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    write_manifest(bundle, {**data, "bundle_version": 99})
    return "bundle_version", ["99 is not one this agent knows"]


def older_version(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A node.json of bundle_version 2 (the node's own routes, sysctl, CNI and rules files)."""
    write_manifest(bundle, {**data, "bundle_version": 2})
    return "bundle_version", ["2 is from an older calicc", "rebuild the tree with this calicc"]


def wrong_types(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    write_manifest(bundle, {**data, "link_mtu": "big", "routes": {"a": 1}, "extra": True})
    return "link_mtu", ["routes", "extra", "3 problems in the bundle"]


def many_errors(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    routes = [{"dst": f"300.0.0.{i}/32", "type": "unicast"} for i in range(500)]
    write_manifest(bundle, {**data, "routes": routes})
    return "routes[0].dst", ["500 problems", "... and 480 more"]


def missing_digest(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A node file's entry with neither digest nor source."""
    del data["files"][BIRD]["digest"]
    write_manifest(bundle, data)
    return BIRD_FIELD, ["give exactly one of digest or source"]


def digest_and_source(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A role's entry with a digest beside its source: which one holds is not said."""
    data["files"][RULES]["digest"] = file_digest((bundle / SHARED_RULES).read_bytes())
    write_manifest(bundle, data)
    return RULES_FIELD, ["give exactly one of digest or source"]


def malformed_digest(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    data["files"][BIRD]["digest"] = "md5:d41d8cd98f00b204e9800998ecf8427e"
    write_manifest(bundle, data)
    return f"{BIRD_FIELD}.digest", ['is not "sha256:" + 64 hex digits']


def digest_mismatch(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    with (bundle / BIRD).open("a") as conf:
        conf.write("# edited on the node\n")
    return f"{BIRD_FIELD}.digest", [str(bundle / BIRD), "rebuild or recopy"]


def missing_file(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    (bundle / BIRD).unlink()
    return BIRD_FIELD, ["is missing"]


def source_not_listed(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A role whose shared file the cluster part lacks (a node.json of another build)."""
    data["files"][RULES]["source"] = "cluster/iptables/ipip.rules"
    write_manifest(bundle, data)
    return f"{RULES_FIELD}.source", [
        '"cluster/iptables/ipip.rules" is not a file cluster/index.json lists',
        "different builds",
    ]


def source_outside_cluster(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A role played by the node's own file: a source is a file of the cluster part."""
    data["files"][CONFLIST]["source"] = BIRD
    write_manifest(bundle, data)
    field = 'files."cni/10-calicc.conflist".source'
    return field, ['"bird.conf" is not a file of the cluster part (cluster/...)']


def source_traversal(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    data["files"][RULES]["source"] = "cluster/../../../../etc/passwd"
    write_manifest(bundle, data)
    return f"{RULES_FIELD}.source", ['must not hold ".."']


def cluster_file_by_source(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The cluster settings node.json was built from, named by a source instead of a digest."""
    data["files"][CLUSTER_SETTINGS] = {"source": CLUSTER_POLICY}
    write_manifest(bundle, data)
    return f'files."{CLUSTER_SETTINGS}".source', ["a cluster file (cluster/...) is listed with"]


def _listed(data: dict[str, Any], rel: str, install: str = "etc/calicc/x") -> None:
    digest = file_digest(Path("/etc/passwd").read_bytes())
    data["files"][rel] = {"digest": digest, "install": install}


def path_traversal(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _listed(data, "../../../../../../etc/passwd")
    write_manifest(bundle, data)
    return 'files."../../../../../../etc/passwd"', ['must not hold ".."']


def absolute_path(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _listed(data, "/etc/passwd")
    write_manifest(bundle, data)
    return 'files."/etc/passwd"', ["must be relative, not absolute"]


def install_outside_root(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    data["files"][RULES]["install"] = "../../../etc/cron.d/calicc"
    write_manifest(bundle, data)
    return f"{RULES_FIELD}.install", ['must not hold ".."', "under --root"]


def symlink_out(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    (bundle / BIRD).unlink()
    (bundle / BIRD).symlink_to("/etc/passwd")
    data["files"][BIRD]["digest"] = file_digest(Path("/etc/passwd").read_bytes())
    write_manifest(bundle, data)
    return BIRD_FIELD, ["resolves outside the bundle"]


def manifest_symlink_out(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    outside = bundle.parent / "outside.json"
    outside.write_bytes((bundle / MANIFEST).read_bytes())
    (bundle / MANIFEST).unlink()
    (bundle / MANIFEST).symlink_to(outside)
    return None, ["resolves outside the bundle"]


def fifo_file(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    (bundle / BIRD).unlink()
    os.mkfifo(bundle / BIRD)
    return BIRD_FIELD, ["is not a regular file"]


def huge_file(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    os.truncate(bundle / BIRD, GiB)  # sparse: costs no disk
    return BIRD_FIELD, [f"holds {GiB} bytes, more than the 4194304 allowed"]


def huge_manifest(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    os.truncate(bundle / MANIFEST, GiB)
    return None, [f"holds {GiB} bytes", "(the bundle manifest)"]


def biggest_manifest(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """Just under the size limit, all tiny objects: validated in full within the memory limit."""
    routes = [
        {"dst": f"10.{i >> 8 & 255}.{i & 255}.0/24", "type": "blackhole"} for i in range(85000)
    ]
    data["node"]["name"] = "Node_1"
    _raw(bundle, json.dumps({**data, "routes": routes}).encode())  # compact, as a hostile one
    assert 4 * 2**20 - 200_000 < (bundle / MANIFEST).stat().st_size < 4 * 2**20
    return "node.name", ["is not a DNS-1123 node name"]


def long_key(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _listed(data, "x" * 100_000)
    write_manifest(bundle, data)
    return 'files."xxxxxxxx', ["is longer than 1024 characters"]


def bad_node_name(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    data["node"]["name"] = "../../node-1"
    write_manifest(bundle, data)
    return "node.name", ["is not a DNS-1123 node name"]


def _edit_policy(bundle: Path, data: dict[str, Any], edit: Callable[[Any], None]) -> None:
    """Change cluster/policy.json, its digest listed again (a consistent, hostile cluster part)."""
    policy = json.loads((bundle / CLUSTER_POLICY).read_text())
    edit(policy)
    set_file(bundle, data, CLUSTER_POLICY, json.dumps(policy, indent=2, sort_keys=True) + "\n")


def set_member_injection(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    members = ["10.0.0.1\ndestroy KUBE-CLUSTER-IP"]
    _edit_policy(bundle, data, lambda p: p["ipsets"][1].__setitem__("members", members))
    return "ipsets[1].members[0]", [str(bundle / CLUSTER_POLICY), "is not a set member"]


def foreign_set_name(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    _edit_policy(bundle, data, lambda p: p["ipsets"][0].__setitem__("name", "KUBE-CLUSTER-IP"))
    return "ipsets[0].name", [str(bundle / CLUSTER_POLICY), "is not an owned set"]


def foreign_jump(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    """A hook of cluster/cluster.json, its digest listed again (and node.json built from it)."""
    settings = json.loads((bundle / CLUSTER_SETTINGS).read_text())
    settings["jump_rules"][0]["rule"] = "-j DROP"
    set_file(bundle, data, CLUSTER_SETTINGS, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return "jump_rules[0].rule", [str(bundle / CLUSTER_SETTINGS), "is not one line jumping to"]


def sysctl_traversal(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    data["sysctls"]["net/../../../../etc/passwd"] = "root::0:0::/:/bin/sh"
    write_manifest(bundle, data)
    return 'sysctls."net/../../../../etc/passwd"', ["is not a sysctl under /proc/sys"]


def kernel_route_protocol(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    write_manifest(bundle, {**data, "route_protocol": 2})
    return "route_protocol", ["is not a protocol 5-255 of its own"]


def secret_include_outside(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    data["bird"]["secrets"] = {"../../../../etc/profile.d/x.sh": {"env": "BGP_PASSWORD"}}
    write_manifest(bundle, data)
    return 'bird.secrets."../../../../etc/profile.d/x.sh"', ['must not hold ".."']


def device_name(bundle: Path, data: dict[str, Any]) -> tuple[str | None, list[str]]:
    data["links"][0]["name"] = "vxlan calico/../x"
    write_manifest(bundle, data)
    return "links[0].name", ["is not an interface name"]


CASES: list[Case] = [
    truncated,
    not_json,
    not_utf8,
    not_an_object,
    nested_too_deep,
    duplicate_key,
    unknown_version,
    older_version,
    wrong_types,
    many_errors,
    missing_digest,
    digest_and_source,
    malformed_digest,
    digest_mismatch,
    missing_file,
    source_not_listed,
    source_outside_cluster,
    source_traversal,
    cluster_file_by_source,
    path_traversal,
    absolute_path,
    install_outside_root,
    symlink_out,
    manifest_symlink_out,
    fifo_file,
    huge_file,
    huge_manifest,
    biggest_manifest,
    long_key,
    bad_node_name,
    set_member_injection,
    foreign_set_name,
    foreign_jump,
    sysctl_traversal,
    kernel_route_protocol,
    secret_include_outside,
    device_name,
]
POLICY_CASES = (set_member_injection, foreign_set_name)  # refused naming cluster/policy.json
SETTINGS_CASES = (foreign_jump,)  # refused naming cluster/cluster.json


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_refused_bundle_changes_nothing(make_ns: MakeNs, tmp_path: Path, case: Case) -> None:
    ns = make_ns("h")
    bundle, root = tmp_path / "bundle", tmp_path / "root"
    field, says = case(bundle, copy_bundle(VXLAN, bundle))
    (root / "etc").mkdir(parents=True)
    before, net = snapshot_all(bundle, root), net_state(ns)
    outcome = run_apply(ns, bundle, root)
    named = MANIFEST
    if case in POLICY_CASES + SETTINGS_CASES:
        named = CLUSTER_POLICY if case in POLICY_CASES else CLUSTER_SETTINGS
    where = str(bundle / named)
    assert_clean_error(outcome, code=1, where=where, field=field, says=says)
    assert_unchanged(before, snapshot_all(bundle, root))
    assert net_state(ns) == net


def node_table_bad_column(bundle: Path, data: dict[str, Any]) -> list[str]:
    text = (bundle / NODES_TABLE).read_text().replace("10.30.0.12/24", "10.30.0.312/24")
    set_file(bundle, data, NODES_TABLE, text)
    return [str(bundle / NODES_TABLE), "line 5, address:"]


def cluster_settings_wrong_type(bundle: Path, data: dict[str, Any]) -> list[str]:
    settings = json.loads((bundle / CLUSTER_SETTINGS).read_text())
    settings["pools"][0]["cidr"] = "10.244.0.0/33"
    set_file(bundle, data, CLUSTER_SETTINGS, json.dumps(settings))  # and node.json's digest
    return [str(bundle / CLUSTER_SETTINGS), "pools[0].cidr"]


def index_path_traversal(bundle: Path, data: dict[str, Any]) -> list[str]:
    index = json.loads((bundle / CLUSTER_INDEX).read_text())
    index["files"]["cluster/../../../etc/passwd"] = {"digest": "sha256:" + "0" * 64}
    (bundle / CLUSTER_INDEX).write_text(json.dumps(index))
    return [
        str(bundle / CLUSTER_INDEX),
        'files."cluster/../../../etc/passwd"',
        'must not hold ".."',
    ]


def cluster_symlink_out(bundle: Path, data: dict[str, Any]) -> list[str]:
    (bundle / NODES_TABLE).unlink()
    (bundle / NODES_TABLE).symlink_to("/etc/passwd")
    return [str(bundle / NODES_TABLE), "resolves outside the rendered tree or bundle"]


def no_cluster_part(bundle: Path, data: dict[str, Any]) -> list[str]:
    shutil.rmtree(bundle / "cluster")
    return ["index.json is missing", "the bundle has no cluster/ directory"]


def shared_file_edited(bundle: Path, data: dict[str, Any]) -> list[str]:
    """A role's shared file of other bytes than cluster/index.json lists (a torn copy)."""
    with (bundle / SHARED_RULES).open("a") as rules:
        rules.write("# edited on the node\n")
    return [
        str(bundle / CLUSTER_INDEX),
        f'files."{SHARED_RULES}".digest',
        str(bundle / SHARED_RULES),
        "come from different builds",
    ]


def shared_file_missing(bundle: Path, data: dict[str, Any]) -> list[str]:
    shared = data["files"][CONFLIST]["source"]
    (bundle / shared).unlink()
    return [str(bundle / CLUSTER_INDEX), f'files."{shared}"', "is missing"]


def index_entry_by_source(bundle: Path, data: dict[str, Any]) -> list[str]:
    """cluster/index.json names a cluster file by source: the index lists digests."""
    index = json.loads((bundle / CLUSTER_INDEX).read_text())
    index["files"][SHARED_RULES] = {"source": "cluster/routes.sh"}
    (bundle / CLUSTER_INDEX).write_text(json.dumps(index))
    return [str(bundle / CLUSTER_INDEX), f'files."{SHARED_RULES}".source', "is not allowed"]


def index_of_older_version(bundle: Path, data: dict[str, Any]) -> list[str]:
    index = json.loads((bundle / CLUSTER_INDEX).read_text())
    (bundle / CLUSTER_INDEX).write_text(json.dumps({**index, "bundle_version": 2}))
    return [str(bundle / CLUSTER_INDEX), "bundle_version: 2 is from an older calicc", "rebuild"]


CLUSTER_CASES = [
    node_table_bad_column,
    cluster_settings_wrong_type,
    index_path_traversal,
    cluster_symlink_out,
    no_cluster_part,
    shared_file_edited,
    shared_file_missing,
    index_entry_by_source,
    index_of_older_version,
]


@pytest.mark.parametrize("case", CLUSTER_CASES, ids=[c.__name__ for c in CLUSTER_CASES])
def test_refused_cluster_part_changes_nothing(
    make_ns: MakeNs, tmp_path: Path, case: Callable[[Path, dict[str, Any]], list[str]]
) -> None:
    ns = make_ns("h")
    bundle, root = tmp_path / "nodes" / "bundle", tmp_path / "root"  # no cluster/ two levels up
    says = case(bundle, copy_bundle(VXLAN, bundle))
    (root / "etc").mkdir(parents=True)
    before, net = snapshot_all(bundle, root), net_state(ns)
    outcome = run_apply(ns, bundle, root)
    assert_clean_error(outcome, code=1, says=says)
    assert_unchanged(before, snapshot_all(bundle, root))
    assert net_state(ns) == net


def test_missing_bundle_directory(make_ns: MakeNs, tmp_path: Path) -> None:
    ns, root = make_ns("h"), tmp_path / "root"
    outcome = run_apply(ns, tmp_path / "nope", root)
    assert_clean_error(outcome, where=str(tmp_path / "nope"), says=["not a bundle directory"])
    assert not root.exists()


def test_invalid_bundle_json_report(make_ns: MakeNs, tmp_path: Path) -> None:
    """--json still prints a report (the Ansible role parses it) when nothing ran."""
    ns, bundle, root = make_ns("h"), tmp_path / "bundle", tmp_path / "root"
    missing_file(bundle, copy_bundle(VXLAN, bundle))
    outcome = run_apply(ns, bundle, root, "--json")
    assert_clean_error(outcome, field=BIRD_FIELD, says=["is missing"])
    report = json.loads(outcome.stdout)
    assert (report["changed"], report["applied"]) == (False, [])
    assert "is missing" in report["failed"]["validate"]
    assert report["skipped"]["bundle"] == "because validate failed"


def test_bundle_of_another_node(make_ns: MakeNs, tmp_path: Path) -> None:
    ns, bundle, root = make_ns("h"), tmp_path / "bundle", tmp_path / "root"
    copy_bundle(VXLAN, bundle)
    outcome = run_apply(ns, bundle, root, "--node", "node-2")
    assert_clean_error(outcome, field="node.name", says=["is not this node (node-2)"])
    assert not root.exists()
