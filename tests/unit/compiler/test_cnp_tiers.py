"""The tier chains of ClusterNetworkPolicies: one per tier and direction, a jump per policy
for the pods of its subject set (destination of ingress, source of egress), in priority order,
a return once a policy accepted or passed, the subject sets as runtime selector sets, and the
chain of the tiers of pods no NetworkPolicy selects (Admin, Baseline, allow)."""

from __future__ import annotations

from typing import Any

import pytest

from calicc.compiler.build import Compiled, compile_cluster, load_cluster
from calicc.compiler.policy.cnp import compile_cluster_policies, tier_jumps
from calicc.compiler.policy.syntax import direction_tiers, tier_rules
from calicc.contract.endpoint import selector_sets_for_pod
from calicc.contract.manifest import ClusterPolicy
from calicc.contract.names import CLUSTER_POLICY, CNP_ONLY_CHAINS, TIER_CHAINS
from calicc.contract.syntax import ACCEPT_MATCH, CLEAR_PASS, DECIDED, SET_ACCEPT
from tests.conftest import EXAMPLES
from tests.unit.compiler.test_cnp_compile import ALL, cnp

DENY = {"action": "Deny", "from": [{"namespaces": {}}]}
PASS = {"action": "Pass", "from": [{"namespaces": {}}]}
TO_NET = {"action": "Deny", "to": [{"networks": ["10.0.0.0/8"]}]}


def red(**spec: Any) -> dict[str, Any]:
    return {"subject": {"namespaces": {"matchLabels": {"team": "red"}}}, **spec}


POLICIES = compile_cluster_policies(
    [
        cnp("z-late", "Admin", 50, ingress=[PASS]),
        cnp("b-same", "Admin", 10, ingress=[DENY], egress=[TO_NET]),
        cnp("a-same", "Admin", 10, **red(ingress=[PASS])),
        cnp("base", "Baseline", 5, ingress=[PASS]),
    ]
)


@pytest.fixture(scope="module")
def demo() -> Compiled:
    return compile_cluster(load_cluster(EXAMPLES / "policies-demo" / "cluster.yaml"))


def targets(rules: tuple[str, ...]) -> list[str]:
    return [r.rsplit(" -j ", 1)[1] for r in rules]


def test_admin_ingress_jumps_by_priority_then_name_for_the_subject() -> None:
    jumps = tier_jumps(POLICIES, "Admin", "ingress")
    chains = [j.chain for j in jumps]
    by_name = {p.name: p for p in POLICIES}
    assert chains == [
        by_name[n].ingress.name  # type: ignore[union-attr]
        for n in ("a-same", "b-same", "z-late")
    ]
    rules = tier_rules("cali-admin-in", "Admin", "ingress", jumps)
    assert targets(rules) == [chains[0], "RETURN", chains[1], chains[2], "RETURN"], (
        "a Deny-only policy sets no mark: no return after it"
    )
    red_set = by_name["a-same"].subject.name
    assert f"-m set --match-set {red_set} dst " in rules[0], "ingress: the subject receives"
    assert all(DECIDED in r for r in rules if r.endswith("-j RETURN")), (
        "accepted or passed: the rest of the tier is skipped"
    )


def test_egress_matches_the_subject_as_source() -> None:
    (jump,) = tier_jumps(POLICIES, "Admin", "egress")
    (line,) = tier_rules("cali-admin-out", "Admin", "egress", (jump,))
    assert f"-m set --match-set {jump.subject_set} src " in line
    assert tier_jumps(POLICIES, "Baseline", "egress") == ()


def test_baseline_first_clears_the_admin_pass() -> None:
    rules = tier_rules(
        "cali-baseline-in", "Baseline", "ingress", tier_jumps(POLICIES, "Baseline", "ingress")
    )
    assert rules[0].endswith(CLEAR_PASS), "an Admin Pass must not skip the Baseline policies"
    assert targets(rules)[1:] == [POLICIES[-1].ingress.name, "RETURN"]  # type: ignore[union-attr]


def test_subject_is_the_runtime_selector_set() -> None:
    (a_same,) = [p for p in POLICIES if p.name == "a-same"]
    assert a_same.subject.selector == {
        "namespaceSelector": {"matchExpressions": [], "matchLabels": {"team": "red"}},
        "podSelector": ALL,
    }
    assert a_same.subject.type == "hash:ip"
    assert selector_sets_for_pod([a_same.subject], "dev", {}, {"team": "red"}) == (
        a_same.subject.name,
    )
    assert selector_sets_for_pod([a_same.subject], "dev", {}, {"team": "blue"}) == ()


def test_demo_renders_the_tier_chains_and_sets(demo: Compiled) -> None:
    rules = demo.files["cluster/iptables/ipip.rules"]
    policy = ClusterPolicy.model_validate_json(demo.files[CLUSTER_POLICY])
    runtime = {s.name for s in policy.ipsets if s.selector is not None}
    for name in (*TIER_CHAINS.values(), *CNP_ONLY_CHAINS.values()):
        assert f":{name} - [0:0]" in rules
    jumps = [line for line in rules.splitlines() if line.startswith("-A cali-admin-in -m set")]
    assert len(jumps) == 2
    for line in jumps:
        assert line.split()[5] in runtime, "the subject set is filled at runtime"


def test_without_netpol_admin_then_baseline_then_allow() -> None:
    jumps = {t: tier_jumps(POLICIES, t, "ingress") for t in ("Admin", "Baseline")}
    names = [name for name, _, _ in direction_tiers("ingress", jumps)]
    assert names == ["cali-admin-in", "cali-baseline-in", "cali-cnp-in"]
    (_, _, rules) = direction_tiers("ingress", jumps)[-1]
    assert [r.rsplit(" -j ", 1)[1] for r in rules] == [
        "cali-admin-in", "RETURN", "cali-baseline-in", SET_ACCEPT[3:],
    ]  # fmt: skip
    assert ACCEPT_MATCH in rules[1], "accepted by the Admin tier: Baseline is not consulted"
    assert "no ClusterNetworkPolicy denied: allow" in rules[-1], (
        "Admin Pass, a Baseline Accept or Pass, or no decision: allowed"
    )


def test_one_tier_alone_and_none() -> None:
    egress = {t: tier_jumps(POLICIES, t, "egress") for t in ("Admin", "Baseline")}
    (_, (_, _, rules)) = direction_tiers("egress", egress)
    assert [r.rsplit(" -j ", 1)[1] for r in rules] == ["cali-admin-out", SET_ACCEPT[3:]]
    assert direction_tiers("egress", {}) == [], "no policy: no tier chain"
    assert set(CNP_ONLY_CHAINS.values()) == {"cali-cnp-in", "cali-cnp-out"}
