"""`calicc apply` for real in a throwaway node namespace (tunl0 is an ifb stand-in: no ipip
module on this kernel). Proves idempotence through the agent's own command log, one jump rule
after ten applies, untouched foreign state, drift repair and the address check."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.netns import ns_run
from tests.conftest import need_tool
from tests.tools.agent_bundle import (
    MakeNs,
    apply,
    foreign_state,
    node_ns,
    seed_foreign,
    write_bundle,
    writes,
)

pytestmark = [pytest.mark.root, pytest.mark.tools]


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("ip", "iptables-restore", "iptables-save", "ipset")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    directory = tmp_path / "bundle"
    write_bundle(directory)
    return directory


def ok(result: object) -> None:
    assert getattr(result, "returncode", 1) == 0, getattr(result, "stderr", "")


def test_second_apply_runs_no_restore(make_ns: MakeNs, bundle: Path, tmp_path: Path) -> None:
    ns = node_ns(make_ns)
    log = tmp_path / "log.json"
    ok(apply(ns, bundle, tmp_path / "root", log))
    cmds = [" ".join(c[:2]) for c in writes(log)]
    assert cmds.count("iptables-restore --noflush") == 1
    assert cmds.count("ipset restore") == 1
    ok(apply(ns, bundle, tmp_path / "root", log))
    assert writes(log) == []
    routes = ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout
    assert "blackhole 10.244.0.0/26" in routes
    assert (tmp_path / "root/etc/cni/net.d/10-calicc.conflist").is_file()
    assert (tmp_path / "root/etc/calicc/bundle/node.json").is_file()


def count_rule(ns: str, table: str, rule: str) -> int:
    return ns_run(ns, ["iptables-save", "-t", table]).stdout.splitlines().count(rule)


def test_ten_applies_keep_one_jump_rule_in_place(
    make_ns: MakeNs, bundle: Path, tmp_path: Path
) -> None:
    ns = node_ns(make_ns)
    seed_foreign(ns)
    for _ in range(10):
        ok(apply(ns, bundle, tmp_path / "root", tmp_path / "log.json"))
    assert count_rule(ns, "filter", "-A INPUT -j cali-INPUT") == 1
    assert count_rule(ns, "filter", "-A FORWARD -j cali-FORWARD") == 1
    assert count_rule(ns, "nat", "-A POSTROUTING -j cali-POSTROUTING") == 1
    inputs = list(ns_run(ns, ["iptables-save", "-t", "filter"]).stdout.splitlines())
    assert next(r for r in inputs if r.startswith("-A INPUT")) == "-A INPUT -j cali-INPUT"
    post = list(ns_run(ns, ["iptables-save", "-t", "nat"]).stdout.splitlines())
    assert [r for r in post if r.startswith("-A POSTROUTING")][-1].endswith("cali-POSTROUTING")


def test_foreign_state_byte_identical(make_ns: MakeNs, bundle: Path, tmp_path: Path) -> None:
    ns = node_ns(make_ns)
    seed_foreign(ns)
    before = foreign_state(ns)
    ok(apply(ns, bundle, tmp_path / "root", tmp_path / "log.json"))
    other = tmp_path / "other"
    write_bundle(other, iptables="", ipsets=[], jump_rules=[], routes=[])
    ok(apply(ns, other, tmp_path / "root", tmp_path / "log.json"))
    assert ns_run(ns, ["iptables-save"]).stdout.count("cali-") == 0
    assert "cali" not in ns_run(ns, ["ipset", "list", "-n"]).stdout
    assert foreign_state(ns) == before


def test_drift_repaired_and_only_changed_chain_restored(
    make_ns: MakeNs, bundle: Path, tmp_path: Path
) -> None:
    ns = node_ns(make_ns)
    log = tmp_path / "log.json"
    ok(apply(ns, bundle, tmp_path / "root", log))
    ns_run(ns, ["iptables", "-F", "cali-pi-web"])
    ns_run(ns, ["ip", "route", "del", "blackhole", "10.244.0.64/26"])
    ns_run(ns, ["ipset", "del", "cali40all-hosts-net", "192.168.49.4"])
    ok(apply(ns, bundle, tmp_path / "root", log))
    restores = [c for c in writes(log) if c[0] == "iptables-restore"]
    assert len(restores) == 1
    assert "blackhole 10.244.0.64/26" in ns_run(ns, ["ip", "route"]).stdout
    assert "192.168.49.4" in ns_run(ns, ["ipset", "list", "cali40all-hosts-net"]).stdout
    assert "dport 80" in ns_run(ns, ["iptables", "-S", "cali-pi-web"]).stdout


def test_failed_iptables_keeps_previous_chains(
    make_ns: MakeNs, bundle: Path, tmp_path: Path
) -> None:
    ns = node_ns(make_ns)
    ok(apply(ns, bundle, tmp_path / "root", tmp_path / "log.json"))
    before = ns_run(ns, ["iptables-save", "-t", "filter"]).stdout
    broken = tmp_path / "broken"
    bad = "*filter\n:cali-INPUT - [0:0]\n-A cali-INPUT -j ACCEPT\n-A cali-INPUT --bogus\nCOMMIT\n"
    write_bundle(broken, iptables=bad)
    result = apply(ns, broken, tmp_path / "root", tmp_path / "log.json")
    assert result.returncode == 1
    assert "error: iptables:" in result.stderr
    after = ns_run(ns, ["iptables-save", "-t", "filter"]).stdout
    strip = [ln for ln in before.splitlines() if not ln.startswith("#")]
    assert [ln for ln in after.splitlines() if not ln.startswith("#")] == strip


def test_address_mismatch_is_a_clear_error(make_ns: MakeNs, bundle: Path, tmp_path: Path) -> None:
    ns = node_ns(make_ns, address="192.168.49.7/24")
    result = apply(ns, bundle, tmp_path / "root", tmp_path / "log.json")
    assert result.returncode == 1
    assert "192.168.49.7/24" in result.stderr
    assert "192.168.49.2/24" in result.stderr
    assert "compiled for" in result.stderr


def test_tunl0_of_another_kind_refused_without_standin_option(
    make_ns: MakeNs, bundle: Path, tmp_path: Path
) -> None:
    ns = node_ns(make_ns)
    args = ["apply", "--bundle", str(bundle), "--root", str(tmp_path / "root")]
    from tests.tools.agent_bundle import calicc

    result = calicc(ns, *args, check=False)
    assert result.returncode == 1
    assert "tunl0 exists but is a ifb device, not ipip" in result.stderr


def test_missing_ipip_module_reported(make_ns: MakeNs, bundle: Path, tmp_path: Path) -> None:
    ns = node_ns(make_ns)
    ns_run(ns, ["ip", "link", "del", "tunl0"])
    result = apply(ns, bundle, tmp_path / "root", tmp_path / "log.json")
    if ns_run(ns, ["ip", "-d", "link", "show", "tunl0"], check=False).returncode == 0:
        pytest.skip("this kernel has the ipip module")
    assert result.returncode == 1
    assert "no ipip module" in result.stderr
