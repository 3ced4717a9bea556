"""A node joins the cluster while pods run: the next build changes only the cluster part for
the nodes already there (node.json and the node's own files stay byte-identical), and applying
it programs the new node's VXLAN route, neighbour and FDB entry, and leaves the running pods'
veths, routes, endpoint records, IPAM state and dispatch rules exactly as they were.

Pods are wired by the real CNI plugin through cnitool, in scratch namespaces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.bundle import load_bundle
from calicc.agent.cni.naming import host_veth_name
from calicc.lab.netns import ns_ping, ns_run
from tests.conftest import need_tool
from tests.support.bundles import MakeNs, apply, routed_node, writes
from tests.support.clusters import built_example
from tests.support.cni import cni, cnitool

pytestmark = [pytest.mark.root, pytest.mark.tools]
NODE = "node-1"
FOURTH = {"name": "node-4", "address": "10.30.0.14/24", "interface": "eth0"}


def add_fourth(data: dict[str, Any]) -> None:
    data["nodes"].append(FOURTH)


def pod_state(ns: str, root: Path, ifaces: list[str]) -> dict[str, Any]:
    """Return what belongs to the running pods: links, routes, records, IPAM, dispatch rules."""
    saved = ns_run(ns, ["iptables-save", "-t", "filter"]).stdout
    state = root / "var/lib/calicc"
    return {
        "links": [ns_run(ns, ["ip", "-d", "link", "show", "dev", i]).stdout for i in ifaces],
        "routes": [ns_run(ns, ["ip", "route", "show", "dev", i]).stdout for i in ifaces],
        "rules": sorted(ln for ln in saved.splitlines() if any(i in ln for i in ifaces)),
        "files": {
            str(p.relative_to(state)): p.read_bytes()
            for p in sorted(state.rglob("*"))
            if p.is_file() and p.parts[len(state.parts)] in ("endpoints", "ipam")
        },
    }


def node_four(tree: Path) -> list[str]:
    """Return node-4's line of the node table: name, address, tunnel address, MAC, blocks,
    interface, pod MTU."""
    line = next(
        ln for ln in (tree / "cluster/nodes.tsv").read_text().splitlines() if "node-4" in ln
    )
    return line.split("\t")


def test_a_joining_node_reaches_running_pods_untouched(make_ns: MakeNs, tmp_path: Path) -> None:
    need_tool("ip", "bridge", "iptables-save", "ipset", "ping")
    cnitool()
    (tmp_path / "base").mkdir()
    (tmp_path / "grown").mkdir()
    built_example(tmp_path / "base", "vxlan")
    built_example(tmp_path / "grown", "vxlan", add_fourth)
    base, grown = tmp_path / "base/rendered", tmp_path / "grown/rendered"
    for rel in json.loads((base / "index.json").read_text())["nodes"][NODE]:
        assert (base / "nodes" / NODE / rel).read_bytes() == (
            grown / "nodes" / NODE / rel
        ).read_bytes()
    # node.json is the same, the bundle is not: the agent sees a new bundle, not drift
    assert load_bundle(base / "nodes" / NODE).digest != load_bundle(grown / "nodes" / NODE).digest
    ns, client = routed_node(make_ns, base / "nodes" / NODE)
    root, log = tmp_path / "root", tmp_path / "log.json"
    assert apply(ns, base / "nodes" / NODE, root, log).returncode == 0
    pods = [make_ns("web"), make_ns("api")]
    addresses = [cni(ns, root, "add", p, "default", labels={"app": p[-3:]}) for p in pods]
    ifaces = [host_veth_name(f"default.{p}") for p in pods]
    assert all(ns_ping(client, a) for a in addresses)
    before = pod_state(ns, root, ifaces)
    _, address, tunnel, mac, blocks, *_ = node_four(grown)
    done = apply(ns, grown / "nodes" / NODE, root, log)
    assert done.returncode == 0, done.stderr
    routes = ns_run(ns, ["ip", "-4", "route", "show", "proto", "81"]).stdout
    for block in blocks.split(","):
        assert f"{block.split('=')[1]} via {tunnel} dev vxlan.calico onlink" in routes
    neigh = ns_run(ns, ["ip", "neigh", "show", "dev", "vxlan.calico", "nud", "permanent"]).stdout
    assert f"{tunnel} lladdr {mac} PERMANENT" in neigh
    fdb = ns_run(ns, ["bridge", "fdb", "show", "dev", "vxlan.calico"]).stdout
    assert f"{mac} dst {address.split('/')[0]} self permanent" in fdb
    hosts = ns_run(ns, ["ipset", "list", "cali40all-hosts-net"]).stdout.splitlines()
    assert address.split("/")[0] in hosts  # the node-address set holds the new node
    assert pod_state(ns, root, ifaces) == before
    assert "iptables-restore" not in [c[0] for c in writes(log)]  # no rule of a pod rewritten
    assert all(ns_ping(client, a) for a in addresses)
    installed = root / "etc/calicc/bundle/cluster/nodes.tsv"
    assert installed.read_bytes() == (grown / "cluster/nodes.tsv").read_bytes()
    assert (root / "etc/calicc/cluster/nodes.tsv").read_bytes() == installed.read_bytes()
