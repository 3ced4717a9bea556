"""`calicc import` adopts the addresses Calico's IPAM handed to running pods.

Each kept IPAMBlock's `allocations` (by ordinal, an index into `attributes`, whose `handle_id`
is `k8s-pod-network.<containerID>` for a pod) become the node's `adopted:` entries in the lock;
tunnel handles, borrowed addresses and handles that name no container are not adopted (the
last ones reported); a pod address that is reserved, a tunnel address, or held by two
containers is an error naming the IPAMBlock and its field, and nothing is written.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.build import build, load_cluster
from calicc.compiler.calico_import.run import import_calico, write_imported
from calicc.compiler.errors import SpecError
from tests.unit.compiler.test_calico_import import DUAL_STACK_VXLAN

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "calico_import"
CALICO, IPAM = FIXTURES / "calico.yaml", FIXTURES / "ipam.yaml"
EXPORTED = ("node-1", "node-2", "node-3")


def fixture_pods() -> dict[str, list[dict[str, str]]]:
    """The pods' addresses per node, read straight from the fixture (not by calicc)."""
    found: dict[str, list[dict[str, str]]] = {}
    for item in yaml.safe_load(IPAM.read_text())["items"]:
        spec = item["spec"]
        owner = spec.get("affinity", "").removeprefix("host:")
        if item["kind"] != "IPAMBlock" or owner not in EXPORTED:
            continue
        first = int.from_bytes(bytes(int(x) for x in spec["cidr"].split("/")[0].split(".")))
        for ordinal, index in enumerate(spec["allocations"]):
            attr = spec["attributes"][index] if index is not None else None
            if attr is None or not attr["handle_id"].startswith("k8s-pod-network."):
                continue
            address = ".".join(str(b) for b in (first + ordinal).to_bytes(4))
            secondary = attr["secondary"]
            found.setdefault(owner, []).append({
                "address": address,
                "container_id": attr["handle_id"].removeprefix("k8s-pod-network."),
                "ifname": "eth0",
                "pod": f"{secondary['namespace']}/{secondary['pod']}",
            })  # fmt: skip
    return found


def ipam_with(tmp_path: Path, edit: Any) -> Path:
    """Write the IPAM fixture, changed by `edit(items)`, into tmp_path; return its path."""
    data = yaml.safe_load(IPAM.read_text())
    edit(data["items"])
    path = tmp_path / "ipam.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def block(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = next(i for i in items if i["kind"] == "IPAMBlock" and i["metadata"]["name"] == name)
    spec = found["spec"]
    assert isinstance(spec, dict)
    return spec


def lock_of(files: dict[str, str]) -> dict[str, Any]:
    data = yaml.safe_load(files["cluster.lock.yaml"])["nodes"]
    assert isinstance(data, dict)
    return data


def test_running_pods_addresses_are_adopted_and_build_frozen_passes(tmp_path: Path) -> None:
    imported = import_calico((CALICO, IPAM))
    nodes = lock_of(imported.files)
    expected = fixture_pods()
    assert expected["node-1"][0]["address"] == "10.244.0.1"  # the fixture is what we think
    assert {n: nodes[n].get("adopted") for n in EXPORTED} == {n: expected[n] for n in EXPORTED}
    assert nodes["node-1"]["tunnel_address"] == "10.244.0.0"  # ipip-tunnel-addr: not a pod's
    assert "6 running pods' addresses adopted (its `adopted:`)" in imported.summary
    out = tmp_path / "cluster"
    write_imported(imported, out)
    build(load_cluster(out / "cluster.yaml"), out / "rendered", frozen=True)
    node_json = json.loads((out / "rendered/nodes/node-1/node.json").read_text())
    assert [(a["address"], a["handle"], a["pod"]) for a in node_json["adopted"]] == [
        ("10.244.0.1", "k8s-pod-network.3f1e0a9b2c", "web-5d9c7-x2k4p"),
        ("10.244.0.2", "k8s-pod-network.8a7b6c5d4e", "coredns-6d4b7-9qz2m"),
    ]


def test_unparseable_borrowed_and_wireguard_handles_are_not_adopted(tmp_path: Path) -> None:
    def edit(items: list[dict[str, Any]]) -> None:
        spec = block(items, "10-244-0-0-26")
        spec["attributes"][1]["handle_id"] = "some-ipam-handle"
        spec["attributes"][2]["secondary"]["node"] = "node-2"  # borrowed by a pod on node-2
        spec["allocations"][9] = 3
        spec["attributes"].append({"handle_id": "wireguard-tunnel-addr-node-1", "secondary": {}})

    imported = import_calico((CALICO, ipam_with(tmp_path, edit)))
    assert "adopted" not in lock_of(imported.files)["node-1"]
    notes = [str(n) for n in imported.notes]
    assert any(
        "IPAMBlock 10-244-0-0-26: spec.allocations: 10.244.0.1: handle 'some-ipam-handle' is "
        "not <network>.<containerID>"
        in n
        and "Delete that pod before the switch" in n
        for n in notes
    )
    assert any("10.244.0.9 is the node's WireGuard address" in n for n in notes)
    assert any("held by pods on node-2 (borrowed)" in n for n in notes)


def test_a_kept_block_without_its_ipamblock_is_reported(tmp_path: Path) -> None:
    def edit(items: list[dict[str, Any]]) -> None:
        items[:] = [i for i in items if i["metadata"]["name"] != "10-244-0-128-26"]

    imported = import_calico((CALICO, ipam_with(tmp_path, edit)))
    assert [a["address"] for a in lock_of(imported.files)["node-2"]["adopted"]] == ["10.244.0.65"]
    assert any(
        "Node node-2: blocks: no IPAMBlock of 10.244.0.128/26 was exported" in str(n)
        for n in imported.notes
    )


def _refused(tmp_path: Path, *paths: Path) -> list[str]:
    out = tmp_path / "out"
    with pytest.raises(SpecError) as caught:
        write_imported(import_calico(paths), out)
    assert not out.exists()
    return [f"{Path(p.file).name}:{p.line}: {p.field}: {p.message}" for p in caught.value.problems]


def test_a_reserved_pod_address_is_an_error(tmp_path: Path) -> None:
    reservation = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPReservation",
        "metadata": {"name": "late-vip"},
        "spec": {"reservedCIDRs": ["10.244.0.65/32"]},
    }
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(reservation))
    (found,) = _refused(tmp_path, CALICO, IPAM, extra)
    assert found.startswith("ipam.yaml:")
    assert (
        "IPAMBlock 10-244-0-64-26: spec.allocations[1]: 10.244.0.65 is held by a running pod but "
        "reserved (10.244.0.65/32, an IPReservation)" in found
    )


def test_pod_on_the_tunnel_address_and_one_address_for_two_containers_are_errors(
    tmp_path: Path,
) -> None:
    def edit(items: list[dict[str, Any]]) -> None:
        block(items, "10-244-0-64-26")["attributes"][0]["handle_id"] = "k8s-pod-network.abc"
        twin = copy.deepcopy(next(i for i in items if i["metadata"]["name"] == "10-244-0-0-26"))
        twin["metadata"]["name"] = "10-244-0-0-26-again"  # the same block, named anew
        twin["spec"]["attributes"][1]["handle_id"] = "k8s-pod-network.other"
        items.append(twin)

    found = _refused(tmp_path, CALICO, ipam_with(tmp_path, edit))
    assert any(
        "IPAMBlock 10-244-0-64-26: spec.allocations[0]: 10.244.0.64 is held by a pod but is "
        "also node-2's tunnel address" in m
        for m in found
    )
    assert any(
        "spec.allocations[1]: 10.244.0.1 is held by container other and by 3f1e0a9b2c" in m
        for m in found
    )
    assert all(":None:" not in m for m in found)


def test_a_wrong_allocation_index_is_an_error(tmp_path: Path) -> None:
    def edit(items: list[dict[str, Any]]) -> None:
        block(items, "10-244-0-0-26")["allocations"][5] = 7

    (found,) = _refused(tmp_path, CALICO, ipam_with(tmp_path, edit))
    assert "IPAMBlock 10-244-0-0-26: spec.allocations[5]: expected the index of an entry" in found


def test_too_many_allocations_for_the_block_is_an_error(tmp_path: Path) -> None:
    def edit(items: list[dict[str, Any]]) -> None:
        block(items, "10-244-0-0-26")["allocations"].append(None)

    (found,) = _refused(tmp_path, CALICO, ipam_with(tmp_path, edit))
    assert "IPAMBlock 10-244-0-0-26: spec.allocations: 65 allocations for a block of 64" in found


DUAL_STACK_BLOCKS = """\
apiVersion: crd.projectcalico.org/v1
kind: IPAMBlockList
items:
- apiVersion: crd.projectcalico.org/v1
  kind: IPAMBlock
  metadata: {name: 10-50-0-0-26}
  spec:
    cidr: 10.50.0.0/26
    affinity: host:w1
    allocations: [null, 0, 1]
    attributes:
    - {handle_id: vxlan-tunnel-addr-w1, secondary: {node: w1, type: vxlanTunnelAddress}}
    - {handle_id: k8s-pod-network.abc, secondary: {namespace: shop, node: w1, pod: web}}
- apiVersion: crd.projectcalico.org/v1
  kind: IPAMBlock
  metadata: {name: fd00-50---122}
  spec:
    cidr: "fd00:50::/122"
    affinity: host:w1
    allocations: [null, 0, 1]
    attributes:
    - {handle_id: vxlan-v6-tunnel-addr-w1, secondary: {node: w1, type: vxlanV6TunnelAddress}}
    - {handle_id: k8s-pod-network.abc, secondary: {namespace: shop, node: w1, pod: web}}
"""


def test_a_dual_stack_pod_keeps_both_addresses_under_one_handle(tmp_path: Path) -> None:
    calico = tmp_path / "calico.yaml"
    calico.write_text(DUAL_STACK_VXLAN)
    ipam = tmp_path / "ipam.yaml"
    ipam.write_text(DUAL_STACK_BLOCKS)
    imported = import_calico((calico, ipam))
    w1 = lock_of(imported.files)["w1"]
    assert w1["adopted"] == [
        {"address": "10.50.0.2", "container_id": "abc", "ifname": "eth0", "pod": "shop/web"},
        {"address": "fd00:50::2", "container_id": "abc", "ifname": "eth0", "pod": "shop/web"},
    ]
    assert (w1["tunnel_address"], w1["tunnel_address_v6"]) == ("10.50.0.1", "fd00:50::1")
    out = tmp_path / "cluster"
    write_imported(imported, out)
    build(load_cluster(out / "cluster.yaml"), out / "rendered", frozen=True)
    node_json = json.loads((out / "rendered/nodes/w1/node.json").read_text())
    assert {(a["address"], a["handle"]) for a in node_json["adopted"]} == {
        ("10.50.0.2", "k8s-pod-network.abc"),
        ("fd00:50::2", "k8s-pod-network.abc"),
    }


def test_a_block_of_a_pool_no_longer_for_pods_adopts_nothing(tmp_path: Path) -> None:
    data = yaml.safe_load(CALICO.read_text())
    pools = [i for each in data for i in each["items"] if i["kind"] == "IPPool"]
    rack_b = next(p for p in pools if p["metadata"]["name"] == "rack-b-ippool")
    rack_b["spec"]["allowedUses"] = ["Tunnel"]  # pods had addresses of it before the change
    calico = tmp_path / "calico.yaml"
    calico.write_text(yaml.safe_dump(data))
    imported = import_calico((calico, IPAM))  # calicc's IPAM hands out none of its addresses
    node_3 = lock_of(imported.files)["node-3"]
    assert "10.245.0.0/27" in node_3["blocks"]["rack-b-ippool"]
    assert [a["address"] for a in node_3["adopted"]] == ["10.244.0.193"]
