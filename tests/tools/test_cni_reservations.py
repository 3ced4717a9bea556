"""Reservations and a Tunnel-only pool through the real plugin (cnitool and the installed
launchers) in throwaway namespaces: every ADD skips the reserved addresses and never takes the
node's tunnel address or an address of a pool pods may not use."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, ip_interface
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from tests.conftest import need_root
from tests.support.clusters import write_cluster
from tests.support.cni import cnitool, install_bundle, run_cnitool, standalone_node

pytestmark = [pytest.mark.root, pytest.mark.tools]
CLUSTER: dict[str, Any] = {
    "name": "rsv",
    "network_cidr": "10.244.0.0/16",
    "block_size": 28,
    "pools": [
        {"name": "tunnels", "cidr": "10.250.0.0/24", "block_size": 30, "allowed_uses": ["Tunnel"]}
    ],
    "reservations": [{"cidr": "10.244.0.0/30", "name": "gateways"}, {"cidr": "10.244.0.5"}],
    "nodes": [{"name": "n1", "address": "192.168.49.2/24", "max_pods": 10}],
}
RESERVED = {IPv4Address(a) for a in ("10.244.0.0", "10.244.0.1", "10.244.0.2", "10.244.0.3")}


def test_cni_add_skips_reserved_addresses(make_ns: Any, tmp_path: Path) -> None:
    need_root()
    cnitool()
    root = tmp_path / "root"
    files = compile_cluster(load_cluster(write_cluster(tmp_path, CLUSTER))).files
    node_json = install_bundle(root, files, "n1")
    assert json.loads(node_json.read_text())["tunnel_address"] == "10.250.0.0"
    ns = standalone_node(make_ns, root, node_json)

    got = []
    for i in range(12):  # the /28 holds 16: 5 reserved leave 11, the 12th ADD finds none
        pod_ns = make_ns(f"p{i}")
        done = run_cnitool(ns, root, "add", pod_ns, pod=f"p{i}")
        if i == 11:
            assert done.returncode != 0
            assert "no free pod address" in done.stdout + done.stderr
            break
        assert done.returncode == 0, done.stdout + done.stderr
        got.append(ip_interface(json.loads(done.stdout)["ips"][0]["address"]).ip)
    assert got[0] == IPv4Address("10.244.0.4")
    assert not RESERVED & set(got)
    assert IPv4Address("10.244.0.5") not in got
    assert all(a in IPv4Network("10.244.0.0/28") for a in got)
    assert len(set(got)) == 11
