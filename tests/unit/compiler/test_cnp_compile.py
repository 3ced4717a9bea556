"""ClusterNetworkPolicy compilation: chains per tier and direction, actions, peers as ipsets,
bindings in policy.json (and its light reader), evaluation order, origin in the comments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import Compiled, compile_cluster, load_cluster
from calicc.compiler.load import Source
from calicc.compiler.policy.cnp import CompiledCnp, compile_cluster_policies
from calicc.compiler.policy.cnp_model import ClusterNetworkPolicy
from calicc.compiler.policy.load import LoadedCnp
from calicc.compiler.policy.syntax import cnp_rules
from calicc.contract.manifest import ClusterPolicy
from calicc.contract.names import CHAIN_MAX, CLUSTER_POLICY
from calicc.contract.node import NodeFileError, node_facts
from tests.conftest import EXAMPLES

ALL = {"matchExpressions": [], "matchLabels": {}}


def cnp(name: str, tier: str = "Admin", priority: int = 10, **spec: Any) -> LoadedCnp:
    data = {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"tier": tier, "priority": priority, "subject": {"namespaces": {}}, **spec},
    }
    policy = ClusterNetworkPolicy.model_validate(data)
    return LoadedCnp(policy, Source(Path("cnp.yaml"), data, {(): (3, 1)}), ())


def only(**spec: Any) -> CompiledCnp:
    (compiled,) = compile_cluster_policies([cnp("p", **spec)])
    return compiled


@pytest.fixture(scope="module")
def demo() -> Compiled:
    return compile_cluster(load_cluster(EXAMPLES / "policies-demo" / "cluster.yaml"))


def test_order_is_admin_then_baseline_by_priority_then_name() -> None:
    loaded = [
        cnp("b-late", "Baseline", 1),
        cnp("zeta", "Admin", 5),
        cnp("alpha", "Admin", 5),
        cnp("first", "Admin", 0),
        cnp("a-base", "Baseline", 900),
    ]
    order = [(c.tier, c.priority, c.name) for c in compile_cluster_policies(loaded)]
    assert order == [
        ("Admin", 0, "first"),
        ("Admin", 5, "alpha"),
        ("Admin", 5, "zeta"),
        ("Baseline", 1, "b-late"),
        ("Baseline", 900, "a-base"),
    ]


def test_chain_prefixes_by_tier_and_direction() -> None:
    rule = {"action": "Deny", "from": [{"namespaces": {}}]}
    out = {"action": "Deny", "to": [{"namespaces": {}}]}
    admin = only(ingress=[rule], egress=[out])
    base = only(tier="Baseline", ingress=[rule])
    assert admin.ingress is not None
    assert admin.ingress.name.startswith("cali-ai-")
    assert admin.egress is not None
    assert admin.egress.name.startswith("cali-ao-")
    assert base.ingress is not None
    assert base.ingress.name.startswith("cali-bi-")
    assert base.egress is None, "no egress rules: the policy does not affect egress"
    assert all(len(c.name) == CHAIN_MAX for c in (admin.ingress, admin.egress, base.ingress))


def test_actions_become_mark_and_return_or_drop() -> None:
    rules = [
        {"name": "in", "action": "Accept", "from": [{"namespaces": {"matchLabels": {"a": "1"}}}]},
        {"name": "skip", "action": "Pass", "from": [{"namespaces": {}}]},
        {"name": "no", "action": "Deny", "from": [{"namespaces": {}}]},
    ]
    compiled = only(ingress=rules)
    assert compiled.ingress is not None
    lines = cnp_rules(compiled.ingress, "cnp p")
    chain = compiled.ingress.name
    assert [line.split(" -j ")[-1] for line in lines] == [
        "MARK --set-xmark 0x10000/0x10000",
        "RETURN",
        "MARK --set-xmark 0x20000/0x20000",
        "RETURN",
        "DROP",
    ]
    assert lines[1].startswith(f"-A {chain} -m mark --mark 0x10000/0x10000 ")
    assert lines[3].startswith(f"-A {chain} -m mark --mark 0x20000/0x20000 ")
    assert "cnp p ingress[0] `in` accept from pods all in namespaces a=1 on any port" in lines[0]
    assert "cnp p ingress[2] `no` deny" in lines[4]


def test_peers_and_protocols_are_a_product_and_sets() -> None:
    rule = {
        "action": "Accept",
        "from": [
            {"namespaces": {"matchLabels": {"team": "a"}}},
            {
                "pods": {
                    "namespaceSelector": {"matchLabels": {"team": "b"}},
                    "podSelector": {"matchLabels": {"app": "x"}},
                }
            },
        ],
        "protocols": [
            {"tcp": {"destinationPort": {"number": 80}}},
            {"sctp": {"destinationPort": {"range": {"start": 9000, "end": 9010}}}},
            {"destinationNamedPort": "http"},
        ],
    }
    compiled = only(ingress=[rule])
    assert compiled.ingress is not None
    (written,) = compiled.ingress.rules
    assert len(written.matches) == 2 * (1 + 1 + 3), "named port: one match per protocol"
    ports = [(m.port.protocol, m.port.ports) for m in written.matches[:5] if m.port]
    assert ports[:2] == [("tcp", "80"), ("sctp", "9000:9010")]
    selectors = sorted(
        json.dumps(s.selector, sort_keys=True) for s in compiled.sets if s.type == "hash:ip"
    )
    assert selectors == sorted(
        json.dumps(
            {
                "namespaceSelector": {"matchExpressions": [], "matchLabels": {"team": t}},
                "podSelector": {"matchExpressions": [], "matchLabels": pods},
            },
            sort_keys=True,
        )
        for t, pods in (("a", {}), ("b", {"app": "x"}))
    )
    named = sorted(s.selector["protocol"] for s in compiled.sets if s.type == "hash:ip,port")
    assert named == ["SCTP", "TCP", "UDP"]


def test_namespaces_peer_shares_the_set_of_a_netpol_namespace_selector(demo: Compiled) -> None:
    """`namespaces: S` is the selector form of a NetworkPolicy peer `namespaceSelector: S`."""
    policy = ClusterPolicy.model_validate_json(demo.files[CLUSTER_POLICY])
    rule = {"action": "Deny", "from": [{"namespaces": {}}]}
    (cnp_set,) = only(ingress=[rule]).sets
    assert cnp_set.selector == {"namespaceSelector": ALL, "podSelector": ALL}
    assert cnp_set.name in {s.name for s in policy.ipsets}


def test_networks_are_one_collapsed_hash_net_set() -> None:
    rule = {"action": "Deny", "to": [{"networks": ["10.0.1.0/24", "10.0.0.0/24", "0.0.0.0/0"]}]}
    (networks,) = only(egress=[rule]).sets
    assert networks.type == "hash:net"
    assert networks.members == ("0.0.0.0/1", "128.0.0.0/1")
    assert networks.name.startswith("cali40b:")


def test_demo_bindings_and_chains(demo: Compiled) -> None:
    policy = ClusterPolicy.model_validate_json(demo.files[CLUSTER_POLICY])
    cnps = [(b.tier, b.priority, b.name) for b in policy.policies if b.tier != "NetworkPolicy"]
    assert cnps == [
        ("Admin", 10, "cluster-guardrails"),
        ("Admin", 20, "shop-delegates-to-owners"),
        ("Baseline", 100, "default-isolation"),
    ]
    nps = [b for b in policy.policies if b.tier == "NetworkPolicy"]
    assert nps
    assert all(b.namespace and b.namespace_selector is None for b in nps)
    rules = demo.files["cluster/iptables/ipip.rules"]
    for binding in policy.policies:
        for chain in (binding.ingress_chain, binding.egress_chain):
            assert chain is None or f":{chain} - [0:0]" in rules
    assert (
        "# cali-ai-LxsQCaCfhoO5J04ZXwlM: Admin ClusterNetworkPolicy shop-delegates-to-owners "
        "(cluster-policies.yaml:50) priority 20 ingress: 2 rules" in rules
    )
    assert "cnp shop-delegates-to-owners ingress[0] `inside-shop-is-theirs` pass" in rules


def test_light_reader_reads_cnp_bindings(demo: Compiled) -> None:
    policy = json.loads(demo.files[CLUSTER_POLICY])
    node = json.loads(demo.files["nodes/node-1/node.json"])
    settings = json.loads(demo.files["cluster/cluster.json"])
    facts = node_facts(node, settings, policy)
    light = [(b.tier, b.priority, b.namespace, b.name) for b in facts.policies]
    heavy = ClusterPolicy.model_validate(policy).policies
    assert light == [(b.tier, b.priority, b.namespace, b.name) for b in heavy]
    assert facts.policies[-1].namespace_selector == heavy[-1].namespace_selector


def bad_bindings() -> Iterator[tuple[dict[str, Any], str]]:
    base = {"name": "x", "pod_selector": ALL, "tier": "Admin", "priority": 1}
    yield {**base, "namespace_selector": ALL, "tier": "Platform"}, "tier: 'Platform'"
    yield (
        {**base, "namespace_selector": ALL, "priority": 1001},
        "priority: tier Admin needs a priority",
    )
    yield {**base, "namespace": "demo"}, "namespace: a policy of tier Admin has namespace_selector"
    yield {**base, "tier": "NetworkPolicy", "namespace_selector": ALL}, "has a namespace"


@pytest.mark.parametrize(("binding", "text"), list(bad_bindings()))
def test_light_reader_refuses_bindings_out_of_tier(
    demo: Compiled, binding: dict[str, Any], text: str
) -> None:
    node = json.loads(demo.files["nodes/node-1/node.json"])
    settings = json.loads(demo.files["cluster/cluster.json"])
    with pytest.raises(NodeFileError, match="policies\\[0\\]") as err:
        node_facts(node, settings, {"cluster": "x", "policies": [binding]})
    assert text in str(err.value)
    with pytest.raises(ValueError, match=r"policies\.0"):  # the pydantic model refuses the same
        ClusterPolicy.model_validate({"cluster": "x", "policies": [binding]})
