"""Endpoint chains with ClusterNetworkPolicies: which bind a pod (namespace labels), the
order of the tiers (Admin, NetworkPolicy, Baseline), Pass skipping the rest of a tier, and
Baseline only for pods no NetworkPolicy selects."""

from __future__ import annotations

from calicc.contract.endpoint import PodPolicies, endpoint_rules, policies_for_pod
from calicc.contract.manifest import PolicyBinding
from calicc.contract.syntax import CLEAR_PASS, NOT_PASSED

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
    return [r.rsplit(" -j ", 1)[1].split()[0] if " -j " in r else r for r in rules]


def test_admin_then_netpol_then_default_deny_without_baseline() -> None:
    pod = policies_for_pod(BINDINGS, "shop", {"app": "web"}, {"team": "red"})
    rules = tw_rules(pod)
    assert targets(rules)[3:] == [
        "cali-ai-asame", "RETURN", "cali-ai-bsame", "RETURN", "cali-ai-zlate", "RETURN",
        "cali-pi-np", "RETURN", "DROP",
    ]  # fmt: skip
    admin_jumps = [r for r in rules if "-j cali-ai-" in r]
    assert all(NOT_PASSED in r for r in admin_jumps), "a Pass skips the remaining Admin chains"
    assert not any("cali-bi-" in r for r in rules), "a NetworkPolicy selects the pod: no Baseline"
    assert all("-m mark --mark 0x10000/0x10000" in r for r in rules[4:10:2])


def test_baseline_after_admin_when_no_netpol_selects() -> None:
    pod = policies_for_pod(BINDINGS, "dev", {}, {"team": "blue"})
    rules = tw_rules(pod)
    assert targets(rules)[3:] == [
        "cali-ai-bsame", "RETURN", "cali-ai-zlate", "RETURN",
        "MARK", "cali-bi-base", "RETURN", "MARK",
    ]  # fmt: skip
    assert CLEAR_PASS in rules[7], "the Admin tier's pass mark must not skip Baseline chains"
    assert NOT_PASSED in rules[8]
    assert rules[-1].endswith("-j MARK --set-xmark 0x10000/0x10000"), "nothing decided: allow"
    assert "no Baseline policy decided: allow" in rules[-1]


def test_baseline_alone_needs_no_pass_clearing() -> None:
    base = (cnp("base", "Baseline", 5, ALL, egress_chain="cali-bo-base"),)
    rules = endpoint_rules(IFACE, policies_for_pod(base, "dev", {}, {})).rules
    fw = [r for r in rules if r.startswith(f"-A cali-fw-{IFACE} ")]
    assert CLEAR_PASS not in "\n".join(fw)
    assert targets(fw)[-3:] == ["cali-bo-base", "RETURN", "MARK"]


def test_without_cnps_the_chains_are_unchanged() -> None:
    plain = policies_for_pod(BINDINGS[-1:], "shop", {"app": "web"}, {})
    assert targets(tw_rules(plain))[3:] == ["cali-pi-np", "RETURN", "DROP"]
    assert targets(tw_rules(PodPolicies()))[3:] == ["MARK"]
