"""Running pods survive `calicc apply` and the agent loop (policies-demo's rendered node-1).

Pods are wired by the real CNI plugin through cnitool. The node's iptables.rules declares the
dispatch chains, which a plain restore would flush: the agent must merge the live endpoints.
Then the agent must remove what belongs to endpoints that no longer exist.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from calicc.agent.cni.naming import host_veth_name
from calicc.lab.netns import ns_ping, ns_run
from tests.conftest import need_tool
from tests.support.bundles import (
    MakeNs,
    apply,
    rendered,
    routed_node,
    stop_bird,
    writes,
)
from tests.support.cni import cni, cnitool
from tests.support.poll import wait_for

pytestmark = [pytest.mark.root, pytest.mark.tools]
CALICC = str(Path(sys.executable).parent / "calicc")
BUNDLE = rendered("policies-demo", "node-1")
API_SET = "cali40s:Y0wk1bBX7T49x15BqTQ05r8"  # namespace shop, app=api
WEB = {"app": "web", "tier": "frontend"}  # selected by shop/web-allow: no ICMP from outside


@pytest.fixture
def node(make_ns: MakeNs, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    need_tool("ip", "iptables-save", "ipset", "ping", "bird")
    cnitool()
    node, client = routed_node(make_ns, BUNDLE)
    root = tmp_path / "root"
    try:
        yield node, client, root
    finally:
        stop_bird(root)


def reachable(client: str, address: str) -> bool:
    return ns_ping(client, address)


def filter_rules(node: str) -> str:
    return ns_run(node, ["iptables-save", "-t", "filter"]).stdout


def set_members(node: str, name: str) -> str:
    return ns_run(node, ["ipset", "list", name]).stdout


def assert_pod_wired(node: str, iface: str) -> None:
    saved = filter_rules(node)
    assert f"-A cali-from-wl-dispatch -i {iface} -g cali-fw-{iface}" in saved
    assert f"-A cali-to-wl-dispatch -o {iface} -g cali-tw-{iface}" in saved
    assert f":cali-fw-{iface} " in saved
    assert f":cali-tw-{iface} " in saved


def assert_no_trace(node: str, root: Path, iface: str, address: str) -> None:
    assert iface not in filter_rules(node)
    assert address not in ns_run(node, ["ipset", "save"]).stdout
    assert not (root / f"var/lib/calicc/endpoints/{iface}.json").exists()


def test_pods_survive_reapply(node: tuple[str, str, Path], make_ns: MakeNs, tmp_path: Path) -> None:
    ns, client, root = node
    log = tmp_path / "log.json"
    assert apply(ns, BUNDLE, root, log).returncode == 0
    api_ns, web_ns = make_ns("api"), make_ns("web")
    api = cni(ns, root, "add", api_ns, "shop", labels={"app": "api"})
    web = cni(ns, root, "add", web_ns, "shop", labels=WEB)
    api_if, web_if = host_veth_name(f"shop.{api_ns}"), host_veth_name(f"shop.{web_ns}")
    assert reachable(client, api)
    assert not reachable(client, web), "web-allow allows no ICMP from the client"
    for _ in range(2):
        done = apply(ns, BUNDLE, root, log)
        assert done.returncode == 0, done.stderr
        assert writes(log) == [], "the running pods are the node's desired state"
    for iface in (api_if, web_if):
        assert_pod_wired(ns, iface)
    assert reachable(client, api), "the dispatch rules survived the re-apply"
    assert not reachable(client, web), "and so did the web pod's policy"
    assert api in set_members(ns, API_SET)
    cni(ns, root, "del", web_ns, "shop", labels=WEB)
    assert_no_trace(ns, root, web_if, web)
    (root / f"var/lib/calicc/endpoints/{api_if}.json").unlink()  # the pod is gone, no DEL ran
    done = apply(ns, BUNDLE, root, log)
    assert done.returncode == 0, done.stderr
    assert f"cali-fw-{api_if}: removed (stale)" in done.stdout
    assert_no_trace(ns, root, api_if, api)


def reconciles(metrics: Path) -> int:
    text = metrics.read_text() if metrics.exists() else ""
    found = [ln for ln in text.splitlines() if ln.startswith("calicc_agent_reconciles_total ")]
    return int(found[0].split()[1]) if found else 0


def test_pods_survive_agent_loop(
    node: tuple[str, str, Path], make_ns: MakeNs, tmp_path: Path
) -> None:
    ns, client, root = node
    assert apply(ns, BUNDLE, root, tmp_path / "log.json").returncode == 0
    pod_ns = make_ns("api")
    address = cni(ns, root, "add", pod_ns, "shop", labels={"app": "api"})
    iface = host_veth_name(f"shop.{pod_ns}")
    metrics = tmp_path / "metrics.prom"
    args = ["--bundle", str(BUNDLE), "--root", str(root), "--interval", "0.2"]
    extra = ["--allow-tunnel-standin", "--metrics-file", str(metrics), "--no-cni-socket"]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, CALICC, "agent", *args, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: reconciles(metrics) >= 5, "five reconciles")
        assert_pod_wired(ns, iface)
        assert reachable(client, address)
        assert address in set_members(ns, API_SET)
        cni(ns, root, "del", pod_ns, "shop", labels={"app": "api"})
        after_del = reconciles(metrics)
        wait_for(lambda: reconciles(metrics) >= after_del + 3, "three more reconciles")
        assert_no_trace(ns, root, iface, address)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "repaired drift" not in out, out
