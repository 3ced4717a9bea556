"""The ported ClusterNetworkPolicy cases: every expected table agrees with a reference
evaluation of the case's policies and labels (tests/support/cnp_oracle.py), every policy is
one calicc accepts, and the oracle itself reads tiers, priorities and actions as upstream."""

from __future__ import annotations

import json

import pytest

from calicc.compiler.policy.cnp_model import ClusterNetworkPolicy
from tests.support.cnp_cases import CASES, UNPORTED
from tests.support.cnp_model import CnpAction, CnpCase, Delete, cnp, gress, ns_peer, policy_key
from tests.support.cnp_oracle import CnpWorld, cnp_reachability
from tests.support.netpol_cluster import SERVED
from tests.support.netpol_model import Create, resolve
from tests.support.netpol_truth import PODS, diff_report, expected_table, mismatches

ADDRESSES = {pod: f"10.244.{i % 2}.{10 + i}" for i, pod in enumerate(PODS)}
UPSTREAM_TESTS = 24  # ShortNames in network-policy-api conformance/tests (v1alpha2)


def act(world: CnpWorld, action: CnpAction) -> None:
    if isinstance(action, Create):
        doc = json.loads(resolve(json.dumps(action.policy), ADDRESSES))
        namespace, name = policy_key(doc)
        if namespace:
            world.policies[namespace, name] = doc
        else:
            world.cnps[name] = doc
    elif isinstance(action, Delete):
        del world.policies[action.namespace, action.name]
    else:
        world.ns_labels[action.namespace].update(action.labels)


def new_world() -> CnpWorld:
    base = CnpWorld.initial(ADDRESSES)
    return CnpWorld(base.pod_labels, base.ns_labels, base.addresses)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_expected_tables_match_the_policies(case: CnpCase) -> None:
    world = new_world()
    for index, step in enumerate(case.steps):
        for action in step.actions:
            act(world, action)
        for probe in step.probes:
            expected = expected_table(probe.edits)
            reference = cnp_reachability(world, probe.port, probe.protocol)
            title = f"step {index + 1} {probe.protocol}/{probe.port}"
            assert not mismatches(expected, reference), diff_report(title, expected, reference)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_policy_is_valid_v1alpha2(case: CnpCase) -> None:
    for step in case.steps:
        for action in step.actions:
            if isinstance(action, Create) and action.policy["kind"] == "ClusterNetworkPolicy":
                text = resolve(json.dumps(action.policy), ADDRESSES)
                ClusterNetworkPolicy.model_validate(json.loads(text))


def test_every_upstream_test_is_ported_or_named_as_not() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) == UPSTREAM_TESTS - len(UNPORTED) == 18
    assert all(name.startswith(("CNPAdminTier", "CNPBaselineTier")) for name in names)
    assert all(step.subtests and step.probes for c in CASES for step in c.steps)


def test_every_case_changes_something_its_probes_see() -> None:
    """No case passes on a cluster that ignores policy: each has a blocked cell."""
    for case in CASES:
        edits = [e for s in case.steps for p in s.probes for e in p.edits]
        assert any(not e.ok for e in edits), case.name


def oracle(*policies: dict[str, object]) -> dict[tuple[str, str], bool]:
    world = new_world()
    for policy in policies:
        act(world, Create(policy))
    return cnp_reachability(world, 80, "TCP")


def test_the_oracle_orders_tiers_and_priorities() -> None:
    deny = cnp("deny", "Admin", 20, ns_peer("x"), ingress=[gress("d", "Deny", [ns_peer("y")])])
    accept = cnp("ok", "Admin", 10, ns_peer("x"), ingress=[gress("a", "Accept", [ns_peer("y")])])
    passes = cnp("pass", "Admin", 5, ns_peer("x"), ingress=[gress("p", "Pass", [ns_peer("y")])])
    base = cnp("b", "Baseline", 1, ns_peer("x"), ingress=[gress("d", "Deny", [ns_peer("y")])])
    assert not oracle(deny)["y/a", "x/b"]
    assert oracle(deny, accept)["y/a", "x/b"]  # priority 10 before 20
    assert not oracle(deny, accept, passes, base)["y/a", "x/b"]  # Pass skips Admin: Baseline
    assert oracle(deny, accept, passes)["y/a", "x/b"]  # nothing below decides: allowed
    assert oracle(deny)["z/a", "x/b"]


def test_the_port_mapping_is_the_clusters() -> None:
    """The cases' ports and names are the ones every pod of netpol_cluster serves."""
    served = set(SERVED)
    for case in CASES:
        for step in case.steps:
            assert {(p.port, p.protocol) for p in step.probes} <= served
