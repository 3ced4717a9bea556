"""The contract's light reader of a bundle (contract/node.py): the same facts as the agent's
assembled manifest for every example node, a cluster part of another build refused, and a
located refusal of each kind of wrong field."""

from __future__ import annotations

import json
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from calicc.agent.bundle import file_digest, load_bundle
from calicc.contract.manifest import NodeManifest
from calicc.contract.names import CLUSTER_INDEX, CLUSTER_POLICY, CLUSTER_SETTINGS
from calicc.contract.node import CLUSTER_READS, CniNode, NodeFileError, read_node
from tests.conftest import EXAMPLES

NODE_DIRS = sorted(p.parent for p in EXAMPLES.glob("*/rendered/nodes/*/node.json"))
DEMO = EXAMPLES / "policies-demo/rendered/nodes/node-1"


def facts(m: NodeManifest | CniNode) -> dict[str, object]:
    """Return what the CNI plugin reads, as plain data (both readers give the same)."""
    return {
        "node": m.node.name,
        "pod_mtu": m.pod_mtu,
        "pools": [(p.name, p.serves_node) for p in m.pools],
        "blocks": [(b.cidr, b.pool) for b in m.blocks],
        "tunnel": m.tunnel_address,
        "tunnel_v6": m.tunnel_address_v6,
        "ipsets": [(s.name, s.type, s.selector) for s in m.ipsets],
        "policies": [
            (p.namespace, p.name, p.pod_selector, p.ingress_chain, p.egress_chain)
            for p in m.policies
        ],
    }


def cluster_of(node_dir: Path) -> dict[str, bytes]:
    """Return the cluster files the reader needs, from the rendered tree of `node_dir`."""
    return {rel: (node_dir.parents[1] / rel).read_bytes() for rel in CLUSTER_READS}


@pytest.mark.parametrize("node_dir", NODE_DIRS, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_light_reader_reads_what_the_agent_assembles(node_dir: Path) -> None:
    raw = (node_dir / "node.json").read_bytes()
    assert facts(read_node(raw, cluster_of(node_dir))) == facts(load_bundle(node_dir).manifest)


def test_examples_hold_policies_runtime_sets_and_pools_not_serving() -> None:
    """The comparison above covers bindings, selector sets and both kinds of pool."""
    demo = read_node((DEMO / "node.json").read_bytes(), cluster_of(DEMO))
    assert demo.policies
    assert any(s.selector is not None for s in demo.ipsets)
    crosssubnet = EXAMPLES / "vxlan-crosssubnet/rendered/nodes/rack1-node1"
    node = read_node((crosssubnet / "node.json").read_bytes(), cluster_of(crosssubnet))
    assert {p.serves_node for p in node.pools} == {True, False}


def example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEMO / "node.json").read_text())
    return data


def policy() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cluster_of(DEMO)[CLUSTER_POLICY])
    return data


def consistent(policy_data: object) -> dict[str, bytes]:
    """Return the demo's cluster files with policy.json replaced and listed with its digest."""
    files = cluster_of(DEMO)
    files[CLUSTER_POLICY] = json.dumps(policy_data).encode()
    index = json.loads(files[CLUSTER_INDEX])
    index["files"][CLUSTER_POLICY]["digest"] = file_digest(files[CLUSTER_POLICY])
    return {**files, CLUSTER_INDEX: json.dumps(index).encode()}


def refusal(data: object, cluster: dict[str, bytes] | None = None) -> str:
    with pytest.raises(NodeFileError) as caught:
        read_node(json.dumps(data).encode(), cluster or cluster_of(DEMO))
    return str(caught.value)


def test_wrong_fields_are_named() -> None:
    data = example()
    assert refusal({**data, "pod_mtu": None}) == "pod_mtu: expected an integer, got null"
    assert refusal({**data, "pod_mtu": True}) == "pod_mtu: expected an integer, got a boolean"
    assert refusal({**data, "pod_mtu": 40}) == "pod_mtu: 40 is not in 68-65535"
    assert refusal({k: v for k, v in data.items() if k != "node"}) == "node: missing"
    assert refusal({**data, "bundle_version": 99}) == "bundle_version: 99 is not 4"
    assert refusal({**data, "pools": [3]}) == "pools[0]: expected a string, got an integer"


def test_a_bundle_of_an_older_calicc_is_refused_asking_for_a_rebuild() -> None:
    said = refusal({**example(), "bundle_version": 2})
    assert said.startswith("bundle_version: 2 is not 4 (a bundle of an older calicc: rebuild")


def test_roles_name_their_shared_file_and_only_the_cluster_settings_digest_is_read() -> None:
    """A role's entry has a source and no digest (the reader leaves it); cluster.json's entry
    must carry the digest node.json was built from."""
    data = example()
    assert data["files"]["cni/10-calicc.conflist"] == {
        "install": "etc/cni/net.d/10-calicc.conflist",
        "source": "cluster/cni/mtu-1480.conflist",
    }
    data["files"]["cni/10-calicc.conflist"] = {"source": "cluster/elsewhere"}
    assert read_node(json.dumps(data).encode(), cluster_of(DEMO)).pod_mtu == data["pod_mtu"]
    data["files"][CLUSTER_SETTINGS] = {"source": CLUSTER_SETTINGS}
    said = refusal(data)
    assert said == "node.json: files.cluster/cluster.json.digest: missing"


def test_wrong_items_are_named_with_their_index_and_file() -> None:
    data = example()
    blocks = [*data["blocks"], {"cidr": "10.0.0.1/24", "pool": "p"}]
    where = f"blocks[{len(blocks) - 1}].cidr"
    assert refusal({**data, "blocks": blocks}).startswith(f"{where}: '10.0.0.1/24' is not an IP ")
    blocks[-1] = {"cidr": "fd00::1/122", "pool": "p"}
    assert refusal({**data, "blocks": blocks}).startswith(f"{where}: 'fd00::1/122' is not an IP ")
    blocks[-1] = {"cidr": "fd00::/64", "pool": "p"}
    assert refusal({**data, "blocks": blocks}) == (
        f"{where}: fd00::/64 is larger than a block (IPv6 blocks are /116 to /128)"
    )
    assert refusal({**data, "tunnel_address": "10.0.0"}).startswith("tunnel_address: '10.0.0'")
    said = refusal({**data, "tunnel_address": "fd00::1"})
    assert said == "tunnel_address: 'fd00::1' is not an IPv4 address"
    said = refusal({**data, "tunnel_address_v6": "10.0.0.1"})
    assert said == "tunnel_address_v6: '10.0.0.1' is not an IPv6 address"
    sets = policy()
    sets["ipsets"][0]["name"] = "cali40s:x\n-A INPUT -j ACCEPT"
    assert refusal(data, consistent(sets)).startswith("cluster/policy.json: ipsets[0].name: ")
    sets = policy()
    sets["ipsets"][0]["type"] = "bitmap:port"
    assert refusal(data, consistent(sets)).startswith(
        "cluster/policy.json: ipsets[0].type: 'bitmap:port'"
    )
    bindings = policy()
    bindings["policies"][0]["ingress_chain"] = "cali-pi-" + "x" * 30
    assert refusal(data, consistent(bindings)).startswith(
        "cluster/policy.json: policies[0].ingress_chain: "
    )
    assert refusal(data, consistent([])) == "cluster/policy.json: expected an object, got an array"


def test_ipv6_blocks_and_tunnel_address_are_read() -> None:
    data = example()
    blocks = [*data["blocks"], {"cidr": "fd00:10:244::40/122", "pool": "default-ipv6-ippool"}]
    node = read_node(
        json.dumps({**data, "blocks": blocks, "tunnel_address_v6": "fd00:10:244::40"}).encode(),
        cluster_of(DEMO),
    )
    assert node.blocks[-1].cidr == IPv6Network("fd00:10:244::40/122")
    assert node.tunnel_address_v6 == IPv6Address("fd00:10:244::40")
    assert read_node(json.dumps(data).encode(), cluster_of(DEMO)).tunnel_address_v6 is None


def test_cluster_files_of_another_build_are_refused() -> None:
    data = example()
    changed = cluster_of(DEMO)
    changed[CLUSTER_POLICY] += b" "  # not the digest cluster/index.json lists
    said = refusal(data, changed)
    assert said.startswith("cluster/policy.json has digest sha256:")
    assert "different builds" in said
    settings = json.loads(cluster_of(DEMO)[CLUSTER_SETTINGS])
    settings["pools"] = settings["pools"][:1]
    newer = cluster_of(DEMO)
    newer[CLUSTER_SETTINGS] = json.dumps(settings).encode()
    index = json.loads(newer[CLUSTER_INDEX])
    index["files"][CLUSTER_SETTINGS]["digest"] = file_digest(newer[CLUSTER_SETTINGS])
    newer[CLUSTER_INDEX] = json.dumps(index).encode()  # a consistent cluster part of a newer build
    said = refusal(data, newer)
    assert said.startswith("cluster/index.json lists another cluster/cluster.json than node.json")
    assert "different builds" in said


def test_not_json_is_refused_naming_the_file() -> None:
    with pytest.raises(NodeFileError, match=r"^node\.json: not valid JSON"):
        read_node(b"{", cluster_of(DEMO))
    with pytest.raises(NodeFileError, match=r"^node\.json: not valid JSON"):
        read_node(b"\xff", cluster_of(DEMO))
    with pytest.raises(NodeFileError, match=r"^node\.json: not valid JSON"):
        read_node(b"[" * 100_000, cluster_of(DEMO))
    broken = {**cluster_of(DEMO), CLUSTER_INDEX: b"{"}
    with pytest.raises(NodeFileError, match=r"^cluster/index\.json: not valid JSON"):
        read_node((DEMO / "node.json").read_bytes(), broken)
