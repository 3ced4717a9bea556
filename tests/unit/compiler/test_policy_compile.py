"""Policy compilation: selectors, defaults, ipBlock arithmetic, names and hashing."""

from __future__ import annotations

import re
from ipaddress import IPv4Network as Net
from pathlib import Path

import pytest

from calicc.compiler.load import Source
from calicc.compiler.policy.load import LoadedPolicy
from calicc.compiler.policy.model import IPBlock, LabelSelector, NetworkPolicy
from calicc.compiler.policy.rules import block_members, compile_policy
from calicc.compiler.policy.selectors import canonical
from calicc.contract.names import CHAIN_MAX, IPSET_MAX
from calicc.contract.selectors import matches


def policy(name: str = "p", namespace: str = "ns", **spec: object) -> LoadedPolicy:
    data = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {}, **spec},
    }
    return LoadedPolicy(NetworkPolicy.model_validate(data), Source(Path("x.yaml"), data), ())


def sel(**data: object) -> dict[str, object]:
    return canonical(LabelSelector.model_validate(data))


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "1"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        (
            {"matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}]},
            {"t": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "t", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["a"]}]},
            {"t": "a"},
            False,
        ),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"t": ""}, True),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}, {"t": "x"}, False),
        (
            {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]},
            {"a": "1"},
            False,
        ),
    ],
)
def test_selector_semantics(
    selector: dict[str, object], labels: dict[str, str], expected: bool
) -> None:
    assert matches(sel(**selector), labels) is expected


def test_canonical_form_ignores_order() -> None:
    a = sel(
        matchLabels={"b": "2", "a": "1"},
        matchExpressions=[
            {"key": "z", "operator": "In", "values": ["y", "x"]},
            {"key": "a", "operator": "Exists"},
        ],
    )
    b = sel(
        matchExpressions=[
            {"key": "a", "operator": "Exists"},
            {"key": "z", "operator": "In", "values": ["x", "y"]},
        ],
        matchLabels={"a": "1", "b": "2"},
    )
    assert a == b


def test_block_members_subtracts_excepts_and_splits_slash_zero() -> None:
    block = IPBlock(cidr=Net("10.0.0.0/16"), except_=(Net("10.0.1.0/24"), Net("10.0.128.0/17")))
    members = [Net(m) for m in block_members(block)]
    assert Net("10.0.1.0/24") not in members
    covered = {a for m in members for a in (m.network_address, m.broadcast_address)}
    assert Net("10.0.0.0/24").network_address in covered
    assert sum(m.num_addresses for m in members) == 2**16 - 2**8 - 2**15
    everything = block_members(IPBlock(cidr=Net("0.0.0.0/0")))
    assert everything == ("0.0.0.0/1", "128.0.0.0/1")


def test_default_policy_types() -> None:
    only_ingress = compile_policy(policy(ingress=[{}]))
    assert only_ingress.ingress is not None
    assert only_ingress.egress is None
    with_egress = compile_policy(policy(egress=[{}]))
    assert with_egress.ingress is not None
    assert with_egress.ingress.rules == ()
    assert with_egress.egress is not None
    assert len(with_egress.egress.rules) == 1
    egress_only = compile_policy(policy(policyTypes=["Egress"]))
    assert egress_only.ingress is None
    assert egress_only.egress is not None


def test_rules_are_the_product_of_peers_and_ports() -> None:
    compiled = compile_policy(
        policy(
            ingress=[
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app": "a"}}},
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    ],
                    "ports": [
                        {"port": 80},
                        {"protocol": "UDP", "port": 1000, "endPort": 2000},
                        {"port": "http"},
                    ],
                }
            ]
        )
    )
    assert compiled.ingress is not None
    (block,) = compiled.ingress.rules
    assert len(block.allows) == 6
    ports = {(a.port.protocol, a.port.ports) for a in block.allows if a.port}
    assert ports == {("tcp", "80"), ("udp", "1000:2000"), ("tcp", None)}
    kinds = {s.type for s in compiled.sets}
    assert kinds == {"hash:ip", "hash:net", "hash:ip,port"}
    selector_set = next(s for s in compiled.sets if s.type == "hash:ip")
    assert selector_set.selector == {
        "namespace": "ns",
        "podSelector": sel(matchLabels={"app": "a"}),
    }


def test_namespace_selector_peer_without_pod_selector_selects_all_pods() -> None:
    compiled = compile_policy(policy(ingress=[{"from": [{"namespaceSelector": {}}]}]))
    (only,) = compiled.sets
    assert only.selector == {"namespaceSelector": sel(), "podSelector": sel()}


def test_names_are_stable_bounded_and_distinct() -> None:
    names = set()
    for i in range(300):
        c = compile_policy(
            policy(
                name=f"policy-{i}",
                egress=[{"to": [{"podSelector": {"matchLabels": {"i": str(i)}}}]}],
            )
        )
        assert c.ingress is not None
        assert c.egress is not None
        for chain in (c.ingress.name, c.egress.name):
            assert len(chain) <= CHAIN_MAX
            assert re.fullmatch(r"cali-p[io]-[A-Za-z0-9_-]+", chain)
            names.add(chain)
        for s in c.sets:
            assert len(s.name) <= IPSET_MAX
            names.add(s.name)
    assert len(names) == 900
    again = compile_policy(policy(name="policy-7"))
    assert again.ingress is not None
    assert again.ingress.name in names
