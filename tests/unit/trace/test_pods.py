"""The pods file of `calicc trace`: loading, located errors, and address prediction == IPAM."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from calicc.agent.cni.node import ipam_store
from calicc.compiler.errors import SpecError
from calicc.contract.node import CLUSTER_READS, CniNode, read_node
from calicc.trace import pods_spec
from calicc.trace.addresses import predict_addresses
from calicc.trace.pods import (
    NamedPort,
    PodsFile,
    TracePod,
    load_pods,
    pods_on,
)
from calicc.trace.pods_cache import cache_dir
from tests.conftest import EXAMPLES

DEMO_NODES = ("node-1", "node-2")
MINIKUBE = ("minikube", "minikube-m02", "minikube-m03")


def node_facts(example: str, node: str) -> CniNode:
    """The node's facts as the CNI reads them, from an example's rendered tree."""
    tree = EXAMPLES / example / "rendered"
    raw = (tree / "nodes" / node / "node.json").read_bytes()
    return read_node(raw, {rel: (tree / rel).read_bytes() for rel in CLUSTER_READS})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pods.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path, nodes: tuple[str, ...] = DEMO_NODES) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_pods(path, nodes)
    return [str(p) for p in caught.value.problems]


def many(tmp_path: Path, count: int, node: str, extra: str = "") -> PodsFile:
    body = "".join(f"  - {{name: p{i}, node: {node}}}\n" for i in range(count))
    path = tmp_path / "pods.yaml"
    path.write_text("pods:\n" + extra + body)
    return load_pods(path, MINIKUBE + DEMO_NODES + ("node-3",))


def ipam_hands_out(tmp_path: Path, facts: CniNode, count: int) -> list[tuple[str, ...]]:
    """What the real IPAM store of a fresh node hands out to `count` pods, in order."""
    store = ipam_store(tmp_path / "state", facts)
    claims = [store.claim(f"k8s-pod-network.c{i}", f"c{i}", "eth0", {}) for i in range(count)]
    return [tuple(str(a.address) for a in claim.allocations) for claim in claims]


def shown(predicted: dict[str, tuple[IPv4Address | IPv6Address, ...]]) -> list[tuple[str, ...]]:
    return [tuple(str(a) for a in addresses) for addresses in predicted.values()]


# --- the example file ---------------------------------------------------------------------------


def test_example_pods_file_loads() -> None:
    path = EXAMPLES / "policies-demo" / "pods.yaml"
    pods = load_pods(path, DEMO_NODES)
    by_key = {pod.key: pod for pod in pods.pods}
    web = by_key["shop/web-1"]
    assert web.node == "node-1"
    assert web.labels == {"app": "web", "tier": "frontend"}
    assert NamedPort("http", 8080, "TCP") in web.ports
    assert web.ips == ()
    assert path.read_text().splitlines()[web.line - 1].strip() == "- name: web-1"
    assert by_key["monitoring/prometheus"].ips == (ip_address("10.250.0.130"),)
    assert by_key["default/debug"].namespace == "default"
    assert {pod.node for pod in pods.pods} == set(DEMO_NODES)
    assert pods.namespaces["shop"] == {"team": "shop", "kubernetes.io/metadata.name": "shop"}
    assert pods.namespaces["demo"] == {"kubernetes.io/metadata.name": "demo"}  # has pods only
    assert [p.key for p in pods_on(pods, "node-2")][:2] == ["demo/client", "shop/web-2"]


def test_example_pods_get_addresses_of_their_nodes() -> None:
    pods = load_pods(EXAMPLES / "policies-demo" / "pods.yaml", DEMO_NODES)
    node_2 = predict_addresses(pods_on(pods, "node-2"), node_facts("policies-demo", "node-2"))
    assert node_2["demo/client"] == (ip_address("10.244.0.129"),)  # .128 is the tunnel's
    assert node_2["monitoring/prometheus"] == (ip_address("10.250.0.130"),)


def test_defaults_and_ipv4_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pods:
          - name: a
            node: node-1
            ips: [fd00:244::5, 10.244.0.5]
            ports: [{name: dns, port: 53, protocol: UDP}, {name: web, port: 80}]
        """,
    )
    (pod,) = load_pods(path, DEMO_NODES).pods
    assert pod == TracePod(
        namespace="default",
        name="a",
        node="node-1",
        labels={},
        ports=(NamedPort("dns", 53, "UDP"), NamedPort("web", 80, "TCP")),
        ips=(ip_address("10.244.0.5"), ip_address("fd00:244::5")),
        line_at=lambda: 0,  # not compared: the line is looked up when asked
        path=path,
    )
    assert pod.key == "default/a"
    assert pod.line == 2


# --- errors -------------------------------------------------------------------------------------

BAD = {
    "unknown key": (
        "  - {name: a, node: node-1, lables: {}}",
        "pods[0].lables: unknown key; did you mean 'labels'?",
    ),
    "pod name": ("  - {name: Web_1, node: node-1}", "pods[0].name: 'Web_1' is not a DNS-1123"),
    "namespace": ("  - {name: a, namespace: a.b, node: node-1}", "pods[0].namespace: 'a.b'"),
    "missing node": ("  - {name: a}", "pods[0].node: required field is missing"),
    "label key": ("  - {name: a, node: node-1, labels: {-x: y}}", "labels.-x: label key '-x'"),
    "label value": ("  - {name: a, node: node-1, labels: {x: -y}}", "labels.x: label value '-y'"),
    "port 0": ("  - {name: a, node: node-1, ports: [{name: h, port: 0}]}", "ports[0].port:"),
    "port too big": (
        "  - {name: a, node: node-1, ports: [{name: h, port: 65536}]}",
        "pods[0].ports[0].port: Input should be less than or equal to 65535",
    ),
    "port name": (
        "  - {name: a, node: node-1, ports: [{name: HTTP_1, port: 80}]}",
        "ports[0].name: port name 'HTTP_1' is not an IANA service name",
    ),
    "port name too long": (
        "  - {name: a, node: node-1, ports: [{name: a-very-long-port-name, port: 80}]}",
        "ports[0].name: port name 'a-very-long-port-name' is not an IANA",
    ),
    "protocol": (
        "  - {name: a, node: node-1, ports: [{name: h, port: 1, protocol: ICMP}]}",
        "ports[0].protocol: Input should be 'TCP', 'UDP' or 'SCTP'",
    ),
    "address": (
        "  - {name: a, node: node-1, ips: [10.0.0.300]}",
        "pods[0].ips[0]: expected an IPv4 or IPv6 address",
    ),
    "two of a family": (
        "  - {name: a, node: node-1, ips: [10.244.0.5, 10.244.0.6]}",
        "pods[0].ips: a pod has at most one IPv4 address (got 10.244.0.5, 10.244.0.6)",
    ),
    "unknown node": (
        "  - {name: a, node: node-9}",
        "pods[0].node: 'node-9' is not a node of the cluster; use one of: node-1, node-2",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pod_is_located(tmp_path: Path, case: str) -> None:
    entry, expected = BAD[case]
    path = write(tmp_path, f"pods:\n  - {{name: fine, node: node-1}}\n{entry}\n")
    expected = expected.replace("pods[0]", "pods[1]")
    (found,) = problems(path)
    assert found.startswith(f"{path}:3:"), found
    assert expected in found, found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pods:
          - name: a
            node: node-1
            ports:
              - {name: http, port: 99999}
          - name: B
            node: node-1
        """,
    )
    found = problems(path)
    assert len(found) == 2
    assert found[0].startswith(f"{path}:5:")
    assert "pods[0].ports[0].port: Input should be less than or equal to 65535" in found[0]
    assert found[1].startswith(f"{path}:6:")
    assert "pods[1].name: 'B' is not a DNS-1123 subdomain" in found[1]


def test_unknown_node_lists_a_few_nodes(tmp_path: Path) -> None:
    path = write(tmp_path, "pods:\n  - {name: a, node: nowhere}\n")
    nodes = tuple(f"n{i:02}" for i in range(40))
    (found,) = problems(path, nodes)
    assert "use one of: n00, n01, n02, n03, n04, ..." in found
    assert "n05" not in found


def test_duplicate_pod(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pods:
          - {name: a, namespace: shop, node: node-1}
          - {name: a, namespace: demo, node: node-1}
          - {name: a, namespace: shop, node: node-2}
        """,
    )
    (found,) = problems(path)
    assert found.startswith(f"{path}:4:")
    assert "pods[2].name: pod shop/a is listed twice (also at line 2)" in found


def test_same_explicit_ip_twice(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pods:
          - {name: a, node: node-1, ips: [10.244.0.5]}
          - {name: b, node: node-2, ips: [10.244.0.5]}
        """,
    )
    (found,) = problems(path)
    assert found.startswith(f"{path}:3:")
    assert "pods[1].ips: 10.244.0.5 is also pod default/a's address" in found


def test_duplicate_port_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pods:
          - name: a
            node: node-1
            ports:
              - {name: http, port: 80}
              - {name: http, port: 8080}
        """,
    )
    (found,) = problems(path)
    assert found.startswith(f"{path}:6:")
    assert "pods[0].ports[1].name: port name 'http' is used twice" in found


def test_namespace_labels_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        namespaces:
          Bad: {}
          web: {team: -x}
        pods: []
        """,
    )
    bad_name, bad_value = problems(path)
    assert bad_name.startswith(f"{path}:2:")
    assert "namespaces.Bad: 'Bad' is not a DNS-1123 label" in bad_name
    assert bad_value.startswith(f"{path}:3:")
    assert "namespaces.web.team: label value '-x'" in bad_value


def test_namespace_name_label_is_kubernetes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        namespaces:
          shop: {team: shop}
          web: {kubernetes.io/metadata.name: other}
        pods: []
        """,
    )
    (found,) = problems(path)
    assert found.startswith(f"{path}:3:")
    assert "namespaces.web.kubernetes.io/metadata.name: Kubernetes sets this label" in found
    fine = write(tmp_path, "namespaces:\n  web: {kubernetes.io/metadata.name: web}\npods: []\n")
    assert load_pods(fine, DEMO_NODES).namespaces == {"web": {"kubernetes.io/metadata.name": "web"}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- {name: a, node: node-1}\n", ":1:1: expected a mapping with `pods:`"),
        ("", ": expected a mapping with `pods:`"),
        ("namespaces: {}\n", ":1:1: pods: required field is missing"),
        ("pods: {name: a}\n", ":1:1: pods: Input should be a valid tuple"),
        ("pods:\n  - {name: a\n", ":3:1: YAML syntax error"),
    ],
)
def test_not_a_pods_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text(text)
    (found,) = problems(path)
    assert found.startswith(f"{path}{expected}"), found


def test_missing_file(tmp_path: Path) -> None:
    (found,) = problems(tmp_path / "absent.yaml")
    assert "cannot read file" in found


# --- prediction ---------------------------------------------------------------------------------


def test_prediction_is_what_ipam_hands_out(tmp_path: Path) -> None:
    facts = node_facts("minikube-ipip", "minikube")
    pods = many(tmp_path, 127, "minikube")  # every address the node has
    predicted = predict_addresses(pods.pods, facts)
    assert list(predicted) == [pod.key for pod in pods.pods]
    assert shown(predicted) == ipam_hands_out(tmp_path, facts, 127)
    assert predicted["default/p0"] == (ip_address("10.244.0.1"),)  # not the tunnel's .0


def test_dual_stack_pods_get_one_address_per_family(tmp_path: Path) -> None:
    facts = node_facts("dual-stack-mesh", "node-2")
    pods = many(tmp_path, 5, "node-2")
    predicted = predict_addresses(pods.pods, facts)
    assert predicted["default/p0"] == (ip_address("10.244.0.128"), ip_address("fd00:244::80"))
    assert shown(predicted) == ipam_hands_out(tmp_path, facts, 5)


def test_explicit_addresses_are_skipped_by_predictions(tmp_path: Path) -> None:
    facts = node_facts("minikube-ipip", "minikube")
    pods = many(
        tmp_path, 3, "minikube", extra="  - {name: pinned, node: minikube, ips: [10.244.0.2]}\n"
    )
    predicted = predict_addresses(pods.pods, facts)
    assert shown(predicted) == [("10.244.0.2",), ("10.244.0.1",), ("10.244.0.3",), ("10.244.0.4",)]


def test_explicit_ipv4_on_dual_stack_node_gets_an_ipv6_predicted(tmp_path: Path) -> None:
    facts = node_facts("dual-stack-mesh", "node-1")
    pods = many(tmp_path, 1, "node-1", extra="  - {name: half, node: node-1, ips: [10.244.0.0]}\n")
    predicted = predict_addresses(pods.pods, facts)
    assert shown(predicted) == [("10.244.0.0", "fd00:244::"), ("10.244.0.1", "fd00:244::1")]


def test_tunnel_address_is_never_predicted_nor_taken(tmp_path: Path) -> None:
    facts = node_facts("minikube-ipip", "minikube-m02")
    assert facts.tunnel_address == ip_address("10.244.0.128")
    pods = many(tmp_path, 127, "minikube-m02")
    assert all(facts.tunnel_address not in a for a in predict_addresses(pods.pods, facts).values())
    pinned = many(
        tmp_path,
        0,
        "minikube-m02",
        extra="  - {name: t, node: minikube-m02, ips: [10.244.0.128]}\n",
    )
    with pytest.raises(SpecError) as caught:
        predict_addresses(pinned.pods, facts)
    (found,) = (str(p) for p in caught.value.problems)
    assert found.startswith(f"{pinned.path}:2: ips: 10.244.0.128 is node minikube-m02's tunnel")


def test_explicit_address_outside_the_nodes_blocks(tmp_path: Path) -> None:
    facts = node_facts("minikube-ipip", "minikube")
    extra = "  - {name: x, node: minikube}\n  - {name: y, node: minikube, ips: [10.244.0.130]}\n"
    pods = many(tmp_path, 0, "minikube", extra=extra)
    with pytest.raises(SpecError) as caught:
        predict_addresses(pods.pods, facts)
    (found,) = (str(p) for p in caught.value.problems)
    assert found.startswith(f"{pods.path}:3: ips: 10.244.0.130 is not in a block of node minikube")
    assert "10.244.0.0/26, 10.244.0.64/26" in found


def test_explicit_address_of_a_family_the_node_lacks(tmp_path: Path) -> None:
    facts = node_facts("minikube-ipip", "minikube")
    pods = many(tmp_path, 0, "minikube", extra="  - {name: y, node: minikube, ips: [fd00::5]}\n")
    with pytest.raises(SpecError, match="its blocks: none of IPv6"):
        predict_addresses(pods.pods, facts)


def test_node_running_out_of_addresses(tmp_path: Path) -> None:
    facts = node_facts("minikube-ipip", "minikube")
    pods = many(tmp_path, 128, "minikube")
    with pytest.raises(SpecError) as caught:
        predict_addresses(pods.pods, facts)
    (found,) = (str(p) for p in caught.value.problems)
    assert found.startswith(f"{pods.path}:129: node: pod default/p127 gets no IPv4 address")
    assert "hands out 127 (blocks: 10.244.0.0/26, 10.244.0.64/26)" in found


def test_pods_on_keeps_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        pods:
          - {name: c, node: node-2}
          - {name: b, node: node-1}
          - {name: a, node: node-2}
        """,
    )
    pods = load_pods(path, DEMO_NODES)
    assert [p.name for p in pods_on(pods, "node-2")] == ["c", "a"]
    assert pods_on(pods, "node-3") == ()


def test_predicted_types() -> None:
    pods = load_pods(EXAMPLES / "policies-demo" / "pods.yaml", DEMO_NODES)
    predicted = predict_addresses(pods_on(pods, "node-1"), node_facts("policies-demo", "node-1"))
    assert all(isinstance(a, IPv4Address | IPv6Address) for v in predicted.values() for a in v)


def test_pods_of_another_node_are_refused(tmp_path: Path) -> None:
    pods = many(tmp_path, 1, "minikube-m02")
    with pytest.raises(ValueError, match=r"\['default/p0'\] are not on node minikube"):
        predict_addresses(pods.pods, node_facts("minikube-ipip", "minikube"))


def test_pods_are_hashable() -> None:
    pods = load_pods(EXAMPLES / "policies-demo" / "pods.yaml", DEMO_NODES)
    assert len(set(pods.pods)) == len(pods.pods)


# --- the cache of checked pods files ------------------------------------------------------------


def test_a_file_read_before_comes_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path, "pods:\n  - {name: a, node: node-1, labels: {app: x}, ips: [10.244.0.9]}\n"
    )
    first = load_pods(path, DEMO_NODES)
    assert list(cache_dir().glob("*.json")), "checked pods are kept"

    def no_yaml(_: Path, __: object) -> None:
        raise AssertionError("read the YAML again")

    monkeypatch.setattr(pods_spec, "read_pods", no_yaml)
    again = load_pods(path, DEMO_NODES)
    assert again == first
    assert again.namespaces == first.namespaces
    assert again.pods[0].labels == {"app": "x"}


def test_a_changed_file_or_an_unknown_node_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, "pods:\n  - {name: a, node: node-1}\n")
    load_pods(path, DEMO_NODES)
    path.write_text("pods:\n  - {name: b, node: node-2}\n")
    assert [p.name for p in load_pods(path, DEMO_NODES).pods] == ["b"]
    (found,) = problems(path, ("node-1",))
    assert found.startswith(f"{path}:2:")
    assert "'node-2' is not a node of the cluster" in found


def test_a_cached_pod_still_locates_its_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pods:\n  - {name: a, node: minikube}\n  - {name: b, node: minikube, ips: [192.0.2.1]}\n",
    )
    load_pods(path, MINIKUBE)
    cached = load_pods(path, MINIKUBE)
    assert cached.pods[1].line == 3
    with pytest.raises(SpecError, match=r"pods\.yaml:3"):
        predict_addresses(pods_on(cached, "minikube"), node_facts("minikube-ipip", "minikube"))
