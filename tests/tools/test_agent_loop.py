"""`calicc agent` as a subprocess in a node namespace: drift repaired within an interval, a new
bundle picked up, metrics written, SIGTERM ends it cleanly. Also BIRD control through apply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.bundle import file_digest
from lab.netns import ns_run
from tests.conftest import need_tool
from tests.tools.agent_bundle import MakeNs, apply, node_ns, write_bundle, writes

pytestmark = [pytest.mark.root, pytest.mark.tools]
CALICC = str(Path(sys.executable).parent / "calicc")


def wait_for(check: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


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


def test_agent_repairs_drift_picks_up_bundle_and_stops_on_sigterm(
    make_ns: MakeNs, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    need_tool("ip", "iptables-save", "ipset")
    ns = node_ns(make_ns)
    bundle, root = tmp_path / "bundle", tmp_path / "root"
    write_bundle(bundle)
    metrics = tmp_path / "metrics.prom"
    args = ["--bundle", str(bundle), "--root", str(root), "--interval", "0.3"]
    extra = ["--allow-tunnel-standin", "--metrics-file", str(metrics), "--no-cni-socket"]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, CALICC, "agent", *args, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(proc)
    wait_for(lambda: "10.244.0.64/26" in routes(ns), "the first apply")
    ns_run(ns, ["ip", "route", "del", "blackhole", "10.244.0.64/26"])
    ns_run(ns, ["iptables", "-F", "cali-pi-web"])
    ns_run(ns, ["ipset", "del", "cali40all-hosts-net", "192.168.49.4"])
    ns_run(ns, ["sysctl", "-w", "net.ipv4.ip_forward=0"])
    wait_for(lambda: "10.244.0.64/26" in routes(ns), "the route repaired")
    wait_for(
        lambda: "dport 80" in ns_run(ns, ["iptables", "-S", "cali-pi-web"]).stdout, "the chain"
    )
    wait_for(
        lambda: "192.168.49.4" in ns_run(ns, ["ipset", "list", "cali40all-hosts-net"]).stdout,
        "the set member",
    )
    wait_for(
        lambda: ns_run(ns, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1",
        "ip_forward",
    )
    new = {"dst": "10.250.0.0/24", "type": "blackhole"}
    write_bundle(
        bundle,
        routes=[
            *(
                {"dst": r.split()[1], "type": "blackhole"}
                for r in ["blackhole 10.244.0.0/26", "blackhole 10.244.0.64/26"]
            ),
            new,
        ],
    )
    wait_for(lambda: "10.250.0.0/24" in routes(ns), "the new bundle's route")
    wait_for(
        lambda: "calicc_agent_repairs_total" in metrics.read_text() if metrics.exists() else False,
        "metrics",
    )
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "repaired drift" in out
    text = metrics.read_text()
    repairs = next(ln for ln in text.splitlines() if ln.startswith("calicc_agent_repairs_total"))
    assert int(repairs.split()[1]) >= 1
    assert 'calicc_ipam_block_addresses{block="10.244.0.0/26"} 64' in text


def bird_pid(root: Path) -> int | None:
    path = root / "var/run/calicc/bird.pid"
    return int(path.read_text().split()[0]) if path.exists() else None


def test_bird_started_then_left_alone_then_reconfigured(make_ns: MakeNs, tmp_path: Path) -> None:
    need_tool("ip", "iptables-save", "ipset", "bird", "birdc")
    ns = node_ns(make_ns)
    bundle, root, log = tmp_path / "bundle", tmp_path / "root", tmp_path / "log.json"
    write_bundle(bundle, bird=True)
    try:
        assert apply(ns, bundle, root, log).returncode == 0
        assert [c[0] for c in writes(log)].count("bird") == 1
        assert apply(ns, bundle, root, log).returncode == 0
        assert writes(log) == []
        conf = bundle / "bird/bird.conf"
        write_bundle(bundle, bird=True)
        conf.write_text(conf.read_text() + "# changed\n")
        manifest = (bundle / "node.json").read_text()
        data = json.loads(manifest)
        data["files"]["bird/bird.conf"]["digest"] = file_digest(conf.read_bytes())
        (bundle / "node.json").write_text(json.dumps(data))
        assert apply(ns, bundle, root, log).returncode == 0
        assert [[c[0], c[-1]] for c in writes(log)] == [["birdc", "configure"]]
        status = ns_run(ns, [CALICC, "status", "--root", str(root)]).stdout
        assert "Mesh_192_168_49_3" in status
        assert "10.244.0.0/26" in status
    finally:
        pid = bird_pid(root)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
