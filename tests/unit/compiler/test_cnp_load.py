"""ClusterNetworkPolicy loading: what the upstream v1alpha2 validation rejects fails with
file, line and field; valid documents load beside NetworkPolicies."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.policy.cnp_model import ClusterNetworkPolicy
from calicc.compiler.policy.load import load_policy_file

HEAD = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata:
  name: cnp
spec:
"""
SUBJECT = "  subject:\n    namespaces: {}\n"
VALID = "  tier: Admin\n  priority: 10\n" + SUBJECT


def problems_of(tmp_path: Path, body: str, head: str = HEAD) -> list[str]:
    path = tmp_path / "cnp.yaml"
    path.write_text(head + body)
    loaded, problems = load_policy_file(path)
    assert problems, f"expected problems, loaded {loaded}"
    return [str(p) for p in problems]


def ingress(rule: str) -> str:
    return VALID + "  ingress:\n" + rule


FROM_ALL = "      from:\n        - namespaces: {}\n"


@pytest.mark.parametrize(
    ("body", "where", "text"),
    [
        (
            "  tier: Platform\n  priority: 1\n" + SUBJECT,
            ":6:",
            "spec.tier: Input should be 'Admin'",
        ),
        ("  tier: Admin\n  priority: 1001\n" + SUBJECT, ":7:", "spec.priority"),
        ("  tier: Admin\n  priority: -1\n" + SUBJECT, ":7:", "greater than or equal to 0"),
        ("  tier: Admin\n" + SUBJECT, ":5:", "spec.priority: required field is missing"),
        ("  tier: Admin\n  priority: 1\n", ":5:", "spec.subject: required field is missing"),
        (
            "  tier: Admin\n  priority: 1\n  subject: {}\n",
            ":8:",
            "subject takes exactly one of namespaces, pods; got none",
        ),
        (
            "  tier: Admin\n  priority: 1\n  subject:\n    namespaces: {}\n"
            "    pods: {podSelector: {}}\n",
            ":8:",
            "got namespaces, pods",
        ),
        (
            "  tier: Admin\n  priority: 1\n  subject:\n    pods: {namespaceSelector: {}}\n",
            ":9:",
            "spec.subject.pods.podSelector: required field is missing",
        ),
        (ingress("    - action: Allow\n" + FROM_ALL), ":11:", "spec.ingress[0].action"),
        (ingress("    - action: Deny\n"), ":11:", "spec.ingress[0].from: required field"),
        (ingress("    - action: Deny\n      from: []\n"), ":12:", "at least 1 item"),
        (
            ingress("    - action: Deny\n      from:\n        - {}\n"),
            ":13:",
            "a peer takes exactly one of namespaces, pods; got none",
        ),
        (
            ingress("    - action: Deny\n      name: " + "x" * 101 + "\n" + FROM_ALL),
            ":12:",
            "spec.ingress[0].name: String should have at most 100 characters",
        ),
        (
            ingress(
                "    - action: Deny\n" + FROM_ALL + "      protocols:\n"
                "        - tcp: {destinationPort: {number: 70000}}\n"
            ),
            ":15:",
            "spec.ingress[0].protocols[0].tcp.destinationPort.number",
        ),
        (
            ingress(
                "    - action: Deny\n" + FROM_ALL + "      protocols:\n"
                "        - tcp: {destinationPort: {number: 0}}\n"
            ),
            ":15:",
            "greater than or equal to 1",
        ),
        (
            ingress(
                "    - action: Deny\n" + FROM_ALL + "      protocols:\n"
                "        - udp: {destinationPort: {range: {start: 90, end: 80}}}\n"
            ),
            ":15:",
            "start 90 must be less than end 80",
        ),
        (
            ingress(
                "    - action: Deny\n" + FROM_ALL + "      protocols:\n"
                "        - udp: {destinationPort: {number: 5, range: {start: 1, end: 9}}}\n"
            ),
            ":15:",
            "a destinationPort takes exactly one of number, range; got number, range",
        ),
        (
            ingress("    - action: Deny\n" + FROM_ALL + "      protocols:\n        - tcp: {}\n"),
            ":15:",
            "give destinationPort",
        ),
        (
            ingress(
                "    - action: Deny\n" + FROM_ALL + "      protocols:\n"
                "        - {tcp: {destinationPort: {number: 1}}, destinationNamedPort: http}\n"
            ),
            ":15:",
            "a protocol takes exactly one of",
        ),
        (
            ingress("    - action: Deny\n" + FROM_ALL + "      protocols: []\n"),
            ":14:",
            "spec.ingress[0].protocols",
        ),
        (
            ingress(
                "    - action: Deny\n" + FROM_ALL + "      protocols:\n"
                "        - destinationNamedPort: Not_A_Name\n"
            ),
            ":15:",
            "not an IANA service name",
        ),
        (
            VALID + "  egress:\n    - action: Deny\n      to:\n        - networks: [fd00::1/8]\n",
            ":13:",
            "'fd00::1/8' is not a network in CIDR form",
        ),
        (
            VALID + "  egress:\n    - action: Deny\n      to:\n        - networks: [10.0.0.1/8]\n",
            ":13:",
            "is not a network in CIDR form",
        ),
        (
            VALID + "  egress:\n    - action: Deny\n      to:\n"
            "        - networks: [10.0.0.0/8, 10.0.0.0/8]\n",
            ":13:",
            "lists a network twice",
        ),
        (
            VALID + "  egress:\n    - action: Accept\n      to:\n"
            "        - domainNames: [example.com]\n",
            ":13:",
            "domainNames peers (the experimental channel) are not supported by calicc",
        ),
        (
            VALID + "  egress:\n    - action: Deny\n      to:\n        - nodes: {}\n",
            ":13:",
            "nodes peers (the experimental channel) are not supported",
        ),
        (
            VALID + "  egress:\n    - action: Deny\n      to:\n        - networks: [10.0.0.0/8]\n"
            "      protocols:\n        - destinationNamedPort: http\n",
            ":11:",
            "a networks peer cannot be combined with destinationNamedPort",
        ),
        (
            VALID
            + "  ingress:\n"
            + "    - action: Deny\n"
            + FROM_ALL * 0
            + "      from:\n"
            + "        - namespaces: {}\n" * 26,
            ":12:",
            "spec.ingress[0].from: Tuple should have at most 25 items",
        ),
        (
            VALID + "  ingress:\n" + ("    - action: Deny\n" + FROM_ALL) * 26,
            ":10:",
            "spec.ingress: Tuple should have at most 25 items",
        ),
        (VALID + "  egres: []\n", ":10:", "unknown key; did you mean 'egress'?"),
    ],
)
def test_invalid_cnp_is_located(tmp_path: Path, body: str, where: str, text: str) -> None:
    found = problems_of(tmp_path, body)
    assert any(where in p and text in p for p in found), found


def test_cluster_scoped_policy_has_no_namespace(tmp_path: Path) -> None:
    head = HEAD.replace("  name: cnp\n", "  name: cnp\n  namespace: demo\n")
    (found,) = problems_of(tmp_path, VALID, head)
    assert "cnp.yaml:5:3: metadata.namespace" in found
    assert "cluster-scoped" in found


def test_v1alpha1_kinds_are_refused_with_their_replacement(tmp_path: Path) -> None:
    head = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n"
    head += "metadata:\n  name: anp\nspec:\n"
    (found,) = problems_of(tmp_path, "  priority: 1\n", head)
    assert "cnp.yaml:2:1: kind" in found
    assert "ClusterNetworkPolicy with tier: Admin" in found


def test_wrong_version_of_cnp_names_the_valid_one(tmp_path: Path) -> None:
    head = HEAD.replace("v1alpha2", "v1alpha1")
    found = problems_of(tmp_path, VALID, head)
    assert any("cnp.yaml:1:1: apiVersion" in p and "v1alpha2" in p for p in found), found


def test_pass_is_valid_in_both_tiers_and_cnps_load_beside_netpols(tmp_path: Path) -> None:
    """v1alpha2 allows Pass in Baseline too (it skips the rest of the Baseline tier)."""
    pass_rule = "  ingress:\n    - action: Pass\n" + FROM_ALL
    text = HEAD + VALID + pass_rule + "---\n" + HEAD.replace("name: cnp", "name: base")
    text += VALID.replace("Admin", "Baseline") + pass_rule
    text += "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    text += "metadata: {name: np, namespace: demo}\nspec: {podSelector: {}}\n"
    path = tmp_path / "mixed.yaml"
    path.write_text(text)
    loaded, problems = load_policy_file(path)
    assert problems == []
    kinds = sorted(type(p.policy).__name__ for p in loaded)
    assert kinds == ["ClusterNetworkPolicy", "ClusterNetworkPolicy", "NetworkPolicy"]
    tiers = [p.policy.spec.tier for p in loaded if isinstance(p.policy, ClusterNetworkPolicy)]
    assert tiers == ["Admin", "Baseline"]


def test_duplicate_cnp_names_are_refused(tmp_path: Path) -> None:
    from calicc.compiler.errors import SpecError
    from calicc.compiler.load import Source
    from calicc.compiler.policy.load import load_policies

    (tmp_path / "a.yaml").write_text(HEAD + VALID)
    (tmp_path / "b.yaml").write_text("# second\n" + HEAD + VALID)
    cluster = Source(tmp_path / "cluster.yaml", {"policies": ["*.yaml"]})
    with pytest.raises(SpecError) as err:
        load_policies(["*.yaml"], tmp_path, cluster)
    (problem,) = err.value.problems
    assert "b.yaml:5:3: metadata.name" in str(problem)
    assert "ClusterNetworkPolicy cnp is defined twice (also a.yaml:1)" in str(problem)
