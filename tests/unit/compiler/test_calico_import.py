"""`calicc import`: a running Calico's exported resources to cluster.yaml, policies and lock.

The fixtures (tests/fixtures/calico_import/) are written from Calico's documented resource
formats: a 3-node cluster with 2 pools, IPIP CrossSubnet, a route reflector, a global and a
node BGP peer, BlockAffinities and IPAMBlocks for each node, and 2 NetworkPolicies.
"""

from __future__ import annotations

import json
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml

from calicc.compiler.build import build, load_cluster
from calicc.compiler.calico_import.run import import_calico, write_imported
from calicc.compiler.errors import CaliccError, SpecError
from tests.support.hostile import run_calicc

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "calico_import"
CALICO, IPAM = FIXTURES / "calico.yaml", FIXTURES / "ipam.yaml"
POLICIES, CONFLICT = FIXTURES / "networkpolicies.yaml", FIXTURES / "conflict.yaml"
INPUTS = (CALICO, IPAM, POLICIES)


def calico_blocks() -> dict[str, set[str]]:
    """Each exported node's confirmed blocks, read straight from the fixture (not by calicc)."""
    nodes = {
        item["metadata"]["name"]
        for kind_list in yaml.safe_load(CALICO.read_text())
        for item in kind_list["items"]
        if item["kind"] == "Node"
    }
    held: dict[str, set[str]] = {}
    for item in yaml.safe_load(IPAM.read_text())["items"]:
        spec = item["spec"]
        owner = spec.get("node") or spec.get("affinity", "").removeprefix("host:")
        if owner in nodes:
            held.setdefault(owner, set()).add(spec["cidr"])
    return held


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    out = tmp_path / "cluster"
    write_imported(import_calico(INPUTS), out)
    return out


def cluster_data(out: Path) -> dict[str, Any]:
    data = yaml.safe_load((out / "cluster.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_import_writes_cluster_lock_policies_and_report(imported: Path) -> None:
    written = {str(p.relative_to(imported)) for p in imported.rglob("*") if p.is_file()}
    assert written == {
        "cluster.yaml",
        "cluster.lock.yaml",
        "import-report.md",
        "policies/networkpolicies.yaml",
    }
    data = cluster_data(imported)
    assert data["network_cidr"] == "10.244.0.0/16"
    assert [data["block_size"], data["ipip_mode"], data["vxlan_mode"]] == [
        26,
        "CrossSubnet",
        "Never",
    ]
    assert data["nat_outgoing"] is True
    assert data["service_cluster_ip_range"] == "10.96.0.0/12"  # BGPConfiguration serviceClusterIPs
    assert data["mtu"] == 1440  # FelixConfiguration ipipMTU: IPIP is the encapsulation in use
    assert data["pools"] == [
        {
            "name": "rack-b-ippool",
            "cidr": "10.245.0.0/16",
            "block_size": 27,
            "ipip_mode": "CrossSubnet",
            "vxlan_mode": "Never",
            "nat_outgoing": True,
            "node_selector": "rack == 'b'",
        },
        {
            "name": "service-lb-ippool",
            "cidr": "10.250.0.0/24",
            "block_size": 26,
            "ipip_mode": "Never",
            "vxlan_mode": "Never",
            "nat_outgoing": False,
            "allowed_uses": ["LoadBalancer"],
        },
    ]
    assert data["reservations"] == [{"cidr": "10.244.255.0/24", "name": "keep-for-vips"}]
    assert data["bgp"] == {
        "as_number": 64512,
        "node_to_node_mesh": False,
        "peers": [  # by BGPPeer name: node-3-tor, tor-global
            {
                "peer_ip": "10.30.1.1",
                "as_number": 64501,
                "port": 1179,
                "node_selector": "kubernetes.io/hostname == 'node-3'",
                "keep_next_hop": True,
                "max_restart_time": 120,  # 2m0s
                "filters": ["export-pods-only"],
            },
            {"peer_ip": "10.30.0.1", "as_number": 64500},
        ],
        "service_cluster_ips": ["10.96.0.0/12"],
        "filters": [
            {
                "name": "export-pods-only",
                "export_v4": [
                    {"action": "Accept", "cidr": "10.244.0.0/16", "match_operator": "In"}
                ],
            }
        ],
    }
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["node-1"]["address"] == "10.30.0.11/24"
    assert nodes["node-1"]["route_reflector_cluster_id"] == "244.0.0.1"
    assert nodes["node-3"]["address"] == "10.30.1.13/24"
    assert nodes["node-3"]["as_number"] == 64513
    assert nodes["node-3"]["labels"]["rack"] == "b"
    assert data["policies"] == ["policies/networkpolicies.yaml"]


def test_policies_are_kept_as_kubernetes_networkpolicies_without_server_fields(
    imported: Path,
) -> None:
    docs = list(yaml.safe_load_all((imported / "policies/networkpolicies.yaml").read_text()))
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs] == [
        ("shop", "db-egress"),
        ("shop", "web-from-frontend"),
    ]
    for doc in docs:
        assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(doc["metadata"]) <= {"name", "namespace", "labels"}
    assert docs[1]["spec"]["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_round_trip_builds_and_every_block_stays_on_its_node(imported: Path) -> None:
    """The core promise: after import and build, no running pod's address has moved."""
    lock_before = (imported / "cluster.lock.yaml").read_text()
    build(load_cluster(imported / "cluster.yaml"), imported / "rendered", frozen=True)
    calico = calico_blocks()
    assert set(calico) == {"node-1", "node-2", "node-3"}
    for node, blocks in calico.items():
        manifest = json.loads((imported / f"rendered/nodes/{node}/node.json").read_text())
        built = {b["cidr"] for b in manifest["blocks"]}
        assert blocks <= built, node
    assert (imported / "cluster.lock.yaml").read_text() == lock_before  # the build kept it
    node1 = json.loads((imported / "rendered/nodes/node-1/node.json").read_text())
    assert node1["tunnel_address"] == "10.244.0.0"  # Calico's ipv4IPIPTunnelAddr


def test_blocks_added_for_max_pods_never_overlap_calico_blocks(imported: Path) -> None:
    lock = yaml.safe_load((imported / "cluster.lock.yaml").read_text())
    every = [
        ip_network(b)
        for node in lock["nodes"].values()
        for bs in node["blocks"].values()
        for b in bs
    ]
    assert len(every) == len(set(every))
    assert not any(a.overlaps(b) for i, a in enumerate(every) for b in every[i + 1 :])
    assert lock["nodes"]["node-2"]["blocks"] == {
        "default-ipv4-ippool": ["10.244.0.64/26", "10.244.0.128/26"]
    }


def test_report_names_every_unmapped_field_and_resource(imported: Path) -> None:
    report = (imported / "import-report.md").read_text()
    for row in (
        "| GlobalNetworkPolicy | default.deny-metadata |  |",
        "| IPPool | rack-b-ippool | spec.disableBGPExport |",
        "| BlockAffinity | node-old-10-244-1-64-26 | spec.cidr |",
        "| BGPPeer | peer-with-route-reflectors | spec.peerSelector |",
    ):
        assert row in report, row
    assert "logSeverityScreen" not in report  # Info, Calico's default: nothing is lost
    for mapped in ("BGPFilter", "serviceClusterIPs", "spec.filters"):
        assert mapped not in report, mapped  # bgp.filters, service_cluster_ips, peers' filters
    assert "maxRestartTime" not in report  # mapped: max_restart_time
    left_out = report.split("## Warnings")[1].split("## Notes")[0]
    assert "node-old" in left_out
    assert "Node | node-1 | blocks | calicc adds 10.244.1.0/26" in report


def test_cli_prints_the_report_and_writes(tmp_path: Path) -> None:
    out = tmp_path / "imported"
    args = ["import", CALICO, IPAM, "--policies", POLICIES, "-o", out]
    result = run_calicc(args, tmp_path)
    assert result.code == 0, result.stderr
    assert "unmapped: GlobalNetworkPolicy default.deny-metadata:" in result.stdout
    assert "warning: BlockAffinity node-old-10-244-1-64-26: spec.cidr:" in result.stdout
    assert f"written: {out / 'cluster.yaml'}" in result.stdout
    assert "imported: 5 blocks kept on 3 nodes (cluster.lock.yaml)" in result.stdout
    again = run_calicc(args, tmp_path)  # the files exist now: refused, unless --force
    assert again.code == 1
    assert "exists; import into a new directory, or --force" in again.stderr
    assert run_calicc([*args, "--force"], tmp_path).code == 0


def assert_refused(tmp_path: Path, files: list[Path], *needles: str) -> str:
    out = tmp_path / "out"
    result = run_calicc(["import", *files, "-o", out], tmp_path)
    assert result.code == 1, result.stdout + result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing written
    return result.stderr


def test_conflicting_block_affinity_is_an_error_naming_both_claims(tmp_path: Path) -> None:
    stderr = assert_refused(
        tmp_path,
        [CALICO, IPAM, CONFLICT],
        "conflict.yaml:",
        "BlockAffinity node-3-10-244-0-64-26: spec.cidr:",
        "10.244.0.64/26 of node node-3 conflicts with 10.244.0.64/26 of node node-2",
    )
    assert "ipam.yaml:" in stderr  # where node-2's claim was read


def extra(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BLOCK = """\
apiVersion: crd.projectcalico.org/v1
kind: IPAMBlock
metadata:
  name: 10-99-0-0-26
spec:
  affinity: host:node-2
  allocations: {allocations}
  cidr: 10.99.0.0/26
  deleted: false
"""


def test_a_block_in_use_outside_every_pool_is_an_error(tmp_path: Path) -> None:
    block = extra(tmp_path, "block.yaml", BLOCK.format(allocations="[0, null]"))
    assert_refused(
        tmp_path,
        [CALICO, IPAM, block],
        "block.yaml:8:",
        "IPAMBlock 10-99-0-0-26: spec.cidr:",
        "outside every imported IPPool (1 address(es) in use)",
    )


def test_an_empty_block_outside_every_pool_is_left_out_with_a_warning(tmp_path: Path) -> None:
    block = extra(tmp_path, "block.yaml", BLOCK.format(allocations="[null, null]"))
    result = import_calico([CALICO, IPAM, block])
    assert any(
        n.severity == "warning" and n.name == "10-99-0-0-26" and "holds no address" in n.reason
        for n in result.notes
    )
    assert "10.99.0.0/26" not in result.files["cluster.lock.yaml"]


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("nodes: [1, 2\n", ("bad.yaml:2:", "YAML syntax error")),
        ("name: lab\nnodes: []\n", ("bad.yaml:1:", "no apiVersion and kind", "calicoctl")),
        (
            "apiVersion: projectcalico.org/v9\nkind: IPPool\nmetadata: {name: p}\nspec: {}\n",
            ("bad.yaml:1:", "IPPool p:", "unknown apiVersion 'projectcalico.org/v9'"),
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\n"
            "spec: {blockSize: 26}\n",
            ("bad.yaml:4:", "IPPool p: spec.cidr:", "expected a CIDR"),
        ),
        (
            "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: b}\n"
            "spec: {cidr: 10.244.0.0/26, state: confirmed}\n",
            ("bad.yaml:4:", "BlockAffinity b: spec.node:", "missing"),
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node-9}\n"
            "spec: {orchRefs: []}\n",
            ("bad.yaml:4:", "Node node-9: spec.bgp.ipv4Address:", "missing"),
        ),
    ],
    ids=["not-yaml", "not-calicoctl", "unknown-api", "pool-without-cidr", "affinity-no-node",
         "node-without-address"],
)  # fmt: skip
def test_bad_input_is_an_error_with_file_line_kind_and_name(
    tmp_path: Path, text: str, needles: tuple[str, ...]
) -> None:
    bad = extra(tmp_path, "bad.yaml", text)
    assert_refused(tmp_path, [CALICO, IPAM, bad], *needles)


def test_bad_input_raises_before_anything_is_computed(tmp_path: Path) -> None:
    bad = extra(tmp_path, "bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    with pytest.raises(SpecError, match="Pod x"):
        import_calico([CALICO, bad])


def test_calicoctl_single_kind_and_multi_document_forms_read_alike(tmp_path: Path) -> None:
    """`calicoctl get ippools -o yaml` prints one List; several files or `---` work too."""
    lists = yaml.safe_load(CALICO.read_text())
    stream = extra(tmp_path, "stream.yaml", yaml.safe_dump_all(lists))
    single = [extra(tmp_path, f"{i}.yaml", yaml.safe_dump(x)) for i, x in enumerate(lists)]
    expected = import_calico([CALICO, IPAM]).files
    assert import_calico([stream, IPAM]).files == expected
    reversed_stream = extra(tmp_path, "reversed.yaml", yaml.safe_dump_all(lists[::-1]))
    assert import_calico([IPAM, reversed_stream]).files == expected
    assert import_calico([*single, IPAM]).files == expected


def test_a_networkpolicy_calicc_refuses_is_left_out_and_reported(tmp_path: Path) -> None:
    text = POLICIES.read_text().replace("protocol: UDP", "protocol: ICMP")
    policies = extra(tmp_path, "netpol.yaml", text)
    result = import_calico([CALICO, IPAM, policies])
    refused = [n for n in result.notes if n.name == "shop/db-egress"]
    assert refused
    assert all(n.severity == "unmapped" and "left out" in n.reason for n in refused)
    assert "netpol.yaml:" in refused[0].reason
    kept = result.files["policies/networkpolicies.yaml"]
    assert "web-from-frontend" in kept
    assert "db-egress" not in kept


def test_calico_networkpolicy_is_reported_not_compiled(tmp_path: Path) -> None:
    calico_policy = extra(
        tmp_path,
        "calico-netpol.yaml",
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n"
        "metadata: {name: allow-dns, namespace: shop}\nspec: {selector: all()}\n",
    )
    result = import_calico([CALICO, IPAM, calico_policy])
    assert any(n.kind == "NetworkPolicy" and n.name == "allow-dns" for n in result.notes)
    assert "policies/networkpolicies.yaml" not in result.files


def test_a_result_calicc_would_not_build_is_an_error(tmp_path: Path) -> None:
    """A node name Kubernetes accepts but a peer that is a node: refused by the build's checks."""
    text = CALICO.read_text().replace("peerIP: 10.30.0.1\n", "peerIP: 10.30.0.12\n")
    calico = extra(tmp_path, "calico.yaml", text)
    with pytest.raises(CaliccError, match="the imported cluster does not build"):
        import_calico([calico, IPAM])


DUAL_STACK_VXLAN = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 10.50.0.0/16, blockSize: 26, vxlanMode: Always, ipipMode: Never, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv6-ippool}
spec: {cidr: "fd00:50::/56", blockSize: 122, vxlanMode: Always, natOutgoing: true}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: node.w1}
spec: {listenPort: 1179, logSeverityScreen: Debug}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: odd-peering}
spec: {nodeSelector: all(), peerSelector: "rack == 'a'"}
---
apiVersion: projectcalico.org/v3
kind: NodeList
items:
- apiVersion: projectcalico.org/v3
  kind: Node
  metadata: {name: w1, labels: {rack: a}}
  spec:
    bgp: {ipv4Address: 10.60.0.1/24, ipv6Address: "fd00:60::1/64"}
    ipv4VXLANTunnelAddr: 10.50.0.1
    vxlanTunnelMACAddr: "66:aa:bb:cc:dd:01"
    ipv6VXLANTunnelAddr: "fd00:50::1"
    vxlanTunnelMACAddrV6: "66:aa:bb:cc:dd:02"
- apiVersion: projectcalico.org/v3
  kind: Node
  metadata: {name: w2}
  spec:
    bgp: {ipv4Address: 10.60.0.2/24, ipv6Address: "fd00:60::2/64"}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinityList
items:
- apiVersion: projectcalico.org/v3
  kind: BlockAffinity
  metadata: {name: w1-10-50-0-0-26}
  spec: {cidr: 10.50.0.0/26, node: w1, state: confirmed, deleted: false}
- apiVersion: projectcalico.org/v3
  kind: BlockAffinity
  metadata: {name: w1-fd00-50---122}
  spec: {cidr: "fd00:50::/122", node: w1, state: confirmed, deleted: false}
- apiVersion: projectcalico.org/v3
  kind: BlockAffinity
  metadata: {name: w2-10-50-1-0-26}
  spec: {cidr: 10.50.1.0/26, node: w2, state: pending, deleted: false}
"""


def test_dual_stack_vxlan_keeps_blocks_tunnel_addresses_and_vtep_macs(tmp_path: Path) -> None:
    result = import_calico([extra(tmp_path, "calico.yaml", DUAL_STACK_VXLAN)])
    lock = yaml.safe_load(result.files["cluster.lock.yaml"])["nodes"]
    w1 = lock["w1"]
    assert "10.50.0.0/26" in w1["blocks"]["default-ipv4-ippool"]
    assert "fd00:50::/122" in w1["blocks"]["default-ipv6-ippool"]
    assert (w1["tunnel_address"], w1["vtep_mac"]) == ("10.50.0.1", "66:aa:bb:cc:dd:01")
    assert (w1["tunnel_address_v6"], w1["vtep_mac_v6"]) == ("fd00:50::1", "66:aa:bb:cc:dd:02")
    assert "10.50.1.0/26" not in str(lock)  # a pending affinity is not held
    data = yaml.safe_load(result.files["cluster.yaml"])
    assert (data["network_cidr_v6"], data["block_size_v6"]) == ("fd00:50::/56", 122)
    assert data["vxlan_mode"] == "Always"
    assert data["nodes"][0]["address_v6"] == "fd00:60::1/64"
    by_field = {(n.kind, n.name, n.field): n for n in result.notes}
    assert by_field[("BGPConfiguration", "node.w1", "spec.listenPort")].severity == "unmapped"
    assert by_field[("BGPPeer", "odd-peering", "spec.peerSelector")].severity == "unmapped"
    assert by_field[("BlockAffinity", "w2-10-50-1-0-26", "spec.state")].severity == "warning"
    assert "mtu" not in data  # no FelixConfiguration: derived from the link, and noted
    assert "link_mtu" in by_field[("FelixConfiguration", "default", "spec.ipipMTU")].reason


def test_a_used_block_in_a_pool_that_no_longer_selects_its_node_is_an_error(
    tmp_path: Path,
) -> None:
    text = CALICO.read_text().replace("nodeSelector: rack == 'b'", "nodeSelector: rack == 'c'")
    calico = extra(tmp_path, "calico.yaml", text)
    assert_refused(
        tmp_path,
        [calico, IPAM],
        "IPAMBlock 10-245-0-0-27: spec.cidr:",
        "IPPool rack-b-ippool's nodeSelector leaves node-3 out (1 address(es) in use)",
    )


def test_a_value_calicc_refuses_is_blamed_on_the_calico_resource(tmp_path: Path) -> None:
    text = CALICO.read_text().replace("        rack: a\n", "        rack: -a-\n")
    calico = extra(tmp_path, "calico.yaml", text)
    assert_refused(
        tmp_path,
        [calico, IPAM],
        "calico.yaml:",
        "Node node-2: metadata.labels:",
        "calicc refuses it as labels.rack:",
    )


def test_import_is_deterministic_and_names_a_renamed_default_pool(tmp_path: Path) -> None:
    text = CALICO.read_text().replace("name: default-ipv4-ippool", "name: pods-v4")
    calico = extra(tmp_path, "calico.yaml", text)
    first = import_calico([calico, IPAM, POLICIES])
    assert import_calico([calico, IPAM, POLICIES]) == first
    assert "default-ipv4-ippool:\n      - 10.244.0.0/26" in first.files["cluster.lock.yaml"]
    assert any(n.kind == "IPPool" and n.name == "pods-v4" for n in first.notes)


def test_a_node_peer_adds_the_hostname_label_the_node_lacks(tmp_path: Path) -> None:
    text = CALICO.read_text().replace("        kubernetes.io/hostname: node-3\n", "")
    result = import_calico([extra(tmp_path, "calico.yaml", text), IPAM])
    nodes = {n["name"]: n for n in yaml.safe_load(result.files["cluster.yaml"])["nodes"]}
    assert nodes["node-3"]["labels"]["kubernetes.io/hostname"] == "node-3"
    assert any(n.name == "node-3" and n.field == "metadata.labels" for n in result.notes)


def test_addresses_borrowed_by_pods_on_another_node_are_reported(tmp_path: Path) -> None:
    text = IPAM.read_text().replace(
        "        namespace: shop\n        node: node-2\n        pod: db-0\n",
        "        namespace: shop\n        node: node-3\n        pod: db-0\n",
    )
    assert text != IPAM.read_text()
    result = import_calico([CALICO, extra(tmp_path, "ipam.yaml", text)])
    borrowed = [n for n in result.notes if n.name == "10-244-0-128-26"]
    assert [n.severity for n in borrowed] == ["warning"]
    assert "1 address(es) of node-2's block held by pods on node-3" in borrowed[0].reason


def test_a_stale_affinity_to_a_removed_node_never_conflicts(tmp_path: Path) -> None:
    stale = CONFLICT.read_text().replace("node: node-3", "node: node-old")
    result = import_calico([CALICO, IPAM, extra(tmp_path, "stale.yaml", stale)])
    assert any(
        n.severity == "warning" and "no Node node-old" in n.reason and n.name.startswith("node-3")
        for n in result.notes
    )
    lock = yaml.safe_load(result.files["cluster.lock.yaml"])["nodes"]
    assert "10.244.0.64/26" in lock["node-2"]["blocks"]["default-ipv4-ippool"]


def test_a_symbolic_link_as_the_output_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.symlink_to(elsewhere)
    with pytest.raises(SpecError, match="is a symbolic link"):
        write_imported(import_calico(INPUTS), out, force=True)
    assert not any(elsewhere.iterdir())


def test_where_calicc_peering_differs_from_calico_it_says_so(tmp_path: Path) -> None:
    text = CALICO.read_text().replace("nodeToNodeMeshEnabled: false", "nodeToNodeMeshEnabled: true")
    text = text.replace("peerSelector: route-reflector == 'true'", "peerSelector: rack == 'a'")
    result = import_calico([extra(tmp_path, "calico.yaml", text), IPAM])
    fields = {(n.kind, n.name, n.field): n for n in result.notes}
    assert (
        "no node-to-node mesh"
        in fields[("BGPConfiguration", "default", "spec.nodeToNodeMeshEnabled")].reason
    )
    assert (
        "peers every node with them anyway"
        in fields[("Node", "node-1", "spec.bgp.routeReflectorClusterID")].reason
    )
    assert fields[("BGPPeer", "peer-with-route-reflectors", "spec.peerSelector")].severity == (
        "unmapped"
    )
    assert yaml.safe_load(result.files["cluster.yaml"])["bgp"]["node_to_node_mesh"] is True


def test_reservations_outside_or_across_every_pool_are_noted_not_kept(tmp_path: Path) -> None:
    text = CALICO.read_text().replace(
        "      - 10.244.255.0/24\n",
        "      - 10.244.255.0/24\n      - 10.99.0.0/24\n      - 10.0.0.0/8\n",
    )
    result = import_calico([extra(tmp_path, "calico.yaml", text), IPAM])
    data = yaml.safe_load(result.files["cluster.yaml"])
    assert data["reservations"] == [{"cidr": "10.244.255.0/24", "name": "keep-for-vips"}]
    why = {n.reason: n.severity for n in result.notes if n.kind == "IPReservation"}
    assert why["10.99.0.0/24 is outside every imported IPPool: nothing to reserve"] == "note"
    assert why["10.0.0.0/8 reaches outside IPPool default-ipv4-ippool: not kept"] == "unmapped"


def test_a_used_block_in_a_load_balancer_pool_is_an_error(tmp_path: Path) -> None:
    text = BLOCK.format(allocations="[0]").replace("10-99-0-0-26", "10-250-0-0-26")
    block = extra(tmp_path, "block.yaml", text.replace("10.99.0.0/26", "10.250.0.0/26"))
    assert_refused(
        tmp_path,
        [CALICO, IPAM, block],
        "IPAMBlock 10-250-0-0-26: spec.cidr:",
        "IPPool service-lb-ippool is for LoadBalancer addresses only",
    )
