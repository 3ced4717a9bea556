"""CNI IPAM with pools' allowed uses and reservations: what a node hands out, and trace's guess."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.bundle import load_bundle
from calicc.agent.cni.errors import CniError
from calicc.agent.cni.node import ipam_store
from calicc.compiler.build import build, load_cluster
from calicc.contract.names import BUNDLE_VERSION
from calicc.contract.node import CLUSTER_READS, CniNode, NodeFileError, node_facts, read_node
from calicc.trace.addresses import predict_addresses
from calicc.trace.pods import load_pods
from tests.support.clusters import write_cluster

RESERVED = ("10.244.0.0/29", "10.244.0.40", "fd00:244::/125")
CLUSTER: dict[str, Any] = {
    "name": "rsv",
    "network_cidr": "10.244.0.0/16",
    "network_cidr_v6": "fd00:244::/56",
    "block_size_v6": 122,
    "pools": [
        {"name": "tunnels", "cidr": "10.250.0.0/24", "block_size": 30, "allowed_uses": ["Tunnel"]},
        {"name": "lb", "cidr": "192.168.50.0/24", "allowed_uses": ["LoadBalancer"]},
    ],
    "reservations": [{"cidr": cidr, "name": "kept"} for cidr in RESERVED],
    "nodes": [
        {"name": "n1", "address": "10.0.0.1/24", "address_v6": "fd00:30::1/64", "max_pods": 40},
        {"name": "n2", "address": "10.0.0.2/24", "address_v6": "fd00:30::2/64", "max_pods": 40},
    ],
}


def facts_of(tmp_path: Path, node: str = "n1") -> CniNode:
    """Build CLUSTER into tmp_path and read the node's facts as the CNI plugin does."""
    build(load_cluster(write_cluster(tmp_path, CLUSTER)), tmp_path / "rendered")
    tree = tmp_path / "rendered"
    raw = (tree / "nodes" / node / "node.json").read_bytes()
    return read_node(raw, {rel: (tree / rel).read_bytes() for rel in CLUSTER_READS})


def hand_out_all(tmp_path: Path, facts: CniNode) -> list[tuple[str, ...]]:
    """Claim addresses on a fresh node until it runs out; return what each pod got."""
    store = ipam_store(tmp_path / "state", facts)
    got = []
    for i in range(200):
        try:
            claim = store.claim(f"k8s-pod-network.c{i}", f"c{i}", "eth0", {})
        except CniError:
            break
        got.append(tuple(str(a.address) for a in claim.allocations))
    return got


def test_ipam_never_hands_out_reserved_tunnel_or_load_balancer_addresses(tmp_path: Path) -> None:
    facts = facts_of(tmp_path)
    assert {p.name: p.for_pods for p in facts.pools} == {
        "default-ipv4-ippool": True,
        "default-ipv6-ippool": True,
        "tunnels": False,
        "lb": False,
    }
    handed = hand_out_all(tmp_path, facts)
    v4 = {ip_address(a[0]) for a in handed}
    v6 = {ip_address(a[1]) for a in handed}
    reserved = [ip_network(c) for c in RESERVED]
    assert not any(a in net for a in v4 | v6 for net in reserved)
    assert all(a in IPv4Network("10.244.0.0/16") for a in v4)  # not tunnels, not lb
    assert facts.tunnel_address is None or facts.tunnel_address not in v4
    # n1's /26 holds 64 addresses: 8 + 1 reserved; its IPv6 /122 64, 8 reserved: 55 pods
    assert len(handed) == 55
    assert min(v4) == ip_address("10.244.0.8")
    assert min(v6) == ip_address("fd00:244::8")


def test_tunnel_address_comes_from_the_tunnel_pool(tmp_path: Path) -> None:
    facts = facts_of(tmp_path)  # IPIP (the default ipip_mode): a tunnel address per node
    blocks = {b.pool: b.cidr for b in facts.blocks}
    assert blocks["tunnels"] == IPv4Network("10.250.0.0/30")
    assert facts.tunnel_address == ip_address("10.250.0.0")
    assert "lb" not in blocks


def test_trace_predicts_what_ipam_hands_out(tmp_path: Path) -> None:
    facts = facts_of(tmp_path)
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods:\n" + "".join(f"  - {{name: p{i}, node: n1}}\n" for i in range(30)))
    loaded = load_pods(pods, ("n1", "n2"))
    predicted = predict_addresses(loaded.pods, facts)
    shown = [tuple(str(a) for a in addresses) for addresses in predicted.values()]
    assert shown == hand_out_all(tmp_path / "ipam", facts)[:30]
    assert predicted["default/p0"] == (ip_address("10.244.0.8"), ip_address("fd00:244::8"))


def _settings(**pool: Any) -> dict[str, Any]:
    base = {"name": "p", "cidr": "10.244.0.0/16", "encapsulation": "none", "mode": "Never"}
    return {"pools": [{**base, "nat_outgoing": True, **pool}], "reservations": ["10.244.0.0/30"]}


def test_the_cni_reader_checks_uses_and_reservations() -> None:
    node = {
        "bundle_version": BUNDLE_VERSION,
        "pod_mtu": 1440,
        "node": {"name": "n1"},
        "pools": ["p"],
        "blocks": [{"cidr": "10.244.0.0/26", "pool": "p"}],
    }
    facts = node_facts(node, _settings(allowed_uses=["Tunnel"]), {})
    assert facts.reservations == (IPv4Network("10.244.0.0/30"),)
    assert not facts.pools[0].for_pods
    with pytest.raises(NodeFileError, match=r"pools\[0\]\.allowed_uses: each is one of"):
        node_facts(node, _settings(allowed_uses=["Pods"]), {})
    bad = {**_settings(), "reservations": ["fd00::/200"]}
    with pytest.raises(NodeFileError, match=r"reservations\[0\]: 'fd00::/200' is not an IP"):
        node_facts(node, bad, {})
    assert node_facts(node, {"pools": []}, {}).reservations is None
    both = {**_settings(), "reservations": ["10.244.0.0/30", "fd00::/64"]}
    assert node_facts(node, both, {}).reservations == (
        IPv4Network("10.244.0.0/30"),
        IPv6Network("fd00::/64"),
    )


def test_the_agents_manifest_gives_the_same_store(tmp_path: Path) -> None:
    """`calicc apply` validates the bundle with the pydantic models: the new keys pass, and the
    assembled manifest (what `calicc status` and the agent hand to ipam_store) says the same."""
    light = facts_of(tmp_path)
    manifest = load_bundle(tmp_path / "rendered" / "nodes" / "n1").manifest
    assert manifest.reservations == (
        IPv4Network("10.244.0.0/29"),
        IPv4Network("10.244.0.40/32"),
        IPv6Network("fd00:244::/125"),
    )
    assert {p.name for p in manifest.pools if not p.for_pods} == {"tunnels", "lb"}
    ours, theirs = ipam_store(tmp_path / "a", manifest), ipam_store(tmp_path / "b", light)
    for version in (4, 6):
        assert ours.candidates(version) == theirs.candidates(version)
