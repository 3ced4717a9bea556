"""`calicc status` says which blocks hold reserved addresses and which are for tunnels only."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

from calicc.agent.bundle import load_bundle
from calicc.agent.status import block_note
from calicc.compiler.build import build, load_cluster
from tests.support.clusters import write_cluster

CLUSTER = {
    "name": "notes",
    "network_cidr": "10.244.0.0/16",
    "pools": [
        {"name": "tunnels", "cidr": "10.250.0.0/24", "block_size": 30, "allowed_uses": ["Tunnel"]}
    ],
    "reservations": [{"cidr": "10.244.0.0/30"}, {"cidr": "10.244.0.9"}],
    "nodes": [{"name": "n1", "address": "10.0.0.1/24", "max_pods": 20}],
}


def test_block_notes(tmp_path: Path) -> None:
    build(load_cluster(write_cluster(tmp_path, CLUSTER)), tmp_path / "rendered")
    manifest = load_bundle(tmp_path / "rendered" / "nodes" / "n1").manifest
    notes = {str(b.cidr): block_note(b.cidr, manifest) for b in manifest.blocks}
    assert notes == {
        "10.244.0.0/26": ", 5 reserved",
        "10.250.0.0/30": " (pool tunnels: tunnel addresses only, no pods)",
    }
    assert block_note(IPv4Network("10.244.1.0/26"), manifest) == ""
