"""NetworkPolicy loading: every invalid input fails with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.build import load_cluster
from calicc.compiler.errors import SpecError
from calicc.compiler.load import parse_yaml
from calicc.compiler.policy.load import load_policies, load_policy_file

HEAD = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: p
spec:
"""


def problems_of(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "pol.yaml"
    path.write_text(HEAD + body)
    loaded, problems = load_policy_file(path)
    assert problems, f"expected problems, loaded {loaded}"
    return [str(p) for p in problems]


@pytest.mark.parametrize(
    ("body", "where", "text"),
    [
        (
            "  podSelector:\n    matchExpressions:\n      - {key: a, operator: Has}\n",
            ":8:",
            "spec.podSelector.matchExpressions[0].operator",
        ),
        (
            "  podSelector:\n    matchExpressions:\n"
            "      - {key: a, operator: Exists, values: [x]}\n",
            ":8:",
            "takes no values",
        ),
        (
            "  podSelector:\n    matchExpressions:\n      - {key: a, operator: In}\n",
            ":8:",
            "needs a non-empty values list",
        ),
        (
            "  podSelector: {}\n  ingress:\n    - ports:\n        - {protocol: ICMP, port: 1}\n",
            ":9:",
            "spec.ingress[0].ports[0].protocol",
        ),
        (
            "  podSelector: {}\n  ingress:\n    - ports:\n        - {port: 70000}\n",
            ":9:",
            "port 70000 is out of range",
        ),
        (
            "  podSelector: {}\n  ingress:\n    - ports:\n        - {port: 90, endPort: 80}\n",
            ":9:",
            "spec.ingress[0].ports[0].endPort: endPort 80 is below port 90",
        ),
        (
            "  podSelector: {}\n  ingress:\n    - ports:\n        - {port: http, endPort: 80}\n",
            ":9:",
            "needs a numeric port, not named port 'http'",
        ),
        (
            "  podSelector: {}\n  egress:\n    - to:\n        - ipBlock:\n"
            "            cidr: 10.0.0.0/8\n            except: [10.0.0.0/16, 192.168.0.0/24]\n",
            ":11:",
            "spec.egress[0].to[0].ipBlock.except[1]: 192.168.0.0/24 is not inside",
        ),
        (
            "  podSelector: {}\n  ingress:\n    - from:\n        - {}\n",
            ":9:",
            "a peer needs podSelector, namespaceSelector or ipBlock",
        ),
        (
            "  podSelector: {}\n  ingress:\n    - fromm: []\n",
            ":8:",
            "spec.ingress[0].fromm: unknown key; did you mean 'from'?",
        ),
    ],
)
def test_invalid_policy_names_file_line_field(
    tmp_path: Path, body: str, where: str, text: str
) -> None:
    found = problems_of(tmp_path, body)
    assert any(str(tmp_path / "pol.yaml") + where in p and text in p for p in found), found


def test_kind_list_items_are_located(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - apiVersion: networking.k8s.io/v1\n    kind: NetworkPolicy\n"
        "    metadata: {name: ok}\n    spec: {podSelector: {}}\n"
        "  - apiVersion: networking.k8s.io/v1\n    kind: NetworkPolicy\n"
        "    metadata: {name: bad}\n    spec:\n      podSelector: {}\n"
        "      ingress:\n        - ports: [{protocol: TCP, port: 0}]\n"
    )
    loaded, problems = load_policy_file(path)
    assert [p.policy.metadata.name for p in loaded] == ["ok"]
    assert [(p.line, p.field) for p in problems] == [(14, "spec.ingress[0].ports[0].port")]


def test_multi_document_and_namespace_default(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    doc = HEAD + "  podSelector: {}\n"
    path.write_text(doc + "---\n" + doc.replace("name: p", "name: q\n  namespace: prod"))
    loaded, problems = load_policy_file(path)
    assert problems == []
    assert [p.policy.key for p in loaded] == ["default/p", "prod/q"]


def test_duplicate_and_missing_glob(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + "  podSelector: {}\n")
    (tmp_path / "b.yaml").write_text(HEAD + "  podSelector: {}\n")
    cluster = parse_yaml("policies: [x]\n", tmp_path / "cluster.yaml")
    with pytest.raises(SpecError) as err:
        load_policies(["*.yaml", "nothing/*.yaml"], tmp_path, cluster)
    text = str(err.value)
    assert "b.yaml:4:" in text
    assert "defined twice (also a.yaml:1)" in text
    assert "cluster.yaml:1:" in text
    assert "'nothing/*.yaml' matches no file" in text


def test_build_reports_policy_problems_and_digests_policy_files(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    policy = tmp_path / "policies" / "p.yaml"
    policy.write_text(HEAD + "  podSelector: {}\n")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(
        "name: t\nnetwork_cidr: 10.244.0.0/16\nnodes:\n  - {name: n1, address: 10.0.0.1/24}\n"
        "policies: [policies/*.yaml]\n"
    )
    inputs = load_cluster(cluster)
    assert inputs.files == (cluster, policy)
    assert [p.policy.key for p in inputs.policies] == ["default/p"]
    policy.write_text(HEAD + "  podSelector: {}\n  policyTypes: [Sideways]\n")
    with pytest.raises(SpecError, match=r"p\.yaml:7:\d+: spec\.policyTypes\[0\]"):
        load_cluster(cluster)
