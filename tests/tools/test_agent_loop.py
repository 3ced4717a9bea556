"""`calicc agent` as a subprocess in a node namespace holding vxlan's rendered node-1: no-op
intervals run no command, drift is repaired (found through the nftables generation, not a
periodic full read) and logged, a new bundle is picked up, metrics written, SIGTERM ends it
cleanly. Also BIRD control through apply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from calicc.contract.names import BIRD_CONFIG
from calicc.lab.netns import ns_run
from tests.conftest import need_tool
from tests.support.bundles import (
    MakeNs,
    apply,
    derive_bundle,
    rendered,
    routed_node,
    stop_bird,
    writes,
)
from tests.support.poll import wait_for

pytestmark = [pytest.mark.root, pytest.mark.tools]
CALICC = str(Path(sys.executable).parent / "calicc")
VXLAN = rendered("vxlan", "node-1")
IPIP = rendered("minikube-ipip", "minikube")


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def routes(ns: str) -> str:
    return ns_run(ns, ["ip", "route", "show", "proto", "81"]).stdout


def metric(path: Path, name: str) -> int:
    text = path.read_text() if path.exists() else ""
    found = [ln for ln in text.splitlines() if ln.startswith(f"{name} ")]
    return int(float(found[0].split()[1])) if found else 0


def test_agent_repairs_drift_picks_up_bundle_and_stops_on_sigterm(
    make_ns: MakeNs, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    need_tool("ip", "iptables-save", "ipset")
    ns, _ = routed_node(make_ns, VXLAN)
    bundle, root = tmp_path / "bundle", tmp_path / "root"
    derive_bundle(VXLAN, bundle)
    metrics = tmp_path / "metrics.prom"
    args = ["--bundle", str(bundle), "--root", str(root), "--interval", "0.3"]
    # no periodic full read: only the nftables generation can reveal the flushed chain
    extra = ["--metrics-file", str(metrics), "--no-cni-socket", "--full-read-every", "100000"]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, CALICC, "agent", *args, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(proc)
    wait_for(lambda: metric(metrics, "calicc_agent_bundles_applied_total") == 1, "the first apply")
    settled = metric(metrics, "calicc_agent_reconciles_total") + 1
    wait_for(lambda: metric(metrics, "calicc_agent_reconciles_total") > settled, "a no-op")
    commands = metric(metrics, "calicc_agent_commands_total")
    count = metric(metrics, "calicc_agent_reconciles_total")
    wait_for(lambda: metric(metrics, "calicc_agent_reconciles_total") >= count + 5, "no-ops")
    assert metric(metrics, "calicc_agent_commands_total") == commands, "no-ops run no command"
    ns_run(ns, ["ip", "route", "del", "10.244.1.64/26"])
    ns_run(ns, ["iptables", "-t", "nat", "-F", "cali-nat-outgoing"])
    ns_run(ns, ["ipset", "del", "cali40all-hosts-net", "10.30.0.12/31"])
    ns_run(ns, ["sysctl", "-w", "net.ipv4.ip_forward=0"])
    wait_for(lambda: "10.244.1.64/26" in routes(ns), "the route repaired")
    wait_for(
        lambda: (
            "MASQUERADE" in ns_run(ns, ["iptables", "-t", "nat", "-S", "cali-nat-outgoing"]).stdout
        ),
        "the chain",
    )
    wait_for(
        lambda: "10.30.0.12/31" in ns_run(ns, ["ipset", "list", "cali40all-hosts-net"]).stdout,
        "the set member",
    )
    wait_for(
        lambda: ns_run(ns, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1",
        "ip_forward",
    )
    node = json.loads((VXLAN / "node.json").read_text())
    derive_bundle(
        VXLAN, bundle, routes=[*node["routes"], {"dst": "10.250.0.0/24", "type": "blackhole"}]
    )
    wait_for(lambda: "10.250.0.0/24" in routes(ns), "the new bundle's route")
    wait_for(lambda: metric(metrics, "calicc_agent_bundles_applied_total") == 2, "metrics")
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    for repair in (
        "repaired drift: routes: route 10.244.1.64/26: added",
        "repaired drift: iptables: iptables nat/cali-nat-outgoing: written",
        "repaired drift: ipsets: ipset cali40all-hosts-net: add 10.30.0.12/31",
        "repaired drift: sysctl: net.ipv4.ip_forward = 1",
        "applied: routes: route 10.250.0.0/24: added",
    ):
        assert repair in out, out
    text = metrics.read_text()
    assert metric(metrics, "calicc_agent_repairs_total") >= 1
    assert metric(metrics, "calicc_agent_errors_total") == 0
    assert 'calicc_ipam_block_addresses{block="10.244.0.0/26"} 64' in text
    assert 'calicc_ipam_block_addresses_used{block="10.244.0.0/26"} 0' in text


def test_bird_started_then_left_alone_then_reconfigured(make_ns: MakeNs, tmp_path: Path) -> None:
    need_tool("ip", "iptables-save", "ipset", "bird", "birdc")
    ns, _ = routed_node(make_ns, IPIP)
    bundle, root, log = tmp_path / "bundle", tmp_path / "root", tmp_path / "log.json"
    try:
        assert apply(ns, IPIP, root, log).returncode == 0
        assert [c[0] for c in writes(log)].count("bird") == 1
        assert apply(ns, IPIP, root, log).returncode == 0
        assert writes(log) == []
        conf = (IPIP / BIRD_CONFIG).read_text() + "# changed\n"
        derive_bundle(IPIP, bundle, texts={BIRD_CONFIG: conf})
        assert apply(ns, bundle, root, log).returncode == 0
        assert [[c[0], c[-1]] for c in writes(log)] == [["birdc", "configure"]]
        status = ns_run(ns, [CALICC, "status", "--root", str(root)]).stdout
        assert "Mesh_192_168_49_3" in status
        assert "10.244.0.0/26" in status
    finally:
        stop_bird(root)


BAD_RULES = "*filter\n:cali-INPUT - [0:0]\n-A cali-INPUT -j ACCEPT\n-A cali-INPUT --bogus\nCOMMIT\n"


def test_agent_keeps_last_good_bundle_and_retries(
    make_ns: MakeNs, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """A bundle with a failed part is retried each interval without its routes or installation;
    an unreadable one changes nothing while the installed (last good) bundle's drift is still
    repaired; the fixed bundle is then applied."""
    need_tool("ip", "iptables-save", "ipset")
    ns, _ = routed_node(make_ns, VXLAN)
    bundle, root = tmp_path / "bundle", tmp_path / "root"
    derive_bundle(VXLAN, bundle)
    metrics = tmp_path / "metrics.prom"
    args = ["--bundle", str(bundle), "--root", str(root), "--interval", "0.3"]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, CALICC, "agent", *args, "--metrics-file", str(metrics)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(proc)
    wait_for(lambda: metric(metrics, "calicc_agent_bundles_applied_total") == 1, "the first apply")
    installed = (root / "etc/calicc/bundle/node.json").read_bytes()
    new_routes = [*json.loads((VXLAN / "node.json").read_text())["routes"]]
    new_routes.append({"dst": "10.250.0.0/24", "type": "blackhole"})
    derive_bundle(VXLAN, bundle, iptables=BAD_RULES, routes=new_routes)
    errors = metric(metrics, "calicc_agent_errors_total")
    wait_for(lambda: metric(metrics, "calicc_agent_errors_total") >= errors + 3, "three retries")
    assert "10.250.0.0/24" not in routes(ns)
    assert (root / "etc/calicc/bundle/node.json").read_bytes() == installed
    (bundle / "node.json").write_text("{")  # a push cut short
    ns_run(ns, ["ip", "route", "del", "10.244.1.64/26"])
    wait_for(lambda: "10.244.1.64/26" in routes(ns), "the last good bundle's route repaired")
    derive_bundle(VXLAN, bundle, routes=new_routes)
    wait_for(lambda: "10.250.0.0/24" in routes(ns), "the fixed bundle's route")
    wait_for(lambda: metric(metrics, "calicc_agent_bundles_applied_total") == 2, "metrics")
    assert (root / "etc/calicc/bundle/node.json").read_bytes() == (
        bundle / "node.json"
    ).read_bytes()
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    for line in (
        "applied: skipped: routes (because iptables failed)",
        "not fully applied (failed: iptables); the installed bundle stays the last one fully "
        "applied; retrying in 0.3s",
        "node.json:1:2: not valid JSON",
        "repaired drift (last good bundle): routes: route 10.244.1.64/26: added",
        "applied: routes: route 10.250.0.0/24: added",
    ):
        assert line in out, out
