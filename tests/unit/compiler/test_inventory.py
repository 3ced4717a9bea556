"""calicc inventory: groups, host vars, determinism, and that Ansible reads the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from calicc.compiler.cli import app
from calicc.compiler.inventory import (
    InventoryError,
    LabHost,
    build_inventory,
    dump_inventory,
    inventory_hosts,
    label_group,
    route_reflectors,
)
from calicc.compiler.model.spec import ClusterSpec
from tests.conftest import EXAMPLES


def spec(nodes: list[dict[str, object]]) -> ClusterSpec:
    return ClusterSpec.model_validate(
        {"name": "t", "network_cidr": "10.244.0.0/16", "nodes": nodes}
    )


NODES: list[dict[str, object]] = [
    {"name": "w2", "address": "10.0.0.3/24", "labels": {"rack": "r1"}},
    {
        "name": "rr1",
        "address": "10.0.0.1/24",
        "route_reflector_cluster_id": "1.0.0.1",
        "labels": {"node-role.kubernetes.io/control-plane": "", "rack": "r1"},
    },
    {"name": "w1", "address": "10.0.0.2/24", "labels": {"topology.kubernetes.io/zone": "Z-a"}},
]


def children(inv: dict[str, object]) -> dict[str, dict[str, dict[str, object]]]:
    return inv["all"]["children"]  # type: ignore[index,no-any-return]


def test_groups_from_roles_labels_and_route_reflectors() -> None:
    groups = {k: sorted(v["hosts"]) for k, v in children(build_inventory(spec(NODES))).items()}
    assert groups == {
        "calicc_nodes": ["rr1", "w1", "w2"],
        "calicc_route_reflectors": ["rr1"],
        "calicc_role_control_plane": ["rr1"],
        "calicc_label_rack_r1": ["rr1", "w2"],
        "calicc_label_topology_kubernetes_io_zone_z_a": ["w1"],
    }


def test_hosts_are_node_names_with_their_address() -> None:
    hosts = children(build_inventory(spec(NODES)))["calicc_nodes"]["hosts"]
    assert hosts == {
        "rr1": {"ansible_host": "10.0.0.1"},
        "w1": {"ansible_host": "10.0.0.2"},
        "w2": {"ansible_host": "10.0.0.3"},
    }


def test_lab_hosts_use_the_namespace_connection_and_skip_installs() -> None:
    lab = {"w1": LabHost(netns="ns-w1", root="/lab/w1", calicc_bin="/venv/bin/calicc")}
    hosts = children(build_inventory(spec(NODES), lab))["calicc_nodes"]["hosts"]
    assert hosts["w1"] == {
        "ansible_host": "10.0.0.2",
        "ansible_connection": "calicc_netns",
        "ansible_python_interpreter": "/usr/bin/python3",
        "calicc_netns": "ns-w1",
        "calicc_root": "/lab/w1",
        "calicc_bin": "/venv/bin/calicc",
        "calicc_apply_args": ["--allow-tunnel-standin"],
        "calicc_install_packages": False,
        "calicc_systemd": False,
    }
    assert hosts["w2"] == {"ansible_host": "10.0.0.3"}


def test_colliding_label_groups_are_an_error() -> None:
    nodes = [
        {"name": "a", "address": "10.0.0.2/24", "labels": {"zone": "a-b"}},
        {"name": "b", "address": "10.0.0.3/24", "labels": {"zone": "a.b"}},
    ]
    with pytest.raises(InventoryError, match=r"zone=a-b and zone=a\.b .*calicc_label_zone_a_b"):
        build_inventory(spec(nodes))


def test_label_group_names() -> None:
    assert label_group("node-role.kubernetes.io/worker", "") == "calicc_role_worker"
    assert label_group("Rack", "R/1") == "calicc_label_rack_r_1"


def test_output_is_deterministic_whatever_the_node_order() -> None:
    assert dump_inventory(build_inventory(spec(NODES))) == dump_inventory(
        build_inventory(spec(list(reversed(NODES))))
    )


def test_inventory_hosts_and_route_reflectors() -> None:
    inv = build_inventory(spec(NODES))
    assert inventory_hosts(inv) == ["rr1", "w1", "w2"]
    assert route_reflectors(spec(NODES)) == ["rr1"]
    assert route_reflectors(spec(NODES), ["w1", "w2"]) == []


def test_cli_writes_an_inventory_ansible_reads(tmp_path: Path) -> None:
    out = tmp_path / "inventory.yaml"
    result = CliRunner().invoke(
        app, ["inventory", str(EXAMPLES / "minikube-ipip" / "cluster.yaml"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["all"]["vars"] == {"calicc_cluster": "minikube"}
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(out), "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(listed.stdout)
    assert sorted(data["calicc_nodes"]["hosts"]) == ["minikube", "minikube-m02", "minikube-m03"]
    assert data["_meta"]["hostvars"]["minikube-m02"]["ansible_host"] == "192.168.49.3"
