"""The contract's light reader of node.json (contract/node.py): the same facts as the pydantic
model for every example node, and a located refusal of each kind of wrong field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calicc.contract.manifest import NodeManifest
from calicc.contract.node import CniNode, NodeFileError, read_node
from tests.conftest import EXAMPLES

NODE_FILES = sorted(EXAMPLES.glob("*/rendered/nodes/*/node.json"))


def facts(m: NodeManifest | CniNode) -> dict[str, object]:
    """Return what the CNI plugin reads, as plain data (both readers give the same)."""
    return {
        "node": m.node.name,
        "pod_mtu": m.pod_mtu,
        "pools": [(p.name, p.serves_node) for p in m.pools],
        "blocks": [(b.cidr, b.pool) for b in m.blocks],
        "tunnel": m.tunnel_address,
        "ipsets": [(s.name, s.type, s.selector) for s in m.ipsets],
        "policies": [
            (p.namespace, p.name, p.pod_selector, p.ingress_chain, p.egress_chain)
            for p in m.policies
        ],
    }


@pytest.mark.parametrize("path", NODE_FILES, ids=lambda p: f"{p.parts[-5]}/{p.parts[-2]}")
def test_light_reader_reads_what_the_model_reads(path: Path) -> None:
    raw = path.read_bytes()
    assert facts(read_node(raw)) == facts(NodeManifest.model_validate_json(raw))


def test_examples_hold_policies_and_runtime_sets() -> None:
    """The comparison above covers bindings and selector sets, not only empty sections."""
    demo = read_node((EXAMPLES / "policies-demo/rendered/nodes/node-1/node.json").read_bytes())
    assert demo.policies
    assert any(s.selector is not None for s in demo.ipsets)


def example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (EXAMPLES / "policies-demo/rendered/nodes/node-1/node.json").read_text()
    )
    return data


def refusal(data: object) -> str:
    with pytest.raises(NodeFileError) as caught:
        read_node(json.dumps(data).encode())
    return str(caught.value)


def test_wrong_fields_are_named() -> None:
    data = example()
    assert refusal({**data, "pod_mtu": None}) == "pod_mtu: expected an integer, got null"
    assert refusal({**data, "pod_mtu": True}) == "pod_mtu: expected an integer, got a boolean"
    assert refusal({**data, "pod_mtu": 40}) == "pod_mtu: 40 is not in 68-65535"
    assert refusal({k: v for k, v in data.items() if k != "node"}) == "node: missing"
    assert refusal({**data, "bundle_version": 2}) == "bundle_version: 2 is not 1"
    assert refusal([data]) == "node.json: expected an object, got an array"


def test_wrong_items_are_named_with_their_index() -> None:
    data = example()
    blocks = [*data["blocks"], {"cidr": "10.0.0.1/24", "pool": "p"}]
    where = f"blocks[{len(blocks) - 1}].cidr"
    assert refusal({**data, "blocks": blocks}).startswith(f"{where}: '10.0.0.1/24' is not an IPv4")
    sets = [{**data["ipsets"][0], "name": "cali40s:x\n-A INPUT -j ACCEPT"}]
    assert refusal({**data, "ipsets": sets}).startswith("ipsets[0].name: ")
    sets = [{**data["ipsets"][0], "type": "bitmap:port"}]
    assert refusal({**data, "ipsets": sets}).startswith("ipsets[0].type: 'bitmap:port'")
    policies = [{**data["policies"][0], "ingress_chain": "cali-pi-" + "x" * 30}]
    assert refusal({**data, "policies": policies}).startswith("policies[0].ingress_chain: ")
    assert refusal({**data, "tunnel_address": "10.0.0"}).startswith("tunnel_address: '10.0.0'")


def test_not_json_is_refused() -> None:
    with pytest.raises(NodeFileError, match="not valid JSON"):
        read_node(b"{")
    with pytest.raises(NodeFileError, match="not valid JSON"):
        read_node(b"\xff")
    with pytest.raises(NodeFileError, match="not valid JSON"):
        read_node(b"[" * 100_000)
