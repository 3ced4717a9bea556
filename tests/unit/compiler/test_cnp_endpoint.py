"""Endpoint chains with ClusterNetworkPolicies: which bind a pod (namespace labels), the
order of the tiers (Admin, NetworkPolicy, Baseline), one jump per tier chain (which holds the
policies: test_cnp_tiers.py), and Baseline only for pods no NetworkPolicy selects."""

from __future__ import annotations

import re

from calicc.contract.endpoint import PodPolicies, endpoint_rules, policies_for_pod
from calicc.contract.manifest import PolicyBinding
from calicc.contract.syntax import ACCEPT_MATCH, NOT_ACCEPTED

ALL: dict[str, object] = {"matchExpressions": [], "matchLabels": {}}
IFACE = "cali0123456789a"


def sel(**labels: str) -> dict[str, object]:
    return {"matchExpressions": [], "matchLabels": labels}


def cnp(
    name: str, tier: str, priority: int, spaces: dict[str, object], **chains: str
) -> PolicyBinding:
    return PolicyBinding(
        tier=tier, priority=priority, name=name, namespace_selector=spaces, pod_selector=ALL,
        **chains,
    )  # fmt: skip


BINDINGS = (
    cnp("z-late", "Admin", 50, ALL, ingress_chain="cali-ai-zlate"),
    cnp("b-same", "Admin", 10, ALL, ingress_chain="cali-ai-bsame"),
    cnp("a-same", "Admin", 10, sel(team="red"), ingress_chain="cali-ai-asame"),
    cnp("base", "Baseline", 5, ALL, ingress_chain="cali-bi-base", egress_chain="cali-bo-base"),
    cnp(
        "by-name",
        "Admin",
        1,
        sel(**{"kubernetes.io/metadata.name": "shop"}),
        egress_chain="cali-ao-byname",
    ),
    PolicyBinding(
        namespace="shop", name="np", pod_selector=sel(app="web"), ingress_chain="cali-pi-np"
    ),
)


def chains(pairs: tuple[tuple[str, str], ...]) -> list[str]:
    return [c for c, _ in pairs]


def test_cnps_select_by_namespace_labels_and_sort_by_priority_then_name() -> None:
    red = policies_for_pod(BINDINGS, "dev", {}, {"team": "red"})
    assert chains(red.admin_ingress) == ["cali-ai-asame", "cali-ai-bsame", "cali-ai-zlate"]
    blue = policies_for_pod(BINDINGS, "dev", {}, {"team": "blue"})
    assert chains(blue.admin_ingress) == ["cali-ai-bsame", "cali-ai-zlate"]
    assert chains(blue.baseline_ingress) == ["cali-bi-base"]
    assert chains(blue.baseline_egress) == ["cali-bo-base"]
    assert blue.ingress == blue.egress == blue.admin_egress == ()


def test_namespace_name_label_is_implied() -> None:
    """Kubernetes labels every namespace kubernetes.io/metadata.name=<name>; runtimes may not."""
    shop = policies_for_pod(BINDINGS, "shop", {"app": "web"}, None)
    assert chains(shop.admin_egress) == ["cali-ao-byname"]
    assert chains(shop.ingress) == ["cali-pi-np"]
    assert policies_for_pod(BINDINGS, "dev", {}, {}).admin_egress == ()
    assert shop.admin_ingress[0][1] == "Admin ClusterNetworkPolicy b-same (priority 10)"


def tw_rules(policies: PodPolicies) -> list[str]:
    rules = endpoint_rules(IFACE, policies).rules
    return [r for r in rules if r.startswith(f"-A cali-tw-{IFACE} ")]


def targets(rules: list[str]) -> list[str]:
    return [re.split(" -[jg] ", r)[1].split()[0] if re.search(" -[jg] ", r) else r for r in rules]


def test_admin_then_netpol_then_default_deny_without_baseline() -> None:
    pod = policies_for_pod(BINDINGS, "shop", {"app": "web"}, {"team": "red"})
    rules = tw_rules(pod)
    assert targets(rules)[3:] == ["cali-admin-in", "cali-pi-np", "RETURN", "DROP"]
    assert NOT_ACCEPTED in rules[4], "accepted by the Admin tier: no NetworkPolicy is consulted"
    assert ACCEPT_MATCH in rules[5], "and the return fires at once"
    assert not any("cali-baseline-" in r or "cali-cnp-" in r for r in rules), (
        "a NetworkPolicy selects the pod: no Baseline"
    )


def test_without_netpol_the_tiers_decide_then_allow() -> None:
    """cali-cnp-in: Admin, unless it accepted Baseline, then allow (test_cnp_tiers.py)."""
    pod = policies_for_pod(BINDINGS, "dev", {}, {"team": "blue"})
    rules = tw_rules(pod)
    assert targets(rules)[3:] == ["cali-cnp-in"]
    assert " -g cali-cnp-in" in rules[-1], "the shared chain ends the endpoint's evaluation"


def test_baseline_alone() -> None:
    base = (cnp("base", "Baseline", 5, ALL, egress_chain="cali-bo-base"),)
    rules = endpoint_rules(IFACE, policies_for_pod(base, "dev", {}, {})).rules
    fw = [r for r in rules if r.startswith(f"-A cali-fw-{IFACE} ")]
    assert targets(fw)[-1] == "cali-cnp-out"
    tw = [r for r in rules if r.startswith(f"-A cali-tw-{IFACE} ")]
    assert "no ingress policy selects" in tw[-1], "no ingress policy: no tier"


def test_one_jump_per_tier_whatever_the_number_of_policies() -> None:
    red = endpoint_rules(IFACE, policies_for_pod(BINDINGS, "shop", {"app": "web"}, {"team": "red"}))
    one = (BINDINGS[1], BINDINGS[3], BINDINGS[5])  # b-same, the Baseline policy, np
    web = endpoint_rules(IFACE, policies_for_pod(one, "shop", {"app": "web"}, {"team": "blue"}))
    assert red.rules == web.rules, "3 Admin policies or 1: the same endpoint chains"


def test_a_pod_no_cnp_selects_pays_nothing_for_them() -> None:
    no_base = BINDINGS[:3] + BINDINGS[4:]
    pod = policies_for_pod(no_base, "dev", {}, {"team": "blue"})
    fw = [r for r in endpoint_rules(IFACE, pod).rules if r.startswith(f"-A cali-fw-{IFACE} ")]
    assert not any(" -g " in r or "cali-admin-" in r for r in fw), "by-name selects shop only"
    assert fw == list(endpoint_rules(IFACE, PodPolicies()).rules[: len(fw)])


def test_without_cnps_the_chains_are_unchanged() -> None:
    plain = policies_for_pod(BINDINGS[-1:], "shop", {"app": "web"}, {})
    assert targets(tw_rules(plain))[3:] == ["cali-pi-np", "RETURN", "DROP"]
    assert targets(tw_rules(PodPolicies()))[3:] == ["MARK"]
