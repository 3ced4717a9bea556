"""The lockout check: a host policy that cuts SSH, BGP or the API server fails the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from calicc.compiler.errors import SpecError
from tests.unit.compiler.host_cases import OPEN, build

DENY_SSH = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-ssh}
spec:
  order: 1
  selector: all()
  ingress:
    - action: Deny
      protocol: TCP
      destination: {ports: [22]}
"""


def error(tmp: Path, policies: str, **failsafes: str) -> str:
    with pytest.raises(SpecError) as info:
        build(tmp, policies, **failsafes)
    return str(info.value)


def test_denying_ssh_from_management_fails_at_the_rule(tmp_path: Path) -> None:
    found = error(tmp_path, DENY_SSH + "---\n" + OPEN)
    assert "host.yaml:8:" in found
    assert "spec.ingress[0]" in found
    assert "SSH (tcp 22) from management network 192.168.100.0/24" in found


def test_the_failsafe_keeps_ssh_open(tmp_path: Path) -> None:
    build(tmp_path, DENY_SSH + "---\n" + OPEN, inbound="[{protocol: tcp, port: 22}]")


def test_a_failsafe_for_another_network_does_not(tmp_path: Path) -> None:
    inbound = "[{protocol: tcp, port: 22, net: 10.9.0.0/16}]"
    assert "SSH" in error(tmp_path, DENY_SSH + "---\n" + OPEN, inbound=inbound)


def test_allow_before_deny_is_fine(tmp_path: Path) -> None:
    allow = DENY_SSH.replace(
        "ingress:\n", "ingress:\n    - {action: Allow, source: {nets: [192.168.0.0/16]}}\n"
    )
    build(tmp_path, allow + "---\n" + OPEN)


def test_bgp_with_the_other_nodes(tmp_path: Path) -> None:
    bgp = DENY_SSH.replace(
        "destination: {ports: [22]}",
        "source: {selector: role == 'worker'}\n      destination: {ports: [179]}",
    )
    found = error(tmp_path, bgp + "---\n" + OPEN)
    assert "BGP (tcp 179) from its peers (10.0.0.2/31)" in found


def test_egress_default_deny_cuts_the_api_server(tmp_path: Path) -> None:
    ingress_only = OPEN.replace("types: [Ingress, Egress]", "types: [Ingress, Egress]").replace(
        "egress: [{action: Allow}]", "egress: [{action: Allow, protocol: UDP}]"
    )
    found = error(tmp_path, ingress_only, outbound="[{protocol: tcp, port: 179}]")
    assert "the Kubernetes API (tcp 6443)" in found
    assert "default deny" in found


def test_api_server_node_keeps_its_port_open(tmp_path: Path) -> None:
    deny = DENY_SSH.replace("[22]", "[6443]").replace("all()", "role == 'master'")
    found = error(tmp_path, deny + "---\n" + OPEN, inbound="[{protocol: tcp, port: 22}]")
    assert "the API server (tcp 6443) from management and nodes" in found
    assert "on node master" in found
    assert "node worker" not in found


def test_no_policy_at_all_is_the_default_deny(tmp_path: Path) -> None:
    unrelated = OPEN.replace("selector: all()", "selector: role == 'nobody'")
    found = error(tmp_path, unrelated)
    assert "cluster.yaml:" in found
    assert "host_protection:" in found
    assert "no host policy applies to node master" in found


def test_calico_default_failsafes_keep_everything(tmp_path: Path) -> None:
    path_text = DENY_SSH.replace("[22]", "[22, 179, 6443]")
    compiled = build(tmp_path, path_text + "---\n" + OPEN, inbound="default", outbound="default")
    assert compiled.plan.host is not None
