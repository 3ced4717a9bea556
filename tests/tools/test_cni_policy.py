"""Endpoint policy through the real plugin: cnitool ADD of pods (labels as runtimeConfig
capabilities) on a node holding policies-demo's ipsets and iptables rules; default deny in
namespace demo isolates a pod, selector sets gain its address; DEL removes both."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.cni.install import install_plugins
from calicc.agent.cni.naming import host_veth_name
from calicc.compiler.targets.iptables import jump_rules
from calicc.contract.names import CONFLIST, IPTABLES_FILE
from calicc.lab.netns import ns_ping, ns_run, veth_between
from tests.conftest import need_tool
from tests.support.cni import cni_server, cnitool, compiled, install_bundle, labelled_pod
from tests.tools.treekit import role_text

pytestmark = [pytest.mark.root, pytest.mark.tools]
API_SET = "cali40s:Y0wk1bBX7T49x15BqTQ05r8"  # namespace shop, app=api (policies-demo)


def node_with_policies(
    make_ns: Callable[[str], str], tmp_path: Path, python: str = sys.executable
) -> tuple[str, str, Path]:
    client, node = make_ns("cl"), make_ns("nd")
    veth_between(node, "ext0", client, "up0")
    for ns, cmd in [
        (client, "ip addr add 10.99.0.2/24 dev up0"),
        (client, "ip route add 10.244.0.0/16 via 10.99.0.1"),
        (node, "ip addr add 10.99.0.1/24 dev ext0"),
        (node, "ip route add default via 10.99.0.2"),
        (node, "sysctl -qw net.ipv4.ip_forward=1"),
    ]:
        ns_run(ns, shlex.split(cmd))
    build = compiled(tmp_path)
    files = build.files
    ns_run(node, ["ipset", "restore"], input_text=files["cluster/ipsets.restore"])
    ns_run(
        node,
        ["iptables-restore", "--noflush"],
        input_text=role_text(files, "node-1", IPTABLES_FILE),
    )
    for jump in jump_rules():
        where = ["-I", jump.chain, "1"] if jump.position == "top" else ["-A", jump.chain]
        ns_run(node, ["iptables", "-t", jump.table, *where, *shlex.split(jump.rule)])
    root = tmp_path / "root"
    install_bundle(root, files, "node-1")
    conflist = json.loads(role_text(files, "node-1", CONFLIST))
    (root / "etc/cni/net.d").mkdir(parents=True)
    (root / "etc/cni/net.d/10-calicc.conflist").write_text(  # calicc alone, labels declared
        json.dumps({**conflist, "plugins": conflist["plugins"][:1]})
    )
    install_plugins(root, python, idle=0)  # standalone: the plugin runs in the launcher's stead
    return client, node, root


API, X = {"app": "api"}, {"app": "x"}


def address_of(result: Any) -> str:
    return str(result["ips"][0]["address"][:-3])


def reachable(client: str, address: str) -> bool:
    return ns_ping(client, address)


@pytest.mark.parametrize("agent", [False, True], ids=["standalone", "agent"])
def test_policy_follows_namespace_and_labels(
    make_ns: Callable[[str], str], tmp_path: Path, agent: bool
) -> None:
    need_tool("ping", "ipset", "iptables-restore")
    cnitool()
    # with the agent, the launchers' standalone fallback points nowhere: the agent must answer
    python = "/nonexistent/python" if agent else sys.executable
    client, node, root = node_with_policies(make_ns, tmp_path, python)
    with cni_server(node, root) if agent else nullcontext():
        check_policy(make_ns, client, node, root)


def check_policy(make_ns: Callable[[str], str], client: str, node: str, root: Path) -> None:
    open_ns, closed_ns = make_ns("api"), make_ns("demo")
    api = address_of(labelled_pod(node, root, "add", open_ns, namespace="shop", labels=API))
    demo = address_of(labelled_pod(node, root, "add", closed_ns, namespace="demo", labels=X))
    assert reachable(client, api), "no policy selects the shop/api pod: open"
    assert not reachable(client, demo), "default-deny-ingress isolates the demo pod"
    members = ns_run(node, ["ipset", "list", API_SET]).stdout
    assert api in members
    assert demo not in members
    iface = host_veth_name(f"shop.{open_ns}")
    again = labelled_pod(node, root, "add", open_ns, namespace="shop", labels=API)
    assert again["ips"][0]["address"] == f"{api}/32"
    saved = ns_run(node, ["iptables-save", "-t", "filter"]).stdout
    assert saved.count(f"-A cali-from-wl-dispatch -i {iface} -g cali-fw-{iface}") == 1
    labelled_pod(node, root, "del", open_ns, namespace="shop", labels=API)
    saved = ns_run(node, ["iptables-save", "-t", "filter"]).stdout
    assert iface not in saved
    assert api not in ns_run(node, ["ipset", "list", API_SET]).stdout
    assert not (root / f"var/lib/calicc/endpoints/{iface}.json").exists()
