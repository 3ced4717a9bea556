"""`calicc apply` for real in throwaway node namespaces, with the examples' rendered bundles
(vxlan's node-1; IPIP's tunl0 is an ifb stand-in: no ipip module on this kernel). Proves
idempotence through the agent's own command log, one jump rule after ten applies, untouched
foreign state, drift repair and the address check. Hand-made bundles only where a test needs a
specific input (broken rules, an emptied node)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.bundles import (
    MakeNs,
    apply,
    calicc,
    derive_bundle,
    foreign_state,
    rendered,
    routed_node,
    seed_foreign,
    stop_bird,
    writes,
)

pytestmark = [pytest.mark.root, pytest.mark.tools]
VXLAN = rendered("vxlan", "node-1")
IPIP = rendered("minikube-ipip", "minikube")
GATEWAY = "10.30.0.1"  # the client namespace routed_node puts in front of the node
HOOK = '-m comment --comment "calicc hook" -j'


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "iptables-restore", "iptables-save", "ipset")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "root"
    try:
        yield path
    finally:
        stop_bird(path)  # the IPIP example runs BIRD


def ok(result: object) -> None:
    assert getattr(result, "returncode", 1) == 0, getattr(result, "stderr", "")


def test_second_apply_runs_no_restore(make_ns: MakeNs, root: Path, tmp_path: Path) -> None:
    ns, _ = routed_node(make_ns, VXLAN)
    log = tmp_path / "log.json"
    ok(apply(ns, VXLAN, root, log))
    cmds = [" ".join(c[:2]) for c in writes(log)]
    assert cmds.count("iptables-restore --noflush") == 1
    assert cmds.count("ipset restore") == 1
    ok(apply(ns, VXLAN, root, log))
    assert writes(log) == []
    routes = ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout
    assert "blackhole 10.244.0.0/26" in routes
    assert "10.244.1.0/26 via 10.244.1.0 dev vxlan.calico onlink" in routes
    assert (root / "etc/cni/net.d/10-calicc.conflist").is_file()
    assert (root / "etc/calicc/bundle/node.json").is_file()


def count_rule(ns: str, table: str, rule: str) -> int:
    return ns_run(ns, ["iptables-save", "-t", table]).stdout.splitlines().count(rule)


def test_ten_applies_keep_one_jump_rule_in_place(
    make_ns: MakeNs, root: Path, tmp_path: Path
) -> None:
    ns, _ = routed_node(make_ns, VXLAN)
    seed_foreign(ns, via=GATEWAY)
    for _ in range(10):
        ok(apply(ns, VXLAN, root, tmp_path / "log.json"))
    assert count_rule(ns, "filter", f"-A INPUT {HOOK} cali-INPUT") == 1
    assert count_rule(ns, "filter", f"-A FORWARD {HOOK} cali-FORWARD") == 1
    assert count_rule(ns, "nat", f"-A POSTROUTING {HOOK} cali-POSTROUTING") == 1
    assert count_rule(ns, "raw", f"-A PREROUTING {HOOK} cali-PREROUTING") == 1
    inputs = list(ns_run(ns, ["iptables-save", "-t", "filter"]).stdout.splitlines())
    assert next(r for r in inputs if r.startswith("-A INPUT")) == f"-A INPUT {HOOK} cali-INPUT"
    post = list(ns_run(ns, ["iptables-save", "-t", "nat"]).stdout.splitlines())
    assert [r for r in post if r.startswith("-A POSTROUTING")][-1].endswith("cali-POSTROUTING")


def test_foreign_state_byte_identical(make_ns: MakeNs, root: Path, tmp_path: Path) -> None:
    ns, _ = routed_node(make_ns, VXLAN)
    seed_foreign(ns, via=GATEWAY)
    before = foreign_state(ns)
    ok(apply(ns, VXLAN, root, tmp_path / "log.json"))
    other = tmp_path / "other"
    derive_bundle(
        VXLAN, other, iptables="", policy={"ipsets": []}, settings={"jump_rules": []}, routes=[]
    )
    ok(apply(ns, other, root, tmp_path / "log.json"))
    assert ns_run(ns, ["iptables-save"]).stdout.count("cali-") == 0
    assert "cali" not in ns_run(ns, ["ipset", "list", "-n"]).stdout
    assert foreign_state(ns) == before


def test_drift_repaired_and_only_changed_chain_restored(
    make_ns: MakeNs, root: Path, tmp_path: Path
) -> None:
    ns, _ = routed_node(make_ns, VXLAN)
    log = tmp_path / "log.json"
    ok(apply(ns, VXLAN, root, log))
    ns_run(ns, ["iptables", "-t", "nat", "-F", "cali-nat-outgoing"])
    ns_run(ns, ["ip", "route", "del", "10.244.1.64/26"])
    ns_run(ns, ["ipset", "del", "cali40all-hosts-net", "10.30.0.12/31"])
    done = apply(ns, VXLAN, root, log)
    ok(done)
    restores = [c for c in writes(log) if c[0] == "iptables-restore"]
    assert len(restores) == 1
    assert "iptables nat/cali-nat-outgoing: written" in done.stdout
    assert "written" not in done.stdout.replace("nat/cali-nat-outgoing: written", "")
    assert "10.244.1.64/26 via 10.244.1.0" in ns_run(ns, ["ip", "route"]).stdout
    assert "10.30.0.12/31" in ns_run(ns, ["ipset", "list", "cali40all-hosts-net"]).stdout
    assert "MASQUERADE" in ns_run(ns, ["iptables", "-t", "nat", "-S", "cali-nat-outgoing"]).stdout


def test_failed_iptables_keeps_previous_chains(make_ns: MakeNs, root: Path, tmp_path: Path) -> None:
    ns, _ = routed_node(make_ns, VXLAN)
    ok(apply(ns, VXLAN, root, tmp_path / "log.json"))
    before = ns_run(ns, ["iptables-save", "-t", "filter"]).stdout
    broken = tmp_path / "broken"
    bad = "*filter\n:cali-INPUT - [0:0]\n-A cali-INPUT -j ACCEPT\n-A cali-INPUT --bogus\nCOMMIT\n"
    derive_bundle(VXLAN, broken, iptables=bad)
    result = apply(ns, broken, root, tmp_path / "log.json")
    assert result.returncode == 1
    assert "error: iptables:" in result.stderr
    assert "skipped: routes (because iptables failed)" in result.stderr
    after = ns_run(ns, ["iptables-save", "-t", "filter"]).stdout
    strip = [ln for ln in before.splitlines() if not ln.startswith("#")]
    assert [ln for ln in after.splitlines() if not ln.startswith("#")] == strip


def test_address_mismatch_is_a_clear_error(make_ns: MakeNs, root: Path, tmp_path: Path) -> None:
    ns, _ = routed_node(make_ns, VXLAN, address="10.30.0.17/24")
    result = apply(ns, VXLAN, root, tmp_path / "log.json")
    assert result.returncode == 1
    assert "10.30.0.17/24" in result.stderr
    assert "10.30.0.11/24" in result.stderr
    assert "compiled for" in result.stderr


def test_tunl0_of_another_kind_refused_without_standin_option(make_ns: MakeNs, root: Path) -> None:
    ns, _ = routed_node(make_ns, IPIP)
    result = calicc(ns, "apply", "--bundle", str(IPIP), "--root", str(root), check=False)
    assert result.returncode == 1
    assert "tunl0 exists but is a ifb device, not ipip" in result.stderr


def test_missing_ipip_module_reported(make_ns: MakeNs, root: Path, tmp_path: Path) -> None:
    ns, _ = routed_node(make_ns, IPIP)
    ns_run(ns, ["ip", "link", "del", "tunl0"])
    result = apply(ns, IPIP, root, tmp_path / "log.json")
    if ns_run(ns, ["ip", "-d", "link", "show", "tunl0"], check=False).returncode == 0:
        pytest.skip("this kernel has the ipip module")
    assert result.returncode == 1
    assert "no ipip module" in result.stderr


def test_apply_json_reports_changed_then_unchanged(
    make_ns: MakeNs, root: Path, tmp_path: Path
) -> None:
    """`apply --json` is the machine-readable change signal the Ansible role uses."""
    ns, _ = routed_node(make_ns, VXLAN)
    log = tmp_path / "log.json"
    first = apply(ns, VXLAN, root, log, "--json")
    ok(first)
    report = json.loads(first.stdout)
    assert report["changed"] is True
    assert (report["failed"], report["skipped"]) == ({}, {})
    assert report["applied"][0] == "address"
    assert report["applied"][-1] == "bundle"
    assert "routes" in report["changes"]
    second = apply(ns, VXLAN, root, log, "--json")
    ok(second)
    again = json.loads(second.stdout)
    assert again.pop("applied") == report["applied"]
    assert again == {"changed": False, "changes": {}, "failed": {}, "skipped": {}}
