"""Bundles with a part the tools reject, against `calicc apply` in a node namespace that holds
vxlan's node-1 already: the part fails, the parts depending on it are skipped (the new routes and
links are not programmed), the installed bundle copy stays the previous one, the --root tree is
unchanged, the report names the failed and skipped parts, exit 1, no traceback. The next apply of
the fixed bundle applies everything. (The refused bundles are in test_bundle_inputs.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calicc.contract.names import CLUSTER_INDEX, CLUSTER_POLICY, CONFLIST
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.agent_inputs import (
    MANIFEST,
    copy_bundle,
    json_report,
    net_state,
    run_apply,
    set_file,
    write_manifest,
)
from tests.support.bundles import MakeNs, rendered, role_text, routed_node
from tests.support.hostile import assert_clean_error, assert_unchanged, snapshot

pytestmark = [pytest.mark.root, pytest.mark.tools]
VXLAN = rendered("vxlan", "node-1")
RULES = "iptables/iptables.rules"


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "iptables-restore", "iptables-save", "ipset")


NEW_ROUTE = {"dst": "10.99.9.0/24", "type": "blackhole", "comment": "added by the new bundle"}


@pytest.fixture
def node(make_ns: MakeNs, tmp_path: Path) -> tuple[str, Path]:
    """A node namespace with vxlan's node-1 applied under tmp_path/root."""
    ns, _ = routed_node(make_ns, VXLAN)
    root = tmp_path / "root"
    first = run_apply(ns, VXLAN, root)
    assert first.code == 0, first.stderr
    return ns, root


def new_bundle(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of node-1's bundle with one more route (which a failure must hold back)."""
    bundle = tmp_path / "new"
    data = copy_bundle(VXLAN, bundle)
    data["routes"].append(NEW_ROUTE)
    write_manifest(bundle, data)
    return bundle, data


def failed_apply(ns: str, root: Path, bundle: Path) -> dict[str, Any]:
    """Apply `bundle` expecting a failed part: nothing under --root changes, no new route."""
    before = snapshot(root)
    outcome = run_apply(ns, bundle, root, "--json")
    assert_clean_error(outcome, code=1)
    assert_unchanged(before, snapshot(root))
    assert (root / "etc/calicc/bundle" / MANIFEST).read_bytes() == (VXLAN / MANIFEST).read_bytes()
    assert "10.99.9.0/24" not in ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout
    return json_report(outcome)


def skipped(*parts: str, because: str) -> dict[str, str]:
    return dict.fromkeys(parts, f"because {because} failed")


def test_rejected_rules_hold_back_routes_and_bundle(node: tuple[str, Path], tmp_path: Path) -> None:
    ns, root = node
    bundle, data = new_bundle(tmp_path)
    set_file(bundle, data, RULES, "*filter\n:cali-INPUT - [0:0]\n-A cali-INPUT --bogus\nCOMMIT\n")
    rules = net_state(ns)["iptables"]
    report = failed_apply(ns, root, bundle)
    assert list(report["failed"]) == ["iptables"]
    assert "iptables-restore" in report["failed"]["iptables"]
    later = ("stale-ipsets", "routes", "bird", "files", "bundle")
    assert report["skipped"] == skipped(*later, because="iptables")
    assert report["applied"] == ["address", "sysctl", "links", "link-sysctl", "remote", "ipsets"]
    assert net_state(ns)["iptables"] == rules
    set_file(bundle, data, RULES, role_text(VXLAN, RULES))  # fixed: the retry applies all
    assert run_apply(ns, bundle, root).code == 0
    assert "10.99.9.0/24" in ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout
    assert (root / "etc/calicc/bundle" / MANIFEST).read_bytes() == (bundle / MANIFEST).read_bytes()


def test_rejected_set_member_holds_back_rules_and_routes(
    node: tuple[str, Path], tmp_path: Path
) -> None:
    ns, root = node
    bundle, data = new_bundle(tmp_path)
    policy = json.loads((bundle / CLUSTER_POLICY).read_text())
    policy["ipsets"][1]["members"] = [*policy["ipsets"][1]["members"], "10.0.0.300"]
    set_file(bundle, data, CLUSTER_POLICY, json.dumps(policy, indent=2, sort_keys=True) + "\n")
    set_file(bundle, data, RULES, role_text(VXLAN, RULES) + "# a new rules file\n")
    sets, rules = net_state(ns)["ipsets"], net_state(ns)["iptables"]
    report = failed_apply(ns, root, bundle)
    assert list(report["failed"]) == ["ipsets"]
    assert "ipset restore" in report["failed"]["ipsets"]
    later = ("iptables", "stale-ipsets", "routes", "bird", "files", "bundle")
    assert report["skipped"] == skipped(*later, because="ipsets")
    assert (net_state(ns)["ipsets"], net_state(ns)["iptables"]) == (sets, rules)


def test_failed_route_holds_back_bird_cni_files_and_bundle(
    node: tuple[str, Path], tmp_path: Path
) -> None:
    """A route the kernel refuses (its device is missing): the routes part fails (the agent
    programs routes.sh's routes over netlink); the new conflist is not installed."""
    ns, root = node
    bundle, data = new_bundle(tmp_path)
    data["routes"].append({"dst": "10.99.8.0/24", "type": "unicast", "dev": "nosuch0"})
    set_file(bundle, data, CONFLIST, role_text(VXLAN, CONFLIST).replace("1450", "1400"))
    report = failed_apply(ns, root, bundle)
    assert list(report["failed"]) == ["routes"]
    assert "nosuch0" in report["failed"]["routes"]
    assert report["skipped"] == skipped("bird", "files", "bundle", because="routes")
    assert "stale-ipsets" in report["applied"]


def test_failed_sysctl_holds_back_links(node: tuple[str, Path], tmp_path: Path) -> None:
    """The new bundle changes the VXLAN device's MTU; its sysctl is refused, so the device
    keeps its MTU and nothing that needs the devices runs."""
    ns, root = node
    bundle, data = new_bundle(tmp_path)
    data["sysctls"]["net.ipv4.ip_forward"] = "banana"
    data["links"][0]["mtu"] = 1300
    write_manifest(bundle, data)
    link = ns_run(ns, ["ip", "link", "show", "vxlan.calico"]).stdout
    report = failed_apply(ns, root, bundle)
    assert list(report["failed"]) == ["sysctl"]
    assert "net.ipv4.ip_forward" in report["failed"]["sysctl"]
    held = ("links", "link-sysctl", "routes", "bird", "files", "bundle")
    assert report["skipped"] == skipped(*held, because="sysctl")
    assert ns_run(ns, ["ip", "link", "show", "vxlan.calico"]).stdout == link
    assert "mtu 1300" not in link


def test_text_report_names_failed_skipped_and_applied(
    node: tuple[str, Path], tmp_path: Path
) -> None:
    ns, root = node
    bundle, data = new_bundle(tmp_path)
    data["routes"].append({"dst": "10.99.8.0/24", "type": "unicast", "dev": "nosuch0"})
    write_manifest(bundle, data)
    outcome = run_apply(ns, bundle, root)
    assert_clean_error(
        outcome,
        says=[
            "error: routes:",
            "skipped: bundle (because routes failed)",
            "applied: address, sysctl, links",
            f"not installed: {root}/etc/calicc/bundle still holds the last fully applied bundle",
        ],
    )


def test_bundle_of_another_node_than_installed(node: tuple[str, Path], tmp_path: Path) -> None:
    ns, root = node
    bundle, data = new_bundle(tmp_path)
    data["node"]["name"] = "node-2"
    write_manifest(bundle, data)
    before, net = snapshot(root, bundle), net_state(ns)
    outcome = run_apply(ns, bundle, root)
    assert_clean_error(outcome, where=str(bundle / MANIFEST), field="node.name")
    assert "is not this node (node-1)" in outcome.stderr
    assert_unchanged(before, snapshot(root, bundle))
    assert net_state(ns) == net


def test_roles_are_installed_from_their_shared_files(node: tuple[str, Path]) -> None:
    """Each role (conflist, iptables rules, sysctl file, routes script) is installed at its
    place with the bytes of the shared file node.json names; the bundle copy holds each file
    once (node.json, bird.conf, the cluster part), no role beside its source."""
    _, root = node
    files = json.loads((VXLAN / MANIFEST).read_text())["files"]
    roles = {rel: entry for rel, entry in files.items() if "source" in entry}
    assert set(roles) == {CONFLIST, RULES, "sysctl/99-calicc.conf", "routes/routes.sh"}
    tree = VXLAN.parents[1]
    for rel, entry in roles.items():
        assert (root / entry["install"]).read_bytes() == (tree / entry["source"]).read_bytes(), rel
    assert (root / "etc/cni/net.d/10-calicc.conflist").read_bytes() == (
        tree / "cluster/cni/mtu-1450.conflist"
    ).read_bytes()
    copy = root / "etc/calicc/bundle"
    held = {str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()}
    index = json.loads((tree / CLUSTER_INDEX).read_text())["files"]
    assert held == {MANIFEST, "bird.conf", CLUSTER_INDEX, *index}
