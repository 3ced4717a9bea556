"""The Kubernetes API in the cluster file: rendered into every conflist, never a credential;
without it, a policy that needs the API (named ports, namespace selectors) is warned about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calicc.compiler.build import compile_cluster
from calicc.compiler.render import render_cluster
from calicc.contract.names import CLUSTER_KUBECONFIG, CONFLIST, install_path
from tests.support.clusters import BASE, load, node_file, plan_of, problems

KUBECONFIG = "/etc/cni/net.d/calicc-kubeconfig"
POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from: [{namespaceSelector: {matchLabels: {team: a}}}]
      ports: [{protocol: TCP, port: http}]
"""
PLAIN = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: plain, namespace: shop}
spec:
  podSelector: {}
  ingress:
    - from: [{podSelector: {matchLabels: {app: a}}}]
      ports: [{protocol: TCP, port: 80}]
"""


def calicc_plugin(text: str) -> dict[str, Any]:
    plugin: dict[str, Any] = json.loads(text)["plugins"][0]
    return plugin


def test_the_kubeconfig_path_is_in_every_conflist(tmp_path: Path) -> None:
    data = {**BASE, "kubernetes": {"kubeconfig": KUBECONFIG}}
    data["nodes"] = [*BASE["nodes"], {"name": "n4", "address": "10.0.0.4/24", "link_mtu": 9000}]
    plan = plan_of(tmp_path, data)
    conflists = {node_file(plan, n.name, CONFLIST) for n in plan.nodes}
    assert len(conflists) == 2  # two pod MTUs, one file each
    for text in conflists:
        assert calicc_plugin(text)["kubernetes"] == {"kubeconfig": KUBECONFIG}


def test_without_the_api_no_kubernetes_key(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, BASE)
    assert "kubernetes" not in calicc_plugin(node_file(plan, "n1", CONFLIST))


def test_a_kubeconfig_that_is_not_an_absolute_path_is_refused(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "name: t",
            "network_cidr: 10.244.0.0/16",
            "kubernetes:",
            "  kubeconfig: etc/kube.conf",
            "nodes: [{name: n1, address: 10.0.0.1/24}]",
        ]
    )
    [message] = problems(tmp_path, text)
    assert ":4:" in message
    assert "kubernetes.kubeconfig" in message
    assert "absolute path" in message


def test_a_credential_key_is_refused(tmp_path: Path) -> None:
    data = {**BASE, "kubernetes": {"kubeconfig": KUBECONFIG, "token": "secret"}}
    [message] = problems(tmp_path, data)
    assert "kubernetes.token: unknown key" in message
    assert "secret" not in message  # the value is never echoed


def warnings_of(tmp_path: Path, data: dict[str, Any], *policies: str) -> tuple[str, ...]:
    (tmp_path / "policies").mkdir(exist_ok=True)
    for number, text in enumerate(policies):
        (tmp_path / "policies" / f"p{number}.yaml").write_text(text)
    inputs = load(tmp_path, {**data, "policies": ["policies/*.yaml"]})
    return compile_cluster(inputs).plan.warnings


def test_a_policy_needing_the_api_is_warned_about_by_file_and_line(tmp_path: Path) -> None:
    [warning] = warnings_of(tmp_path, BASE, POLICY, PLAIN)
    assert warning.startswith("p0.yaml:1: policy shop/web uses named port TCP/http")
    assert "namespace selectors" in warning
    assert "kubernetes: {kubeconfig: PATH}" in warning


def test_with_the_api_no_warning(tmp_path: Path) -> None:
    data = {**BASE, "kubernetes": {"kubeconfig": KUBECONFIG}}
    assert warnings_of(tmp_path, data, POLICY) == ()


def test_a_policy_without_named_ports_or_namespace_selectors_is_not_warned(
    tmp_path: Path,
) -> None:
    assert warnings_of(tmp_path, BASE, PLAIN) == ()


SERVER = {
    "server": "https://10.0.0.1:6443",
    "certificate_authority": "/etc/kubernetes/pki/ca.crt",
    "token_file": "/var/lib/calicc/api-token",
}


def test_a_server_ca_and_token_file_become_a_kubeconfig_of_paths(tmp_path: Path) -> None:
    from calicc.agent.cni.kube import load_kubeconfig

    plan = plan_of(tmp_path, {**BASE, "kubernetes": SERVER})
    text = render_cluster(plan)[CLUSTER_KUBECONFIG]
    (tmp_path / "kubeconfig").write_text(text)
    cluster, user = load_kubeconfig(tmp_path / "kubeconfig")  # as the plugin and agent read it
    assert cluster == {
        "server": "https://10.0.0.1:6443",
        "certificate-authority": "/etc/kubernetes/pki/ca.crt",
    }
    assert user == {"tokenFile": "/var/lib/calicc/api-token"}
    plugin = calicc_plugin(node_file(plan, "n1", CONFLIST))
    assert plugin["kubernetes"] == {"kubeconfig": "/" + install_path(CLUSTER_KUBECONFIG)}


def test_a_kubeconfig_path_writes_no_cluster_kubeconfig(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, {**BASE, "kubernetes": {"kubeconfig": KUBECONFIG}})
    assert CLUSTER_KUBECONFIG not in render_cluster(plan)


@pytest.mark.parametrize(
    ("api", "says"),
    [
        ({"kubeconfig": KUBECONFIG, **SERVER}, "either kubeconfig"),
        ({}, "either kubeconfig"),
        ({"kubeconfig": KUBECONFIG, "token_file": "/t"}, "go with server"),
        ({"server": "ftp://10.0.0.1"}, "is not an API server URL"),
        ({"server": "https://10.0.0.1:6443 --insecure"}, "is not an API server URL"),
        ({"server": "https://api.example.com", "token_file": "t"}, "absolute path"),
    ],
)
def test_bad_api_settings_are_refused_by_field(
    tmp_path: Path, api: dict[str, str], says: str
) -> None:
    [message] = problems(tmp_path, {**BASE, "kubernetes": api})
    assert "kubernetes" in message
    assert says in message
