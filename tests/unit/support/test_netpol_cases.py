"""The ported NetworkPolicy cases: every expected table agrees with a reference evaluation of
the case's policies and labels (tests/support/netpol_oracle.py), and mismatches print as
upstream's tables."""

from __future__ import annotations

import json

import pytest

from tests.support.netpol_cases import CASES
from tests.support.netpol_model import Case, Create, DeleteAll, LabelNamespace, LabelPod, resolve
from tests.support.netpol_oracle import World, reachability
from tests.support.netpol_truth import (
    PODS,
    all_ingress,
    diff_report,
    expected_table,
    mismatches,
)

ADDRESSES = {pod: f"10.244.{i % 2}.{10 + i}" for i, pod in enumerate(PODS)}


def act(world: World, action: object) -> None:
    if isinstance(action, Create):
        doc = json.loads(resolve(json.dumps(action.policy), ADDRESSES))
        world.policies[doc["metadata"]["namespace"], doc["metadata"]["name"]] = doc
    elif isinstance(action, DeleteAll):
        world.policies.clear()
    elif isinstance(action, LabelPod):
        world.pod_labels[action.pod].update(action.labels)
    elif isinstance(action, LabelNamespace):
        world.ns_labels[action.namespace].update(action.labels)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_expected_tables_match_the_policies(case: Case) -> None:
    world = World.initial(ADDRESSES)
    for index, step in enumerate(case.steps):
        for action in step.actions:
            act(world, action)
        for probe in step.probes:
            expected = expected_table(probe.edits)
            reference = reachability(world, probe.port, probe.protocol)
            title = f"step {index} {probe.protocol}/{probe.port}"
            assert not mismatches(expected, reference), diff_report(title, expected, reference)


def test_the_suite_has_every_upstream_case_once() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) == 48
    assert sum(c.labels for c in CASES) == 3


def test_a_mismatch_prints_upstream_tables() -> None:
    expected = expected_table([all_ingress("x/a", False)])
    observed = {**expected, ("y/b", "x/a"): True, ("x/a", "x/a"): True}
    assert mismatches(expected, observed) == [("y/b", "x/a")]
    report = diff_report("TCP/80", expected, observed)
    assert report.startswith("TCP/80: 1 of 72 wrong")
    lines = report.splitlines()
    assert "-\tx/a\tx/b\tx/c\ty/a\ty/b\ty/c\tz/a\tz/b\tz/c" in lines
    assert "y/b\tX\t.\t.\t.\t.\t.\t.\t.\t." in lines  # expected: y/b cannot reach x/a
    assert "y/b\t.\t.\t.\t.\t.\t.\t.\t.\t." in lines  # observed: it can
    compare = report.split("comparison (X: wrong):\n")[1].splitlines()
    assert compare[5] == "y/b\tX\t.\t.\t.\t-\t.\t.\t.\t."
