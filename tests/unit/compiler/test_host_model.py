"""host_protection and GlobalNetworkPolicy input: each bad value is file:line:field, no build."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.build import compile_cluster, load_cluster
from calicc.compiler.errors import SpecError
from tests.unit.compiler.host_cases import OPEN, build, write


def problems(tmp: Path, policies: str, cluster_edit: tuple[str, str] | None = None) -> str:
    path = write(tmp, policies)
    if cluster_edit:
        path.write_text(path.read_text().replace(*cluster_edit))
    with pytest.raises(SpecError) as info:
        compile_cluster(load_cluster(path))
    return str(info.value)


def test_unknown_action_is_located(tmp_path: Path) -> None:
    text = OPEN.replace("ingress: [{action: Allow}]", "ingress:\n    - action: Accept")
    found = problems(tmp_path, text)
    assert "host.yaml:9:" in found
    assert "spec.ingress[0].action" in found


def test_ports_out_of_range(tmp_path: Path) -> None:
    bad = OPEN.replace(
        "ingress: [{action: Allow}]",
        "ingress:\n    - {action: Allow, protocol: TCP, destination: {ports: [70000]}}",
    )
    assert "spec.ingress[0].destination.ports" in problems(tmp_path, bad)
    failsafe = ("failsafe_inbound: []", "failsafe_inbound: [{protocol: tcp, port: 0}]")
    found = problems(tmp_path, OPEN, failsafe)
    assert "cluster.yaml:10:" in found
    assert "host_protection.failsafe_inbound[0].port" in found


def test_ports_need_a_port_protocol(tmp_path: Path) -> None:
    bad = OPEN.replace(
        "ingress: [{action: Allow}]", "ingress:\n    - {action: Allow, destination: {ports: [80]}}"
    )
    assert "ports need protocol TCP, UDP or SCTP" in problems(tmp_path, bad)


@pytest.mark.parametrize("name", ["eth0-is-far-too-long", "eth/0", "eth 0", "eth0:1", ".."])
def test_interface_that_cannot_exist(tmp_path: Path, name: str) -> None:
    found = problems(tmp_path, OPEN, ('interfaces: ["*"]', f'interfaces: ["{name}"]'))
    assert "host_protection.interfaces[0]" in found
    assert "not an interface name" in found


def test_node_interfaces_are_checked_too(tmp_path: Path) -> None:
    found = problems(tmp_path, OPEN, ("host_interfaces: [eth0]", "host_interfaces: [eth0, eth0]"))
    assert "nodes[2].host_interfaces" in found
    assert "named twice" in found


def test_malformed_nets(tmp_path: Path) -> None:
    bad = OPEN.replace(
        "ingress: [{action: Allow}]",
        "ingress:\n    - {action: Allow, source: {nets: [10.0.0.0/33]}}",
    )
    assert "spec.ingress[0].source.nets[0]" in problems(tmp_path, bad)
    found = problems(tmp_path, OPEN, ("[192.168.100.0/24]", "[192.168.100.1/24]"))
    assert "host_protection.management_networks[0]" in found


def test_unsupported_fields_are_refused_by_name(tmp_path: Path) -> None:
    bad = OPEN.replace("selector: all()", "selector: all()\n  doNotTrack: true")
    assert "spec.doNotTrack" in problems(tmp_path, bad)
    bad = OPEN.replace("selector: all()", "selector: all()\n  serviceAccountSelector: x")
    assert "spec.serviceAccountSelector" in problems(tmp_path, bad)


def test_pre_dnat_rules(tmp_path: Path) -> None:
    bad = OPEN.replace("selector: all()", "selector: all()\n  preDNAT: true")
    assert "preDNAT" in problems(tmp_path, bad)


def test_host_policy_needs_host_protection(tmp_path: Path) -> None:
    path = write(tmp_path, OPEN)
    text = path.read_text()
    start, end = text.index("host_protection:"), text.index("nodes:")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(SpecError, match="add host_protection"):
        load_cluster(path)


def test_duplicate_names(tmp_path: Path) -> None:
    assert "defined twice" in problems(tmp_path, OPEN + "---\n" + OPEN)


def test_good_input_builds(tmp_path: Path) -> None:
    assert build(tmp_path, OPEN).plan.host is not None
